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


def _tier_instance(rng: np.random.Generator):
    """A maxdiff knapsack whose market-cap tier rooms bind: 3 tiers, one nearly full, one without room."""
    from wolfkit.packing import TierRooms

    n, k = int(rng.integers(5, 80)), int(rng.integers(1, 12))
    capacity = float(rng.uniform(2_000, 20_000))
    value, price = rng.uniform(-0.002, 0.02, n), rng.uniform(3, 400, n)
    qmax = np.floor(capacity / min(k, n) / price + 1e-9)
    qmax = np.where(rng.random(n) < 0.3, np.minimum(qmax, rng.integers(1, 30, n)), qmax)  # some capped by ADV
    tiers = TierRooms(rng.integers(0, 3, n), np.array([rng.uniform(0, 1.2) * capacity, rng.uniform(0, 100), 0.0]))
    return value, price, qmax, capacity, k, tiers


@pytest.mark.parametrize("whole", [False, True], ids=["continuous-shares", "whole-shares"])
def test_undominated_plans_keep_the_optimum(whole):
    """Leaving out the plans that `max_active` plans of their tier dominate (`_merits`) never lowers the
    knapsack's optimum, share-continuous (the bound a packing is proven against) or in whole shares."""
    from wolfkit.packing import TierRooms, _can_listen, _knapsack_program, _merits, _sub, _undominated

    rng = np.random.default_rng(11)
    pruned_some = 0
    # Two plans that each criterion must keep: in one tier with $100 of room, (a) $90 at a higher value
    # leaves $10 that only the cheap plan j can use, though i1 and i2 are worth more a dollar and could
    # take more dollars at a higher share price; (b) i is worth more a share at j's price but may buy one
    # share (an ADV cap), j ten.
    one_tier = TierRooms(np.zeros(4, dtype=int), np.array([100.0]))
    crafted = [(np.array([0.02, 0.01, 0.011, 0.011]), np.array([90.0, 5.0, 50.0, 50.0]), np.array([1.0, 20, 2, 2]),
                1_000.0, 2, one_tier),
               (np.array([0.01, 0.02, 0.0, 0.0]), np.array([10.0, 10.0, 10.0, 10.0]), np.array([10.0, 1, 1, 1]),
                1_000.0, 1, one_tier)]
    for case in range(42):
        value, price, qmax, capacity, k, tiers = crafted[case] if case < 2 else _tier_instance(rng)
        pos = _can_listen(value, price, qmax, capacity, tiers)[0]
        keep = pos.copy()
        keep[pos] = _undominated(tiers.code[pos], _merits(value[pos], price[pos], qmax[pos], capacity,
                                                          _sub(tiers, pos), integer_shares=whole), k)
        pruned_some += int(keep.sum() < pos.sum())
        best = [_knapsack_program(value[m], price[m], qmax[m], capacity, k, _sub(tiers, m), integer_shares=whole)
                if m.any() else None for m in (pos, keep)]
        full, kept = (-r.fun if r is not None else 0.0 for r in best)
        assert kept == pytest.approx(full, rel=1e-7, abs=1e-7)
    assert pruned_some >= 15  # the instances do exercise the pruning


def test_tier_bound_knapsack_reaches_the_whole_share_optimum():
    """With tier rooms binding, the packer (pruned relaxation, then whole shares) earns what the whole-share
    MILP over every plan earns, to half a cent, and never overfills a room (plans of up to SHARES_EXACT shares)."""
    from wolfkit.packing import HALF_CENT, SHARES_EXACT, _knapsack_exact, _knapsack_program, _sub

    rng = np.random.default_rng(5)
    for _ in range(30):
        value, price, qmax, capacity, k, tiers = _tier_instance(rng)
        qmax = np.minimum(qmax, SHARES_EXACT)  # above it the packer tops up instead (see _knapsack_milp)
        q = _knapsack_exact(value, price, qmax, capacity, k, tiers)
        assert float(q @ price) <= capacity + 1e-6 and tiers.fits(q, price) and (q > 0).sum() <= k
        assert (q <= qmax).all() and (q == np.floor(q)).all()
        pos = value > 0
        ref = _knapsack_program(value[pos], price[pos], qmax[pos], capacity, k, _sub(tiers, pos), integer_shares=True)
        best = float((value * price)[pos] @ np.floor(ref.x[:int(pos.sum())] + 1e-6)) if ref is not None else 0.0
        assert float(value * price @ q) >= best - HALF_CENT


def test_plans_per_tier_are_the_whole_share_optimum():
    """`_by_tier_counts` (the best split of the count over market-cap tiers, each tier's count solved
    exactly where its bound is not reached) gives the whole-share optimum: on random tier-bound instances
    it earns what the whole-share MILP over every plan earns, and never less than the MILP path."""
    from wolfkit.packing import _by_tier_counts, _can_listen, _knapsack_milp, _knapsack_program, _sub

    rng = np.random.default_rng(3)
    answered = 0
    for _ in range(50):
        value, price, qmax, capacity, k, tiers = _tier_instance(rng)
        q = _by_tier_counts(value, price, qmax, capacity, k, tiers)
        if q is None:
            continue
        answered += 1
        assert float(q @ price) <= capacity + 1e-6 and tiers.fits(q, price) and (q > 0).sum() <= k
        assert (q <= qmax).all() and (q == np.floor(q)).all()
        got = float(value * price @ q)
        assert got >= float(value * price @ _knapsack_milp(value, price, qmax, capacity, k, tiers)) - 1e-9
        ok = _can_listen(value, price, qmax, capacity, tiers)[0]
        ref = _knapsack_program(value[ok], price[ok], qmax[ok], capacity, k, _sub(tiers, ok), integer_shares=True,
                                exact=True)
        assert got == pytest.approx(-ref.fun if ref is not None else 0.0, rel=1e-7, abs=1e-7)
    assert answered >= 40  # the dynamic rule's sizes: any max_active plans fit the capacity


def test_a_tier_of_thousands_of_shares_a_plan_is_left_to_the_milp_path():
    """A partly filled tier whose plans run to thousands of shares is not solved as an exact whole-share MILP
    (HiGHS may not close a gap of cents in time): the split gives way and the MILP path's top-up answers."""
    from wolfkit.packing import SHARES_EXACT, TierRooms, _by_tier_counts, _knapsack_exact

    value, price = np.array([0.01, 0.009, 0.008]), np.array([1.0, 1.0, 1.0])
    qmax = np.full(3, SHARES_EXACT + 500.0)
    tiers = TierRooms(np.zeros(3, dtype=int), np.array([SHARES_EXACT + 500.5]))
    capacity = 2 * (SHARES_EXACT + 500.0)
    assert _by_tier_counts(value, price, qmax, capacity, 2, tiers) is None
    q = _knapsack_exact(value, price, qmax, capacity, 2, tiers)
    assert tiers.fits(q, price) and float(q @ price) == SHARES_EXACT + 500  # the room's whole shares, the best plan
