"""`compare_settings` (two parameter sets backtested over one window) and the tuning panel's "Backtest this
setting" button, on a short window of the demo market (60 synthetic symbols)."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pandas as pd
import pytest

from wolfkit.backtest import compare, run_backtest
from wolfkit.backtest.compare import Metric, compare_settings
from wolfkit.config import load_params
from wolfkit.errors import BadInputError
from wolfkit.widgets import TuningPanel

ROOT = Path(__file__).resolve().parents[1]
START, END = date(2026, 10, 26), date(2026, 10, 29)  # four sessions of the demo market


@pytest.fixture()
def demo(monkeypatch):
    """The demo parameters on 60 symbols, bands open (so every session trades), with the comparison caches
    emptied and the market loads counted."""
    compare.clear_cache()
    loads: list[tuple[date, date]] = []
    real = compare.load_market

    def counted(provider, params, start, end):
        loads.append((start, end))
        return real(provider, params, start, end)

    monkeypatch.setattr(compare, "load_market", counted)
    p = load_params(ROOT / "parameters/demo.yaml").with_changes({
        "data": {"source": "demo:60"},
        "portfolio": {"market_cap": {"bands": {t: [0.0, 1.0] for t in ("mega", "large", "mid", "small", "micro")}}},
    })
    yield p, loads
    compare.clear_cache()


def test_figures_are_the_backtests_own_and_the_change_is_their_difference(demo, tmp_path) -> None:
    p, loads = demo
    tight = p.with_changes({"portfolio": {"sector_cap": 0.2, "cash_reserve": 0.3}})
    c = compare_settings(p, tight, START, END)
    assert [r.metric for r in c.rows] == list(Metric)
    assert c.sessions == 4 and not c.reused_current
    # each column is what `wolfkit backtest` reports for that set over the same window
    for params, col in ((p, "current"), (tight, "setting")):
        s = run_backtest(params, START, END, tmp_path / col, progress=False, report=False).summary
        for r in c.rows:
            assert getattr(r, col) == pytest.approx(s[str(r.metric)], rel=1e-12, abs=1e-15)
    assert c.rows[2].setting < c.rows[2].current  # a 30% cash reserve trades less
    t = c.table()
    assert list(t.columns) == ["metric", "current", "setting", "change"]
    assert t["change"].tolist() == pytest.approx((t["setting"] - t["current"]).tolist())
    assert c.setting["params_digest"] != c.current["params_digest"]
    assert loads == [(START, END)]


def test_second_setting_reuses_the_market_and_the_current_run(demo) -> None:
    p, loads = demo
    first = compare_settings(p, p.with_changes({"portfolio": {"sector_cap": 0.25}}), START, END)
    second = compare_settings(p, p.with_changes({"portfolio": {"sector_cap": 0.2}}), START, END)
    assert second.reused_current and second.current == first.current
    assert loads == [(START, END)]  # the panel was loaded once for both comparisons
    same = compare_settings(p, p, START, END)
    assert all(r.change == 0 for r in same.rows if r.current is not None)


def test_bad_inputs_are_clear_errors(demo) -> None:
    p, _ = demo
    with pytest.raises(BadInputError, match="different data"):
        compare_settings(p, p.with_changes({"data": {"source": "demo:50"}}), START, END)
    with pytest.raises(BadInputError, match="after --end"):
        compare_settings(p, p, END, START)


def _opportunities(p) -> pd.DataFrame:
    """The demo market's scan of the session after the window: the panel's morning."""
    from wolfkit.scan import run_scan

    return run_scan(p.with_changes({"scan": {"workers": 0}}), date(2026, 10, 30)).opportunities


def test_the_button_backtests_the_proposed_setting_against_the_current_file(demo, tmp_path) -> None:
    p, loads = demo
    panel_ = TuningPanel(p, _opportunities(p), 100_000.0, 200_000.0, date(2026, 10, 30), save_dir=tmp_path)
    assert panel_.comparison is None  # nothing runs until asked
    assert panel_.bt_end.value == date(2026, 10, 29)  # default window: the sessions before the run date
    panel_.bt_start.value, panel_.bt_end.value = START, END
    panel_.controls["sector_cap"].value = 0.2
    panel_.bt_button.click()
    c = panel_.comparison
    assert c is not None and c.setting["params_digest"] == panel_.params.digest()
    assert c.current["params_digest"] == p.digest()
    html = panel_.bt_html.value
    assert "Sharpe" in html and "max drawdown" in html and "turnover" in html and "this setting" in html
    assert "synthetic" in html
    panel_.controls["sector_cap"].value = 0.25
    panel_.bt_button.click()
    assert panel_.comparison.reused_current and "reused" in panel_.bt_html.value
    assert loads == [(START, END)]


def test_the_button_reports_a_bad_window_and_keeps_going(demo, tmp_path) -> None:
    p, _ = demo
    panel_ = TuningPanel(p, _opportunities(p), 100_000.0, 200_000.0, date(2026, 10, 30), save_dir=tmp_path)
    panel_.bt_start.value, panel_.bt_end.value = END, START
    panel_.bt_button.click()
    assert panel_.comparison is None and "after --end" in panel_.bt_html.value
    panel_.controls["tiers.0.band"].value = (0.2, 0.25)  # outside the position bounds: not applied
    assert panel_.error is not None
    panel_.bt_start.value, panel_.bt_end.value = START, END
    panel_.bt_button.click()
    assert panel_.comparison is None and "impossible" in panel_.bt_html.value

