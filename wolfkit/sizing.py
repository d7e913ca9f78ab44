"""Sizing: leverage-aware Kelly fractions, and whole shares from target values with minimal leftover.

`kelly_fraction` follows seed 000: the Kelly bet edge / variance, capped at the fractional-Kelly cap
from the parameters, applied to the leverage still available (so it shrinks as the account fills).

`allocate_shares` is the exact integer step: target value_i = weight_i × budget (weights are fractions
of the budget); it minimises Σ |shares_i × price_i − value_i| + leftover cash subject to spending at
most the budget — the same objective as PyPortfolioOpt's `DiscreteAllocation.lp_portfolio`. Since
overshooting a name by x costs x in deviation and saves x of leftover, only UNDERSHOOT costs (twice):
the problem is a knapsack "cover as much of each target as the budget allows". It is solved exactly:
all-ceiling when that fits the budget (zero undershoot, provably optimal), otherwise a small MILP
(HiGHS) with shares bounded by ceil(value / price) — a share beyond that only adds overshoot.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
from scipy.optimize import Bounds, LinearConstraint, milp

from wolfkit.errors import BadInputError


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


def allocate_shares(weights: Mapping[str, float], prices: Mapping[str, float], budget: float) -> dict[str, int]:
    """Whole shares per symbol (keyed like `weights`) minimising deviation + leftover, never above `budget`."""
    _check_inputs(weights, prices, budget)
    syms = list(weights)
    v = np.array([weights[s] * budget for s in syms], dtype=float)
    p = np.array([prices[s] for s in syms], dtype=float)
    ceil = np.ceil(v / p - 1e-12).clip(min=0)
    floor = np.floor(v / p + 1e-12).clip(min=0)
    # selling k shares below the floor costs k·p of cover and can buy back at most the total rounding
    # remainder R = Σ (v − floor·p): below floor − R/p a name is never in an optimum (a valid bound)
    remainder = float(np.clip(v - floor * p, 0, None).sum())
    low = np.clip(floor - np.floor(remainder / p), 0, None)
    if float(ceil @ p) <= budget:
        q = ceil
    else:
        n = len(syms)
        # variables: q (integer shares), c (covered value, c <= v and c <= p q); maximise Σ c
        a_cover = np.hstack([-np.diag(p), np.eye(n)])
        a_budget = np.r_[p, np.zeros(n)][None, :]
        res = milp(
            np.r_[np.zeros(n), -np.ones(n)],
            constraints=[
                LinearConstraint(a_cover, -np.inf, 0.0),
                LinearConstraint(a_budget, -np.inf, budget),
            ],
            integrality=np.r_[np.ones(n), np.zeros(n)],
            bounds=Bounds(np.r_[low, np.zeros(n)], np.r_[ceil, v]),
            options={"mip_rel_gap": 0.0},
        )
        q = np.round(res.x[:n]) if res.x is not None else np.zeros(n)
        while float(q @ p) > budget:  # solver tolerance must never turn into overspending
            i = int(np.argmax(np.where(q > 0, p, -np.inf)))
            q[i] -= 1
    return {s: int(x) for s, x in zip(syms, q)}
