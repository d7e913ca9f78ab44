"""The risk and liquidity rules (`params.risk`) hold: every pick above the floors, every weight x
volatility under the cap, every order within its share of the dollar volume, maxdiff counted in the
market-cap mix — on synthetic tables, the demo market and the real S&P 500 data. And the scan's risk
inputs (`adv_usd`, `volatility`) against a direct pandas computation."""

from __future__ import annotations

from datetime import date, time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from wolfkit.config import CAP_TIERS, Params, load_params
from wolfkit.diversify import build_targets
from wolfkit.diversify.limits import below_floors
from wolfkit.domain import PlanStatus
from wolfkit.errors import InfeasibleError
from wolfkit.opportunities import validate_opportunities
from wolfkit.orders import OrderPlan, build_order_plan
from wolfkit.packing import Packing, pack_layers
from wolfkit.scan import risk_inputs, run_scan

ROOT = Path(__file__).resolve().parents[1]
TOL = 1e-9
RULES_OFF = {"min_price": 0, "min_adv_usd": 0, "max_adv_share": None, "max_position_risk": None,
             "maxdiff_in_cap_bands": False}


def opps_table(n: int = 60, seed: int = 0) -> pd.DataFrame:
    """A candidate table with the risk columns; a few names break a floor or carry a large volatility."""
    r = np.random.default_rng(seed)
    price = r.uniform(20, 600, n).round(2)
    price[:3] = [0.65, 3.2, 4.99]
    adv = 10 ** r.uniform(7, 9.7, n)
    adv[3:6] = [1e6, 4.9e6, 2e6]
    vol = r.uniform(0.01, 0.04, n)
    vol[6:12] = [0.125, 0.09, 0.07, 0.065, 0.08, 0.1]
    return validate_opportunities(pd.DataFrame({
        "symbol": [f"S{i:03d}" for i in range(n)],
        "sector": [f"sec{k}" for k in r.integers(0, 11, n)],
        "market_cap": 10 ** r.uniform(9, 12.3, n),
        "price": price,
        "score": np.r_[np.full(12, 100.0), r.uniform(60, 99.9, n - 12)].round(1),
        "pred_high": (price * r.uniform(1.005, 1.04, n)).round(2),
        "pred_low": (price * r.uniform(0.96, 0.995, n)).round(2),
        "maxdiff_avg_return": r.uniform(0.001, 0.006, n),
        "maxdiff_side": r.choice(["buy", "both"], n),
        "atr": price * 0.02,
        "adv_usd": adv,
        "volatility": vol,
    }), Params(), "t").valid


def assert_pack_rules(opps: pd.DataFrame, weights: pd.DataFrame, p: Params, equity: float | None) -> None:
    """An independent check of the floors and the caps on a pack's target weights."""
    r = p.risk
    rows = opps.set_index("symbol").loc[weights["symbol"]]
    w = weights["weight"].to_numpy()
    assert (rows["price"] >= r.min_price).all()
    assert (rows["adv_usd"] >= r.min_adv_usd).all()
    assert (w * rows["volatility"].to_numpy() <= r.max_position_risk + TOL).all()
    if equity is not None:
        assert (w * equity <= r.max_adv_share * rows["adv_usd"].to_numpy() * (1 + TOL)).all()


def assert_orders(opps: pd.DataFrame, packing: Packing, p: Params, equity: float) -> None:
    """Every order within its ADV share, every name above the floors, and each market-cap tier's
    directional + listening maxdiff cost under the tier's band maximum (a share of the allocation)."""
    r = p.risk
    rows = opps.set_index("symbol")
    d = packing.directional.loc[packing.directional["qty"] > 0]
    m = packing.maxdiff.loc[packing.maxdiff["status"] == PlanStatus.LISTENING]
    for syms, cost in ((d["symbol"], d["cost"]), (m["symbol"], m["cost"])):
        adv = rows.loc[syms, "adv_usd"].to_numpy()
        assert (cost.to_numpy() <= r.max_adv_share * adv + 1e-6).all()
        assert (rows.loc[syms, "price"] >= r.min_price).all() and (adv >= r.min_adv_usd).all()
    tier_cost = pd.concat([d.set_index("symbol")["cost"], m.set_index("symbol")["cost"]])
    by_tier = tier_cost.groupby(rows.loc[tier_cost.index, "cap_tier"].to_numpy()).sum()
    for t in CAP_TIERS:
        cap = p.portfolio.market_cap.bands[t][1] * p.portfolio.target_allocation * equity
        assert by_tier.get(t, 0.0) <= cap + 1e-6, (t, by_tier.get(t, 0.0), cap)


# ---------------------------------------------------------------- the builder on synthetic tables


