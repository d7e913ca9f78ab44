"""What `wolfkit intraday` needs around the engine, owned by `wolfkit.intraday.live`: the feed mode
and its keys, the stop time and the plan's day, resume-or-start, the progress line."""

from __future__ import annotations

from datetime import date, datetime

import pytest
from test_intraday import EQUITY, SESSION, mplan, order, params, plan, setup

from wolfkit.broker.gate import BrokerKind
from wolfkit.broker.sim import SimBroker
from wolfkit.calendar import NY
from wolfkit.errors import BadInputError
from wolfkit.intraday import FeedMode, feed_for, open_engine, status_line, stop_time
from wolfkit.ledger import Ledger

MORNING = datetime(2025, 6, 2, 9, 45, tzinfo=NY)


def test_feed_mode_and_keys(monkeypatch):
    monkeypatch.delenv("APCA_API_KEY_ID", raising=False)
    monkeypatch.delenv("APCA_API_SECRET_KEY", raising=False)
    assert feed_for("poll", BrokerKind.SIM) == (FeedMode.POLL, ("", ""))
    with pytest.raises(BadInputError, match="--mode 'socket': use poll or stream"):
        feed_for("socket", BrokerKind.PAPER)
    with pytest.raises(BadInputError, match="APCA_API_KEY_ID"):
        feed_for("stream", BrokerKind.PAPER)  # no keys
    monkeypatch.setenv("APCA_API_KEY_ID", "k")
    monkeypatch.setenv("APCA_API_SECRET_KEY", "s")
    with pytest.raises(BadInputError, match="needs an Alpaca broker"):
        feed_for("stream", BrokerKind.SIM)
    assert feed_for("stream", BrokerKind.PAPER) == (FeedMode.STREAM, ("k", "s"))


def test_stop_time_is_the_close_or_until_and_refuses_bad_or_past_times():
    assert stop_time(SESSION, None, MORNING, source="o.json") == datetime(2025, 6, 2, 16, 0, tzinfo=NY)
    assert stop_time(SESSION, "15:45", MORNING, source="o.json") == datetime(2025, 6, 2, 15, 45, tzinfo=NY)
    with pytest.raises(BadInputError, match="expected HH:MM"):
        stop_time(SESSION, "3pm", MORNING, source="o.json")
    with pytest.raises(BadInputError, match="has passed"):
        stop_time(SESSION, "09:40", MORNING, source="o.json")
    with pytest.raises(BadInputError, match="o.json: the plan's day 2025-06-07 has no session"):
        stop_time(date(2025, 6, 7), None, datetime(2025, 6, 7, 9, 45, tzinfo=NY), source="o.json")


def test_open_engine_starts_then_resumes_the_saved_run(tmp_path):
    p = params()
    op = plan([order("MSFT", 10, 200.0)], [mplan("AAPL", 1)])
    broker = SimBroker(EQUITY, 2.0)
    with Ledger(tmp_path / "l.sqlite") as book:
        eng, resumed = open_engine(p, op, broker, book)
        assert not resumed and eng.state.equity == EQUITY
        eng.step(MORNING)
        again, resumed = open_engine(p, op, broker, book)
        assert resumed and again.state.now == MORNING


def test_status_line_says_leverage_plans_and_fills():
    eng, _ = setup(params(), plan([], [mplan("AAPL", 1)]), None)
    eng.state.now = MORNING
    line = status_line(eng, 12)
    assert line.startswith("09:45:00 step 12: leverage directional 0.00x + maxdiff 0.00x (max 1.5x)")
    assert "0 fills" in line and "realized $+0.00" in line
