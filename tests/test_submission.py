"""The one submission path (`wolfkit.broker.submission`): idempotent submit, waits on 429, the one 403
resize rule — the executor and the intraday engine resize alike — and the one sliding-window limiter
the executor blocks on and the simulator and the emulator answer 429 with."""

from __future__ import annotations

from datetime import timedelta
from typing import cast

import numpy as np
import pytest
from factories import OPEN, FakeClock, PackEntry, make_plan
from test_execute import params, run

from wolfkit.broker.base import (
    Broker,
    BrokerOrder,
    BrokerUnavailable,
    DuplicateClientOrderId,
    InsufficientBuyingPower,
    OrderRejected,
    OrderRequest,
    OrderStatus,
    RateLimited,
)
from wolfkit.broker.emulator import create_app
from wolfkit.broker.sim import SimBroker
from wolfkit.broker.submission import (
    Outcome,
    SlidingWindowLimiter,
    resize_after_403,
    submit,
)
from wolfkit.domain import OrderType, Side, TimeInForce
from wolfkit.executor import Executor
from wolfkit.intraday import IntradayEngine, Market
from wolfkit.ledger import Ledger

KEYS = {"APCA-API-KEY-ID": "k", "APCA-API-SECRET-KEY": "s"}


# ---- one limiter -----------------------------------------------------------------------------------


def test_limiter_is_a_sliding_window():
    ft = FakeClock()
    lim = SlidingWindowLimiter(3, ft.monotonic)
    assert [lim.admit() for _ in range(3)] == [None, None, None]
    ft.t = 20.0
    assert lim.admit() == pytest.approx(40.0) and lim.remaining() == 0  # refused, not counted
    ft.t = 60.0  # the first three leave the window together
    assert lim.remaining() == 3 and lim.admit() is None
    lim.acquire(ft.sleep), lim.acquire(ft.sleep)
    lim.acquire(ft.sleep)  # 4th in the window that started at t=60: waits until t=120
    assert ft.slept == [pytest.approx(60.0)] and lim.waited == pytest.approx(60.0)
    assert SlidingWindowLimiter(None).admit() is None and SlidingWindowLimiter(None).remaining() is None


def test_executor_simulator_and_emulator_share_the_limiter_and_agree_on_the_wait(tmp_path):
    """The same two requests in a 2-per-minute window: the simulator's 429 and the emulator's 429
    name the wait the executor's gate sleeps before a third."""
    ft = FakeClock()
    sim = SimBroker(100_000.0, rate_limit_per_minute=2, timer=ft.monotonic)
    emu_app = create_app(SimBroker(100_000.0), rate_limit_per_minute=2, timer=ft.monotonic)
    client = emu_app.test_client()
    with Ledger(tmp_path / "l.sqlite", durable=False) as lg:
        ex = Executor(make_plan(), SimBroker(100_000.0, rate_limit_per_minute=2), lg,
                      params(rate_limit_per_minute=2), lambda: OPEN, ft.sleep, ft.monotonic)
    limiters = [ex.gate, sim._limiter, emu_app.extensions["wolfkit.emulator"].limiter]
    assert all(type(x) is SlidingWindowLimiter for x in limiters)
    for _ in range(2):
        sim.account()
        assert client.get("/v2/account", headers=KEYS).status_code == 200
        ex.gate.acquire(ft.sleep)
        ft.t += 5.0
    with pytest.raises(RateLimited) as hit:
        sim.account()
    assert hit.value.retry_after == pytest.approx(50.0)
    assert client.get("/v2/account", headers=KEYS).status_code == 429
    assert emu_app.extensions["wolfkit.emulator"].admit() == pytest.approx(50.0)
    ex.gate.acquire(ft.sleep)
    assert ft.slept == [pytest.approx(50.0)]


# ---- idempotent submit ---------------------------------------------------------------------------


class Scripted:
    """A broker whose submit answers from a script (an exception, or "accept" / "accept-then-504")."""

    def __init__(self, *script: object):
        self.script = list(script)
        self.held: dict[str, BrokerOrder] = {}
        self.sent: list[str] = []
        self.lookups: list[tuple[int, str]] = []

    def submit(self, r: OrderRequest) -> BrokerOrder:
        self.sent.append(r.client_order_id)
        step = self.script.pop(0)
        if step in ("accept", "accept-then-504"):
            self.held[r.client_order_id] = BrokerOrder(id=f"o{len(self.sent)}", client_order_id=r.client_order_id,
                                                       symbol=r.symbol, side=r.side, qty=r.qty, type=r.type,
                                                       time_in_force=r.time_in_force, status=OrderStatus.NEW)
            if step == "accept":
                return self.held[r.client_order_id]
            step = BrokerUnavailable("504 after accept")
        raise step  # type: ignore[misc]

    def get_by_client_id(self, cid: str) -> BrokerOrder | None:
        self.lookups.append((len(self.sent), cid))
        return self.held.get(cid)


REQ = OrderRequest("MSFT", 10, Side.BUY, OrderType.MARKET, TimeInForce.DAY, "cid-1")


def go(b: Scripted, ft: FakeClock, **kw):
    # a stand-in with only what submit() calls, not a whole Broker
    return submit(cast(Broker, b), REQ, lookup=b.get_by_client_id, max_attempts=4, sleep=ft.sleep, **kw)


