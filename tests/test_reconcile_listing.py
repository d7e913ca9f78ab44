"""Reconciliation from the broker's order list: about one request per order on a clean run, and every
crash-safety guarantee kept — an order the broker acknowledged is adopted from the listing on the next
run (never resubmitted), an ambiguous answer is settled by a fresh listing, and a duplicate client id
the listing cannot show is still adopted."""

from __future__ import annotations

import threading
from collections import Counter
from datetime import datetime, timedelta

import pytest
from factories import OPEN, REFERENCE_PACK, FakeClock, make_plan, quoted_sim
from test_execute import Wrapper, per_plan_counts, run

from wolfkit.broker.base import BrokerUnavailable, DuplicateClientOrderId, OrderRequest
from wolfkit.broker.sim import SimBroker
from wolfkit.domain import ClientOrderId, Layer, OrderType, Side, TimeInForce
from wolfkit.ledger import EventKind, OrderState
from wolfkit.orders import OrderPlan, PlannedOrder
from wolfkit.reconciliation import RunListing

BROKER_CALLS = ("account", "quotes", "submit", "get_by_client_id", "get", "cancel", "replace", "open_orders",
                "orders_by_prefix", "positions", "updates")


class Counting(Wrapper):
    """Counts every broker call by name (each is one HTTP request at Alpaca, `updates` one listing page)."""

    def __init__(self, inner: SimBroker):
        super().__init__(inner)
        self.calls: Counter[str] = Counter()

    def __getattr__(self, k):
        attr = getattr(self.inner, k)
        if k not in BROKER_CALLS:
            return attr

        def counted(*a, **kw):
            self.calls[k] += 1
            return attr(*a, **kw)
        counted.__name__ = k
        return counted

    def submit(self, r: OrderRequest):
        self.calls["submit"] += 1
        return super().submit(r)

    @property
    def requests(self) -> int:
        return sum(self.calls.values())


class Crash(BaseException):
    """Stands for the process dying: nothing after it runs."""


