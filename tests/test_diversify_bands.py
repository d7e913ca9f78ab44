"""Market-cap bands are preferences unless `strict`: on real S&P 500 candidate sets the default parameters
always build, every band the pack misses is named with why, and `strict: true` keeps exit 3."""

from __future__ import annotations

import warnings
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from wolfkit.config import CAP_TIERS, Params, load_params, params_from_dict
from wolfkit.diversify import Targets, build_targets
from wolfkit.diversify.bands import Miss, band_table
from wolfkit.errors import InfeasibleError
from wolfkit.opportunities import validate_opportunities

ROOT = Path(__file__).resolve().parents[1]
TOL = 1e-6


@pytest.fixture(scope="module")
def real_scan(shared_data: Path) -> pd.DataFrame:
    """One real scan of the 2018 S&P 500 members (scores, expected returns) for the session of 2015-06-01."""
    from wolfkit.data import get_provider
    from wolfkit.scan import run_scan

    p = load_params(ROOT / "parameters" / "sp500.yaml").with_changes({"scan": {"workers": 0}})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # the file's quarantined rows, reported elsewhere
        provider = get_provider(p)
    uni = pd.read_csv(shared_data / "sp500_universe_2018.csv")
    scan = run_scan(p, date(2015, 6, 1), provider).opportunities
    assert scan["symbol"].isin(uni["Symbol"]).all()  # every row is a member of the universe file
    return scan


def missed_bands(t: Targets, p: Params) -> set[tuple[str, Miss]]:
    """Independent of diversify: which bands the pack's weights miss, from the weights alone."""
    target = p.portfolio.target_allocation
    held = t.weights.groupby("cap_tier")["weight"].sum()
    out = set()
    for tier in CAP_TIERS:
        lo, hi = p.portfolio.market_cap.bands[tier]
        x = float(held.get(tier, 0.0))
        if x < lo * target - TOL:
            out.add((tier, Miss.BELOW))
        elif x > hi * target + TOL:
            out.add((tier, Miss.ABOVE))
    return out


def assert_other_rules(t: Targets, p: Params) -> None:
    pp = p.portfolio
    w = t.weights
    assert abs(w["weight"].sum() - pp.target_allocation) <= TOL
    assert pp.min_positions <= len(w) <= pp.max_positions
    for _, r in w.iterrows():
        band = pp.band_for(r["score"])
        assert band is not None
        assert band.weight_min - TOL <= r["weight"] <= band.weight_max + TOL
    for sec, tot in w.groupby("sector")["weight"].sum().items():
        assert tot <= pp.cap_for(sec) + TOL


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(size=st.integers(150, 500), seed=st.integers(0, 2**31))
def test_real_candidate_sets_build_with_the_defaults_and_name_every_missed_band(real_scan, size, seed):
    p = Params()
    sub = real_scan.sample(min(size, len(real_scan)), random_state=seed)
    opps = validate_opportunities(sub, p, "draw").valid
    t = build_targets(opps, p)  # never InfeasibleError: the bands give way, the other rules hold
    assert_other_rules(t, p)
    want = missed_bands(t, p)
    assert {(b.tier, b.miss) for b in t.band_misses} == want
    for b in t.band_misses:
        assert any(n.startswith(f"market-cap band {b.tier}: ") and b.why in n for n in t.notes)
        assert b.why
    table = band_table(p, t.cap_weights, t.allocation, t.band_misses)
    assert set(table.loc[~table["met"], "tier"]) == {tier for tier, _ in want}
    if not want:  # every band met: exactly the strict pack
        strict = build_targets(opps, p.with_changes({"portfolio": {"market_cap": {"strict": True}}}))
        pd.testing.assert_frame_equal(strict.weights, t.weights)


def mids_missing() -> pd.DataFrame:
    """20 large caps in 10 sectors, no mid cap: the mid band (at least 5% of the allocation) cannot be met."""
    r = np.random.default_rng(2)
    return pd.DataFrame({
        "symbol": [f"L{i:02d}" for i in range(20)] + ["M0", "M1"],
        "sector": [f"s{i % 10}" for i in range(20)] + ["s0", "s1"],
        "market_cap": [3e11] * 6 + [5e10] * 14 + [5e9] * 2,
        "price": 50.0,
        "score": list(r.uniform(72, 99, 20).round(1)) + [50.0, 55.0],  # the two mid caps are not candidates
    })


def test_a_band_without_candidates_is_missed_and_said_and_strict_keeps_exit_3():
    p = Params()
    opps = validate_opportunities(mids_missing(), p, "t").valid
    strict = p.with_changes({"portfolio": {"market_cap": {"strict": True}}})
    for method in ("optimal", "greedy"):
        with pytest.raises(InfeasibleError) as e:
            build_targets(opps, strict, method)
        assert e.value.exit_code == 3
        assert str(e.value) == ("market-cap band mid: needs at least 4.8% but its 0 candidates can take at most 0%; "
                                "lower portfolio.market_cap.bands.mid or add mid candidates")
        t = build_targets(opps, p, method)
        assert_other_rules(t, p)
        assert [(b.tier, b.miss, b.share) for b in t.band_misses] == [("mid", Miss.BELOW, 0.0)]
        assert t.band_misses[0].why == "its 0 candidates can take at most 0% of equity"
        assert t.notes[-1].startswith("market-cap band mid: 0% of the allocation, below its minimum 5%: its 0 candidates")
        assert t.notes[-1].endswith("portfolio.market_cap.strict: true stops instead)")
        assert t.cap_weights.keys() <= {"mega", "large"}


