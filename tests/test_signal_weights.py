"""Fitted signal weights (`scan.weights: fitted`): a signal with a real IC gains weight and a noise one loses
it, a negative IC is dropped to 0, no weight reads a session on or after its refit (truncation), the live
scan and the backtest fit the same weights, and the backtest records them."""

from __future__ import annotations

import json
from datetime import date

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

from wolfkit.backtest import run_backtest
from wolfkit.backtest.panel import load_market, signal_weights
from wolfkit.config import SignalFitParams, SignalWeighting, params_from_dict
from wolfkit.data.demo import DemoMarket
from wolfkit.errors import BadInputError
from wolfkit.scan import resolve_signals, run_scan
from wolfkit.signal_weights import fit_weights, ic_table, refit_start, weights_for
from wolfkit.signals import Panel

FIXED = {"good": 1.0, "noise": 1.0, "bad": 1.0}


def _planted(T: int = 260, N: int = 80, seed: int = 5) -> tuple[dict[str, np.ndarray], np.ndarray, pd.DatetimeIndex]:
    """Raw values of three signals and open→close returns where `good` predicts the next row's return,
    `bad` predicts it backwards and `noise` not at all."""
    rng = np.random.default_rng(seed)
    good, noise = rng.normal(size=(T, N)), rng.normal(size=(T, N))
    oc = np.full((T, N), np.nan)
    oc[1:] = 0.004 * good[:-1] + 0.01 * rng.normal(size=(T - 1, N))
    dates = pd.bdate_range("2020-01-06", periods=T)
    return {"good": good, "noise": noise, "bad": -good + 0.5 * rng.normal(size=(T, N))}, oc, dates


def test_the_ic_is_the_rank_correlation_of_the_morning_value_with_the_session_return() -> None:
    raw, oc, dates = _planted(T=30)
    ic = ic_table(raw, oc, dates)
    assert list(ic.index) == list(dates[1:])
    from scipy.stats import spearmanr

    r = 7
    want = spearmanr(raw["good"][r - 1], oc[r]).statistic
    assert ic.loc[dates[r], "good"] == pytest.approx(want, abs=1e-12)
    few = {"good": np.where(np.arange(80) < 4, raw["good"], np.nan)}  # 4 names: too few for an IC
    assert ic_table(few, oc, dates)["good"].isna().all()


def test_a_signal_with_real_ic_gets_the_weight_and_noise_loses_it() -> None:
    raw, oc, dates = _planted()
    ic = ic_table(raw, oc, dates)
    sessions = [d.date() for d in dates[150:]]
    for shrink in (0.0, 0.5):
        sw = fit_weights(ic, sessions, FIXED, SignalFitParams(window=100, min_sessions=50, refit_every=5,
                                                              shrink=shrink))
        w = sw.for_session(sessions[-1])
        assert w["good"] > FIXED["good"] > w["noise"], w
        assert w["bad"] == pytest.approx(shrink * FIXED["bad"])  # negative IC: 0, never sign-flipped
        assert sum(w.values()) == pytest.approx(sum(FIXED.values()))  # the composite's scale is kept
        if shrink == 0:
            assert w["noise"] < 0.25 * w["good"]
    fit = sw.fits[sw.block[sessions[-1]]]
    assert fit.ic_mean["good"] > 0.2 and fit.ic_mean["bad"] < -0.1 and abs(fit.ic_mean["noise"]) < 0.05


def test_too_little_history_keeps_the_fixed_weights_and_says_so() -> None:
    raw, oc, dates = _planted(T=40)
    sw = fit_weights(ic_table(raw, oc, dates), [dates[-1].date()], FIXED,
                     SignalFitParams(window=100, min_sessions=50, refit_every=1))
    assert sw.for_session(dates[-1].date()) == FIXED
    assert "fixed weights" in next(iter(sw.fits.values())).note


def test_refit_blocks_are_counted_from_a_fixed_epoch() -> None:
    assert refit_start(date(2000, 1, 3), 5) == date(2000, 1, 3)
    assert refit_start(date(2000, 1, 14), 5) == date(2000, 1, 10)  # a week of weekdays per block
    assert refit_start(date(2016, 3, 9), 1) == date(2016, 3, 9)
    days = pd.bdate_range("2016-01-04", "2016-06-30")
    starts = {refit_start(d.date(), 21) for d in days}
    assert all(s <= d.date() for d in days for s in [refit_start(d.date(), 21)]) and 5 <= len(starts) <= 7


