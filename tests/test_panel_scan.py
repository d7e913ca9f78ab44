"""The panel form of the scan (`wolfkit.panel_scan`) equals the per-session scan (`scan.scan_window`) on every
session's window: every column of the table to the last bit, the exclusions with their reasons, and the
directional picks.

Markets: the real S&P 500 bars (with their quarantined bad rows, late listings and the windows cut short at
the start of the data) and the demo market with a halt, a long gap, a late listing and a non-positive price
written into it.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from wolfkit.backtest.panel import load_market, plan_morning
from wolfkit.config import params_from_dict
from wolfkit.data.demo import DemoMarket
from wolfkit.errors import BadInputError
from wolfkit.panel_scan import PanelScan
from wolfkit.scan import rank, resolve_signals, scan_window
from wolfkit.signals import Momentum, Panel

REAL = Path(__file__).resolve().parents[2] / "shared" / "data"
REAL_BARS, REAL_UNIVERSE = REAL / "sp500_ohlcv_2013_2016.csv.gz", REAL / "sp500_universe_2018.csv"


def _window_scan(panel: Panel, uni: pd.DataFrame, signals, weights, params, r: int):
    lookback = params.scan.lookback_days
    return scan_window(panel.rows(max(0, r - lookback), r), uni, signals, weights, params)


def _assert_same(panel: Panel, uni: pd.DataFrame, signals, weights, params, rows: list[int]) -> None:
    """Every session's panel-form table equals the per-session table to the last bit.

    (The raw signal values behind the scores may differ in their last bits — sums by differences of
    cumulative sums — but the table holds their ranks, and those must be, and are, identical.)"""
    scans = PanelScan(panel, uni, signals, params).sessions(rows)
    assert len(scans) == len(rows)
    for r, sc in zip(rows, scans):
        want, want_ex, want_un = _window_scan(panel, uni, signals, weights, params, r)
        got, got_ex, got_un = rank(sc.per_symbol, sc.excluded, uni, weights, params)
        where = f"session {panel.dates[r].date()}"
        pd.testing.assert_frame_equal(got_ex, want_ex, obj=f"excluded, {where}")
        assert got_un == want_un, where
        assert list(got["symbol"]) == list(want["symbol"]), where  # same order: the scores rank alike
        pd.testing.assert_frame_equal(got, want, check_exact=True, obj=f"table, {where}")  # to the last bit


# ---------------------------------------------------------------- the real S&P 500 file


@pytest.fixture(scope="module")
def real():
    if not REAL_BARS.is_file():
        pytest.skip(f"the real S&P 500 bars are absent ({REAL_BARS}); see ../shared/data/README.md")
    import warnings

    from wolfkit.data import get_provider

    p = params_from_dict({"data": {"source": "csv", "bars_path": str(REAL_BARS), "universe_path": str(REAL_UNIVERSE),
                                   "bad_rows": "quarantine"}})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # the notice about the quarantined rows
        provider = get_provider(p)
        market = load_market(provider, p, date(2013, 8, 1), date(2016, 12, 30))
        bad = provider.quarantined_rows() if hasattr(provider, "quarantined_rows") else None
    return p, market, bad


def test_real_sessions_equal_the_per_session_scan(real) -> None:
    p, market, _ = real
    signals, weights = resolve_signals(p.scan)
    rows = [int(r) for r in market.sessions]
    dates = market.panel.dates
    lnt = int(dates.get_loc(pd.Timestamp("2016-05-19")))  # LNT's wrong close lies in the window after it
    picked = sorted({rows[0], rows[1], rows[40], *rows[100::97], lnt + 1, lnt + 30, rows[-1]})
    assert picked[0] - p.scan.lookback_days < 0  # a window cut short by the start of the data
    _assert_same(market.panel, market.universe, signals, weights, p, picked)


def test_real_sessions_include_quarantined_rows_and_late_listings(real) -> None:
    """The spread above reaches the hard cases: a symbol missing bars inside the window, one listing late."""
    p, market, _ = real
    panel, r = market.panel, int(market.sessions[-1])
    window = panel.close[max(0, r - p.scan.lookback_days):r]
    missing = np.isnan(window)
    assert (missing.any(axis=0) & ~missing.all(axis=0)).sum() >= 3
    scans = PanelScan(panel, market.universe, resolve_signals(p.scan)[0], p).sessions([int(market.sessions[0])])
    assert scans[0].excluded["reason"].str.contains("too little history|no bars").any()


def test_real_picks_are_the_same(real) -> None:
    p, market, _ = real
    signals, weights = resolve_signals(p.scan)
    r = int(market.sessions[300])
    sc = PanelScan(market.panel, market.universe, signals, p).sessions([r])[0]
    got = plan_morning(rank(sc.per_symbol, sc.excluded, market.universe, weights, p)[0], set(), p, None)
    want = plan_morning(_window_scan(market.panel, market.universe, signals, weights, p, r)[0], set(), p, None)
    assert got.targets is not None and want.targets is not None
    pd.testing.assert_frame_equal(got.targets.weights, want.targets.weights, rtol=1e-9)
    assert list(got.targets.weights["symbol"]) == list(want.targets.weights["symbol"])


# ---------------------------------------------------------------- the demo market, with dirt written in


@pytest.fixture(scope="module")
def demo():
    m = DemoMarket(size=40)
    uni = m.universe()
    syms = list(uni["symbol"])
    bars = m.daily_bars(syms, date(2021, 1, 4), date(2022, 12, 30))
    dates = sorted(bars["date"].unique())
    d = pd.Series(pd.to_datetime(bars["date"]))
    late, halted, gappy, zero = syms[1], syms[2], syms[3], syms[4]
    drop = ((bars["symbol"] == late) & (d < pd.Timestamp(dates[300])))                      # lists late
    drop |= (bars["symbol"] == halted) & (d > pd.Timestamp(dates[420]))                      # halted for good
    drop |= (bars["symbol"] == gappy) & d.between(pd.Timestamp(dates[330]), pd.Timestamp(dates[338]))  # a long gap
    drop |= (bars["symbol"] == gappy) & d.isin([pd.Timestamp(x) for x in dates[200:260:7]])   # short gaps
    bars = bars[~drop.to_numpy()].reset_index(drop=True)
    bars.loc[(bars["symbol"] == zero) & (pd.to_datetime(bars["date"]) == pd.Timestamp(dates[350])), "low"] = 0.0
    panel = Panel.from_bars(bars)
    universe = uni.assign(symbol=uni["symbol"].astype(str)).drop_duplicates("symbol").set_index("symbol")
    p = params_from_dict({"data": {"source": "demo"}})
    return p, panel, universe, (late, halted, gappy, zero)


def test_demo_sessions_equal_the_per_session_scan(demo) -> None:
    p, panel, uni, _ = demo
    signals, weights = resolve_signals(p.scan)
    rows = [120, 121, 250, 252, 253, 301, 305, 320, 335, 340, 351, 400, 425, 428, panel.shape[0] - 1]
    _assert_same(panel, uni, signals, weights, p, rows)


def test_demo_dirt_is_reported_alike(demo) -> None:
    """The written-in dirt reaches the exclusions (the equality test above then covers their reasons)."""
    p, panel, uni, (late, halted, gappy, zero) = demo
    signals, _ = resolve_signals(p.scan)
    scans = PanelScan(panel, uni, signals, p).sessions([310, 340, 351, 430])
    reasons = [dict(zip(sc.excluded["symbol"], sc.excluded["reason"])) for sc in scans]
    assert reasons[0][late].startswith("too little history")
    assert reasons[1][gappy].startswith("gap")
    assert "non-positive price" in reasons[2][zero]
    assert reasons[3][halted].startswith("halted")


class LastRange:
    """A user signal with `compute` only: the panel scan must call it per session."""

    name = "last_range"
    needs_ohlc = True

    def compute(self, panel: Panel) -> pd.Series:
        return pd.Series(panel.high[-1] - panel.low[-1] + np.nan_to_num(panel.close[-5]), index=panel.symbols)


class BadShape(Momentum):
    def compute_panel(self, windows) -> np.ndarray:  # deliberately the wrong shape
        return np.zeros(3)


def test_a_signal_without_a_panel_form_is_computed_per_session(demo) -> None:
    p, panel, uni, _ = demo
    signals, weights = [Momentum(), LastRange()], {"momentum": 1.0, "last_range": 0.5}
    _assert_same(panel, uni, signals, weights, p, [125, 300, 341])


def test_a_panel_form_of_the_wrong_shape_is_refused(demo) -> None:
    p, panel, uni, _ = demo
    with pytest.raises(BadInputError, match="compute_panel"):
        PanelScan(panel, uni, [BadShape()], p)