def test_429_waits_then_retries_the_same_id():
    ft, b = FakeClock(), Scripted(RateLimited("429", retry_after=2.5), "accept")
    seen = []
    got = go(b, ft, on_rate_limited=seen.append)
    assert got.outcome == Outcome.ACCEPTED and b.sent == ["cid-1", "cid-1"] and ft.slept == [2.5] and len(seen) == 1


def test_unknown_outcome_is_looked_up_before_any_resubmit():
    ft, b = FakeClock(), Scripted("accept-then-504")
    got = go(b, ft)
    assert got.outcome == Outcome.RECONCILED and got.order.client_order_id == "cid-1"
    assert b.sent == ["cid-1"] and b.lookups == [(1, "cid-1")]  # found: never sent again
    ft, b = FakeClock(), Scripted(BrokerUnavailable("502"), "accept")
    got = go(b, ft)
    assert got.outcome == Outcome.ACCEPTED and b.sent == ["cid-1", "cid-1"] and b.lookups == [(1, "cid-1")]


def test_duplicate_id_adopts_and_refusals_end_it():
    ft = FakeClock()
    b = Scripted(DuplicateClientOrderId("422"))
    b.held["cid-1"] = BrokerOrder(id="x", client_order_id="cid-1", symbol="MSFT", side=Side.BUY, qty=10,
                                  type=OrderType.MARKET, time_in_force=TimeInForce.DAY, status="new")
    assert go(b, ft).outcome == Outcome.ADOPTED and b.sent == ["cid-1"]
    assert go(Scripted(DuplicateClientOrderId("422")), ft).outcome == Outcome.DUPLICATE_MISSING
    assert go(Scripted(InsufficientBuyingPower("403", 5.0)), ft).outcome == Outcome.INSUFFICIENT_BP
    assert go(Scripted(OrderRejected("sub-penny")), ft).outcome == Outcome.REJECTED
    b = Scripted(*[BrokerUnavailable("503")] * 4)
    assert go(b, ft).outcome == Outcome.UNKNOWN and len(b.sent) == 4 and len(b.lookups) == 4


# ---- one resize rule -----------------------------------------------------------------------------


def test_resize_uses_what_the_broker_charges_per_share():
    e = InsufficientBuyingPower("403", buying_power=10_000.0, cost_basis=26_000.0)  # 260/share for 100
    r = resize_after_403(e, 100, 200.0, lambda: pytest.fail("the body had the buying power"))
    assert (r.qty, r.per_share, r.buying_power) == (38, pytest.approx(260.0), 10_000.0)
    # an implausible cost basis (below our price, or over 10x) is ignored: our own price decides
    assert resize_after_403(InsufficientBuyingPower("403", 10_000.0, 100.0), 100, 200.0, lambda: 0).qty == 50
    assert resize_after_403(InsufficientBuyingPower("403", 10_000.0, 10**7), 100, 200.0, lambda: 0).qty == 50
    # never the same size again (that would be refused again); no body buying power: ask the account
    assert resize_after_403(InsufficientBuyingPower("403", 10**6, None), 100, 200.0, lambda: 0).qty == 99
    assert resize_after_403(InsufficientBuyingPower("403", None, None), 100, 200.0, lambda: 4_000.0).qty == 20


class Refuses403(SimBroker):
    """A simulated account whose first `n` submits are refused for buying power with a fixed body."""

    def __init__(self, n: int, **kw):
        super().__init__(100_000.0, clock=lambda: OPEN, **kw)
        self.n = n
        self.asked: list[int] = []
        self.market.set("MSFT", 199.99, 200.0)

    def submit(self, request: OrderRequest) -> BrokerOrder:
        self.asked.append(request.qty)
        if len(self.asked) <= self.n:
            raise InsufficientBuyingPower("insufficient buying power", buying_power=10_000.0, cost_basis=26_000.0)
        return super().submit(request)


def test_the_executor_and_the_engine_resize_a_403_identically(tmp_path):
    """The same 403 body (buying power $10,000, cost basis $26,000 for 100 shares): both callers send
    38 shares next (the broker charges $260/share), not the 50 the engine's old rule (buying power //
    our own $200 price) would have sent."""
    plan = make_plan(pack=[PackEntry("MSFT", "Tech", 0.2, 200.0)])
    assert plan.orders[0].qty == 100
    # the executor: the head's 403 is deferred to the sequential pass (re-fit to the account), whose
    # 403 is then resized by the rule
    executor_broker = Refuses403(2)
    rep, rows, _ = run(plan, executor_broker, tmp_path)
    assert executor_broker.asked[-1] == rows[0].qty == 38 and rep.orders[0].attempts == 3
    # the engine: the entry's 403 sets the next size; the next step sends it under a new id
    engine_broker = Refuses403(1)
    eng = IntradayEngine.start(params(), plan, engine_broker, equity=100_000.0, session=OPEN.date())
    px = np.array([200.0])
    for t in range(2):
        eng.step(OPEN + timedelta(minutes=t), Market(px, px, px))
    assert engine_broker.asked == [100, 38]
    assert eng.state.directional[0].entry.target_qty == 38
