"""sizing: Kelly with leverage awareness; allocate_shares is exact (vs brute force) and never overspends."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wolfkit.errors import BadInputError
from wolfkit.sizing import allocate_shares, allocation_cost, kelly_fraction


def test_kelly_scales_with_available_leverage_and_caps():
    assert kelly_fraction(0.01, 0.04, 1.0, 0.5) == pytest.approx(0.25)
    assert kelly_fraction(0.01, 0.04, 0.5, 0.5) == pytest.approx(0.125)  # half the leverage left
    assert kelly_fraction(0.05, 0.01, 1.3, 0.5) == pytest.approx(0.65)  # capped at 0.5 of 1.3
    assert kelly_fraction(-0.01, 0.04, 1.0, 0.5) == 0.0
    assert kelly_fraction(0.01, 0.04, -0.2, 0.5) == 0.0  # over the bucket: nothing
    with pytest.raises(ValueError):
        kelly_fraction(0.01, 0.0, 1.0, 0.5)


def brute(weights, prices, budget):
    """Every share vector up to ceil(target / price) + 1 per name, vectorised."""
    syms = list(weights)
    p = np.array([prices[s] for s in syms])
    v = np.array([weights[s] * budget for s in syms])
    grids = np.meshgrid(*[np.arange(0, math.ceil(x / q) + 2) for x, q in zip(v, p)], indexing="ij")
    q = np.stack([g.ravel() for g in grids], axis=1)
    spent = q @ p
    cost = np.abs(q * p - v).sum(axis=1) + (budget - spent)
    return float(cost[spent <= budget + 1e-9].min())


@settings(max_examples=150, deadline=None)
@given(
    n=st.integers(1, 3),
    data=st.data(),
    budget=st.floats(50, 3000),
)
def test_exact_vs_brute_force_and_never_overspends(n, data, budget):
    raw = data.draw(st.lists(st.floats(0.01, 1.0), min_size=n, max_size=n))
    scale = data.draw(st.floats(0.5, 1.0))
    weights = {f"S{i}": w / sum(raw) * scale for i, w in enumerate(raw)}
    prices = {f"S{i}": data.draw(st.floats(5.0, 700.0)) for i in range(n)}
    shares = allocate_shares(weights, prices, budget)
    assert set(shares) == set(weights)
    assert all(isinstance(q, int) and q >= 0 for q in shares.values())
    assert sum(q * prices[s] for s, q in shares.items()) <= budget + 1e-9
    assert allocation_cost(shares, weights, prices, budget) <= brute(weights, prices, budget) + 1e-6


def test_all_ceiling_when_it_fits():
    assert allocate_shares({"A": 0.5, "B": 0.3}, {"A": 30.0, "B": 70.0}, 1000) == {"A": 17, "B": 5}


def test_rounding_down_a_cheap_name_to_afford_an_expensive_one():
    # floor gives A=0 (target 999, price 1000): dropping one cheap share of B buys A's share
    w = {"A": 0.4995, "B": 0.5005}
    shares = allocate_shares(w, {"A": 1000.0, "B": 10.0}, 2000)
    assert shares["A"] == 1 and shares["A"] * 1000 + shares["B"] * 10 <= 2000


@pytest.mark.parametrize(
    "weights,prices,budget,match",
    [
        ({"A": 0.5}, {}, 100, "no price for A"),
        ({"A": -0.1}, {"A": 10}, 100, "weight of A"),
        ({"A": 0.5}, {"A": float("nan")}, 100, "price of A"),
        ({"A": 0.5}, {"A": 10}, 0, "budget"),
    ],
)
def test_bad_inputs(weights, prices, budget, match):
    with pytest.raises(BadInputError, match=match):
        allocate_shares(weights, prices, budget)


@settings(max_examples=60, deadline=None)
@given(n=st.integers(8, 15), seed=st.integers(0, 100_000), small=st.booleans())
def test_branch_and_bound_matches_the_milp_on_pack_sized_instances(n, seed, small):
    r = np.random.default_rng(seed)
    w = r.dirichlet(np.ones(n) * 3)
    prices = r.uniform(50, 2500, n) if small else r.uniform(5, 900, n)
    budget = 10_000.0 if small else 100_000.0
    weights = {f"S{i}": float(x) for i, x in enumerate(w)}
    px = {f"S{i}": float(x) for i, x in enumerate(prices.round(2))}
    fast = allocate_shares(weights, px, budget)
    exact = allocate_shares(weights, px, budget, max_nodes=0)  # node limit 0: the MILP decides
    assert sum(q * px[s] for s, q in fast.items()) <= budget + 1e-9
    assert allocation_cost(fast, weights, px, budget) == pytest.approx(allocation_cost(exact, weights, px, budget), abs=1e-6)