def test_the_fit_needs_a_window_that_can_hold_its_minimum() -> None:
    with pytest.raises(ValidationError, match="min_sessions"):
        SignalFitParams(window=20, min_sessions=30)
    with pytest.raises(BadInputError, match="scan.weights .*'fixed' or 'fitted'"):
        params_from_dict({"scan": {"weights": "learned"}})


FIT = {"lookback_days": 60, "min_history": 40, "weights": "fitted",
       "fit": {"window": 40, "min_sessions": 20, "refit_every": 5, "shrink": 0.0}}


@pytest.fixture(scope="module")
def demo_panel() -> tuple[Panel, object]:
    m = DemoMarket(size=40)
    bars = m.daily_bars(list(m.universe()["symbol"]), date(2023, 1, 2), date(2024, 3, 28))
    return Panel.from_bars(bars), bars


def test_no_future_data_weights_up_to_a_cut_do_not_change(demo_panel) -> None:
    panel, bars = demo_panel
    p = params_from_dict({"scan": FIT})
    signals, fixed = resolve_signals(p.scan)
    sessions = [d.date() for d in panel.dates[200:]]
    full = weights_for(panel, signals, fixed, sessions, p.scan)
    cut = 240
    short = Panel.from_bars(bars[pd.to_datetime(bars["date"]) <= panel.dates[cut]])
    early = [d for d in sessions if d <= panel.dates[cut].date()]
    part = weights_for(short, signals, fixed, early, p.scan)
    assert [part.for_session(d) for d in early] == [full.for_session(d) for d in early]
    assert any(full.for_session(d) != fixed for d in early)  # the fit did move the weights
    # a changed future (after the cut) moves no weight up to it
    later = bars[pd.to_datetime(bars["date"]) > panel.dates[cut]].assign(close=lambda b: b["close"] * 1.7)
    shocked = Panel.from_bars(pd.concat([bars[pd.to_datetime(bars["date"]) <= panel.dates[cut]], later]))
    moved = weights_for(shocked, signals, fixed, sessions, p.scan)
    assert [moved.for_session(d) for d in early] == [full.for_session(d) for d in early]


def test_the_live_scan_and_the_backtest_fit_the_same_weights(tmp_path) -> None:
    p = params_from_dict({"data": {"source": "demo:40"}, "scan": FIT})
    provider = DemoMarket(size=40)
    start, end = date(2024, 3, 4), date(2024, 3, 28)
    market = load_market(provider, p, start, end)
    sw = signal_weights(market, p)
    assert sw.mode is SignalWeighting.FITTED and sw.for_session(market.dates()[-1]) != sw.fixed
    for d in (market.dates()[0], market.dates()[-1]):
        live = run_scan(p, d, provider=provider)
        assert live.weights is not None
        assert live.weights.for_session(d) == sw.for_session(d)
    assert "fitted signal weights" in live.summary()


def test_the_backtest_records_the_weights_and_both_ics(tmp_path) -> None:
    provider = DemoMarket(size=40)
    base = {"data": {"source": "demo:40"}, "scan": FIT,
            "portfolio": {"min_score": 50, "target_positions": 5, "min_positions": 4, "max_positions": 6,
                          "position_min": 0.05, "position_max": 0.25, "sector_cap": 0.5,
                          "tiers": [{"min_score": 80, "weight_min": 0.18, "weight_max": 0.25},
                                    {"min_score": 50, "weight_min": 0.10, "weight_max": 0.17}],
                          "market_cap": {"bands": {t: [0.0, 1.0] for t in ("mega", "large", "mid", "small", "micro")}}}}
    start, end = date(2024, 3, 4), date(2024, 3, 15)
    r = run_backtest(params_from_dict(base), start, end, tmp_path / "fitted", provider=provider, progress=False,
                     report=False)
    s = json.loads((tmp_path / "fitted" / "summary.json").read_text())["signal_weights"]
    assert s["mode"] == "fitted" and s["refits"] and set(s["refits"][0]["weights"]) == set(s["fixed"])
    assert s["ic_fixed_weights"]["ic_sessions"] == r.summary["ic_sessions"]
    fixed = {**base, "scan": {**FIT, "weights": "fixed"}}
    f = run_backtest(params_from_dict(fixed), start, end, tmp_path / "fixed", provider=provider, progress=False,
                     report=False)
    assert f.summary["signal_weights"] == {"mode": "fixed", "fixed": s["fixed"]}
    # the fixed run's IC is what the fitted run reports for the fixed weights on the same sessions
    assert s["ic_fixed_weights"]["ic_mean"] == f.summary["ic_mean"]
