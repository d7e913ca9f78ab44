"""calibration: the fit (monotone, shrunk), no future data, one objective for both methods, and every
higher-ranked name left out only for a named rule that binds (random candidate sets and the demo)."""

from __future__ import annotations

from datetime import date
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from wolfkit.backtest import run_backtest
from wolfkit.backtest.panel import load_market, scan_sessions
from wolfkit.calibration import Calibration, fit, for_session, isotonic, refit_row
from wolfkit.config import Params, params_from_dict
from wolfkit.data import get_provider
from wolfkit.diversify import build_targets
from wolfkit.diversify.candidates import TIE, VALUE_TOL, Rule
from wolfkit.opportunities import validate_opportunities
from wolfkit.orders import build_order_plan

TOL = 1e-6
BANDS = {t: [0.0, 1.0] for t in ("mega", "large", "mid", "small", "micro")}
DEMO: dict[str, Any] = {  # the demo market, small: a pack of 5, a short lookback and a quick calibration
    "data": {"source": "demo:40"},
    "scan": {"lookback_days": 60, "min_history": 40},
    "portfolio": {"min_score": 50, "target_positions": 5, "min_positions": 4, "max_positions": 6,
                  "position_min": 0.05, "position_max": 0.25, "sector_cap": 0.5,
                  "tiers": [{"min_score": 80, "weight_min": 0.18, "weight_max": 0.25},
                            {"min_score": 50, "weight_min": 0.10, "weight_max": 0.17}],
                  "market_cap": {"bands": BANDS},
                  "calibration": {"refit_sessions": 5, "window_sessions": 20, "min_observations": 300,
                                  "shrinkage_obs": 200}},
}
START, END, CUT = date(2022, 3, 1), date(2022, 4, 29), date(2022, 3, 31)


def demo_params(objective: str = "calibrated", **portfolio) -> Params:
    raw = {**DEMO, "portfolio": {**DEMO["portfolio"], "objective": objective, **portfolio}}
    return params_from_dict(raw)


