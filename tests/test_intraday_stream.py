"""The stream runner: trade updates through alpaca-py's own `TradingStream` (public API only) and a
REST reconcile at the start and on a timer, which recovers updates lost while the socket was down."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pytest
from alpaca.trading.models import Order as AlpacaOrder
from alpaca.trading.models import TradeUpdate
from alpaca.trading.stream import TradingStream
from test_intraday import FLAT, bars, mplan, order, params, plan, setup

from wolfkit.broker.alpaca import trade_update_stream, update_from_stream
from wolfkit.broker.base import OrderUpdate, UpdateEvent
from wolfkit.broker.emulator import order_json
from wolfkit.intraday import Market, StreamSession, run_streaming


def as_trade_update(u: OrderUpdate) -> TradeUpdate:
    """A simulated broker's update as the `TradeUpdate` alpaca-py hands a stream handler."""
    return TradeUpdate(event=str(u.event), order=AlpacaOrder(**order_json(u.order)), timestamp=u.at)


def test_an_update_lost_while_the_socket_was_down_is_recovered_by_the_periodic_reconcile():
    p = params(leverage=FLAT, maxdiff={"ramp_minutes": 1, "ramp_step_minutes": 1, "expire_minutes": 390})
    op = plan([], [mplan("AAPL", 1, low=100.0, high=102.0), mplan("MSFT", 2, low=50.0, high=52.0)])
    b = bars({"AAPL": 101.0, "MSFT": 51.0}, touch={"AAPL": {10: 99.5}, "MSFT": {12: 49.0}})
    eng, broker = setup(p, op, b)
    session = StreamSession(eng, reconcile_seconds=300)  # every 5 minutes of the engine's clock
    idx = np.array([b.symbols.index(s) for s in eng.symbols])
    aapl, msft = None, None
    heard: list[UpdateEvent] = []
    for t in range(0, 16):  # live: the broker sees bars; the engine hears the stream and a clock
        now = b.times[t].to_pydatetime()
        broker.on_bar(b.symbols, b.high[t], b.low[t], b.close[t], now)
        events = broker.updates()
        if t < 11:  # the socket is up: every trade update reaches the engine
            for u in events:
                parsed = update_from_stream(as_trade_update(u))
                if parsed is not None:
                    heard.append(parsed.event)
                    session.on_update(parsed)
        # from minute 11 the socket is down: the MSFT fill at minute 12 is never delivered
        eng.step(now, Market(b.high[t][idx], b.low[t][idx], b.close[t][idx]), poll=False)
        session.reconcile_if_due(now)
        aapl, msft = (next(s for s in eng.state.slots if s.symbol == x) for x in ("AAPL", "MSFT"))
        if t in (12, 14):  # lost, and not yet due: the engine does not know
            assert msft.entry.filled_qty == 0
            assert set(eng.position_mismatches()) == {"MSFT"}
    assert UpdateEvent.FILL in heard and aapl is not None and aapl.entry.filled_qty > 0  # heard on the stream
    assert session.reconciles == 4  # minutes 0, 5, 10, 15
    assert msft is not None and msft.entry.filled_qty > 0  # booked by the reconcile at minute 15
    assert eng.position_mismatches() == {}
    at_broker = {x.symbol: x.qty for x in broker.positions()}
    assert msft.entry.filled_qty == at_broker["MSFT"] and aapl.entry.filled_qty == at_broker["AAPL"]


def test_a_reconcile_is_due_only_after_the_interval():
    eng, _ = setup(params(), plan([], [mplan("AAPL", 1)]), None)
    session = StreamSession(eng, reconcile_seconds=30)
    t0 = bars({"AAPL": 100.0}).times[0].to_pydatetime()
    assert session.reconcile_if_due(t0)  # the first call always reconciles
    assert not session.reconcile_if_due(t0 + timedelta(seconds=29))
    assert session.reconcile_if_due(t0 + timedelta(seconds=30))
    assert session.reconciles == 2 and session.last_reconcile == t0 + timedelta(seconds=30)
    with pytest.raises(ValueError, match="reconcile_seconds"):
        StreamSession(eng, reconcile_seconds=0)


def test_streaming_mode_reconciles_at_start_and_every_interval_and_steps_on_the_clock(monkeypatch):
    started, stopped = [], []
    monkeypatch.setattr(TradingStream, "run", lambda self: started.append(self))  # no socket in a test
    monkeypatch.setattr(TradingStream, "stop", lambda self: stopped.append(self))
    p = params(leverage=FLAT)
    op = plan([order("MSFT", 100, 200.0)], [mplan("AAPL", 1, low=100.0, high=102.0)])
    b = bars({"AAPL": 101.0, "MSFT": 200.0})
    eng, broker = setup(p, op, b)
    reconciled = []
    real = eng.reconcile
    monkeypatch.setattr(eng, "reconcile", lambda: (reconciled.append(eng.state.now), real()))
    clock = {"t": 0}
    broker.on_bar(b.symbols, b.high[0], b.low[0], b.close[0], b.times[0].to_pydatetime())

    def sleep(_s: float) -> None:
        clock["t"] += 1
        t = clock["t"]
        broker.on_bar(b.symbols, b.high[t], b.low[t], b.close[t], b.times[t].to_pydatetime())

    session = run_streaming(eng, "key", "secret", now=lambda: b.times[clock["t"]].to_pydatetime(), sleep=sleep,
                            until=b.times[0].to_pydatetime() + timedelta(minutes=5), poll_seconds=60,
                            reconcile_seconds=120)
    assert len(started) == 1 and stopped == started and type(started[0]) is TradingStream
    # steps at minutes 0..4; reconciles at the start (before the first step), then at minutes 2 and 4
    assert session.reconciles == 3 and len(reconciled) == 3
    assert reconciled[1:] == [b.times[2].to_pydatetime(), b.times[4].to_pydatetime()]
    assert eng.state.now == b.times[4].to_pydatetime() and eng.state.directional[0].qty == 100


def test_the_trade_update_stream_is_alpaca_pys_own_class_with_nothing_overridden():
    got: list[OrderUpdate] = []
    stream = trade_update_stream("key", "secret", got.append, paper=True, url_override="ws://127.0.0.1:1")
    assert type(stream) is TradingStream  # public API only: no subclass, no private method replaced
    default = trade_update_stream("key", "secret", got.append, paper=True)
    assert type(default) is TradingStream
