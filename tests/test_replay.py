"""Replaying a whole demo session directional-only and with both layers, side by side; the CLI."""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import pytest

from wolfkit.cli import main
from wolfkit.config import load_params
from wolfkit.data.demo import DemoMarket
from wolfkit.errors import BadInputError
from wolfkit.replay import SessionBars, replay_session

SESSION = date(2026, 11, 13)


@pytest.fixture(scope="module")
def market() -> DemoMarket:
    return DemoMarket(7, 150)


@pytest.fixture(scope="module")
def result(market, root):
    params = load_params(root / "parameters" / "demo.yaml")
    return replay_session(params, SESSION, 100_000.0, provider=market)


def test_session_bars_from_minute_frame(market):
    frame = market.minute_bars(["AAPL", "MSFT"], SESSION)
    b = SessionBars.from_frame(frame)
    assert b.symbols == ["AAPL", "MSFT"] and b.close.shape == (390, 2)
    assert str(b.times.tz) == "America/New_York" and b.times[0].hour == 9 and b.times[0].minute == 30
    row = frame[(frame.symbol == "MSFT")].iloc[5]
    assert b.high[5, 1] == row.high and b.low[5, 1] == row.low and b.close[5, 1] == row.close


def test_session_bars_reject_bad_frames(market):
    frame = market.minute_bars(["AAPL"], SESSION)
    with pytest.raises(BadInputError, match="missing column"):
        SessionBars.from_frame(frame.drop(columns=["low"]), "bars.csv")
    with pytest.raises(BadInputError, match="timezone-aware"):
        SessionBars.from_frame(frame.assign(timestamp=frame.timestamp.dt.tz_localize(None)), "bars.csv")


def test_both_layers_put_idle_leverage_to_work(result):
    cmp = result.comparison()
    d, both = cmp["directional"], cmp["both"]
    assert d["mean maxdiff (x)"] == 0 and d["maxdiff fills"] == 0
    assert both["mean leverage (x)"] > d["mean leverage (x)"] + 0.1
    assert both["idle leverage-hours"] < d["idle leverage-hours"]
    assert both["mean directional (x)"] == pytest.approx(d["mean directional (x)"])  # directional comes first
    assert both["peak leverage (x)"] <= 1.5 + 1e-9
    assert 0 < both["maxdiff fill rate"] <= 1
    lev = result.leverage
    assert set(lev.columns.get_level_values(0)) == {"directional", "both"} and len(lev) == 390
    np.testing.assert_allclose(lev["both"]["total"], lev["both"]["directional"] + lev["both"]["maxdiff"])


def test_pl_by_layer_adds_up_to_the_broker_cash(result):
    for variant, run in result.runs.items():
        m = result.comparison()[variant]
        # the day ends flat: the broker's cash change is exactly the realised P/L of both layers
        assert not run.broker.positions()
        assert run.broker.account().cash - 100_000.0 == pytest.approx(m["P/L total ($)"], abs=0.05)


def test_fills_table_and_text(result):
    fills = result.fills
    assert list(fills.columns) == ["at", "layer", "purpose", "symbol", "side", "qty", "price", "client_order_id",
                                   "variant"]
    assert (fills[fills.variant == "directional"].layer == "directional").all()
    text = result.text()
    assert "SYNTHETIC" in text and "idle leverage-hours" in text and "maxdiff fill rate" in text


def test_replay_is_deterministic(result, market, root):
    params = load_params(root / "parameters" / "demo.yaml")
    again = replay_session(params, SESSION, 100_000.0, provider=market, plan=result.plan, variants=("both",))
    pd.testing.assert_series_equal(again.comparison()["both"], result.comparison()["both"])


def test_cli_replay_writes_a_ledger_status_can_read(tmp_path, monkeypatch, root, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "p.yaml").write_text(f"extends: {root / 'parameters' / 'demo.yaml'}\ndata:\n  source: demo:150\n")
    assert main(["replay", "--params", "p.yaml", "--date", str(SESSION)]) == 0
    out = capsys.readouterr().out
    assert "mean leverage (x)" in out and "both" in out
    ledger = tmp_path / "outputs" / str(SESSION) / "replay.sqlite"
    assert ledger.is_file()
    assert main(["status", "--ledger", str(ledger)]) == 0
    assert "LEVERAGE USAGE" in capsys.readouterr().out


def test_cli_replay_refuses_a_holiday(tmp_path, monkeypatch, root):
    monkeypatch.chdir(tmp_path)
    assert main(["replay", "--params", str(root / "parameters" / "demo.yaml"), "--date", "2026-12-25"]) == 2


def test_replay_refuses_a_non_positive_equity_before_any_work():
    from wolfkit.config import Params
    from wolfkit.errors import BadInputError

    for bad in (0.0, -5.0, float("inf"), float("nan")):
        with pytest.raises(BadInputError, match="--equity"):
            replay_session(Params(), SESSION, bad)