@pytest.mark.parametrize("method", ["optimal", "greedy"])
def test_floors_and_risk_cap_hold_and_say_why(method):
    p = Params()
    opps = opps_table()
    t = build_targets(opps, p, method)
    assert_pack_rules(opps, t.weights, p, None)
    why = dict(zip(t.excluded["symbol"], t.excluded["reason"]))
    assert why["S000"] == "price 0.65 < min_price 5 (risk.min_price)"
    assert why["S002"] == "price 4.99 < min_price 5 (risk.min_price)"
    assert why["S003"] == "adv_usd $1.0M < min_adv_usd $5.0M (risk.min_adv_usd)"
    assert why["S004"].startswith("adv_usd $4.9M < min_adv_usd")
    # a 90+ name (band 10–12%) with 12.5% daily volatility: 1.25% of equity at its band minimum > 0.6%
    assert why["S006"].startswith("risk cap: daily volatility 12.5% x band minimum 10.0% = 1.25% of equity"), why["S006"]
    # off, names are picked on score alone and the pack breaks a floor or the cap: the check can fail
    off = build_targets(opps, p.with_changes({"risk": RULES_OFF}), method)
    with pytest.raises(AssertionError):
        assert_pack_rules(opps, off.weights, p, None)


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("method", ["optimal", "greedy"])
def test_liquidity_cap_bounds_the_weight_at_the_equity(seed, method):
    p = Params()
    opps = opps_table(seed=seed)
    opps.loc[12:30, "adv_usd"] = np.linspace(6e6, 4e7, 19)  # thin names: 1% of ADV is 0.6–4% of $10M
    t = build_targets(opps, p, method, equity=10_000_000)
    assert_pack_rules(opps, t.weights, p, 10_000_000)
    why = dict(zip(t.excluded["symbol"], t.excluded["reason"]))
    assert any(w.startswith("liquidity cap: 1% of adv_usd") and "(risk.max_adv_share)" in w for w in why.values())
    capped = t.weights.loc[t.weights["reason"].str.contains("liquidity cap")]
    assert len(capped) == 0 or (capped["weight"] < 0.12).all()


def test_a_cap_inside_the_band_lowers_the_weight_for_both_methods():
    p = Params()
    opps = opps_table()
    # S008: score 100 (band 10–12%), volatility 5.5%: the cap 0.6% / 5.5% = 10.9% is inside the band
    opps.loc[opps["symbol"] == "S008", ["volatility", "sector"]] = [0.055, "solo"]
    for method in ("optimal", "greedy"):
        t = build_targets(opps, p, method)
        row = t.weights.set_index("symbol").loc["S008"]
        assert row["weight"] <= 0.006 / 0.055 + TOL and "risk cap" in row["reason"], row


def test_missing_columns_skip_the_rule_and_say_so_and_a_missing_value_excludes():
    p = Params()
    opps = opps_table().drop(columns=["adv_usd", "volatility"])
    t = build_targets(opps, p, "optimal", equity=100_000)
    assert any(n.startswith("risk.min_adv_usd skipped: the opportunities have no adv_usd") for n in t.rules_skipped)
    assert any(n.startswith("risk.max_position_risk skipped") for n in t.rules_skipped)
    res = build_order_plan(opps, p, equity=100_000, buying_power=200_000, as_of=date(2024, 6, 3))
    assert any(n.startswith("risk.max_adv_share skipped") for n in res.plan.summary.notes)
    with_gap = opps_table()
    with_gap.loc[with_gap["symbol"] == "S020", "adv_usd"] = np.nan
    t = build_targets(with_gap, p, "optimal", equity=100_000)
    assert dict(zip(t.excluded["symbol"], t.excluded["reason"]))["S020"].startswith("adv_usd unknown")
    assert t.rules_skipped == ()
    assert build_targets(with_gap, p, "optimal").rules_skipped == (
        "risk.max_adv_share not applied to the weights: no equity given (the packer caps the shares)",)


def test_below_floors_passes_everything_when_off():
    opps = opps_table()
    assert (below_floors(opps, Params().with_changes({"risk": RULES_OFF})) == "").all()


# ---------------------------------------------------------------- the packer: ADV share, maxdiff in the tier mix


@pytest.mark.parametrize("method", ["optimal", "greedy"])
def test_maxdiff_counts_in_the_market_cap_tier(method):
    p = Params().with_changes({"leverage": {"maxdiff_time_shares": [{"start": "09:30:00", "share": 1.0}]}})
    opps = opps_table(seed=3)
    t = build_targets(opps, p, method, equity=100_000)
    pk = pack_layers(t, opps, p, 100_000, 200_000, at=time(9, 30), method=method)
    assert_orders(opps, pk, p, 100_000)
    off = p.with_changes({"risk": {"maxdiff_in_cap_bands": False}})
    pk_off = pack_layers(t, opps, off, 100_000, 200_000, at=time(9, 30), method=method)
    with pytest.raises(AssertionError):  # without the rule a tier overflows: the check above can fail
        assert_orders(opps, pk_off, p, 100_000)


