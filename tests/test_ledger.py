"""The ledger: WAL mode, intent-before-ack rows, append-only events, deduplicated fills, plans, export."""

from __future__ import annotations

import json
import sqlite3
from datetime import datetime, timezone

import pytest
from factories import planned_order

from wolfkit.broker.base import BrokerOrder, Fill, OrderStatus
from wolfkit.domain import OrderType, PlanStatus, Side, TimeInForce
from wolfkit.ledger import EventKind, Ledger, OrderState, Sizing
from wolfkit.orders import MaxdiffPlan, PlannedOrder


def planned(symbol="AAPL", cid="wk-1", qty=10, priority=0) -> PlannedOrder:
    return planned_order(symbol, qty, 100.0, priority=priority, client_order_id=cid, cap_tier="mega", score=91,
                         weight=0.1, take_profit=110.0, stop_loss=95.0)


@pytest.fixture
def ledger(tmp_path):
    with Ledger(tmp_path / "sub" / "ledger.sqlite") as lg:
        yield lg


def test_wal_mode_and_run_executions_count(ledger):
    assert ledger.journal_mode == "wal"
    assert ledger.start_run("r1", as_of="2026-01-20", broker="sim") == 1
    assert ledger.start_run("r1", as_of="2026-01-20", broker="sim") == 2
    ledger.finish_run("r1", "done", {"deployed": 1.0})
    run = ledger.run("r1")
    assert run["executions"] == 2 and run["status"] == "done" and run["summary"] == {"deployed": 1.0}


def test_intent_then_ack_then_fill(ledger):
    ledger.start_run("r1")
    ledger.register_orders("r1", [planned(), planned("MSFT", "wk-2", priority=1)])
    ledger.register_orders("r1", [planned(qty=999)])  # re-registering leaves the row alone
    assert [o.state for o in ledger.orders_for_run("r1")] == [OrderState.PLANNED] * 2
    assert ledger.order("r1", "wk-1").planned_qty == 10
    ledger.record_intent("r1", "wk-1", "wk-1-r1", 1, 8, type="market", time_in_force="day",
                         sizing=Sizing.RESIZED, reason="403: resized to buying power 800.00")
    o = ledger.order("r1", "wk-1")
    assert (o.state, o.attempt, o.client_order_id, o.qty, o.sizing) == (
        OrderState.SUBMITTING, 1, "wk-1-r1", 8, Sizing.RESIZED)
    bo = BrokerOrder("b-1", "wk-1-r1", "AAPL", Side.BUY, 8, OrderType.MARKET, TimeInForce.DAY,
                     OrderStatus.PARTIALLY_FILLED, filled_qty=3, filled_avg_price=100.5)
    ledger.record_ack("r1", "wk-1", bo)
    o = ledger.order("r1", "wk-1")
    assert (o.state, o.broker_order_id, o.filled_qty, o.avg_price) == (
        OrderState.PARTIALLY_FILLED, "b-1", 3, 100.5)
    assert o.reason.startswith("403")  # the ack keeps the reason for the resize
    f = Fill("b-1", "wk-1-r1", "AAPL", Side.BUY, 3, 100.5, datetime(2026, 1, 20, 14, 31, tzinfo=timezone.utc), 3)
    assert ledger.record_fill("r1", "wk-1", f) is True
    assert ledger.record_fill("r1", "wk-1", f) is False  # the same execution seen twice
    assert len(ledger.fills_for_run("r1")) == 1
    kinds = [e.kind for e in ledger.events("r1")]
    assert kinds == [EventKind.RUN_STARTED, EventKind.INTENT, EventKind.ACK, EventKind.FILL]


def test_events_are_append_only(ledger):
    ledger.start_run("r1")
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        ledger._write("UPDATE events SET kind='x'")
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        ledger._write("DELETE FROM events")


def test_unknown_order_is_an_error(ledger):
    ledger.start_run("r1")
    with pytest.raises(KeyError, match="register_orders"):
        ledger.record_outcome("r1", "nope", OrderState.SKIPPED, "why")


def test_survives_reopen(tmp_path):
    p = tmp_path / "l.sqlite"
    with Ledger(p) as lg:
        lg.start_run("r1")
        lg.register_orders("r1", [planned()])
        lg.record_outcome("r1", "wk-1", OrderState.SKIPPED, "no quote for AAPL")
    with Ledger(p) as lg:
        o = lg.order("r1", "wk-1")
        assert o.state == OrderState.SKIPPED and o.reason == "no quote for AAPL"


def test_export_execution_log(ledger, tmp_path):
    ledger.start_run("r1", as_of="2026-01-20")
    ledger.register_orders("r1", [planned()])
    ledger.record_outcome("r1", "wk-1", OrderState.REJECTED, "opg window")
    p = ledger.export_execution_log("r1", tmp_path / "outputs" / "2026-01-20" / "execution_log.json",
                                    extra={"report": {"accepted": 0}})
    doc = json.loads(p.read_text())
    assert doc["schema"] == "wolfkit.execution_log/1" and doc["run"]["as_of"] == "2026-01-20"
    assert doc["orders"][0]["state"] == "rejected" and doc["orders"][0]["reason"] == "opg window"
    assert doc["report"] == {"accepted": 0} and [e["kind"] for e in doc["events"]][-1] == "rejected"


def test_maxdiff_plans_upsert_and_filter(ledger):
    p = MaxdiffPlan(symbol="TSLA", high_target=251.3, low_target=242.5, side="buy", avg_return=0.0031,
                    status=PlanStatus.LISTENING, rank=1, qty=10, room_needed=2425.0)
    q = MaxdiffPlan(symbol="META", high_target=530.0, low_target=520.1, side="buy", avg_return=0.002,
                    status=PlanStatus.QUEUED, rank=2)
    ledger.upsert_plan("2026-01-20", "r1", p)
    ledger.upsert_plan("2026-01-20", "r1", q)
    ledger.upsert_plan("2026-01-20", "r1", p.model_copy(update={"status": PlanStatus.FILLED}))
    rows = ledger.plans("2026-01-20")
    assert [(r.symbol, r.status) for r in rows] == [("TSLA", "filled"), ("META", "queued")]
    assert [r.symbol for r in ledger.plans(status="queued")] == ["META"]
    assert ledger.plans("2026-01-21") == []


def test_two_plans_on_one_symbol_and_side_keep_their_own_rows(tmp_path):
    """Consolidated maxdiff plans share symbol and side; their rank tells them apart in the ledger."""
    from datetime import date as _date

    from wolfkit.domain import PlanStatus
    from wolfkit.ledger import Ledger
    from wolfkit.orders import MaxdiffPlan

    led = Ledger(tmp_path / "l.sqlite")
    for rank, low in ((1, 178.20), (4, 178.25)):
        led.upsert_plan(_date(2026, 11, 20), "r1", MaxdiffPlan(
            symbol="AAPL", high_target=185.5, low_target=low, side="buy", avg_return=0.002,
            status=PlanStatus.LISTENING, rank=rank))
    rows = led.plans(_date(2026, 11, 20))
    assert [(r.rank, r.low_target) for r in rows] == [(1, 178.20), (4, 178.25)]