def test_tier_maxima_below_the_target_go_over_by_the_least_and_say_why():
    # only large caps: the large maximum (60% of the allocation) allows 57% of equity, the target is 95%
    p = Params()
    df = mids_missing().iloc[:20].assign(market_cap=5e10)
    opps = validate_opportunities(df, p, "t").valid
    strict = p.with_changes({"portfolio": {"market_cap": {"strict": True}}})
    with pytest.raises(InfeasibleError, match="the tier maxima .* allow at most 57% allocated, the target is 95%"):
        build_targets(opps, strict)
    t = build_targets(opps, p)
    assert_other_rules(t, p)
    assert t.allocation == pytest.approx(0.95)
    misses = {(b.tier, b.miss) for b in t.band_misses}
    assert misses == {("large", Miss.ABOVE), ("mega", Miss.BELOW), ("mid", Miss.BELOW)}
    large = next(b for b in t.band_misses if b.tier == "large")
    assert large.share == pytest.approx(1.0)
    assert large.why == "the tier maxima and the candidates in each tier allow at most 57% allocated, the target is 95%"


def test_the_shortfall_is_the_least_the_candidates_allow():
    # one mega candidate in the 70–74 band (full size 6% of equity): the mega minimum (9.5%) is missed
    # by exactly 3.5 points, no more; mega holds that one name at its full size
    p = Params()
    df = mids_missing()
    df.loc[:5, "market_cap"] = 5e10
    df.loc[0, ["market_cap", "score"]] = [3e11, 71.0]
    df.loc[14:19, "market_cap"] = 5e9  # mid caps enough for the rest of the allocation
    opps = validate_opportunities(df, p, "t").valid
    t = build_targets(opps, p)
    assert_other_rules(t, p)
    assert [(b.tier, b.miss) for b in t.band_misses] == [("mega", Miss.BELOW)]
    assert t.cap_weights["mega"] == pytest.approx(0.06, abs=1e-9)
    assert t.band_misses[0].why == "its 1 candidate can take at most 6% of equity"


def test_feasible_bands_give_exactly_the_strict_pack():
    p = params_from_dict({"portfolio": {"sector_cap": 0.4}})
    r = np.random.default_rng(5)
    n = 60
    df = pd.DataFrame({
        "symbol": [f"S{i:02d}" for i in range(n)], "sector": [f"s{k}" for k in r.integers(0, 8, n)],
        "market_cap": 10 ** r.uniform(9.5, 12, n), "price": 20.0, "score": r.uniform(60, 100, n),
        "expected_return": r.uniform(0, 0.003, n),
    })
    opps = validate_opportunities(df, p, "t").valid
    soft = build_targets(opps, p)
    hard = build_targets(opps, p.with_changes({"portfolio": {"market_cap": {"strict": True}}}))
    assert soft.band_misses == () and soft.notes == hard.notes
    pd.testing.assert_frame_equal(soft.weights, hard.weights)
    pd.testing.assert_frame_equal(soft.excluded, hard.excluded)


def test_other_rules_still_stop_the_build():
    # too few candidates is not a band: exit 3 as before, strict or not
    p = Params()
    df = mids_missing().iloc[:8]
    opps = validate_opportunities(df, p, "t").valid
    with pytest.raises(InfeasibleError, match="too few candidates"):
        build_targets(opps, p)


def test_twenty_draws_of_100_members_as_in_the_report_all_build(real_scan):
    # 100 of the S&P 500 members at a time: most draws cannot meet some band; strict stops on each of those
    p = Params()
    strict = p.with_changes({"portfolio": {"market_cap": {"strict": True}}})
    missing = 0
    for seed in range(20):
        opps = validate_opportunities(real_scan.sample(100, random_state=seed), p, "draw").valid
        t = build_targets(opps, p)
        assert_other_rules(t, p)
        assert {(b.tier, b.miss) for b in t.band_misses} == missed_bands(t, p)
        if t.band_misses:
            missing += 1
            with pytest.raises(InfeasibleError, match="market-cap"):
                build_targets(opps, strict)
    assert missing >= 5  # the draws really exercise unmeetable bands


def test_the_report_shows_each_band_and_why_it_was_missed(capsys):
    from types import SimpleNamespace

    from wolfkit import report

    p = Params()
    t = build_targets(validate_opportunities(mids_missing(), p, "t").valid, p)
    summary = SimpleNamespace(sector_weights=t.sector_weights, cap_weights=t.cap_weights)  # the plan's, after rounding
    report.breakdown(SimpleNamespace(targets=t, plan=SimpleNamespace(summary=summary)), p)  # type: ignore[arg-type]
    out = capsys.readouterr().out
    assert "Market-cap bands: met, or why not" in out
    assert "its 0 candidates can take at most 0% of equity" in out
    assert "'name': 'band_misses'" in out and "'tier': 'mid'" in out