@pytest.mark.parametrize("equity", [100_000.0, 20_000_000.0])
def test_every_order_within_its_adv_share(equity):
    p = Params()
    opps = opps_table(seed=1)
    res = build_order_plan(opps, p, equity=equity, buying_power=2 * equity, as_of=date(2024, 6, 3))
    adv = opps.set_index("symbol")["adv_usd"]
    for o in res.plan.orders:
        assert o.est_cost <= p.risk.max_adv_share * adv[o.symbol] + 1e-6, o


# ---------------------------------------------------------------- the demo market and the real data


def _check_plan(plan: OrderPlan, opps: pd.DataFrame, p: Params) -> None:
    rows = opps.set_index("symbol")
    eq = plan.account.equity
    cost: dict[str, float] = {}
    for o in plan.orders:
        r = rows.loc[o.symbol]
        assert r["price"] >= p.risk.min_price and r["adv_usd"] >= p.risk.min_adv_usd, o.symbol
        assert o.est_cost <= p.risk.max_adv_share * r["adv_usd"] + 1e-6, o.symbol
        if o.layer == "directional":
            assert o.weight * r["volatility"] <= p.risk.max_position_risk * (1 + 0.002), o.symbol  # whole shares
        cost[r["cap_tier"]] = cost.get(r["cap_tier"], 0.0) + o.est_cost
    for t, c in cost.items():
        assert c <= p.portfolio.market_cap.bands[t][1] * p.portfolio.target_allocation * eq + 1e-6, t


@pytest.mark.slow
def test_rules_hold_on_the_demo_market():
    p = load_params(ROOT / "parameters" / "demo.yaml")
    session = date(2024, 6, 3)
    opps = run_scan(p, session).opportunities
    assert (opps["price"] < p.risk.min_price).any()  # the demo market has penny stocks to keep out
    for equity in (100_000.0, 5_000_000.0):
        res = build_order_plan(opps, p, equity=equity, buying_power=2 * equity, as_of=session, synthetic=True)
        _check_plan(res.plan, opps, p)
    off = build_order_plan(opps, p.with_changes({"risk": RULES_OFF}), equity=100_000.0, buying_power=200_000.0,
                           as_of=session, synthetic=True)
    with pytest.raises(AssertionError):  # the rules change the demo pack: without them it breaks them
        _check_plan(off.plan, opps, p)


@pytest.mark.slow
def test_rules_hold_on_the_real_sp500_data(shared_data):
    p = load_params(ROOT / "parameters" / "sp500.yaml")
    for session in (date(2014, 6, 2), date(2016, 6, 1)):
        opps = run_scan(p, session).opportunities
        assert opps["adv_usd"].notna().mean() > 0.95 and opps["volatility"].notna().mean() > 0.95
        for equity in (100_000.0, 20_000_000.0):
            res = build_order_plan(opps, p, equity=equity, buying_power=2 * equity, as_of=session)
            _check_plan(res.plan, opps, p)
    # at $200M, 1% of the dollar volume holds a 5% position only in names trading $1B a day: too few
    with pytest.raises(InfeasibleError, match="pass the risk rules"):
        build_order_plan(opps, p, equity=2e8, buying_power=4e8, as_of=session)


# ---------------------------------------------------------------- the scan's risk inputs


def test_risk_inputs_match_pandas():
    r = np.random.default_rng(5)
    close = 50 * np.exp(np.cumsum(r.normal(0, 0.02, (100, 4)), axis=0))
    volume = r.uniform(1e5, 1e6, (100, 4))
    close[90, 1] = np.nan  # a missing bar
    close[:, 3] = np.nan   # a symbol without bars
    volume[:, 2] = np.nan  # close-only
    risk = Params().risk
    adv, vol = risk_inputs(close, volume, risk)
    c, v = pd.DataFrame(close), pd.DataFrame(volume)
    expect_adv = (c * v).tail(risk.adv_days).mean()
    expect_vol = c.tail(risk.volatility_days + 1).pct_change(fill_method=None).std()
    assert adv[:2] == pytest.approx(expect_adv[:2].to_numpy(), rel=1e-12)
    assert np.isnan(adv[2]) and np.isnan(adv[3]) and np.isnan(vol[3])
    assert vol[:3] == pytest.approx(expect_vol[:3].to_numpy(), rel=1e-12)
