"""Signals: the panel pivot, each built-in signal's direction on planted series, the registry."""

from __future__ import annotations

import sys
import textwrap

import numpy as np
import pandas as pd
import pytest

from wolfkit.errors import BadInputError
from wolfkit.signals import Panel, Signal, available_signals, get_signal, register


def _panel(closes: dict[str, np.ndarray], volume: dict[str, np.ndarray] | None = None, has_ohlc: bool = True) -> Panel:
    """A panel straight from close series (open = previous close, high/low 1% around)."""
    T = len(next(iter(closes.values())))
    dates = pd.bdate_range("2024-01-02", periods=T)
    rows = []
    for s, c in closes.items():
        o = np.r_[c[0], c[:-1]]
        v = volume[s] if volume else np.full(T, 1e6)
        rows.append(pd.DataFrame({"symbol": s, "date": dates, "open": o, "high": np.maximum(o, c) * 1.01,
                                  "low": np.minimum(o, c) * 0.99, "close": c, "volume": v}))
    return Panel.from_bars(pd.concat(rows, ignore_index=True), has_ohlc=has_ohlc)


T = 260
UP = 50 * np.exp(np.linspace(0, 0.8, T))
DOWN = 50 * np.exp(np.linspace(0, -0.8, T))
rng = np.random.default_rng(3)
NOISY_FLAT = 50 * np.exp(np.cumsum(rng.normal(0, 0.002, T)) - np.cumsum(rng.normal(0, 0.002, T)).mean())


def test_panel_from_bars_aligns_dates_and_symbols():
    bars = pd.DataFrame({
        "symbol": ["B", "A", "A", "B", "C"],
        "date": pd.to_datetime(["2024-01-03", "2024-01-02", "2024-01-03", "2024-01-02", "2024-01-04"]),
        "open": [1, 2, 3, 4, 5.0], "high": [1, 2, 3, 4, 5.0], "low": [1, 2, 3, 4, 5.0],
        "close": [10, 20, 30, 40, 50.0], "volume": [1, 2, 3, 4, 5.0],
    })
    p = Panel.from_bars(bars)
    assert list(p.symbols) == ["A", "B", "C"]
    assert [d.day for d in p.dates] == [2, 3, 4]
    np.testing.assert_array_equal(p.close, [[20, 40, np.nan], [30, 10, np.nan], [np.nan, np.nan, 50]])
    sub = p.take(np.array([2, 0]))
    assert list(sub.symbols) == ["C", "A"] and sub.close.shape == (3, 2)


def test_panel_rejects_duplicate_bars_naming_symbol_and_date():
    bars = pd.DataFrame({"symbol": ["A", "A"], "date": pd.to_datetime(["2024-01-02"] * 2),
                         "open": 1.0, "high": 1.0, "low": 1.0, "close": 1.0, "volume": 1.0})
    with pytest.raises(BadInputError, match="A has more than one bar on 2024-01-02"):
        Panel.from_bars(bars)
    with pytest.raises(BadInputError, match="missing column"):
        Panel.from_bars(bars.drop(columns="volume"))


@pytest.mark.parametrize("name", ["momentum", "momentum_1m", "momentum_6m", "trend", "vol_adjusted_return", "breakout"])
def test_trend_following_signals_order_up_flat_down(name):
    p = _panel({"UP": UP, "FLAT": NOISY_FLAT, "DOWN": DOWN})
    v = get_signal(name).compute(p)
    assert v["UP"] > v["FLAT"] > v["DOWN"]


def test_momentum_value_is_the_average_monthly_log_rate():
    p = _panel({"UP": UP})
    per_day = 0.8 / (T - 1)
    assert get_signal("momentum").compute(p)["UP"] == pytest.approx(21 * per_day)


def test_breakout_is_distance_below_the_closing_high():
    c = np.r_[np.full(100, 50.0), np.full(50, 100.0), np.full(110, 90.0)]
    assert get_signal("breakout").compute(_panel({"X": c}))["X"] == pytest.approx(-0.1)


def test_mean_reversion_favours_a_sharp_recent_drop():
    base = NOISY_FLAT.copy()
    drop, pop = base.copy(), base.copy()
    drop[-5:] *= 0.9
    pop[-5:] *= 1.1
    v = get_signal("mean_reversion").compute(_panel({"DROP": drop, "POP": pop, "FLAT": base}))
    assert v["DROP"] > v["FLAT"] > v["POP"]


def test_relative_volume_signs_heavy_volume_by_direction():
    up, down = NOISY_FLAT.copy(), NOISY_FLAT.copy()
    up[-5:] *= 1.05
    down[-5:] *= 0.95
    heavy = np.r_[np.full(T - 5, 1e6), np.full(5, 4e6)]
    v = get_signal("relative_volume").compute(_panel({"UP": up, "DOWN": down}, {"UP": heavy, "DOWN": heavy}))
    assert v["UP"] == pytest.approx(4 / (45 / 50 + 4 * 5 / 50), rel=1e-9)
    assert v["DOWN"] == pytest.approx(-v["UP"])
    assert get_signal("relative_volume").needs_ohlc


def test_short_history_gives_nan_not_garbage():
    p = _panel({"X": UP[:30]})
    assert np.isnan(get_signal("vol_adjusted_return").compute(p)["X"])
    assert np.isnan(get_signal("momentum_6m").compute(p)["X"])
    # momentum averages only the horizons it can see
    assert np.isfinite(get_signal("momentum").compute(p)["X"])


def test_registry_lists_builtins_and_refuses_unknown_names():
    assert {"momentum", "trend", "relative_volume", "vol_adjusted_return", "breakout", "mean_reversion"} <= set(available_signals())
    with pytest.raises(BadInputError, match="unknown signal 'nope'"):
        get_signal("nope")
    with pytest.raises(ValueError, match="already registered"):
        register("momentum")(object)


def test_user_signal_by_dotted_path(tmp_path, monkeypatch):
    (tmp_path / "my_signals.py").write_text(textwrap.dedent("""
        import pandas as pd
        class LastClose:
            name = "last_close"
            needs_ohlc = False
            def compute(self, panel):
                return pd.Series(panel.close[-1], index=panel.symbols)
        class NotASignal:
            pass
    """))
    monkeypatch.syspath_prepend(str(tmp_path))
    sig = get_signal("my_signals:LastClose")
    assert isinstance(sig, Signal) and sig.name == "last_close"
    assert sig.compute(_panel({"UP": UP}))["UP"] == pytest.approx(UP[-1])
    with pytest.raises(BadInputError, match="is not a Signal"):
        get_signal("my_signals:NotASignal")
    with pytest.raises(BadInputError, match="cannot load"):
        get_signal("my_signals:Missing")
    with pytest.raises(BadInputError, match="cannot load"):
        get_signal("no_such_module_xyz:Thing")
    sys.modules.pop("my_signals", None)