def pairs(n: int, seed: int, slope: float = 1e-4, wiggle: float = 0.0) -> pd.DataFrame:
    r = np.random.default_rng(seed)
    score = r.uniform(0, 100, n)
    real = slope * (score - 50) + wiggle * np.sin(score / 7) + r.normal(0, 0.01, n)
    days = pd.bdate_range("2021-01-04", periods=max(n // 50, 1))
    return pd.DataFrame({"date": days[np.arange(n) % len(days)], "symbol": [f"S{i % 50}" for i in range(n)],
                         "score": score, "realised": real})


# ---------------------------------------------------------------- the fit


def test_isotonic_fit_is_monotone_and_keeps_the_weighted_mean():
    r = np.random.default_rng(1)
    v, w = r.normal(size=40), r.integers(1, 50, 40).astype(float)
    f = isotonic(v, w)
    assert (np.diff(f) >= -1e-15).all()
    assert f @ w == pytest.approx(v @ w)
    assert np.array_equal(isotonic(np.sort(v), w), np.sort(v))  # already monotone: unchanged


@pytest.mark.parametrize("seed", range(5))
def test_calibrated_return_is_monotone_in_score_where_isotonic(seed):
    p = demo_params()
    cp = p.portfolio.calibration.model_copy(update={"shrinkage_obs": 10.0, "min_observations": 10})
    data = pairs(4000, seed, slope=2e-5, wiggle=0.004)  # a wiggle the isotonic fit must iron out
    iso = fit(data, cp)
    grid = np.linspace(0, 100, 501)
    assert (np.diff(iso.expected_return(grid)) >= -1e-15).all()
    binned = fit(data, cp.model_copy(update={"method": "binned"}))
    assert (np.diff(binned.returns) < 0).any()  # the data are not monotone: binned says so
    assert iso.n == binned.n == 4000 and iso.ready


def test_few_observations_shrink_toward_zero_and_many_keep_the_measured_mean():
    cp = demo_params().portfolio.calibration.model_copy(update={"shrinkage_obs": 1000.0, "min_observations": 1,
                                                               "method": "binned"})
    big = pairs(200_000, 3, slope=1e-4)
    few = big.iloc[:100]
    raw = big.assign(b=np.clip((big["score"] // 10).astype(int), 0, 9)).groupby("b")["realised"].mean()
    many = fit(big, cp)
    assert np.allclose(many.returns, raw.to_numpy() * np.array(many.counts) / (np.array(many.counts) + 1000))
    assert abs(many.returns[-1] - raw.iloc[-1]) < 0.1 * abs(raw.iloc[-1])  # 20 000 per bin: barely shrunk
    small = fit(few, cp)
    raw_few = few.assign(b=np.clip((few["score"] // 10).astype(int), 0, 9)).groupby("b")["realised"].mean()
    assert max(abs(x) for x in small.returns) < 0.02 * raw_few.abs().max()  # ~10 per bin: next to zero
    # risk: toward the pooled volatility, not toward zero
    pooled = float(few["realised"].std())
    assert all(abs(x - pooled) < 0.05 * pooled for x in small.risks)


def test_not_ready_below_min_observations_and_the_builder_says_it_used_raw():
    p = demo_params(calibration={**DEMO["portfolio"]["calibration"], "min_observations": 10_000})
    cal = fit(pairs(500, 0), p.portfolio.calibration, date(2022, 1, 3))
    assert not cal.ready and cal.expected_return(90.0) == 0 and cal.risk(90.0) == 0
    opps = validate_opportunities(candidates(20, 4, 0), p, "t").valid
    t = build_targets(opps, p, "optimal", cal)
    assert t.basis == "expected_return" and any("not ready" in n for n in t.notes)
    none = build_targets(opps, p, "greedy")  # a direct call without one: raw, and the basis says so
    assert none.basis == "expected_return"


def test_refit_days_are_fixed_by_the_calendar_not_by_the_window():
    days = pd.bdate_range("2022-01-03", "2022-06-30")
    later = days[days >= "2022-02-01"]
    for every in (1, 5, 21):
        a = [days[refit_row(days, i, every)] for i in range(len(days))]
        b = [later[refit_row(later, i, every)] for i in range(len(later))]
        full = dict(zip(days, a))
        assert all(full[d] == r or r == later[0] for d, r in zip(later, b))
        assert all(r <= d for d, r in full.items())


# ---------------------------------------------------------------- no future data


@pytest.fixture(scope="module")
def demo_mornings():
    p = demo_params()
    prov = get_provider(p)
    full = list(scan_sessions(load_market(prov, p, START, END), p))
    part = list(scan_sessions(load_market(prov, p, START, CUT), p))
    return p, full, part


def test_calibration_uses_no_future_data(demo_mornings):
    """Cut the data after CUT: every session up to CUT has the same calibration and the same picks."""
    p, full, part = demo_mornings
    assert len(part) < len(full)
    ready = 0
    for a, b in zip(full, part):
        assert a.calibration == b.calibration
        assert a.calibration is not None and a.calibration.fit_end is not None
        assert a.calibration.refit_day is not None and a.calibration.fit_end < a.calibration.refit_day
        assert a.targets is not None and b.targets is not None
        pd.testing.assert_frame_equal(a.targets.weights, b.targets.weights)
        pd.testing.assert_frame_equal(a.targets.excluded, b.targets.excluded)
        ready += a.calibration.ready and a.targets.basis == "calibrated"
    assert ready == len(part)  # the calibrated objective is really in use


def test_a_live_build_gets_the_backtests_calibration(demo_mornings):
    """`for_session` (what a live build fits from the bars before its day) equals the backtest's walk-forward fit."""
    p, full, _ = demo_mornings
    prov = get_provider(p)
    market = load_market(prov, p, START, END)
    for k in (0, len(full) // 2, len(full) - 1):
        day = market.dates()[k]
        assert for_session(p, day, prov) == full[k].calibration, day


# ---------------------------------------------------------------- one objective, named rules


def candidates(n: int, sectors: int, seed: int) -> pd.DataFrame:
    r = np.random.default_rng(seed)
    return pd.DataFrame({
        "symbol": [f"S{i:03d}" for i in range(n)],
        "sector": [f"sec{k}" for k in r.integers(0, sectors, n)],
        "market_cap": 10 ** r.uniform(8.3, 12.6, n),
        "price": r.uniform(2, 900, n).round(2),
        "score": r.uniform(40, 100, n).round(1),
        "expected_return": r.uniform(-0.01, 0.03, n),
    })


def random_calibration(seed: int, monotone: bool) -> Calibration:
    r = np.random.default_rng(seed)
    knots = tuple(np.linspace(5, 95, 10).tolist())
    ret = r.normal(0, 0.002, 10)
    ret = np.sort(ret) if monotone else ret
    risk = r.uniform(0.005, 0.03, 10)
    return Calibration(knots, tuple(ret.tolist()), tuple(risk.tolist()), (1000,) * 10, 10_000, 100,
                       date(2021, 1, 4), date(2021, 6, 1), date(2021, 6, 2), True)


def objective_values(opps: pd.DataFrame, cal: Calibration, p: Params) -> pd.Series:
    """The calibrated objective, computed here from the parameters (not read from the builder)."""
    s = opps["score"].to_numpy(float)
    v = cal.expected_return(s) - p.portfolio.risk_aversion * cal.risk(s) + TIE * s
    return pd.Series(v, index=opps["symbol"].to_numpy())


def swap_breaks(opps: pd.DataFrame, weights: pd.Series, i: str, j: str, p: Params) -> set[Rule]:
    """The rules broken when left-out `i` takes pick `j`'s place at j's weight (or the nearest its tier band
    allows, when the band cannot hold j's: the band then breaks the allocation) — checked independently."""
    pp = p.portfolio
    target = pp.target_allocation
    rows = opps.set_index("symbol")
    wj = float(weights[j])
    band = pp.band_for(float(rows.loc[i, "score"]))
    assert band is not None
    out = set()
    if not band.weight_min - TOL <= wj <= band.weight_max + TOL:
        out.add(Rule.TIER_BAND)
    w = weights.drop(j)
    w[i] = min(max(wj, band.weight_min), band.weight_max)
    meta = rows.loc[w.index]
    if (w.groupby(meta["sector"]).sum() > meta["sector"].map(pp.cap_for).groupby(meta["sector"]).first() + TOL).any():
        out.add(Rule.SECTOR_CAP)
    tiers = w.groupby(meta["cap_tier"]).sum()
    for t, (lo, hi) in pp.market_cap.bands.items():
        if not lo * target - TOL <= tiers.get(t, 0.0) <= hi * target + TOL:
            out.add(Rule.CAP_BAND)
    return out


RISK_RULES = ("risk.min_price", "risk.min_adv_usd", "risk.max_position_risk", "risk.max_adv_share")


def assert_no_silent_omission(opps: pd.DataFrame, t, cal: Calibration, p: Params) -> int:
    """Every name left out with a higher objective than some pick carries a reason naming a rule, and
    each rule it names demonstrably binds: taking a lower-ranked pick's place would break it. Returns
    how many such names there were."""
    obj = objective_values(opps, cal, p)
    w = t.weights.set_index("symbol")["weight"]
    reasons = dict(zip(t.excluded["symbol"], t.excluded["reason"]))
    checked = 0
    for sym, why in reasons.items():
        lower = [j for j in w.index if obj[j] < obj[sym] - VALUE_TOL]
        if not lower:
            continue
        checked += 1
        if why.startswith("below min_score"):
            assert opps.set_index("symbol").loc[sym, "score"] < p.portfolio.min_score
            continue
        risk_rule = next((r for r in RISK_RULES if r in why), None)
        if risk_rule is not None:  # the risk and liquidity rules (diversify.limits) name their parameter
            row = opps.set_index("symbol").loc[sym]
            if risk_rule == "risk.min_price" and "unknown" not in why:
                assert row["price"] < p.risk.min_price, (sym, why)
            continue
        named = {Rule(head) for head in (part.split(":")[0].removesuffix(" full") for part in why.split("; "))
                 if head in set(Rule)}
        assert named, (sym, why)
        broken = {j: swap_breaks(opps, w, sym, j, p) for j in lower}
        assert all(broken.values()), (sym, why, broken)  # no lower pick could simply give way
        full = at_limit(opps, w, sym, p)
        assert all(r in full or any(r in b for b in broken.values()) for r in named), (sym, why, broken, full)
    return checked


def at_limit(opps: pd.DataFrame, weights: pd.Series, i: str, p: Params) -> set[Rule]:
    """The rules the pack is at the limit of for adding `i` at its band minimum (its sector, its cap tier)."""
    pp = p.portfolio
    rows = opps.set_index("symbol")
    band = pp.band_for(float(rows.loc[i, "score"]))
    assert band is not None
    meta = rows.loc[weights.index]
    sector, tier = rows.loc[i, "sector"], rows.loc[i, "cap_tier"]
    out = set()
    if weights[meta["sector"] == sector].sum() + band.weight_min > pp.cap_for(sector) + TOL:
        out.add(Rule.SECTOR_CAP)
    if weights[meta["cap_tier"] == tier].sum() + band.weight_min > pp.market_cap.bands[tier][1] * pp.target_allocation + TOL:
        out.add(Rule.CAP_BAND)
    if weights.sum() + band.weight_min > pp.target_allocation + TOL:
        out.add(Rule.ALLOCATION)
    return out


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    n=st.integers(8, 50),
    sectors=st.integers(2, 9),
    seed=st.integers(0, 10_000),
    cap=st.sampled_from([0.2, 0.3, 0.4]),
    aversion=st.sampled_from([0.0, 0.05, 0.5]),
    monotone=st.booleans(),
    strict_mix=st.booleans(),
)
def test_no_higher_ranked_name_is_left_out_without_a_named_rule(n, sectors, seed, cap, aversion, monotone, strict_mix):
    bands = ({"mega": [0.1, 0.5], "large": [0.1, 0.6], "mid": [0.05, 0.4], "small": [0.0, 0.3], "micro": [0.0, 0.15]}
             if strict_mix else BANDS)
    p = params_from_dict({"portfolio": {"objective": "calibrated", "risk_aversion": aversion, "min_score": 50,
                                        "sector_cap": cap, "market_cap": {"bands": bands, "strict": True},
                                        "tiers": [{"min_score": 90, "weight_min": 0.10, "weight_max": 0.12},
                                                  {"min_score": 75, "weight_min": 0.07, "weight_max": 0.09},
                                                  {"min_score": 50, "weight_min": 0.05, "weight_max": 0.06}]}})
    opps = validate_opportunities(candidates(n, sectors, seed), p, "t").valid
    cal = random_calibration(seed, monotone)
    from wolfkit.errors import InfeasibleError

    for method in ("optimal", "greedy"):
        try:
            t = build_targets(opps, p, method, cal)
        except InfeasibleError:
            continue
        assert t.basis == "calibrated"
        assert t.objective == pytest.approx(float((t.weights.set_index("symbol")["weight"]
                                                   * objective_values(opps, cal, p)).dropna().sum()), abs=1e-12)
        assert_no_silent_omission(opps, t, cal, p)


def test_greedy_fills_in_objective_order_not_score_order():
    """A calibration that values mid scores above high ones: greedy's first picks are the best-valued names."""
    p = params_from_dict({"portfolio": {"objective": "calibrated", "risk_aversion": 0.0, "min_score": 50,
                                        "sector_cap": 1.0, "market_cap": {"bands": BANDS},
                                        "tiers": [{"min_score": 50, "weight_min": 0.05, "weight_max": 0.12}]}})
    cal = Calibration(tuple(np.linspace(5, 95, 10).tolist()), (0, 0, 0, 0, 0, 0.002, 0.004, 0.003, 0.001, 0.0),
                      (0.01,) * 10, (1000,) * 10, 10_000, 100, None, None, None, True)
    opps = validate_opportunities(candidates(40, 5, 7), p, "t").valid
    g = build_targets(opps, p, "greedy", cal)
    o = build_targets(opps, p, "optimal", cal)
    best = objective_values(opps, cal, p).sort_values(ascending=False).index[:12]
    assert set(g.weights["symbol"]) == set(best) == set(o.weights["symbol"])
    by_score = set(opps.sort_values("score", ascending=False)["symbol"].head(12))
    assert set(g.weights["symbol"]) != by_score  # the raw order would have picked others
    assert g.objective == pytest.approx(o.objective, abs=1e-12)


def test_demo_sessions_leave_no_higher_ranked_name_out_silently(demo_mornings):
    p, full, _ = demo_mornings
    checked = 0
    for m in full:
        assert m.targets is not None and m.calibration is not None
        checked += assert_no_silent_omission(m.opps, m.targets, m.calibration, p)
    assert checked > 0  # the property was exercised, not vacuous


# ---------------------------------------------------------------- the demo end to end, both objectives


@pytest.mark.slow  # two short demo backtests
def test_demo_backtest_end_to_end_with_both_objectives(tmp_path):
    results = {}
    for objective in ("raw", "calibrated"):
        p = demo_params(objective)
        r = run_backtest(p, START, CUT, tmp_path / objective, progress=False, report=False)
        assert len(r.equity) > 10 and np.isfinite(r.equity["equity"]).all()
        assert (tmp_path / objective / "summary.json").is_file()
        results[objective] = r
    picks = {k: set(map(tuple, r.scores.loc[r.scores["picked"], ["date", "symbol"]].astype(str).to_numpy()))
             for k, r in results.items()}
    assert picks["raw"] != picks["calibrated"]  # the objective changed what was bought


def test_a_build_with_the_calibrated_objective_on_the_demo():
    p = demo_params()
    day = date(2022, 4, 4)
    from wolfkit.scan import run_scan

    prov = get_provider(p)
    opps = run_scan(p, day, prov).opportunities
    cal = for_session(p, day, prov)
    assert cal.ready and cal.fit_end is not None and cal.fit_end < day
    built = build_order_plan(opps, p, 100_000.0, None, day, calibration=cal, created_at=pd.Timestamp("2022-04-04"))
    assert built.targets.basis == "calibrated" and built.targets.calibration == cal
    raw = build_order_plan(opps, demo_params("raw"), 100_000.0, None, day, created_at=pd.Timestamp("2022-04-04"))
    assert raw.targets.basis == "expected_return"
    assert_no_silent_omission(validate_opportunities(opps, p, "t").valid, built.targets, cal, p)