def wide_plan(n: int, run_id: str = "wide") -> tuple[OrderPlan, SimBroker]:
    """`n` market buys of distinct symbols filling 90% of a $1M account, and an account quoted at the
    plan's prices (everything fits: a clean run)."""
    equity = 1_000_000.0
    symbols = [f"S{i:03d}" for i in range(n)]
    orders = [PlannedOrder(
        client_order_id=str(ClientOrderId.for_order(run_id, "pack", s, Layer.DIRECTIONAL)), symbol=s, side=Side.BUY,
        qty=int(0.9 * equity / n // 50.0), type=OrderType.MARKET, limit_price=None, time_in_force=TimeInForce.DAY,
        layer=Layer.DIRECTIONAL, strategy="simple", sector="-", cap_tier="large", score=90.0, weight=0.9 / n,
        est_price=50.0, est_cost=int(0.9 * equity / n // 50.0) * 50.0, priority=i) for i, s in enumerate(symbols)]
    base = make_plan(run_id=run_id)
    plan = base.model_copy(update={"orders": orders, "account": base.account.model_copy(update={"equity": equity,
                                                                                              "buying_power": equity})})
    broker = SimBroker(equity, clock=lambda: OPEN)
    for s in symbols:
        broker.market.set(s, 49.99, 50.0)
    return plan, broker


# ---- requests per order -----------------------------------------------------------------------------


@pytest.mark.parametrize("n", [50, 150])
def test_clean_run_needs_at_most_1_1_requests_per_order_and_no_lookup(tmp_path, n):
    plan, inner = wide_plan(n)
    b = Counting(inner)
    rep, _, _ = run(plan, b, tmp_path)
    assert rep.accepted == n
    assert b.calls["submit"] == n and b.calls["get_by_client_id"] == 0 and b.calls["orders_by_prefix"] == 1
    assert b.requests <= 1.1 * n, dict(b.calls)


def test_clean_run_through_alpaca_py_and_the_emulator_counts_the_same(tmp_path, monkeypatch):
    """The same through alpaca-py: HTTP requests as the emulator counts them, Alpaca's 200/min limit."""
    from wolfkit.broker.alpaca import AlpacaBroker
    from wolfkit.broker.emulator import create_app, serve

    n = 50
    plan, inner = wide_plan(n, run_id="emu")
    ft = FakeClock()
    srv = serve(create_app(inner, timer=ft.monotonic))
    try:
        for k, v in {"APCA_API_KEY_ID": "k", "APCA_API_SECRET_KEY": "s", "APCA_API_BASE_URL": srv.url,
                     "APCA_API_DATA_URL": srv.url}.items():
            monkeypatch.setenv(k, v)
        rep, _, _ = run(plan, AlpacaBroker(timeout=5), tmp_path, ft=ft)
        stats = dict(srv.emulator.stats)
    finally:
        srv.shutdown()
    assert rep.accepted == n and rep.rate_limited == 0
    assert stats["requests"] <= 1.1 * n, stats


def test_rerun_of_a_done_plan_is_one_listing_and_sends_nothing(tmp_path):
    plan = make_plan()
    inner = quoted_sim()
    run(plan, inner, tmp_path)
    b = Counting(inner)
    rep, _, _ = run(plan, b, tmp_path)
    assert rep.accepted == 12 and b.calls["submit"] == 0 and b.calls["get_by_client_id"] == 0
    assert b.calls["orders_by_prefix"] == 1


def test_403_resizes_need_no_lookup_of_the_next_attempt(tmp_path):
    plan = make_plan()
    inner = quoted_sim(market_buffer=0.12)  # reserves more than the executor budgets: 403s, resizes
    b = Counting(inner)
    rep, rows, _ = run(plan, b, tmp_path, max_concurrency=1)
    assert rep.insufficient_bp_rejections >= 1 and any(r.attempt > 0 for r in rows)
    assert b.calls["get_by_client_id"] == 0
    assert all(n <= 1 for n in per_plan_counts(inner, plan).values())
    assert rep.unresolved == 0


# ---- crash between the broker's acknowledgement and the ledger's write ------------------------------


@pytest.mark.parametrize("lose_ledger", [False, True])
@pytest.mark.parametrize("at", [0, 7])
def test_crash_after_the_broker_acknowledged_is_adopted_from_the_listing(tmp_path, at, lose_ledger):
    """The broker accepts order `at`; the process dies before the ledger hears back. The next run lists
    the run's orders, finds it, adopts it and does not send it again — with the ledger kept (an intent
    is written) or lost (nothing in the ledger at all): the listing alone decides."""
    plan = make_plan()
    inner = quoted_sim()

    class Dying(Wrapper):
        dead = False

        def __getattr__(self, k):
            if self.dead:
                raise Crash  # the process is gone: nothing after the crash reaches the broker
            return getattr(self.inner, k)

        def submit(self, r):
            if self.dead:
                raise Crash
            self.submits.append(r.client_order_id)
            if len(self.submits) - 1 == at:
                self.inner.submit(r)  # the broker has it; the executor never hears back
                self.dead = True
                raise Crash
            return self.inner.submit(r)

    dying = Dying(inner)
    with pytest.raises(Crash):
        run(plan, dying, tmp_path, max_concurrency=1)
    crashed = dying.submits[at]
    assert inner.get_by_client_id(crashed) is not None
    if lose_ledger:
        (tmp_path / "ledger.sqlite").unlink()
    b = Counting(inner)
    rep, rows, events = run(plan, b, tmp_path)
    assert crashed not in b.submits  # adopted, never resubmitted
    assert b.calls["get_by_client_id"] == 0 and b.calls["orders_by_prefix"] == 1  # the listing alone
    row = next(r for r in rows if r.client_order_id == crashed)
    assert row.state == OrderState.ACCEPTED and row.broker_order_id == inner.get_by_client_id(crashed).id
    assert any(e.kind == EventKind.RECONCILED and e.client_order_id == crashed for e in events)
    assert all(n == 1 for n in per_plan_counts(inner, plan).values())
    assert rep.accepted == 12 and rep.unresolved == 0


# ---- ambiguous answers ------------------------------------------------------------------------------


@pytest.mark.parametrize("accepted", [True, False])
def test_ambiguous_answer_is_settled_by_a_fresh_listing(tmp_path, accepted):
    """A 504 after acceptance: the fresh listing shows the order, it is adopted, not resent. A 503 before
    acceptance: the listing does not show it, and it is resent under the same id."""
    plan = make_plan()
    inner = quoted_sim()

    class Flaky(Counting):
        def submit(self, r):
            self.calls["submit"] += 1
            self.submits.append(r.client_order_id)
            if len(self.submits) == 3:
                if accepted:
                    self.inner.submit(r)
                raise BrokerUnavailable("HTTP 504 (the request's outcome is unknown)")
            return self.inner.submit(r)

    b = Flaky(inner)
    rep, rows, events = run(plan, b, tmp_path, max_concurrency=1)
    third = b.submits[2]
    assert b.calls["orders_by_prefix"] == 2 and b.calls["get_by_client_id"] == 0  # start + after the 504
    assert b.submits.count(third) == (1 if accepted else 2)
    assert rep.unknown_outcomes == 1 and rep.accepted == 12 and rep.unresolved == 0
    assert all(n == 1 for n in per_plan_counts(inner, plan).values())
    if accepted:
        assert any(e.kind == EventKind.RECONCILED and e.client_order_id == third for e in events)


def test_duplicate_id_the_listing_does_not_show_is_looked_up_and_adopted(tmp_path):
    """An order placed under the plan's id that the listing cannot show (say, outside its window): the
    submit is answered 422, the listing still does not show it, so it is asked for by id and adopted."""
    plan = make_plan()
    inner = quoted_sim()
    first = plan.orders[0]
    inner.submit(OrderRequest(first.symbol, first.qty, first.side, first.type, TimeInForce.DAY,
                              first.client_order_id))

    class Blind(Counting):
        def orders_by_prefix(self, prefix, since=None):
            self.calls["orders_by_prefix"] += 1
            return [o for o in self.inner.orders_by_prefix(prefix, since)
                    if o.client_order_id != first.client_order_id]

    b = Blind(inner)
    rep, rows, events = run(plan, b, tmp_path)
    assert b.calls["get_by_client_id"] == 1  # only the id the broker called a duplicate
    assert any(e.kind == EventKind.DUPLICATE_ADOPTED for e in events)
    counts = per_plan_counts(inner, plan)  # the adopted order took buying power: the tail is skipped
    assert counts[first.client_order_id] == 1 and all(n <= 1 for n in counts.values())
    assert rep.unresolved == 0


def test_a_duplicate_from_the_broker_is_still_adopted_when_listed(tmp_path):
    """alpaca-py's hidden retry of an accepted POST comes back 422: the listing shows the order, adopted."""
    plan = make_plan()
    inner = quoted_sim()

    class RetriedPost(Counting):
        def submit(self, r):
            self.calls["submit"] += 1
            self.submits.append(r.client_order_id)
            if len(self.submits) == 2:
                self.inner.submit(r)
                raise DuplicateClientOrderId("client_order_id must be unique")
            return self.inner.submit(r)

    b = RetriedPost(inner)
    rep, _, events = run(plan, b, tmp_path)
    assert [e.kind for e in events].count(EventKind.DUPLICATE_ADOPTED) == 1
    assert b.calls["get_by_client_id"] == 0 and rep.accepted == 12
    assert all(n == 1 for n in per_plan_counts(inner, plan).values())


# ---- the listing itself -----------------------------------------------------------------------------


def test_questions_asked_during_a_listing_share_the_next_one_and_see_what_came_before_them():
    """A question is answered by a listing that started after it was asked: three questions, the
    first listing already under way for the later two, make two listings, not three."""
    plan = make_plan()
    broker = quoted_sim()
    started, release = threading.Event(), threading.Event()
    lists: list[int] = []

    def call(fn, *args):
        lists.append(len(lists))
        got = fn(*args)
        if len(lists) == 1:  # the first listing's answer is slow to arrive
            started.set()
            release.wait(5)
        return got

    listing = RunListing(plan, broker, call)
    po = plan.orders[0]
    answers: dict[str, object] = {}
    first = threading.Thread(target=lambda: answers.setdefault("a", listing.find(po.client_order_id)))
    first.start()
    started.wait(5)
    # accepted after the first listing started: the first answer may miss it, the later ones must not
    broker.submit(OrderRequest(po.symbol, po.qty, po.side, po.type, TimeInForce.DAY, po.client_order_id))
    later = [threading.Thread(target=lambda k=k: answers.setdefault(k, listing.find(po.client_order_id)))
             for k in ("b", "c")]
    for t in later:
        t.start()
    release.set()
    for t in (first, *later):
        t.join(5)
    assert answers["a"] is None and answers["b"] is not None and answers["c"] is not None
    assert listing.listings == len(lists) == 2


def test_listing_window_starts_a_day_before_the_plan_was_made():
    plan = make_plan()
    listing = RunListing(plan, quoted_sim(), lambda fn, *a: fn(*a))
    assert listing.since == plan.created_at - timedelta(days=1)
    assert listing.prefix and all(po.client_order_id.startswith(listing.prefix) for po in plan.orders)
    naive = plan.model_copy(update={"created_at": datetime(2026, 1, 20, 8, 30)})
    assert RunListing(naive, quoted_sim(), lambda fn, *a: fn(*a)).since.tzinfo is not None
    assert len(REFERENCE_PACK) == len(plan.orders)
