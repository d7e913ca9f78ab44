"""Candidates of the directional pack: who is eligible, each name's score tier and weight band, the
market-cap band rows, the check of every rule a finished pack must meet, and the exact pruning of
dominated names.

Pure and shared by the exact solver (`exact`), the score-order fill (`greedy`) and the explanations
(`explain`). The candidate table has one row per eligible name, best score first, with the columns of
the opportunities table plus `tier` (its label), `lo`/`hi` (its band), `u` (its full size: the band
maximum, or the Kelly weight inside the band, lowered by the risk and liquidity caps of `limits`),
`cap_rule` (which cap lowered it: "risk", "liquidity" or "") and `c` (its objective coefficient).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, NamedTuple

import numpy as np
import pandas as pd

from wolfkit.config import Params
from wolfkit.diversify.limits import below_floors, cap_reason, weight_caps
from wolfkit.errors import BadInputError
from wolfkit.sizing import kelly_fraction

if TYPE_CHECKING:
    from wolfkit.calibration import Calibration

TOL = 1e-6

TIE = 1e-7
"""Calibrated objective: per score point added to the coefficient (0.3 bp across 70–100), so names the
calibration values alike (an isotonic fit is flat in places) rank by score, in both methods and in the
solver (a smaller difference is below what the solver's tolerances tell apart)."""

VALUE_TOL = 1e-9
"""Coefficients closer than this are equal: a name is "valued above" a pick only by more."""


class Rule(StrEnum):
    """The rules that keep a name out of the pack; every reason for leaving out a name ranked above a
    pick starts with one of them."""

    MIN_SCORE = "min_score"
    SECTOR_CAP = "sector cap"
    CAP_BAND = "market-cap band"
    TIER_BAND = "tier band"
    COUNT = "count"
    ALLOCATION = "allocation"


class Basis(StrEnum):
    """The objective coefficient both methods maximise (Σ weight × coefficient)."""

    CALIBRATED = "calibrated"
    EXPECTED_RETURN = "expected_return"
    SCORE = "score"


class Candidates(NamedTuple):
    """The candidate table (`table`, in rank order), the names below `min_score`, under a risk floor or
    whose risk or liquidity cap falls under their band minimum, with why (`excluded`: symbol, reason), and
    the objective coefficient (`basis`)."""

    table: pd.DataFrame
    excluded: pd.DataFrame
    basis: Basis


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


def candidate_table(opps: pd.DataFrame, params: Params, equity: float | None = None,
                    calibration: Calibration | None = None) -> Candidates:
    """Candidates with their band [lo, hi], upper bound u (the full size) and coefficient c; plus exclusions.

    `opps` is a validated opportunities table. `sizing.weight_rule: kelly` caps u at the
    leverage-aware Kelly weight inside the band and needs expected_return and return_std everywhere.
    The risk floors and caps (`limits`) apply here; `equity` (USD) is what the liquidity cap divides
    by (None: that cap is left to the packer's share cap).
    The coefficient (`objective_coefficient`) also orders the rows: the rank both methods share.
    """
    pp = params.portfolio
    if len(opps) and opps["symbol"].duplicated().any():
        dup = opps.loc[opps["symbol"].duplicated(), "symbol"].iloc[0]
        raise BadInputError(f"opportunities: symbol {dup} appears twice; validate_opportunities first")
    low = opps["score"] < pp.min_score
    excluded = pd.DataFrame(
        {"symbol": opps.loc[low, "symbol"], "reason": f"below min_score {pp.min_score:g}"}
    )
    floor = below_floors(opps.loc[~low], params)
    excluded = pd.concat([excluded, pd.DataFrame({"symbol": opps.loc[floor.index[floor != ""], "symbol"],
                                                  "reason": floor[floor != ""].to_numpy()})])
    c = opps.loc[floor.index[floor == ""]].copy()
    if "cap_tier" not in c:
        c["cap_tier"] = [pp.market_cap.tier_of(m) for m in c["market_cap"]]
    labels = np.array(tier_labels(params), dtype=object)
    mins = np.array([t.min_score for t in pp.tiers], dtype=float)  # strictly decreasing
    idx = (mins[None, :] > c["score"].to_numpy(float)[:, None]).sum(axis=1)  # the first tier the score reaches
    c["tier"] = labels[idx]
    c["lo"] = np.array([t.weight_min for t in pp.tiers])[idx]
    c["hi"] = np.array([t.weight_max for t in pp.tiers])[idx]
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
    caps = weight_caps(c, params, equity)
    c["cap_rule"] = np.where(caps.cap < c["u"].to_numpy(float), caps.rule, "").astype(object)
    c["u"] = np.minimum(c["u"].to_numpy(float), caps.cap)
    out = (c["u"] < c["lo"] - TOL).to_numpy()
    if out.any():
        why = [cap_reason(row, cap, rule, params, equity)
               for (_, row), cap, rule in zip(c.loc[out].iterrows(), caps.cap[out], caps.rule[out])]
        excluded = pd.concat([excluded, pd.DataFrame({"symbol": c.loc[out, "symbol"].to_numpy(), "reason": why})])
        c = c.loc[~out]
    basis = objective_coefficient(c, params, calibration)
    sym, cc, score = c["symbol"].to_numpy(str), -c["c"].to_numpy(float), -c["score"].to_numpy(float)
    order = np.lexsort((sym, score, cc) if basis is Basis.CALIBRATED else (sym, cc, score))
    c = c.iloc[order].reset_index(drop=True)
    return Candidates(c, excluded.reset_index(drop=True), basis)


def uses_calibration(params: Params, calibration: Calibration | None) -> bool:
    """Whether the calibrated objective applies: asked for, and a ready calibration given."""
    return params.portfolio.objective == "calibrated" and calibration is not None and calibration.ready


def objective_note(params: Params, calibration: Calibration | None) -> str:
    """Why the calibrated objective was asked for but not used: the calibration had too little history.

    Empty when it was used, not asked for, or no calibration was given at all: every command that
    builds a pack (build, premarket, replay, backtest) fits one (`wolfkit.calibration.for_build`), so
    only a direct call without one gets the raw objective, and `Targets.basis` says so."""
    if calibration is None or uses_calibration(params, calibration) or params.portfolio.objective != "calibrated":
        return ""
    return calibration.describe()


def objective_coefficient(c: pd.DataFrame, params: Params, calibration: Calibration | None) -> Basis:
    """Set `c["c"]`, the coefficient both methods maximise, and say which it is.

    `portfolio.objective: calibrated` with a ready calibration: calibrated_return − risk_aversion ×
    calibrated_risk (+ `TIE` × score), with both columns added to the table; the rows then rank by it.
    Otherwise the raw coefficient, expected_return when every candidate has one, else score; the rows
    rank by score (the scan's order).
    """
    if calibration is not None and uses_calibration(params, calibration):
        s = c["score"].to_numpy(float)
        c["calibrated_return"] = calibration.expected_return(s)
        c["calibrated_risk"] = calibration.risk(s)
        c["c"] = c["calibrated_return"] - params.portfolio.risk_aversion * c["calibrated_risk"] + TIE * s
        return Basis.CALIBRATED
    basis = Basis.EXPECTED_RETURN if len(c) and c["expected_return"].notna().all() else Basis.SCORE
    c["c"] = c[str(basis)].astype(float)
    return basis


@dataclass(frozen=True)
class SwapRules:
    """What stops a left-out name i from taking a pick j's place at j's weight, for many picks at once.

    The count and the allocation are unchanged by a swap at equal weight, so what can stop it is i's
    tier band (it cannot hold j's weight), i's sector cap, i's market-cap band maximum or j's band
    minimum. The candidate table's columns are read once (`of`); `blocks` gives one mask per rule over
    the picks `js`, `text` the figures of one rule for one pick (formatted only where reported).
    """

    c: pd.DataFrame
    params: Params
    lo: np.ndarray
    u: np.ndarray
    sector: np.ndarray
    cap_tier: np.ndarray
    bands: dict[str, tuple[float, float]]

    @classmethod
    def of(cls, c: pd.DataFrame, params: Params) -> SwapRules:
        return cls(c, params, c["lo"].to_numpy(float), c["u"].to_numpy(float), c["sector"].to_numpy(),
                   c["cap_tier"].to_numpy(), band_rows(params, params.portfolio.target_allocation))

    def _figures(self, w: np.ndarray, i: int, js: np.ndarray, sec_w: dict[str, float],
                 tier_w: dict[str, float]) -> dict[str, np.ndarray]:
        """Per pick in `js`: its weight, name i's weight in its place (within i's band), i's sector and cap
        tier totals after the swap, and the pick's tier total before it."""
        wj = w[js]
        wi = np.minimum(np.maximum(wj, self.lo[i]), self.u[i])
        si, ti = self.sector[i], self.cap_tier[i]
        tj = self.cap_tier[js]
        return {"wj": wj, "wi": wi,
                "new_sec": sec_w.get(si, 0.0) + wi - np.where(self.sector[js] == si, wj, 0.0),
                "new_ti": tier_w.get(ti, 0.0) + wi - np.where(tj == ti, wj, 0.0),
                "tj_w": np.array([tier_w.get(t, 0.0) for t in tj], dtype=float)}

    def blocks(self, w: np.ndarray, i: int, js: np.ndarray, sec_w: dict[str, float],
               tier_w: dict[str, float]) -> list[tuple[Rule, str, np.ndarray]]:
        """(rule, check, mask over `js`) for the four checks, in the order they are reported. `sec_w`,
        `tier_w`: the pack's weight per sector and cap tier (`group_sums`)."""
        f = self._figures(w, i, js, sec_w, tier_w)
        ti, tj = self.cap_tier[i], self.cap_tier[js]
        tj_lo = np.array([self.bands[t][0] for t in tj], dtype=float)
        return [
            (Rule.TIER_BAND, "band", np.abs(f["wi"] - f["wj"]) > TOL),
            (Rule.SECTOR_CAP, "sector", f["new_sec"] > self.params.portfolio.cap_for(self.sector[i]) + TOL),
            (Rule.CAP_BAND, "tier_max", f["new_ti"] > self.bands[ti][1] + TOL),
            (Rule.CAP_BAND, "tier_min", (tj != ti) & (f["tj_w"] - f["wj"] < tj_lo - TOL)),
        ]

    def text(self, check: str, w: np.ndarray, i: int, j: int, sec_w: dict[str, float],
             tier_w: dict[str, float]) -> str:
        """The figures that show `check` stops name i taking pick j's place."""
        f = {k: float(v[0]) for k, v in self._figures(w, i, np.array([j]), sec_w, tier_w).items()}
        sym_j = self.c["symbol"].iat[j]
        si, ti, tj = self.sector[i], self.cap_tier[i], self.cap_tier[j]
        if check == "band":
            return (f"its {self.c['tier'].iat[i]} band {pct(self.lo[i])}–{pct(self.u[i])} cannot hold the "
                    f"{pct(f['wj'])} of {sym_j} (ranked lower) with the allocation full")
        if check == "sector":
            return (f"{si} at {pct(sec_w.get(si, 0.0))} would reach {pct(f['new_sec'])} in place of {sym_j} "
                    f"(ranked lower), above its {pct(self.params.portfolio.cap_for(si))} cap")
        if check == "tier_max":
            return (f"{ti} at {pct(tier_w.get(ti, 0.0))} of equity would reach {pct(f['new_ti'])} in place of "
                    f"{sym_j} (ranked lower), above its {pct(self.bands[ti][1])} maximum")
        return (f"without {sym_j} (ranked lower) {tj} would fall to {pct(f['tj_w'] - f['wj'])}, below its "
                f"{pct(self.bands[tj][0])} minimum")


def top_sum(values: np.ndarray, k: int) -> float:
    """The sum of the `k` largest values: the most `k` names can carry."""
    return float(np.sort(values)[::-1][:k].sum())


def band_rows(params: Params, target: float) -> dict[str, tuple[float, float]]:
    """Each market-cap tier's [min, max] as fractions of equity (the bands are shares of the allocation)."""
    return {t: (lo * target, hi * target) for t, (lo, hi) in params.portfolio.market_cap.bands.items()}


def group_sums(keys: np.ndarray, w: np.ndarray) -> dict[str, float]:
    """Σ w per key (sector or cap tier), in sorted key order: the totals the rules bound."""
    names, code = np.unique(keys.astype(str), return_inverse=True)
    return dict(zip(names.tolist(), np.bincount(code, weights=w, minlength=len(names)).tolist()))


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
    for s, tot in group_sums(c["sector"].to_numpy(), w).items():
        if tot > pp.cap_for(s) + TOL:
            out.append(f"sector {s} at {pct(tot)} above its cap {pct(pp.cap_for(s))}")
    by_tier = group_sums(c["cap_tier"].to_numpy(), w)
    for t, (blo, bhi) in band_rows(params, target).items():
        tot = by_tier.get(t, 0.0)
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
    lo_j <= lo_i, u_j >= u_i and c_j >= c_i (ties broken by position: a strict partial order);
    D(i) is the set of i's dominators.

    Exchange argument: in a pack holding i but not some j in D(i), give j the weight of i and drop i.
    The weight fits j's band, the count is unchanged, the cap tier's total is unchanged, the sector
    totals are unchanged (same sector) or the weight moves into a sector whose cap cannot bind (free
    group), and the objective does not fall. Each swap replaces a name by one above it in the strict
    order, so the sum of the chosen names' ranks in a fixed linear extension of that order rises
    strictly and the swaps end: from any optimum they reach an optimum P* in which every chosen name
    holds all of D(i) beside it. So name i can be dropped when no pack holds i and all of D(i):
    when |D(i)| + 1 > k, or when their band minima lo_i + Σ lo_D(i) pass what the group can hold
    (the tier band maximum, the sector cap for a sector group, the target allocation) — every
    chosen name carries at least its lo. Every dropped name is outside the same P*, so dropping them
    all at once keeps P*: the optimum value is unchanged (among several optimal packs the solver
    may then return another one of equal objective; with distinct coefficients there is one).
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
        if len(pos) < 2:
            continue
        limit = min(bands[tier][1], target, pp.cap_for(s) if s else np.inf)
        L, U, C = lo[pos], u[pos], cc[pos]
        geq = (L[:, None] <= L[None, :]) & (U[:, None] >= U[None, :]) & (C[:, None] >= C[None, :])
        same = (L[:, None] == L[None, :]) & (U[:, None] == U[None, :]) & (C[:, None] == C[None, :])
        order = np.arange(len(pos))
        dom = geq & (~same | (order[:, None] < order[None, :]))  # dom[j, i]: j dominates i
        n_dom = dom.sum(axis=0)
        lo_with_dom = L + L @ dom
        keep[pos[(n_dom + 1 > k) | (lo_with_dom > limit + TOL)]] = False
    return keep


def swap_up(c: pd.DataFrame, w: np.ndarray, params: Params) -> tuple[np.ndarray, list[tuple[int, int]]]:
    """Let every left-out name valued above a pick (by more than `VALUE_TOL`) take the lowest-valued such
    pick's place at its weight when no rule stops it (`SwapRules`), until none can.

    Each swap raises the objective and keeps every rule, so it ends. Greedy runs it as a phase; the exact
    pack runs it to catch what the solver's tolerances cannot tell apart (coefficients a few 1e-9 apart).
    Returns the new weights and the (in, out) pairs swapped.
    """
    w = w.copy()
    cc = c["c"].to_numpy(float)
    rules = SwapRules.of(c, params)
    done: list[tuple[int, int]] = []
    moved = True
    while moved:
        moved = False
        sec_w, tier_w = group_sums(rules.sector, w), group_sums(rules.cap_tier, w)
        for i in np.flatnonzero(w == 0).tolist():
            lower = np.flatnonzero((w > 0) & (cc < cc[i] - VALUE_TOL))
            if not len(lower):
                continue
            js = lower[np.argsort(cc[lower], kind="stable")]
            blocked = np.logical_or.reduce([m for _, _, m in rules.blocks(w, i, js, sec_w, tier_w)])
            free = np.flatnonzero(~blocked)
            if len(free):
                j = int(js[free[0]])
                w[i], w[j] = w[j], 0.0
                done.append((i, j))
                moved = True
                break
    return w, done
