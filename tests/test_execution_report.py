"""The execute and status reports: deployed = filled + open orders, said separately; the fills as they
happened; `wolfkit execute --notebook` prints the same summary as plain `wolfkit execute`."""

from __future__ import annotations

import re
from datetime import datetime, timezone

import pytest
from factories import OPEN, FakeClock, make_plan, quoted_sim

from wolfkit.broker.base import Position
from wolfkit.config import Params
from wolfkit.domain import Layer, Side
from wolfkit.execute import execute_plan
from wolfkit.execution_report import format_execution
from wolfkit.ledger import Ledger
from wolfkit.pnl import BookedFill
from wolfkit.status import AccountView, OpenOrder, Source, build_status, format_status


def _execute(plan, broker, tmp_path):
    ft = FakeClock()
    with Ledger(tmp_path / "ledger.sqlite", durable=False) as lg:
        return execute_plan(plan, broker, lg, Params(), now=lambda: OPEN, sleep=ft.sleep, timer=ft.monotonic)


def test_before_any_fill_everything_deployed_is_open_orders_then_the_fills_show(tmp_path):
    plan = make_plan()
    b = quoted_sim()
    first = _execute(plan, b, tmp_path)
    assert first.accepted == 12 and first.fills == 0 and first.fill_log == []
    assert first.filled_value == 0 and first.open_value == pytest.approx(first.deployed) and first.deployed > 90_000
    text = format_execution(first, tmp_path / "log.json")
    assert "filled $0 (0.0%; 0 fills, 0 shares) + open orders $" in text and "no fills yet: accepted orders wait" in text
    assert f"deployed ${first.deployed:,.0f} ({first.deployed_pct:.1%} of equity $100,000)" in text
    assert all(o.symbol in text for o in plan.orders) and "log: " in text

    b.step()  # the open: the market orders fill; a re-run reports what the broker holds
    again = _execute(plan, b, tmp_path)
    fills = b.fills()
    assert again.fills == len(fills) == len(again.fill_log) == 12
    assert again.filled_value == pytest.approx(sum(f.qty * f.price for f in fills), abs=0.1)
    assert again.open_value == 0 and again.deployed == pytest.approx(again.filled_value)
    assert [f.symbol for f in again.fill_log] == [f.symbol for f in fills]  # in the order they happened
    text = format_execution(again)
    assert "fills as they happened (12, from the ledger):" in text and "no fills yet" not in text
    running = sum(f.qty * f.price for f in again.fill_log)
    last_fill = [line for line in text.splitlines() if "(running $" in line][-1]
    assert last_fill.endswith(f"(running ${running:,.0f})")
    assert "+ open orders $0 (0.0%" in text
    table = again.table()
    assert (table["deployed"] == table["filled_value"] + table["open_value"]).all()


def test_status_says_filled_and_open_orders_separately():
    now = datetime(2024, 6, 3, 15, 0, tzinfo=timezone.utc)
    fills = [BookedFill("AAA", Layer.DIRECTIONAL, Side.BUY, 100, 10.0)]
    working = [OpenOrder("BBB", Side.BUY, Layer.DIRECTIONAL, 50, 10, 20.0, "partially_filled", "c1"),
               OpenOrder("CCC", Side.BUY, Layer.MAXDIFF, 30, 0, 5.0, "new", "c2")]
    r = build_status(Params(), fills=fills, open_orders=working, positions=[Position("AAA", 100, 10.0, 1_100.0, 100.0)],
                     marks={"AAA": 11.0, "BBB": 20.0, "CCC": 5.0},
                     account=AccountView("sim", 100_000.0, 99_000.0, Source.BROKER), now=now)
    lev = r.leverage
    assert lev.directional_held == pytest.approx(1_000) and lev.directional == pytest.approx(1_000 + 40 * 20.0)
    assert lev.maxdiff_held == 0 and lev.maxdiff == pytest.approx(150)
    assert lev.open_orders == pytest.approx(800 + 150) and lev.held == pytest.approx(1_000)
    text = format_status(r)
    assert "= filled $1.0k held at cost + open orders $950" in text
    assert "Directional: 0.02x ($1.8k: filled $1.0k + open orders $800)" in text
    assert "Maxdiff: 0.00x ($150: filled $0 + open orders $150)" in text


def _order_rows(text: str, symbols: set[str]) -> list[list[str]]:
    """The per-order lines of `format_execution`'s table: (#, symbol, side, layer, state, qty/planned)."""
    rows = [line.split()[:6] for line in text.splitlines() if len(line.split()) > 5 and line.split()[1] in symbols]
    return rows


@pytest.mark.slow
def test_execute_notebook_prints_the_same_summary_as_plain_execute(tmp_path, capsys):
    """`wolfkit execute --notebook` prints the summary the notebook recorded, in the very format of a plain
    `wolfkit execute` (the re-run adopts the same orders, so the order lines are the same)."""
    from factories import demo_orders

    from wolfkit.cli import main
    from wolfkit.orders import read_orders
    from wolfkit.report import EXECUTION_RECORD, read_records

    params, orders = demo_orders(tmp_path, settings=f"execution:\n  ledger_path: {tmp_path / 'ledger.sqlite'}\n")
    plan = read_orders(orders)
    symbols = {o.symbol for o in plan.orders}
    capsys.readouterr()
    args = ["execute", "--orders", str(orders), "--params", str(params), "--outputs", str(tmp_path / "out"),
            "--session-override", "test suite: runs at any hour"]
    assert main([*args, "--notebook"]) == 0
    printed = capsys.readouterr().out
    notebook = next((tmp_path / "out").rglob("execute.ipynb"))
    recorded = read_records(notebook)[EXECUTION_RECORD]
    assert recorded and recorded in printed.replace("\r", "")
    assert f"run {plan.run_id} on sim (execution 1)" in printed and "+ open orders $" in printed
    assert main(args) in (0, 1)
    plain = capsys.readouterr().out
    assert f"run {plan.run_id} on sim (execution 2)" in plain
    assert _order_rows(plain, symbols) == _order_rows(recorded, symbols) and len(_order_rows(plain, symbols)) == len(
        plan.orders)
    for text in (recorded, plain):
        assert re.search(r"^#\s+symbol\s+side", text, re.M) and "deployed $" in text and "= filled $" in text and "log: " in text
