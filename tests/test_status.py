"""The status screen after an intraday engine run: positions by layer, plans, leverage (and the broker's marks)."""

from __future__ import annotations

import pytest
from rich.console import Console
from test_intraday import EQUITY, FLAT, SESSION, bars, mplan, order, params, plan

from wolfkit.broker.sim import SimBroker
from wolfkit.cli import main
from wolfkit.errors import BadInputError
from wolfkit.intraday import IntradayEngine
from wolfkit.ledger import Ledger
from wolfkit.replay import drive
from wolfkit.status import format_status, render_status
from wolfkit.status_sources import collect_status


@pytest.fixture()
def ledger_after_30_minutes(tmp_path):
    p = params(leverage=FLAT, sizing={"maxdiff_max_active": 5})
    op = plan([order("AAPL", 1000, 100.0, "takeprofit", tp=110.0)],
              [mplan("MSFT", 1, side="both", low=95.0, high=105.0, room=40_000),
               mplan("NVDA", 2, low=90.0, room=30_000)])
    b = bars({"AAPL": 101.0, "MSFT": 100.0, "NVDA": 100.0})
    broker = SimBroker(EQUITY, 2.0)
    path = tmp_path / "ledger.sqlite"
    with Ledger(path, durable=False) as ledger:
        eng = IntradayEngine.start(p, op, broker, equity=EQUITY, session=SESSION, ledger=ledger)
        drive(eng, broker, b, stop=30)
    return p, path, broker


def test_status_tables_and_numbers(ledger_after_30_minutes):
    p, path, broker = ledger_after_30_minutes
    with Ledger(path) as ledger:
        r = collect_status(ledger, p, broker)
    [d] = r.positions.itertuples()
    assert (d.symbol, d.layer, d.qty, d.strategy) == ("AAPL", "directional", 1000, "takeprofit")
    assert d.unrealized_pl == pytest.approx(1000 * (d.last - d.avg_price))
    assert d.last == pytest.approx(broker.quotes(["AAPL"])["AAPL"].mid)
    assert list(r.listening.symbol) == ["MSFT"] and list(r.queued.symbol) == ["NVDA"]
    assert r.queued.iloc[0].room_needed == 30_000 and r.queued.iloc[0]["rank"] == 2
    lev = r.leverage
    assert lev.directional == pytest.approx(1000 * d.avg_price)
    # everything the total bucket leaves after directional is available, less what maxdiff already uses
    assert lev.available_maxdiff == pytest.approx(1.5 * EQUITY - lev.directional - lev.maxdiff)
    assert r.marks_from == "broker" and r.positions_from == "broker"
    assert r.account.equity == broker.account().equity


def test_status_text_has_the_sections(ledger_after_30_minutes):
    p, path, broker = ledger_after_30_minutes
    with Ledger(path) as ledger:
        text = format_status(collect_status(ledger, p))
    assert "=== POSITIONS (from the ledger) ===\nAAPL [directional]: +1000 shares @ $" in text
    assert "unrealized, takeprofit)" in text
    assert "=== P&L BY LAYER (average cost per symbol per layer) ===\nDirectional: realized +$0.00" in text
    assert "=== MAXDIFF LISTENING (1/5 active) ===\nMSFT: buy @ $" in text and "sell @ $105.00" in text
    assert "=== MAXDIFF QUEUED (1 waiting for leverage) ===\nNVDA: buy @ $90.00 (rank=2, needs $30.0k room)" in text
    assert "=== LEVERAGE USAGE ===\nCurrent: " in text and "Available for Maxdiff: " in text
    console = Console(record=True, width=120)
    render_status(collect_status(Ledger(path), p), console)
    shown = console.export_text()
    assert "MAXDIFF QUEUED" in shown and "P&L BY LAYER" in shown and "OPEN ORDERS" in shown


def test_status_without_engine_state_says_what_to_do(tmp_path):
    with Ledger(tmp_path / "empty.sqlite") as ledger, pytest.raises(BadInputError, match="wolfkit execute"):
        collect_status(ledger, params())


def test_cli_status(ledger_after_30_minutes, tmp_path, capsys):
    _, path, _ = ledger_after_30_minutes
    assert main(["status", "--ledger", str(path)]) == 0
    out = capsys.readouterr().out
    assert "POSITIONS" in out and "AAPL" in out and "LEVERAGE USAGE" in out
    assert main(["status", "--ledger", str(tmp_path / "missing.sqlite")]) == 2
