"""packing: buckets by account type, directional shares, maxdiff knapsack (exact >= greedy), queue ranks."""

from __future__ import annotations

from datetime import time

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wolfkit.config import Params, params_from_dict
from wolfkit.diversify import build_targets
from wolfkit.opportunities import validate_opportunities
from wolfkit.packing import pack_layers


def opps_table(n: int = 60, seed: int = 0, sides=("buy", "sell", "both")) -> pd.DataFrame:
    r = np.random.default_rng(seed)
    price = r.uniform(5, 600, n).round(2)
    return pd.DataFrame({
        "symbol": [f"S{i:03d}" for i in range(n)],
        "sector": [f"sec{k}" for k in r.integers(0, 11, n)],
        "market_cap": 10 ** r.uniform(9, 12.3, n),
        "price": price,
        "score": r.uniform(60, 100, n).round(1),
        "pred_high": (price * r.uniform(1.005, 1.04, n)).round(2),
        "pred_low": (price * r.uniform(0.96, 0.995, n)).round(2),
        "maxdiff_avg_return": r.uniform(-0.002, 0.006, n),
        "maxdiff_side": r.choice(list(sides), n),
    })


def build(p: Params, n=60, seed=0, method="optimal", equity=100_000.0, bp=200_000.0, at=time(9, 30)):
    o = validate_opportunities(opps_table(n, seed), p, "t").valid
    t = build_targets(o, p, method)
    return o, t, pack_layers(t, o, p, equity, bp, at=at, method=method)


def test_buckets_cash_and_margin():
    p = Params()
    limits = {bp: p.account(100_000, bp) for bp in (100_000, 200_000, 140_000)}
    assert [(a.margin, a.directional_bucket, a.total_bucket) for a in limits.values()] == [
        (False, pytest.approx(95_000), pytest.approx(95_000)),
        (True, pytest.approx(130_000), pytest.approx(150_000)),
        (True, pytest.approx(130_000), pytest.approx(140_000)),
    ]


def test_directional_weights_stay_fractions_of_equity_on_margin():
    p = Params()
    _, t, cash = build(p, bp=100_000)
    _, _, margin = build(p, bp=200_000)
    # same pack on both accounts: allocation x equity, not scaled to the 1.3x bucket
    assert cash.directional["qty"].tolist() == margin.directional["qty"].tolist()
    cost = margin.directional["cost"].sum()
    assert cost <= t.allocation * 100_000 + 1e-6
    assert cost >= t.allocation * 100_000 - margin.directional["price"].max()
    assert margin.leftover_cash == pytest.approx(t.allocation * 100_000 - cost)


def test_maxdiff_room_share_and_limits():
    p = Params()
    o, t, pk = build(p)
    dir_cost = pk.directional["cost"].sum()
    assert pk.maxdiff_budget == pytest.approx(150_000 - dir_cost)
    assert pk.maxdiff_capacity == pytest.approx(0.2 * pk.maxdiff_budget)
    md = pk.maxdiff
    listening = md[md["status"] == "listening"]
    assert 0 < len(listening) <= p.sizing.maxdiff_max_active
    assert listening["cost"].sum() <= pk.maxdiff_capacity + 1e-6
    assert (listening["qty"] >= 1).all()
    assert (md.loc[md["status"] == "queued", "qty"] == 0).all()
    assert md["rank"].tolist() == list(range(1, len(md) + 1))
    assert md["avg_return"].is_monotonic_decreasing and (md["avg_return"] > 0).all()
    row = md.iloc[0]
    src = o.set_index("symbol").loc[row["symbol"]]
    if row["side"] in ("buy", "both"):
        assert row["limit_price"] <= src["pred_low"] * 1.001 + 1e-9
    else:
        assert row["limit_price"] >= src["pred_high"] * 0.999 - 1e-9
    assert pk.directional_bucket + 1e-6 >= pk.directional["cost"].sum()
    assert pk.directional["cost"].sum() + listening["cost"].sum() <= pk.total_bucket + 1e-6


def test_time_of_day_share_grows_the_room():
    p = Params()
    _, _, early = build(p, at=time(9, 30))
    _, _, late = build(p, at=time(14, 30))
    assert late.maxdiff_capacity == pytest.approx(3 * early.maxdiff_capacity)
    assert late.maxdiff["cost"].sum() > early.maxdiff["cost"].sum()


def test_cash_account_has_no_shorts_and_little_room():
    p = Params()
    _, t, pk = build(p, bp=100_000)
    assert not pk.margin
    assert pk.maxdiff_budget == pytest.approx(pk.leftover_cash)  # only the directional rounding leftover
    assert "sell" not in set(pk.maxdiff["side"])
    assert pk.maxdiff_excluded["reason"].str.contains("short sale").any()


def test_per_symbol_limit_one_excludes_held_symbols():
    p = params_from_dict({"leverage": {"max_positions_per_symbol": 1}})
    _, t, pk = build(p)
    held = set(pk.directional["symbol"])
    assert held.isdisjoint(pk.maxdiff["symbol"])
    assert pk.maxdiff_excluded["reason"].str.startswith("per-symbol limit").sum() >= 1


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 5000), n=st.integers(30, 90), hour=st.sampled_from([9, 12, 15]))
def test_exact_maxdiff_never_below_greedy(seed, n, hour):
    p = Params()
    o = validate_opportunities(opps_table(n, seed), p, "t").valid
    try:
        t = build_targets(o, p, "optimal")
    except Exception:
        return
    at = time(hour, 45)
    ex = pack_layers(t, o, p, 50_000, 100_000, at=at, method="optimal")
    gr = pack_layers(t, o, p, 50_000, 100_000, at=at, method="greedy")
    assert ex.maxdiff_objective >= gr.maxdiff_objective - 1e-9
    for pk in (ex, gr):
        assert pk.maxdiff["cost"].sum() <= pk.maxdiff_capacity + 1e-6
        assert (pk.maxdiff["status"] == "listening").sum() <= p.sizing.maxdiff_max_active


def test_kelly_maxdiff_needs_return_std():
    from wolfkit.errors import BadInputError

    p = params_from_dict({"sizing": {"maxdiff_rule": "kelly"}})
    with pytest.raises(BadInputError, match="return_std"):
        build(p)


@pytest.mark.parametrize("rule", ["dynamic", "uneven"])
def test_knapsack_shortcut_matches_the_milp(rule):
    """The closed-form exact knapsack (the best full-size plans when they fit) reaches the MILP's optimum."""
    from wolfkit.packing import _knapsack_exact, _knapsack_milp

    rng = np.random.default_rng(7)
    for _ in range(40):
        n, k = int(rng.integers(1, 30)), int(rng.integers(1, 12))
        capacity = float(rng.uniform(1_000, 50_000))
        value, price = rng.uniform(0.001, 0.03, n), rng.uniform(5, 900, n)
        size = np.full(n, capacity / min(k, n)) if rule == "dynamic" else rng.uniform(0.05, 0.6, n) * capacity
        qmax = np.floor(size / price + 1e-9)
        fast, ref = _knapsack_exact(value, price, qmax, capacity, k), _knapsack_milp(value, price, qmax, capacity, k)
        assert float(fast @ price) <= capacity and (fast > 0).sum() <= k and (fast <= qmax).all()
        assert float(value * price @ fast) == pytest.approx(float(value * price @ ref), rel=1e-9, abs=1e-9)
