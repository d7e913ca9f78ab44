"""Candidates of the directional pack: who is eligible, each name's score tier and weight band, the
market-cap band rows, the check of every rule a finished pack must meet, and the exact pruning of
dominated names.

Pure and shared by the exact solver (`exact`), the score-order fill (`greedy`) and the explanations
(`explain`). The candidate table has one row per eligible name, best score first, with the columns of
the opportunities table plus `tier` (its label), `lo`/`hi` (its band), `u` (its full size: the band
maximum, or the Kelly weight inside the band) and `c` (its objective coefficient).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import pandas as pd

from wolfkit.config import Params
from wolfkit.errors import BadInputError
from wolfkit.sizing import kelly_fraction

TOL = 1e-6


class Candidates(NamedTuple):
    """The candidate table (`table`), the names below `min_score` with why (`excluded`: symbol,
    reason), and which column is the objective coefficient (`basis`: expected_return or score)."""

    table: pd.DataFrame
    excluded: pd.DataFrame
    basis: str


def pct(x: float) -> str:
    """A fraction as the percentage the messages show: 0.1 → "10%", 0.125 → "12.5%"."""
    return f"{100 * x:.1f}%".replace(".0%", "%")


def tier_labels(params: Params) -> list[str]:
    """The score tiers' labels, best first ("90+", "80–89", …): the names reports and the backtester use."""
    tiers = params.portfolio.tiers
    out = []
    for i, t in enumerate(tiers):
        if i == 0:
            out.append(f"{t.min_score:g}+")
        else:
            out.append(f"{t.min_score:g}–{tiers[i - 1].min_score - 1:g}")
    return out


def candidate_table(opps: pd.DataFrame, params: Params) -> Candidates:
    """Candidates with their band [lo, hi], upper bound u (the full size) and coefficient c; plus exclusions.

    `opps` is a validated opportunities table. `sizing.weight_rule: kelly` caps u at the
    leverage-aware Kelly weight inside the band and needs expected_return and return_std everywhere.
    """
    pp = params.portfolio
    if len(opps) and opps["symbol"].duplicated().any():
        dup = opps.loc[opps["symbol"].duplicated(), "symbol"].iloc[0]
        raise BadInputError(f"opportunities: symbol {dup} appears twice; validate_opportunities first")
    low = opps["score"] < pp.min_score
    excluded = pd.DataFrame(
        {"symbol": opps.loc[low, "symbol"], "reason": f"below min_score {pp.min_score:g}"}
    )
    c = opps.loc[~low].copy()
    if "cap_tier" not in c:
        c["cap_tier"] = [pp.market_cap.tier_of(m) for m in c["market_cap"]]
    labels = tier_labels(params)
    idx = [next(i for i, t in enumerate(pp.tiers) if s >= t.min_score) for s in c["score"]]
    c["tier"] = [labels[i] for i in idx]
    c["lo"] = [pp.tiers[i].weight_min for i in idx]
    c["hi"] = [pp.tiers[i].weight_max for i in idx]
    if "expected_return" not in c:
        c["expected_return"] = np.nan
    target = pp.target_allocation
    if params.sizing.weight_rule == "kelly":
        if "return_std" not in c or c[["expected_return", "return_std"]].isna().any().any():
            raise BadInputError(
                "opportunities: sizing.weight_rule kelly needs expected_return and return_std on every "
                "candidate; add the columns or use weight_rule: score"
            )
        k = np.array([
            kelly_fraction(er, sd**2, target, params.sizing.kelly_fraction)
            for er, sd in zip(c["expected_return"], c["return_std"])
        ])
        c["u"] = np.clip(k, c["lo"], c["hi"])
    else:
        c["u"] = c["hi"]
    basis = "expected_return" if len(c) and c["expected_return"].notna().all() else "score"
    c["c"] = c[basis].astype(float)
    c = c.sort_values(["score", "c", "symbol"], ascending=[False, False, True]).reset_index(drop=True)
    return Candidates(c, excluded.reset_index(drop=True), basis)


def top_sum(values: np.ndarray, k: int) -> float:
    """The sum of the `k` largest values: the most `k` names can carry."""
    return float(np.sort(values)[::-1][:k].sum())


def band_rows(params: Params, target: float) -> dict[str, tuple[float, float]]:
    """Each market-cap tier's [min, max] as fractions of equity (the bands are shares of the allocation)."""
    return {t: (lo * target, hi * target) for t, (lo, hi) in params.portfolio.market_cap.bands.items()}


