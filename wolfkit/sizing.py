"""Sizing: leverage-aware Kelly fractions, and whole shares from target values with minimal leftover.

`kelly_fraction` is the Kelly bet edge / variance, capped at the fractional-Kelly cap
from the parameters, applied to the leverage still available (so it shrinks as the account fills).

`allocate_shares` is the exact integer step: target value_i = weight_i × budget (weights are fractions
of the budget); it minimises Σ |shares_i × price_i − value_i| + leftover cash subject to spending at
most the budget — the same objective as PyPortfolioOpt's `DiscreteAllocation.lp_portfolio`. Since
overshooting a name by x costs x in deviation and saves x of leftover, only UNDERSHOOT costs (twice):
the problem is a knapsack "cover as much of each target as the budget allows". It is solved exactly:
all-ceiling when that fits the budget (zero undershoot, provably optimal), otherwise a branch and
bound over the shares to drop below ceil(value / price), with the exact MILP (HiGHS) as the fallback
when the search grows past a node limit.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
from scipy.optimize import Bounds, LinearConstraint

from wolfkit.errors import BadInputError
from wolfkit.milp import solve


def kelly_fraction(edge: float, variance: float, available_leverage: float, cap: float) -> float:
    """Fraction of equity to commit: min(max(edge / variance, 0), cap) × max(available_leverage, 0).

    `edge` is the expected return per trade, `variance` its variance, `available_leverage` the
    multiple of equity still free in the bucket (e.g. 1.3 − current leverage), `cap` the fractional
    Kelly cap (`params.sizing.kelly_fraction`). A non-positive edge bets nothing.
    """
    if not (math.isfinite(edge) and math.isfinite(variance) and variance > 0):
        raise ValueError(f"kelly_fraction needs a finite edge and a positive variance, got {edge}, {variance}")
    return min(max(edge / variance, 0.0), cap) * max(available_leverage, 0.0)


def allocation_cost(shares: Mapping[str, int], weights: Mapping[str, float], prices: Mapping[str, float], budget: float) -> float:
    """The objective `allocate_shares` minimises: Σ |shares × price − weight × budget| + leftover cash."""
    spent = sum(q * prices[s] for s, q in shares.items())
    dev = sum(abs(shares.get(s, 0) * prices[s] - w * budget) for s, w in weights.items())
    return dev + (budget - spent)


def _check_inputs(weights: Mapping[str, float], prices: Mapping[str, float], budget: float) -> None:
    if not (math.isfinite(budget) and budget > 0):
        raise BadInputError(f"allocate_shares: budget must be a positive number, got {budget}")
    for s, w in weights.items():
        if s not in prices:
            raise BadInputError(f"allocate_shares: no price for {s}; pass a price for every weighted symbol")
        if not (math.isfinite(w) and w >= 0):
            raise BadInputError(f"allocate_shares: weight of {s} must be a finite number >= 0, got {w}")
        p = prices[s]
        if not (math.isfinite(p) and p > 0):
            raise BadInputError(f"allocate_shares: price of {s} must be a positive number, got {p}")


def _cut_branch_and_bound(p: np.ndarray, r: np.ndarray, top: np.ndarray, excess: float, max_nodes: int) -> np.ndarray | None:
    """Shares to drop below all-ceiling, d_i in 0..top_i, with Σ d p >= `excess` at the least loss.

    Dropping d >= 1 shares of i loses r_i + (d − 1)·p_i of covered target (r_i = target − (ceil − 1)·p,
    in (0, p]). Depth-first over names in increasing r/p; the bound is the LP (fractional greedy by
    r/p, then ratio 1), valid because each loss curve is convex in the value dropped. Returns None
    when `max_nodes` is exceeded (the caller then solves the MILP).
    """
    n = len(p)
    order = np.argsort(r / p, kind="stable")
    p, r, top = p[order].tolist(), r[order].tolist(), top[order].tolist()
    tol = 1e-9 * max(excess, 1.0)

    def bound(i: int, need: float) -> float:
        lost = 0.0
        for j in range(i, n):
            if need <= tol:
                return lost
            if top[j] > 0:
                if p[j] >= need:
                    return lost + r[j] * need / p[j]
                lost += r[j]
                need -= p[j]
        return lost + need  # further shares lose exactly what they free

    best_loss, best = np.inf, None
    d = [0] * n
    nodes = 0

    def visit(i: int, need: float, loss: float) -> bool:
        nonlocal best_loss, best, nodes
        nodes += 1
        if nodes > max_nodes:
            return False
        if need <= tol:
            if loss < best_loss - 1e-12:
                best_loss, best = loss, list(d)
            return True
        if i == n or loss + bound(i, need) >= best_loss - 1e-12:
            return True
        for k in range(1, min(top[i], math.ceil((need - tol) / p[i])) + 1):
            extra = r[i] + (k - 1) * p[i]
            if loss + extra + bound(i + 1, need - k * p[i]) >= best_loss - 1e-12:
                break  # the bound never falls as k grows (ratio 1 >= every later marginal ratio)
            d[i] = k
            if not visit(i + 1, need - k * p[i], loss + extra):
                return False
        d[i] = 0
        return visit(i + 1, need, loss)

    if not visit(0, excess, 0.0) or best is None:
        return None
    out = np.zeros(n)
    out[order] = best
    return out


def _milp_shares(v: np.ndarray, p: np.ndarray, ceil: np.ndarray, budget: float) -> np.ndarray:
    """The same problem as a MILP (HiGHS), for instances the branch and bound gives up on."""
    n = len(p)
    floor = np.floor(v / p + 1e-12).clip(min=0)
    # selling k shares below the floor costs k·p of cover and can buy back at most the total rounding
    # remainder R = Σ (v − floor·p): below floor − R/p a name is never in an optimum (a valid bound)
    remainder = float(np.clip(v - floor * p, 0, None).sum())
    low = np.clip(floor - np.floor(remainder / p), 0, None)
    # variables: q (integer shares), c (covered value, c <= v and c <= p q); maximise Σ c
    res = solve(
        np.r_[np.zeros(n), -np.ones(n)],
        [
            LinearConstraint(np.hstack([-np.diag(p), np.eye(n)]), -np.inf, 0.0),
            LinearConstraint(np.r_[p, np.zeros(n)][None, :], -np.inf, budget),
        ],
        np.r_[np.ones(n), np.zeros(n)],
        Bounds(np.r_[low, np.zeros(n)], np.r_[ceil, v]),
        what="integer shares",
        gap=0.0,
        abs_gap=0.005,  # proven to half a cent of covered value: exact for whole shares, and it always closes
    )
    return np.round(res.x[:n]) if res is not None else np.zeros(n)


def allocate_shares(
    weights: Mapping[str, float], prices: Mapping[str, float], budget: float, *, max_nodes: int = 200_000
) -> dict[str, int]:
    """Whole shares per symbol (keyed like `weights`) minimising deviation + leftover, never above `budget`.

    With x_i = shares_i × price_i the objective is budget + Σ (|x_i − t_i| − x_i): t_i − 2x_i below the
    target, the constant −t_i at or above it — so no name goes beyond ceil(t_i / p_i), all-ceiling is
    optimal when it fits, and otherwise the problem is which shares to drop below all-ceiling to free
    the excess at the least lost cover (`_cut_branch_and_bound`, exact). Past `max_nodes` search nodes
    the exact MILP decides instead.
    """
    _check_inputs(weights, prices, budget)
    syms = list(weights)
    v = np.array([weights[s] * budget for s in syms], dtype=float)
    p = np.array([prices[s] for s in syms], dtype=float)
    ceil = np.ceil(v / p - 1e-12).clip(min=0)
    excess = float(ceil @ p) - budget
    if excess <= 0:
        q = ceil
    else:
        loss_first = np.where(ceil > 0, v - (ceil - 1) * p, p)  # in (0, p]
        d = _cut_branch_and_bound(p, loss_first, ceil.astype(int), excess, max_nodes)
        q = ceil - d if d is not None else _milp_shares(v, p, ceil, budget)
    while float(q @ p) > budget:  # float tolerance must never turn into overspending
        i = int(np.argmax(np.where(q > 0, p, -np.inf)))
        q[i] -= 1
    return {s: int(x) for s, x in zip(syms, q)}
