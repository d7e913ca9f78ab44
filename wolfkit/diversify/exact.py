"""The exact pack: the MILP over the candidate table, a cheap exact relaxation tried first, and the
count search (exactly `target_positions` names; another count only when none exists).

Pure functions of the candidate table (`candidates.candidate_table`) and `Params`. Every solver
answer is proven: a function returns the optimal weights per candidate row, or None when no pack
exists — never an unproven result (`wolfkit.milp.solve` raises on a time-out).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.optimize import Bounds, LinearConstraint
from scipy.sparse import csr_array

from wolfkit.config import Params
from wolfkit.diversify.candidates import (
    TOL,
    band_rows,
    prune_dominated,
    top_sum,
    violations,
)
from wolfkit.milp import solve

EDGE = 1e-9
"""A solver weight this close to its band edge is that edge (see `on_band_edges`)."""

DIGITS = 12
"""Decimals an interior solver weight is rounded to (see `on_band_edges`): far below any share's worth,
far above the solver's noise (1e-16)."""

RULE_FAMILIES = ("sector", "cap", "count", "minimum")
"""What `solve_milp(drop=...)` can leave out: sector caps, market-cap bands, the count, band minima."""


@dataclass(frozen=True)
class PackModel:
    """The pack MILP over x = [w (n weights), z (n selections)]: rows lb <= A x <= ub."""

    obj: np.ndarray
    a: csr_array
    lb: np.ndarray
    ub: np.ndarray
    upper: np.ndarray


def pack_model(
    c: pd.DataFrame,
    params: Params,
    count: tuple[int, int],
    *,
    maximize_allocation: bool = False,
    drop: frozenset[str] = frozenset(),
) -> PackModel:
    """Build the MILP (minimisation form) with `count[0]` <= Σ z <= `count[1]`, as sparse arrays.

    `maximize_allocation` relaxes the total to <= T and the count minimum, and maximises the total
    (the best achievable, for messages); `drop` removes rule families (`RULE_FAMILIES`) to find the
    binding one.
    """
    pp = params.portfolio
    target = pp.target_allocation
    n = len(c)
    lo = np.zeros(n) if "minimum" in drop else c["lo"].to_numpy(float)
    u = c["u"].to_numpy(float)
    eye = np.arange(n)
    k = n if "count" in drop else count[1]
    groups: list[tuple[np.ndarray, float, float]] = [(eye, 0.0 if maximize_allocation else target, target)]
    if "sector" not in drop:
        for s, pos in c.groupby("sector", sort=False).indices.items():
            cap = pp.cap_for(s)
            if top_sum(u[pos], k) > cap + TOL:
                groups.append((pos, 0.0, cap))
    if "cap" not in drop:
        tiers = c["cap_tier"].to_numpy()
        for t, (blo, bhi) in band_rows(params, target).items():
            pos = np.flatnonzero(tiers == t)
            if blo > 0 or top_sum(u[pos], k) > bhi + TOL:
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
    return PackModel(obj, a, lb, ub, np.r_[u, np.ones(n)])


def _solve(m: PackModel) -> np.ndarray | None:
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


def solve_milp(
    c: pd.DataFrame,
    params: Params,
    count: tuple[int, int],
    *,
    maximize_allocation: bool = False,
    drop: frozenset[str] = frozenset(),
) -> np.ndarray | None:
    """The exact pack MILP on every row of `c` (no pruning, no shortcut) with count[0]..count[1] names.

    Weights per row of `c`, clipped to the bands, or None when infeasible. `maximize_allocation`
    maximises the total instead of the objective (the best achievable allocation); `drop` leaves out
    rule families (`RULE_FAMILIES`) so the explanations can find the binding one. The reference the
    faster `solve_exact` is tested against.
    """
    w = _solve(pack_model(c, params, count, maximize_allocation=maximize_allocation, drop=drop))
    if w is None:
        return None
    lo = np.zeros(len(c)) if "minimum" in drop else c["lo"].to_numpy(float)
    return on_band_edges(w, lo, c["u"].to_numpy(float))


def on_band_edges(w: np.ndarray, lo: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Solver weights clipped to their bands, put exactly on a band edge when within `EDGE` of it, and
    the others rounded to `DIGITS` decimals.

    The solver returns a weight give or take 1e-16, and which way depends on the model it was given:
    without this two formulations with the same optimum would list the names in another order (the
    weights sort the pack and the day's orders: two names at 0.08 came out as 0.07999999999999996 and
    0.08000000000000004 one way, the other way round the other) and size a share differently at a
    rounding boundary. An interior weight of an optimal vertex is the target less band edges, a short
    decimal, so rounding to `DIGITS` gives every formulation the same float.
    """
    w = np.where(w > 0, np.clip(w, lo, u), 0.0)
    w = np.where(np.abs(w - lo) <= EDGE, lo, w)
    w = np.where((w > 0) & (np.abs(w - u) <= EDGE), u, w)
    interior = (w > lo) & (w < u)
    return np.where(interior, np.round(w, DIGITS), w)


def solve_relaxed(c: pd.DataFrame, params: Params, count: int) -> np.ndarray | None:
    """Exact optimum with exactly `count` names and WITHOUT the sector caps and market-cap bands.

    Only when the names fall into a few groups sharing one band [lo, u] (the score rule); else None.
    Inside a group the names are interchangeable but for c, so an optimum takes each group's n_g best
    by c; for a choice of (n_g), every pick gets lo and the rest of T goes to the highest c first up
    to u (an LP solved greedily). Enumerating every (n_g) with Σ n_g = count is exact. When this pack
    also meets the dropped rows it is optimal for the full problem (it is optimal for a relaxation);
    the caller checks that and otherwise solves the MILP. None also when no such pack exists.
    """
    target = params.portfolio.target_allocation
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


def solve_exact(c: pd.DataFrame, params: Params, count: tuple[int, int], prune: bool = True) -> np.ndarray | None:
    """The exact pack with count[0]..count[1] names, or None when none exists: what the solver runs.

    First the cheap exact relaxation per count (`solve_relaxed`), kept when it meets every rule; else
    the MILP, with `prune` on dominated names (`candidates.prune_dominated`) dropped first.
    """
    if count[0] == count[1]:
        w = solve_relaxed(c, params, count[0])
        if w is not None and not violations(c, w, params):
            return on_band_edges(w, c["lo"].to_numpy(float), c["u"].to_numpy(float))  # lo + (u - lo) is u
    keep = prune_dominated(c, params, count[1]) if prune else np.ones(len(c), dtype=bool)
    w_sub = solve_milp(c.loc[keep].reset_index(drop=True), params, count)
    if w_sub is None:
        return None
    w = np.zeros(len(c))
    w[np.flatnonzero(keep)] = w_sub
    return w


def counts_by_preference(params: Params) -> list[int]:
    """Position counts other than the target, nearest first (ties: the larger count)."""
    pp = params.portfolio
    k = pp.target_positions
    others = [m for m in range(pp.min_positions, pp.max_positions + 1) if m != k]
    return sorted(others, key=lambda m: (abs(m - k), -m))


def solve_count(c: pd.DataFrame, params: Params) -> tuple[np.ndarray, int] | None:
    """The exact pack and its count: exactly `target_positions` names; another count only when none exists.

    The count is a rule: only when no pack of the target count meets every other rule does it widen
    to the nearest feasible count in min_positions..max_positions (`counts_by_preference`). None when
    no count has a pack (`explain.infeasible` then says why).
    """
    for m in (params.portfolio.target_positions, *counts_by_preference(params)):
        w = solve_exact(c, params, (m, m))
        if w is not None:
            return w, m
    return None