def violations(c: pd.DataFrame, w: np.ndarray, params: Params) -> list[str]:
    """Every rule the pack with weights `w` (per row of `c`) breaks; empty when it meets them all."""
    pp = params.portfolio
    target = pp.target_allocation
    out = []
    sel = w > 0
    if abs(w.sum() - target) > TOL:
        out.append(f"allocation {pct(w.sum())} instead of {pct(target)}")
    if not pp.min_positions <= sel.sum() <= pp.max_positions:
        out.append(f"{int(sel.sum())} positions, outside {pp.min_positions}–{pp.max_positions}")
    lo, u = c["lo"].to_numpy(), c["u"].to_numpy()
    if ((w[sel] < lo[sel] - TOL) | (w[sel] > u[sel] + TOL)).any():
        out.append("a weight outside its tier band")
    for s, tot in pd.Series(w).groupby(c["sector"].to_numpy()).sum().items():
        if tot > pp.cap_for(s) + TOL:
            out.append(f"sector {s} at {pct(tot)} above its cap {pct(pp.cap_for(s))}")
    by_tier = pd.Series(w).groupby(c["cap_tier"].to_numpy()).sum()
    for t, (blo, bhi) in band_rows(params, target).items():
        tot = float(by_tier.get(t, 0.0))
        if not blo - TOL <= tot <= bhi + TOL:
            out.append(f"market-cap tier {t} at {pct(tot)} outside [{pct(blo)}, {pct(bhi)}]")
    return out


def free_sectors(c: pd.DataFrame, params: Params, k: int) -> set[str]:
    """Sectors whose cap cannot bind: their k largest upper bounds already fit under the cap."""
    u = c["u"].to_numpy(float)
    return {
        s for s, pos in c.groupby("sector", sort=False).indices.items()
        if top_sum(u[pos], k) <= params.portfolio.cap_for(s) + TOL
    }


def prune_dominated(c: pd.DataFrame, params: Params, k: int) -> np.ndarray:
    """Keep-mask that provably leaves the optimum with at most `k` names unchanged.

    Group the names by cap tier and sector, where every sector whose cap cannot bind
    (`free_sectors`: its k largest upper bounds fit under the cap, so no pack of <= k names reaches
    it) joins one shared "no binding cap" group. Inside a group, name j dominates name i when
    lo_j <= lo_i, u_j >= u_i and c_j >= c_i (ties broken by position: a strict partial order).
    Exchange argument: in a pack holding i but not a dominator j, give j the weight of i and drop i.
    The weight fits j's band, the count is unchanged, the cap tier's total is unchanged, the sector
    totals are unchanged (same sector) or the weight moves into a sector whose cap cannot bind (free
    group), and the objective does not fall. Each such swap moves up the strict order, so repeating
    it ends in an optimum where no chosen name has an unselected dominator. A name
    with >= m dominators always has an unselected one when i is chosen, where m bounds how many
    names of the group a pack can hold: k, and floor(cap / min lo of the group) under the tier band
    maximum and, for a sector group, the sector cap (every chosen name carries at least its lo).
    Dropping names with >= m dominators therefore keeps an optimum.
    """
    pp = params.portfolio
    target = pp.target_allocation
    keep = np.ones(len(c), dtype=bool)
    if not len(c):
        return keep
    free = free_sectors(c, params, k)
    lo, u, cc = c["lo"].to_numpy(float), c["u"].to_numpy(float), c["c"].to_numpy(float)
    sec = c["sector"].to_numpy()
    key = np.where(np.isin(sec, list(free)), "", sec)
    bands = band_rows(params, target)
    frame = pd.DataFrame({"tier": c["cap_tier"].to_numpy(), "key": key})
    for (tier, s), pos in frame.groupby(["tier", "key"], sort=False).indices.items():
        lo_min = float(lo[pos].min())
        m = k
        if lo_min > 0:
            m = min(m, int(np.floor(bands[tier][1] / lo_min + 1e-9)))
            if s:
                m = min(m, int(np.floor(pp.cap_for(s) / lo_min + 1e-9)))
        if len(pos) <= m:
            continue
        L, U, C = lo[pos], u[pos], cc[pos]
        geq = (L[:, None] <= L[None, :]) & (U[:, None] >= U[None, :]) & (C[:, None] >= C[None, :])
        same = (L[:, None] == L[None, :]) & (U[:, None] == U[None, :]) & (C[:, None] == C[None, :])
        order = np.arange(len(pos))
        dom = geq & (~same | (order[:, None] < order[None, :]))  # dom[j, i]: j dominates i
        keep[pos[dom.sum(axis=0) >= max(m, 0)]] = False
    return keep
