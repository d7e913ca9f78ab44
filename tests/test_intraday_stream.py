"""The stream runner: trade updates through alpaca-py's own `TradingStream` (public API only) and a
REST reconcile at the start and on a timer, which recovers updates lost while the socket was down;
and the stream itself against a local websocket server speaking Alpaca's protocol."""

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


def test_updates_reach_the_handler_over_a_real_socket_and_after_alpaca_py_reconnects():
    """alpaca-py's stream against a local websocket server speaking Alpaca's protocol: the first
    connection sends one update and drops; alpaca-py reconnects by itself and the next update arrives."""
    import asyncio
    import json
    import threading
    import time

    from websockets.asyncio.server import serve

    from wolfkit.broker.base import OrderRequest
    from wolfkit.broker.sim import SimBroker
    from wolfkit.domain import OrderType, Side, TimeInForce

    sim = SimBroker(100_000.0, 2.0)
    sim.market.update(["AAPL", "MSFT"], np.array([100.0, 50.0]), np.array([100.02, 50.02]))
    orders = [sim.submit(OrderRequest(s, 5, Side.BUY, OrderType.MARKET, TimeInForce.DAY, f"e2e-{s}"))
              for s in ("AAPL", "MSFT")]
    connections: list[int] = []
    ready, done = threading.Event(), threading.Event()
    port: dict[str, int] = {}

    async def session(ws) -> None:
        auth = json.loads(await ws.recv())
        assert auth["action"] == "authenticate" and auth["data"]["key_id"] == "key"
        await ws.send(json.dumps({"stream": "authorization", "data": {"status": "authorized",
                                                                        "action": "authenticate"}}))
        assert json.loads(await ws.recv())["data"]["streams"] == ["trade_updates"]
        await ws.send(json.dumps({"stream": "listening", "data": {"streams": ["trade_updates"]}}))
        n = len(connections)
        connections.append(n)
        if n < len(orders):
            o = order_json(orders[n])
            await ws.send(json.dumps({"stream": "trade_updates", "data": {
                "event": "new", "order": o, "timestamp": o["submitted_at"]}}))
        if n == 0:
            await ws.close()  # the drop: alpaca-py must reconnect by itself
            return
        await asyncio.get_running_loop().run_in_executor(None, done.wait, 20)

    async def server() -> None:
        async with serve(session, "127.0.0.1", 0) as srv:
            port["n"] = srv.sockets[0].getsockname()[1]
            ready.set()
            await asyncio.get_running_loop().run_in_executor(None, done.wait, 30)

    threading.Thread(target=asyncio.run, args=(server(),), daemon=True).start()
    assert ready.wait(10)
    got: list[OrderUpdate] = []
    stream = trade_update_stream("key", "secret", got.append, url_override=f"ws://127.0.0.1:{port['n']}")
    runner = threading.Thread(target=stream.run, daemon=True)
    runner.start()
    try:
        deadline = time.monotonic() + 20
        while len(got) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        stream.stop()
        done.set()
        runner.join(timeout=10)
    assert len(connections) >= 2  # it reconnected
    assert [(u.event, u.order.client_order_id, u.order.symbol) for u in got] == [
        (UpdateEvent.NEW, "e2e-AAPL", "AAPL"), (UpdateEvent.NEW, "e2e-MSFT", "MSFT")]
    assert not runner.is_alive()


def test_a_stream_stopped_before_its_loop_started_is_still_stopped(monkeypatch):
    """A step that fails at once ends `run_streaming` before the stream thread has its event loop;
    the stream must still stop, or the next attempt would open a second connection."""
    import threading

    from wolfkit.broker.base import RateLimited

    started = threading.Event()
    loop_ready = threading.Event()
    calls = []

    def run(self):
        started.set()
        loop_ready.wait(5)  # the loop appears only a moment after the thread starts
        self._loop = type("Loop", (), {"is_running": lambda _self: True})()

    def stop(self):
        calls.append(1)
        if self._loop is None:
            loop_ready.set()
            raise AttributeError("'NoneType' object has no attribute 'is_running'")  # as alpaca-py does

    monkeypatch.setattr(TradingStream, "run", run)
    monkeypatch.setattr(TradingStream, "stop", stop)
    eng, broker = setup(params(), plan([], [mplan("AAPL", 1)]), None)

    def fail():
        raise RateLimited("429", retry_after=1.0)

    monkeypatch.setattr(eng, "reconcile", fail)
    t0 = bars({"AAPL": 100.0}).times[0].to_pydatetime()
    with pytest.raises(RateLimited):
        run_streaming(eng, "key", "secret", now=lambda: t0, sleep=lambda s: None, until=t0 + timedelta(minutes=1),
                      poll_seconds=60, reconcile_seconds=30)
    assert started.is_set() and len(calls) >= 2  # refused once, then stopped
