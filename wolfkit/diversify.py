"""Diversification: candidates to target weights under every rule of the directional pack.

Rules (all from `params.portfolio`): a candidate has score >= `min_score`; its score tier gives its
weight band (90+ → 10–12 %, …); weights are fractions of account EQUITY and sum exactly to the target
allocation T = 1 − `cash_reserve`; each sector holds at most its cap (fractions of equity, with
per-sector overrides); each market-cap tier holds between min×T and max×T of its band (the bands are
shares of the directional ALLOCATION, so `cap_weights / allocation` is what the bands bound); the pack
has `min_positions`..`max_positions` names, aiming at `target_positions`.

Two methods report the same objective, Σ weight × coefficient, where the coefficient is
`expected_return` when every candidate has one, else `score`:

- ``optimal``: the exact optimum with exactly `target_positions` names (the count is a rule); only
  when no such pack exists does the count widen to the nearest feasible one in
  `min_positions`..`max_positions` (ties: the larger), said in `Targets.notes` with the binding rule.
  Solved by `_relaxed` (exact enumeration without the sector / market-cap rows, accepted when it
  happens to meet them) or else an exact MILP (scipy's HiGHS): selection binaries z, weights
  lo·z <= w <= hi·z.
- ``greedy``: the seed's rule, count-aware: by score, take each name at its full size (band max)
  while the caps allow, keeping room for the band minima of the names still needed to reach
  `target_positions` and for every market-cap tier's band minimum, so the tail shrinks instead of the
  count. Its result satisfies every other rule or it raises `InfeasibleError`; a count short of the
  target is said in `Targets.notes`.

Guarantee: at equal counts optimal >= greedy (optimal is the exact optimum at its count).

`weight_rule` bounds a name inside its band: ``score`` (the whole band) or ``kelly`` (leverage-aware
Kelly from `sizing` caps the name's weight for both methods). Infeasible rules give an
`InfeasibleError` naming the binding rule and the best achievable allocation, never a bare solver
status.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

import numpy as np
import pandas as pd
from scipy.optimize import Bounds, LinearConstraint
from scipy.sparse import csr_array

from wolfkit.config import CAP_TIERS, Params
from wolfkit.errors import BadInputError, InfeasibleError
from wolfkit.milp import solve
from wolfkit.sizing import kelly_fraction

TOL = 1e-6


class Method(StrEnum):
    OPTIMAL = "optimal"
    GREEDY = "greedy"


@dataclass(frozen=True)
class Targets:
    """The directional pack's target weights (fractions of equity) and why each name is in or out.

    `weights`: symbol, sector, cap_tier, score, expected_return, tier, weight, reason (by weight desc).
    `excluded`: symbol, reason. `objective` = Σ weight × coefficient (`basis` says which).
    `notes`: why the pack does not hold exactly `target_positions` names, naming the binding rule
    (empty when it does).
    """

    weights: pd.DataFrame
    excluded: pd.DataFrame
    method: str
    objective: float
    allocation: float
    sector_weights: dict[str, float]
    cap_weights: dict[str, float]
    basis: str
    notes: tuple[str, ...] = ()


def _pct(x: float) -> str:
    return f"{100 * x:.1f}%".replace(".0%", "%")


def _tier_labels(params: Params) -> list[str]:
    tiers = params.portfolio.tiers
    out = []
    for i, t in enumerate(tiers):
        if i == 0:
            out.append(f"{t.min_score:g}+")
        else:
            out.append(f"{t.min_score:g}–{tiers[i - 1].min_score - 1:g}")
    return out


def _candidates(opps: pd.DataFrame, params: Params) -> tuple[pd.DataFrame, pd.DataFrame, str]:
    """Candidates with their band [lo, hi], upper bound u (the full size) and coefficient c; plus exclusions."""
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
    labels = _tier_labels(params)
    idx = [next(i for i, t in enumerate(pp.tiers) if s >= t.min_score) for s in c["score"]]
    c["tier"] = [labels[i] for i in idx]
    c["lo"] = [pp.tiers[i].weight_min for i in idx]
    c["hi"] = [pp.tiers[i].weight_max for i in idx]
    if "expected_return" not in c:
        c["expected_return"] = np.nan
    target = 1 - pp.cash_reserve
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
    return c, excluded.reset_index(drop=True), basis


# ---------------------------------------------------------------- infeasibility diagnosis


def _top_sum(values: np.ndarray, k: int) -> float:
    return float(np.sort(values)[::-1][:k].sum())


def _band_rows(params: Params, target: float) -> dict[str, tuple[float, float]]:
    return {t: (lo * target, hi * target) for t, (lo, hi) in params.portfolio.market_cap.bands.items()}


def _diagnose(c: pd.DataFrame, params: Params, n_rows: int) -> None:
    """Name the binding rule before the solver runs, with the best allocation it allows."""
    pp = params.portfolio
    target = 1 - pp.cash_reserve
    k = pp.max_positions
    n = len(c)
    if n == 0:
        raise InfeasibleError(
            f"no candidates: none of the {n_rows} opportunities has score >= min_score {pp.min_score:g}; "
            f"the best achievable allocation is 0%, the target is {_pct(target)}"
        )
    if n < pp.min_positions:
        best = min(target, _top_sum(c["u"].to_numpy(), n))
        raise InfeasibleError(
            f"too few candidates: only {n} with score >= {pp.min_score:g}, at least {pp.min_positions} "
            f"positions are required (portfolio.min_positions); {n} names allow at most {_pct(best)} allocated, "
            f"the target is {_pct(target)}"
        )
    sec_room = {
        s: min(pp.cap_for(s), _top_sum(g["u"].to_numpy(), k)) for s, g in c.groupby("sector", sort=True)
    }
    sec_best = sum(sec_room.values())
    if sec_best < target - TOL:
        caps = sorted({pp.cap_for(s) for s in sec_room})
        cap_txt = f"a {_pct(caps[0])} sector cap" if len(caps) == 1 else "the sector caps"
        raise InfeasibleError(
            f"sector cap: only {len(sec_room)} sectors among {n} candidates: {cap_txt} allows at most "
            f"{_pct(sec_best)} allocated, the target is {_pct(target)}"
        )
    top = _top_sum(c["u"].to_numpy(), k)
    if top < target - TOL:
        raise InfeasibleError(
            f"tier bands: the {min(k, n)} largest band maxima among {n} candidates sum to {_pct(top)} "
            f"(max_positions {k}); the best achievable allocation is {_pct(top)}, the target is {_pct(target)}"
        )
    bands = _band_rows(params, target)
    tier_room = {t: min(bands[t][1], _top_sum(c.loc[c["cap_tier"] == t, "u"].to_numpy(), k)) for t in CAP_TIERS}
    if sum(tier_room.values()) < target - TOL:
        raise InfeasibleError(
            "market-cap bands: the tier maxima (portfolio.market_cap.bands) and the candidates in each tier "
            f"allow at most {_pct(sum(tier_room.values()))} allocated, the target is {_pct(target)}"
        )
    for t in CAP_TIERS:
        if bands[t][0] > tier_room[t] + TOL:
            raise InfeasibleError(
                f"market-cap band {t}: needs at least {_pct(bands[t][0])} but its "
                f"{int((c['cap_tier'] == t).sum())} candidates can take at most {_pct(tier_room[t])}; "
                f"lower portfolio.market_cap.bands.{t} or add {t} candidates"
            )
    floor = float(np.sort(c["lo"].to_numpy())[: pp.min_positions].sum())
    if floor > target + TOL:
        raise InfeasibleError(
            f"tier minimums: the {pp.min_positions} required positions (portfolio.min_positions) need at least "
            f"{_pct(floor)} at their band minima, above the target {_pct(target)}; lower the band minima "
            "or min_positions, or raise the allocation"
        )


# ---------------------------------------------------------------- exact MILP


def _free_sectors(c: pd.DataFrame, params: Params, k: int) -> set[str]:
    """Sectors whose cap cannot bind: their k largest upper bounds already fit under the cap."""
    u = c["u"].to_numpy(float)
    return {
        s for s, pos in c.groupby("sector", sort=False).indices.items()
        if _top_sum(u[pos], k) <= params.portfolio.cap_for(s) + TOL
    }


def prune_dominated(c: pd.DataFrame, params: Params, k: int) -> np.ndarray:
    """Keep-mask that provably leaves the optimum with at most `k` names unchanged.

    Group the names by cap tier and sector, where every sector whose cap cannot bind
    (`_free_sectors`: its k largest upper bounds fit under the cap, so no pack of <= k names reaches
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
    target = 1 - pp.cash_reserve
    keep = np.ones(len(c), dtype=bool)
    if not len(c):
        return keep
    free = _free_sectors(c, params, k)
    lo, u, cc = c["lo"].to_numpy(float), c["u"].to_numpy(float), c["c"].to_numpy(float)
    sec = c["sector"].to_numpy()
    key = np.where(np.isin(sec, list(free)), "", sec)
    bands = _band_rows(params, target)
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


@dataclass(frozen=True)
class _Model:
    """The pack MILP over x = [w (n weights), z (n selections)]: rows lb <= A x <= ub."""

    obj: np.ndarray
    a: csr_array
    lb: np.ndarray
    ub: np.ndarray
    upper: np.ndarray


def _model(
    c: pd.DataFrame,
    params: Params,
    count: tuple[int, int],
    *,
    maximize_allocation: bool = False,
    drop: frozenset[str] = frozenset(),
) -> _Model:
    """Build the MILP (minimisation form) with `count[0]` <= Σ z <= `count[1]`, as sparse arrays.

    `maximize_allocation` relaxes the total to <= T and the count minimum, and maximises the total
    (the best achievable, for messages); `drop` removes rule families ("sector", "cap", "count",
    "minimum") to find the binding one.
    """
    pp = params.portfolio
    target = 1 - pp.cash_reserve
    n = len(c)
    lo = np.zeros(n) if "minimum" in drop else c["lo"].to_numpy(float)
    u = c["u"].to_numpy(float)
    eye = np.arange(n)
    k = n if "count" in drop else count[1]
    groups: list[tuple[np.ndarray, float, float]] = [(eye, 0.0 if maximize_allocation else target, target)]
    if "sector" not in drop:
        for s, pos in c.groupby("sector", sort=False).indices.items():
            cap = pp.cap_for(s)
            if _top_sum(u[pos], k) > cap + TOL:
                groups.append((pos, 0.0, cap))
    if "cap" not in drop:
        tiers = c["cap_tier"].to_numpy()
        for t, (blo, bhi) in _band_rows(params, target).items():
            pos = np.flatnonzero(tiers == t)
            if blo > 0 or _top_sum(u[pos], k) > bhi + TOL:
                groups.append((pos, blo, bhi))
    m = len(groups)
    rows = np.r_[eye, eye, eye + n, eye + n, np.concatenate([np.full(len(g[0]), 2 * n + r) for r, g in enumerate(groups)]),
                 np.full(n, 2 * n + m)]
    cols = np.r_[eye, eye + n, eye, eye + n, np.concatenate([g[0] for g in groups]), eye + n]
    vals = np.r_[np.ones(n), -lo, np.ones(n), -u, np.ones(sum(len(g[0]) for g in groups)), np.ones(n)]
    c_lo, c_hi = (0.0, float(n)) if "count" in drop else (0.0 if maximize_allocation else float(count[0]), float(count[1]))
    lb = np.r_[np.zeros(n), np.full(n, -np.inf), [g[1] for g in groups], c_lo]  # w - lo z >= 0 ; w - u z <= 0
    ub = np.r_[np.full(n, np.inf), np.zeros(n), [g[2] for g in groups], c_hi]
    a = csr_array((vals, (rows, cols)), shape=(2 * n + m + 1, 2 * n))
    obj = np.r_[-np.ones(n), np.zeros(n)] if maximize_allocation else np.r_[-c["c"].to_numpy(float), np.zeros(n)]
    return _Model(obj, a, lb, ub, np.r_[u, np.ones(n)])


def _solve(m: _Model) -> np.ndarray | None:
    """Weights per candidate from the exact MILP, or None when infeasible."""
    n = len(m.obj) // 2
    res = solve(
        m.obj,
        [LinearConstraint(m.a, m.lb, m.ub)],
        np.r_[np.zeros(n), np.ones(n)],
        Bounds(np.zeros(2 * n), m.upper),
        what="diversification",
    )
    if res is None:
        return None
    z = res.x[n:] > 0.5
    return np.where(z, res.x[:n], 0.0)


def _milp(
    c: pd.DataFrame,
    params: Params,
    count: tuple[int, int],
    *,
    maximize_allocation: bool = False,
    drop: frozenset[str] = frozenset(),
) -> np.ndarray | None:
    """Solve the pack MILP; weights per row of `c`, clipped to the bands, or None when infeasible."""
    w = _solve(_model(c, params, count, maximize_allocation=maximize_allocation, drop=drop))
    if w is None:
        return None
    lo = np.zeros(len(c)) if "minimum" in drop else c["lo"].to_numpy(float)
    return np.where(w > 0, np.clip(w, lo, c["u"].to_numpy(float)), 0.0)


def _relaxed(c: pd.DataFrame, params: Params, count: int) -> np.ndarray | None:
    """Exact optimum with exactly `count` names and WITHOUT the sector caps and market-cap bands.

    Only when the names fall into a few groups sharing one band [lo, u] (the score rule); else None.
    Inside a group the names are interchangeable but for c, so an optimum takes each group's n_g best
    by c; for a choice of (n_g), every pick gets lo and the rest of T goes to the highest c first up
    to u (an LP solved greedily). Enumerating every (n_g) with Σ n_g = count is exact. When this pack
    also meets the dropped rows it is optimal for the full problem (it is optimal for a relaxation);
    the caller checks that and otherwise solves the MILP. None also when no such pack exists.
    """
    target = 1 - params.portfolio.cash_reserve
    lo, u, cc = c["lo"].to_numpy(float), c["u"].to_numpy(float), c["c"].to_numpy(float)
    keys = sorted(set(zip(lo.tolist(), u.tolist())), reverse=True)
    if len(keys) > 4:
        return None
    members = []
    for key in keys:
        pos = np.flatnonzero((lo == key[0]) & (u == key[1]))
        members.append(pos[np.argsort(-cc[pos], kind="stable")][:count])
    best, best_val = None, -np.inf

    def visit(g: int, left: int, chosen: list[int]) -> None:
        nonlocal best, best_val
        if g == len(keys) - 1:
            if left > len(members[g]):
                return
            ns = [*chosen, left]
            pick = np.concatenate([members[i][:k] for i, k in enumerate(ns)])
            slack = target - lo[pick].sum()
            room = u[pick] - lo[pick]
            if slack < -TOL or room.sum() < slack - TOL:
                return
            order = np.argsort(-cc[pick], kind="stable")
            extra = np.clip(slack - np.r_[0.0, np.cumsum(room[order])[:-1]], 0.0, room[order])
            w = lo[pick].copy()
            w[order] += extra
            val = float(w @ cc[pick])
            if val > best_val + 1e-12:
                best_val = val
                best = np.zeros(len(c))
                best[pick] = w
            return
        for k in range(min(left, len(members[g])) + 1):
            visit(g + 1, left - k, [*chosen, k])

    visit(0, count, [])
    return best


def _explain_infeasible(c: pd.DataFrame, params: Params) -> InfeasibleError:
    """After the solver found no pack: which rule family binds, and the best achievable allocation."""
    pp = params.portfolio
    target = 1 - pp.cash_reserve
    count = (pp.min_positions, pp.max_positions)
    names = {
        "sector": "sector caps (portfolio.sector_cap / sector_caps)",
        "cap": "market-cap bands (portfolio.market_cap.bands)",
        "count": f"position count {pp.min_positions}–{pp.max_positions}",
        "minimum": "tier-band minimum weights (portfolio.tiers)",
    }
    binding = [k for k in names if _milp(c, params, count, drop=frozenset({k})) is not None]
    best = _milp(c, params, count, maximize_allocation=True)
    best_txt = f"{_pct(float(best.sum()))}" if best is not None else "none (no pack meets the minimums)"
    rule = " or ".join(names[k] for k in binding) if binding else "several rules together"
    return InfeasibleError(
        f"infeasible: {rule} cannot hold with the other rules on these {len(c)} candidates; "
        f"the best achievable allocation is {best_txt}, the target is {_pct(target)}"
    )


def _exact(c: pd.DataFrame, params: Params, count: tuple[int, int], prune: bool = True) -> np.ndarray | None:
    """The exact pack with count[0]..count[1] names, or None when none exists.

    First the cheap exact relaxation per count (`_relaxed`), kept when it meets every rule; else the
    MILP, with `prune` on dominated names (`prune_dominated`) dropped first.
    """
    if count[0] == count[1]:
        w = _relaxed(c, params, count[0])
        if w is not None and not _check(c, w, params):
            return w
    keep = prune_dominated(c, params, count[1]) if prune else np.ones(len(c), dtype=bool)
    w_sub = _milp(c.loc[keep].reset_index(drop=True), params, count)
    if w_sub is None:
        return None
    w = np.zeros(len(c))
    w[np.flatnonzero(keep)] = w_sub
    return w


def _counts_by_preference(params: Params) -> list[int]:
    """Position counts other than the target, nearest first (ties: the larger count)."""
    pp = params.portfolio
    k = pp.target_positions
    others = [m for m in range(pp.min_positions, pp.max_positions + 1) if m != k]
    return sorted(others, key=lambda m: (abs(m - k), -m))


def _why_not_count(c: pd.DataFrame, params: Params, k: int) -> str:
    """The rule that rules out every pack of exactly `k` names (for the notes)."""
    target = 1 - params.portfolio.cash_reserve
    lo, u = c["lo"].to_numpy(float), c["u"].to_numpy(float)
    if len(c) < k:
        return f"only {len(c)} candidates"
    if _top_sum(u, k) < target - TOL:
        return f"tier bands: the {k} largest band maxima sum to {_pct(_top_sum(u, k))}, below the target {_pct(target)}"
    if np.sort(lo)[:k].sum() > target + TOL:
        return f"tier bands: the {k} smallest band minima sum to {_pct(np.sort(lo)[:k].sum())}, above the target {_pct(target)}"
    names = {
        "sector": "sector caps (portfolio.sector_cap / sector_caps)",
        "cap": "market-cap bands (portfolio.market_cap.bands)",
        "minimum": "tier-band minimum weights (portfolio.tiers)",
    }
    binding = [v for f, v in names.items() if _milp(c, params, (k, k), drop=frozenset({f})) is not None]
    return (" or ".join(binding) if binding else "several rules together") + f" cannot hold with {k} names"


def _optimal(c: pd.DataFrame, params: Params, prune: bool = True) -> tuple[np.ndarray, tuple[str, ...]]:
    """The exact pack with exactly `target_positions` names; another count only when none exists.

    The count is a rule: only when no pack of the target count meets every other rule does it widen
    to the nearest feasible count in min_positions..max_positions (ties: the larger), with a note.
    """
    k = params.portfolio.target_positions
    w = _exact(c, params, (k, k), prune)
    if w is not None:
        return w, ()
    for m in _counts_by_preference(params):
        w = _exact(c, params, (m, m), prune)
        if w is not None:
            return w, (
                f"{m} positions instead of the target {k} (portfolio.target_positions): no {k}-position pack "
                f"meets every rule ({_why_not_count(c, params, k)}); {m} is the nearest count that does",
            )
    raise _explain_infeasible(c, params)


# ---------------------------------------------------------------- greedy (the seed's rule)


@dataclass(frozen=True)
class _Reserve:
    """Greedy's look-ahead: what the names still to come must hold (weight `kept`, `count` names, per
    sector and cap tier), the cap tiers whose unmet minimum it includes (`minima`), and `short`: a cap
    tier whose minimum no longer fits the slots or the allocation left (else None), and `short_of`
    which of the two ("positions" or "allocation")."""

    kept: float
    count: int
    per_sec: np.ndarray
    per_tier: np.ndarray
    minima: tuple[str, ...]
    short: str | None
    short_of: str = ""


def _greedy(c: pd.DataFrame, params: Params) -> tuple[np.ndarray, dict[int, str]]:
    """The seed's fill, count-aware: by score at full size while the caps allow, the tail shrinks.

    Walking the candidates by score with `slots` positions still to fill toward `target_positions`,
    a name is taken only when, after it, the allocation, sector and market-cap room left still cover
    the cheapest band minima of `slots - 1` later names that fit those rooms (a cheap look-ahead); its
    weight is min(band max, caps, what is left after that reserve), so the tail shrinks instead of
    the count. The look-ahead first keeps room (names and weight) for every market-cap tier whose
    band minimum is not met yet, so when the slots left are just enough for those tiers only their
    names (best score first) are taken. Short of the allocation at the end, picks grow to their band
    maxima (tiers still under their minimum first), then more names join up to `max_positions`;
    short of the target count, the lowest-score picks shrink toward their minima to admit the next
    names by score that fit their sector and market-cap room.
    """
    pp = params.portfolio
    target = 1 - pp.cash_reserve
    k = pp.target_positions
    bands = _band_rows(params, target)
    n = len(c)
    w = np.zeros(n)
    why: dict[int, str] = {}
    state = {"total": 0.0, "count": 0}
    sec, tier = c["sector"].to_numpy(), c["cap_tier"].to_numpy()
    lo, u = c["lo"].to_numpy(float), c["u"].to_numpy(float)
    sec_names, sec_code = np.unique(sec, return_inverse=True) if n else (np.array([]), np.zeros(0, int))
    tier_names, tier_code = np.unique(tier, return_inverse=True) if n else (np.array([]), np.zeros(0, int))
    sec_cap = np.array([pp.cap_for(s) for s in sec_names])
    tier_cap = np.array([bands[t][1] for t in tier_names])
    sec_used, tier_used = np.zeros(len(sec_names)), np.zeros(len(tier_names))

    def rooms(i: int) -> tuple[float, float, float]:
        return (
            target - state["total"],
            sec_cap[sec_code[i]] - sec_used[sec_code[i]],
            tier_cap[tier_code[i]] - tier_used[tier_code[i]],
        )

    by_min = np.argsort(lo, kind="stable")  # cheapest band minimum first, by score among equals
    by_size = np.argsort(-u, kind="stable")  # largest full size first, by score among equals
    tier_min = np.array([bands[t][0] for t in tier_names])
    share_min = {t: params.portfolio.market_cap.bands[t][0] for t in tier_names}

    def owed(q: int) -> float:
        """Weight (of equity) cap tier q still needs to reach its minimum."""
        return max(tier_min[q] - tier_used[q], 0.0)

    def reserve(i: int, slots: int, take: bool = True) -> _Reserve:
        """Room kept after taking i at its band minimum (`take`; else before i, i still available)
        for `slots` more names: first each cap tier's unmet minimum (the fewest unpicked later names of
        the tier, largest first, that can carry it, beyond what the tier's picks can still grow), then
        the cheapest band minima of the remaining slots; all within the sector and market-cap rooms."""
        per_sec, per_tier = np.zeros(len(sec_names)), np.zeros(len(tier_names))
        if take:
            per_sec[sec_code[i]] += lo[i]
            per_tier[tier_code[i]] += lo[i]
        free = (np.arange(n) > i if take else np.arange(n) >= i) & (w == 0)
        used = np.zeros(n, dtype=bool)
        kept, count, short, short_of, minima = 0.0, 0, None, "", []
        need = lo[i] if take else 0.0  # the least weight i and the kept room need together

        def fits(j: int) -> bool:
            sj, tj = sec_code[j], tier_code[j]
            return (sec_cap[sj] - sec_used[sj] - per_sec[sj] >= lo[j] - 1e-12
                    and tier_cap[tj] - tier_used[tj] - per_tier[tj] >= lo[j] - 1e-12)

        def hold(j: int) -> None:
            per_sec[sec_code[j]] += lo[j]
            per_tier[tier_code[j]] += lo[j]
            used[j] = True

        for t in range(len(tier_names)):
            deficit = tier_min[t] - tier_used[t]
            if deficit <= TOL:
                continue
            own = take and tier_code[i] == t
            grow = float((u - w)[(w > 0) & (tier_code == t)].sum()) + (u[i] if own else 0.0)
            cover, lo_new = 0.0, 0.0
            for j in by_size[free[by_size] & (tier_code[by_size] == t)]:
                if cover >= deficit - grow - TOL:
                    break
                if fits(j):
                    hold(j)
                    cover += u[j]
                    lo_new += lo[j]
                    count += 1
            if short is None and (cover < deficit - grow - TOL or count > slots):
                short, short_of = str(tier_names[t]), "positions"
            minima.append(str(tier_names[t]))
            kept += lo_new if own else max(deficit, lo_new)  # i itself carries its own tier's deficit
            need += max(deficit - lo[i], lo_new) if own else max(deficit, lo_new)
        for j in by_min[free[by_min] & ~used[by_min]] if slots > count else ():
            if count >= slots:
                break
            if fits(j):
                hold(j)
                kept += lo[j]
                need += lo[j]
                count += 1
        if take:
            per_sec[sec_code[i]] -= lo[i]
            per_tier[tier_code[i]] -= lo[i]
        if short is None and minima and need > target - state["total"] + TOL:
            short, short_of = minima[0], "allocation"
        return _Reserve(kept, count, per_sec, per_tier, tuple(minima), short, short_of)

    def refuse(i: int) -> str | None:
        total, sector, band = rooms(i)
        if sector < lo[i] - 1e-12:
            return (f"sector cap: {sec[i]} already at {_pct(sec_used[sec_code[i]])}; its band minimum "
                    f"{_pct(lo[i])} would pass the {_pct(pp.cap_for(sec[i]))} cap")
        if band < lo[i] - 1e-12:
            return (f"market-cap band: {tier[i]} already at {_pct(tier_used[tier_code[i]])} of equity; its band "
                    f"minimum {_pct(lo[i])} would pass the {_pct(bands[tier[i]][1])} maximum")
        if total < lo[i] - 1e-12:
            return f"allocation full: {_pct(total)} left, band minimum {_pct(lo[i])}"
        return None

    def add(i: int, amount: float) -> None:
        if w[i] == 0:
            state["count"] += 1
        w[i] += amount
        state["total"] += amount
        sec_used[sec_code[i]] += amount
        tier_used[tier_code[i]] += amount

    def kept_room(t: str) -> str:
        return f"kept room for the {t}-cap minimum {_pct(share_min[t])} of the allocation"

    for i in range(n):  # the walk: full size while the caps allow, room kept for the count and the tier minima
        if state["count"] >= k:
            why[i] = f"not needed: {k} positions already"
            continue
        no = refuse(i)
        if no:
            why[i] = no
            continue
        slots = k - state["count"] - 1
        r = reserve(i, slots)
        if r.short is not None and reserve(i, slots + 1, take=False).short is None:
            debt = f"{_pct(owed(int(np.flatnonzero(tier_names == r.short)[0])))} of equity still owed to {r.short} names"
            if r.short_of == "positions":
                left_txt = "the last position" if slots == 0 else f"the {slots + 1} positions left"
                why[i] = f"{kept_room(r.short)}: {debt} needs {left_txt}"
            else:
                why[i] = (f"{kept_room(r.short)}: {debt} and the band minima of {slots} more positions leave too "
                          f"little of the {_pct(target - state['total'])} left for this name's {_pct(lo[i])}")
            continue
        total_room, sector_room, band_room = rooms(i)
        left = min(total_room - r.kept, sector_room - r.per_sec[sec_code[i]], band_room - r.per_tier[tier_code[i]])
        if left < lo[i] - 1e-12:
            minima = "".join(f" and the {t}-cap minimum {_pct(share_min[t])}" for t in r.minima)
            why[i] = (
                f"kept room for {k} positions: {_pct(r.kept)} reserved for {r.count} more at their band minima"
                f"{minima} leaves {_pct(max(left, 0.0))}; a {c['tier'].iat[i]} name needs ≥{_pct(lo[i])}"
            )
            continue
        add(i, min(u[i], left))
    for i in sorted(np.flatnonzero(w > 0), key=lambda j: owed(tier_code[j]) <= TOL):  # top up, owed tiers first
        extra = min(u[i] - w[i], *rooms(i))
        if extra > 0:
            add(i, extra)
    for i in sorted(range(n), key=lambda j: owed(tier_code[j]) <= TOL):  # still short: more names, owed tiers first
        if state["total"] >= target - TOL or state["count"] >= pp.max_positions:
            break
        if w[i] == 0 and refuse(i) is None:
            add(i, min(u[i], *rooms(i)))
            why.pop(i, None)
    score_order = np.argsort(-c["score"].to_numpy(float), kind="stable")
    for i in score_order:  # short of the target count: shrink the tail to admit the next names
        if state["count"] >= k:
            break
        if w[i] > 0 or min(rooms(i)[1:]) < lo[i] - 1e-12:
            continue
        picks = [j for j in score_order[::-1] if w[j] > lo[j]]
        need = lo[i] - rooms(i)[0]
        if sum(w[j] - lo[j] for j in picks) < need - 1e-12:
            break
        before = (w.copy(), sec_used.copy(), tier_used.copy(), dict(state))
        for j in picks:
            cut = min(w[j] - lo[j], need)
            if cut > 0:
                add(j, -cut)
                need -= cut
        add(i, lo[i])
        if _check(c, w, params):  # a market-cap minimum broke: undo
            w[:], sec_used[:], tier_used[:] = before[:3]
            state.update(before[3])
        else:
            why.pop(i, None)
    for i in np.flatnonzero(w == 0):
        why.setdefault(i, f"not needed: allocation {_pct(target)} reached")
    return w, why


def _check(c: pd.DataFrame, w: np.ndarray, params: Params) -> list[str]:
    """Every rule the pack must satisfy; the list of violations (empty when feasible)."""
    pp = params.portfolio
    target = 1 - pp.cash_reserve
    out = []
    sel = w > 0
    if abs(w.sum() - target) > TOL:
        out.append(f"allocation {_pct(w.sum())} instead of {_pct(target)}")
    if not pp.min_positions <= sel.sum() <= pp.max_positions:
        out.append(f"{int(sel.sum())} positions, outside {pp.min_positions}–{pp.max_positions}")
    lo, u = c["lo"].to_numpy(), c["u"].to_numpy()
    if ((w[sel] < lo[sel] - TOL) | (w[sel] > u[sel] + TOL)).any():
        out.append("a weight outside its tier band")
    for s, tot in pd.Series(w).groupby(c["sector"].to_numpy()).sum().items():
        if tot > pp.cap_for(s) + TOL:
            out.append(f"sector {s} at {_pct(tot)} above its cap {_pct(pp.cap_for(s))}")
    by_tier = pd.Series(w).groupby(c["cap_tier"].to_numpy()).sum()
    for t, (blo, bhi) in _band_rows(params, target).items():
        tot = float(by_tier.get(t, 0.0))
        if not blo - TOL <= tot <= bhi + TOL:
            out.append(f"market-cap tier {t} at {_pct(tot)} outside [{_pct(blo)}, {_pct(bhi)}]")
    return out


# ---------------------------------------------------------------- public entry point


def _reasons_out(c: pd.DataFrame, w: np.ndarray, params: Params, basis: str) -> dict[int, str]:
    """Why each unpicked candidate of the exact pack is out (the rule it would break, else the objective)."""
    pp = params.portfolio
    sec = c["sector"].to_numpy()
    sec_w = pd.Series(w).groupby(sec).sum().to_dict()
    lo = c["lo"].to_numpy(float)
    count = int((w > 0).sum())
    why = {}
    for i in np.flatnonzero(w == 0):
        s = sec[i]
        if sec_w[s] + lo[i] > pp.cap_for(s) + TOL:
            why[i] = (f"sector cap: {s} already at {_pct(sec_w[s])}; its band minimum {_pct(lo[i])} "
                      f"would pass the {_pct(pp.cap_for(s))} cap")
        else:
            why[i] = f"not selected: the {count} picks carry a higher {basis} within the rules"
    return why


def _greedy_notes(c: pd.DataFrame, params: Params, count: int) -> tuple[str, ...]:
    """Why greedy holds another count than `target_positions`: the fill's limit or the rules'."""
    k = params.portfolio.target_positions
    if count == k:
        return ()
    if _exact(c, params, (k, k)) is not None:
        return (
            f"greedy holds {count} positions, not the target {k} (portfolio.target_positions): the seed's fill "
            f"could not reach {k} although a {k}-position pack meeting every rule exists (--method optimal finds it)",
        )
    return (
        f"{count} positions instead of the target {k} (portfolio.target_positions): no {k}-position pack meets "
        f"every rule ({_why_not_count(c, params, k)})",
    )


def build_targets(opps: pd.DataFrame, params: Params, method: str | None = None) -> Targets:
    """Target weights (fractions of equity) for the directional pack, by `method` (default: parameters).

    `opps` is a validated opportunities table (`validate_opportunities(...).valid`).
    Raises `InfeasibleError` (exit 3) naming the binding rule and the best achievable allocation.
    """
    try:
        m = Method(method or params.portfolio.method)
    except ValueError:
        raise BadInputError(f"method {method!r}: use optimal or greedy") from None
    c, excluded, basis = _candidates(opps, params)
    _diagnose(c, params, len(opps))
    if m is Method.OPTIMAL:
        w, notes = _optimal(c, params)
        why = _reasons_out(c, w, params, basis)
    else:
        w, why = _greedy(c, params)
        problems = _check(c, w, params)
        if problems:
            if _exact(c, params, (params.portfolio.min_positions, params.portfolio.max_positions)) is None:
                raise _explain_infeasible(c, params)
            raise InfeasibleError(
                f"greedy: the seed's fill rule ends infeasible here ({'; '.join(problems)}) although a "
                f"pack meeting every rule exists; use --method optimal"
            )
        notes = _greedy_notes(c, params, int((w > 0).sum()))
    sel = w > 0
    picked = c.loc[sel].copy()
    picked["weight"] = w[sel]
    picked["reason"] = [
        f"tier {t}: {_pct(x)} (band {_pct(lo)}–{_pct(u)})"
        for t, x, lo, u in zip(picked["tier"], picked["weight"], picked["lo"], picked["u"])
    ]
    weights = (
        picked[["symbol", "sector", "cap_tier", "score", "expected_return", "tier", "weight", "reason"]]
        .sort_values(["weight", "score", "symbol"], ascending=[False, False, True])
        .reset_index(drop=True)
    )
    out = pd.DataFrame({"symbol": c.loc[~sel, "symbol"].to_numpy(), "reason": [why[i] for i in np.flatnonzero(~sel)]})
    excluded = pd.concat([out, excluded], ignore_index=True)
    sector_w = weights.groupby("sector")["weight"].sum().sort_values(ascending=False)
    cap_w = weights.groupby("cap_tier")["weight"].sum()
    return Targets(
        weights=weights,
        excluded=excluded,
        method=str(m),
        objective=float((w * c["c"].to_numpy()).sum()),
        allocation=float(w.sum()),
        sector_weights={str(k): float(v) for k, v in sector_w.items()},
        cap_weights={t: float(cap_w.get(t, 0.0)) for t in CAP_TIERS if t in cap_w},
        basis=basis,
        notes=notes,
    )
