"""The batch executor: gets the whole pack into the broker, in priority order, exactly once.

The seed's first live run filled 5 of 12 orders because every order was sized from the same starting
buying power and the open gapped up. `execute_plan` instead:

1. **Reconciles first.** Every planned order is registered in the ledger; for each, the client ids it
   may have used (from the ledger's intents) are looked up at the broker. What exists is adopted,
   never resubmitted. Only then does it act — so a re-run after a crash at any point submits nothing
   twice (an intent is committed before every request, so every order the broker could hold is
   known to the ledger).
2. **Sizes from fresh data** with a running buying-power budget in priority order: a market buy
   costs ask × (1 + `execution.market_buffer`), a limit buy its limit; a sell costs nothing unless it
   opens a short (then the bid). The tail is *shrunk* to what is left instead of being rejected;
   an order that cannot get one share is *skipped* with the reason.
3. **Submits** on up to `execution.max_concurrency` threads inside a sliding-window rate limit
   (`execution.rate_limit_per_minute` requests in any 60 s, every request counted).
4. **Handles every answer**: insufficient buying power (403) → resize to the `buying_power` the
   broker reported and resubmit under a NEW client id (attempt n+1), after looking the new id up;
   duplicate client id (422) → the order exists: adopt it; unknown outcome (5xx, timeout, dropped
   connection) → look the id up, and retry with the SAME id only if absent; rate limited (429) →
   wait `retry_after` and retry the same id; any other refusal → rejected, with the broker's reason.
5. **Knows the rules**: OPG only before 09:28 ET (or from 19:00), else sent as `day` with the reason
   logged; bracket legs (take-profit/stop-loss) attached where the plan has them (brackets must be
   day/gtc, so an OPG bracket is sent as day); an order whose opposite side is open on the symbol
   (or planned earlier in this batch) is skipped — Alpaca would refuse it as a potential wash trade.

Everything goes to the ledger; `ExecutionReport` says, per planned order, its final state, the
quantity submitted vs planned, the attempts and the reason.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, TypeVar

import pandas as pd

from wolfkit.broker.base import (
    Broker,
    BrokerOrder,
    BrokerUnavailable,
    DuplicateClientOrderId,
    InsufficientBuyingPower,
    OrderRejected,
    OrderRequest,
    Quote,
    RateLimited,
    opg_allowed,
)
from wolfkit.broker.gate import broker_kind_for
from wolfkit.calendar import NY
from wolfkit.config import Params
from wolfkit.errors import BrokerError
from wolfkit.ledger import EventKind, Ledger, LedgerOrder, OrderState, Sizing
from wolfkit.orders import OrderPlan, OrderType, PlannedOrder, Side, TimeInForce, round_to_tick

if TYPE_CHECKING:
    from wolfkit.broker.sim import SimBroker

T = TypeVar("T")


def attempt_client_id(base: str, attempt: int) -> str:
    """The client id of attempt `attempt` of the planned order whose id is `base` (attempt 0 is `base`).

    Matches `wolfkit.orders.client_order_id(..., attempt=n)` (base + "-r<n>") and keeps ≤ 128 chars.
    """
    if attempt == 0:
        return base
    suffix = f"-r{attempt}"
    return base[: 128 - len(suffix)] + suffix


class RateGate:
    """At most `per_minute` requests in any sliding 60-second window, shared by all threads.

    A sliding window (not a token bucket, which would allow a burst of capacity + rate in one
    minute) so the broker's own per-minute limit is never reached.
    """

    def __init__(self, per_minute: int, sleep: Callable[[float], None] = time.sleep,
                 timer: Callable[[], float] = time.monotonic):
        self.per_minute = per_minute
        self.sleep = sleep
        self.timer = timer
        self._calls: deque[float] = deque()
        self._lock = threading.Lock()
        self.waited = 0.0

    def acquire(self) -> None:
        while True:
            with self._lock:
                t = self.timer()
                while self._calls and self._calls[0] <= t - 60.0:
                    self._calls.popleft()
                if len(self._calls) < self.per_minute:
                    self._calls.append(t)
                    return
                wait = self._calls[0] + 60.0 - t
            self.waited += wait
            self.sleep(wait)


@dataclass(frozen=True)
class OrderResult:
    """One planned order after execution."""

    plan_client_id: str
    symbol: str
    side: Side
    layer: str
    priority: int
    state: OrderState
    planned_qty: int
    submitted_qty: int
    filled_qty: int
    avg_price: float | None
    attempts: int  # client ids used (1 = the planned id only)
    client_order_id: str | None
    broker_order_id: str | None
    sizing: Sizing
    reason: str
    deployed: float  # USD: filled value + open remainder at the reference price (buys)


@dataclass(frozen=True)
class ExecutionReport:
    """What a run did, per planned order and in total."""

    run_id: str
    broker: str
    execution: int  # 1 for the first execution of this plan, 2 for a re-run, …
    equity: float
    orders: list[OrderResult]
    insufficient_bp_rejections: int  # 403s met (each then resized or resolved with a reason)
    rate_limited: int
    unknown_outcomes: int
    started_at: datetime
    finished_at: datetime
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def deployed(self) -> float:
        return sum(o.deployed for o in self.orders)

    @property
    def deployed_pct(self) -> float:
        return self.deployed / self.equity if self.equity > 0 else 0.0

    @property
    def accepted(self) -> int:
        return sum(o.state.at_broker for o in self.orders)

    @property
    def unresolved(self) -> int:
        """Orders left rejected or with an unknown/unsent outcome (a re-run will retry the latter)."""
        return sum(o.state in (OrderState.REJECTED, OrderState.SUBMITTING, OrderState.PLANNED)
                   for o in self.orders)

    def table(self) -> pd.DataFrame:
        """One row per planned order (documented columns: those of `OrderResult`)."""
        return pd.DataFrame([asdict(o) for o in self.orders], columns=list(OrderResult.__dataclass_fields__))

    def summary(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id, "broker": self.broker, "execution": self.execution, "equity": self.equity,
            "planned": len(self.orders), "accepted": self.accepted, "unresolved": self.unresolved,
            "deployed": round(self.deployed, 2), "deployed_pct": round(self.deployed_pct, 4),
            "insufficient_bp_rejections": self.insufficient_bp_rejections, "rate_limited": self.rate_limited,
            "unknown_outcomes": self.unknown_outcomes, "states": self.counts,
            "started_at": self.started_at.isoformat(), "finished_at": self.finished_at.isoformat(),
        }


@dataclass
class _Job:
    """One planned order being worked on: what to send and what happened."""

    po: PlannedOrder
    attempt: int
    qty: int
    tif: TimeInForce
    ref_price: float  # USD per share used for the budget (0 for a sell that closes a position)
    sizing: Sizing
    reason: str


class _Executor:
    def __init__(self, plan: OrderPlan, broker: Broker, ledger: Ledger, params: Params,
                 now: Callable[[], datetime], sleep: Callable[[float], None], timer: Callable[[], float]):
        self.plan, self.broker, self.ledger = plan, broker, ledger
        self.ex = params.execution
        self.now, self.sleep = now, sleep
        self.gate = RateGate(self.ex.rate_limit_per_minute, sleep, timer)
        self.run = plan.run_id
        self.by_client: dict[str, str] = {}  # every client id used -> plan client id
        self._lock = threading.Lock()
        self.n_ibp = self.n_429 = self.n_unknown = 0

    # ---- broker calls through the gate --------------------------------------------------------

    def call(self, fn: Callable[..., T], *args: Any) -> T:
        """A read-only or idempotent broker call: rate-limited, retried on 429 and on unavailability."""
        last: Exception | None = None
        for i in range(self.ex.max_attempts):
            self.gate.acquire()
            try:
                return fn(*args)
            except RateLimited as e:
                self._count("n_429")
                self.ledger.record_event(self.run, EventKind.RATE_LIMITED, call=fn.__name__, retry_after=e.retry_after)
                self.sleep(self._retry_after(e))
                last = e
            except BrokerUnavailable as e:
                self.sleep(self._backoff(i))
                last = e
        raise BrokerError(f"{getattr(fn, '__name__', fn)}: broker unavailable after {self.ex.max_attempts} tries "
                          f"({last}); re-run `wolfkit execute` to continue (nothing is submitted twice)")

    def _count(self, name: str) -> None:
        with self._lock:
            setattr(self, name, getattr(self, name) + 1)

    @staticmethod
    def _retry_after(e: RateLimited) -> float:
        return max(0.05, e.retry_after) if e.retry_after is not None else 1.0

    @staticmethod
    def _backoff(i: int) -> float:
        return min(5.0, 0.1 * 2**i)

    def lookup(self, client_id: str) -> BrokerOrder | None:
        return self.call(self.broker.get_by_client_id, client_id)

    # ---- phase 1: reconcile -------------------------------------------------------------------

    def reconcile(self, po: PlannedOrder, row: LedgerOrder) -> LedgerOrder | None:
        """Bring the ledger row in line with the broker; None when the order still has to be sent."""
        base = po.client_order_id
        for a in range(row.attempt, -1, -1):
            self.by_client[attempt_client_id(base, a)] = base
        if row.state in (OrderState.REJECTED, OrderState.SKIPPED):
            return row  # a deliberate final decision from an earlier execution
        for a in range(row.attempt, -1, -1):
            cid = attempt_client_id(base, a)
            found = self.lookup(cid)
            if found is not None:
                if (row.broker_order_id, row.state, row.filled_qty) != (found.id, OrderState.of(found.status),
                                                                       found.filled_qty):
                    self.ledger.record_ack(self.run, base, found, event=EventKind.RECONCILED)
                return self.ledger.order(self.run, base)
        if row.state.at_broker:
            raise BrokerError(
                f"{po.symbol}: the ledger says order {row.client_order_id} was accepted (broker id "
                f"{row.broker_order_id}) but the broker does not know it; is this the same account?")
        return None

    # ---- phase 2: budget ----------------------------------------------------------------------

    def plan_jobs(self, pending: list[tuple[PlannedOrder, LedgerOrder]]) -> list[_Job]:
        """Decide quantities in priority order with a running budget; record skips and shrinks."""
        acct = self.call(self.broker.account)
        budget = acct.buying_power
        symbols = sorted({po.symbol for po, _ in pending})
        quotes: dict[str, Quote] = self.call(self.broker.quotes, symbols) if symbols else {}
        held = {p.symbol: p.qty for p in self.call(self.broker.positions)}
        open_sides: dict[str, set[Side]] = {}
        for o in self.call(self.broker.open_orders):
            open_sides.setdefault(o.symbol, set()).add(o.side)
        now = self.now()
        jobs = []
        for po, row in pending:
            base = po.client_order_id
            other = Side.SELL if po.side == Side.BUY else Side.BUY
            if other in open_sides.get(po.symbol, set()):
                self._skip(base, f"{po.symbol}: an opposite-side ({other}) order is open on the symbol; "
                                 "Alpaca would refuse this as a potential wash trade")
                continue
            q = quotes.get(po.symbol)
            tif, why_tif = self._tif(po, now)
            if why_tif:
                self.ledger.record_event(self.run, EventKind.FALLBACK, base, None, reason=why_tif)
            ref = self._ref_price(po, q, held)
            if ref is None:
                self._skip(base, f"{po.symbol}: no quote from the broker, so a market order cannot be priced")
                continue
            qty, sizing, reason = po.qty, Sizing.AS_PLANNED, why_tif
            if ref > 0:
                fit = int(math.floor(max(0.0, budget) / ref + 1e-9))
                if fit < 1:
                    self._skip(base, f"no buying power left for one share (budget ${budget:,.2f}, "
                                     f"one share ${ref:,.2f})")
                    continue
                if fit < qty:
                    reason = "; ".join(filter(None, [why_tif, f"shrunk from {qty} to {fit} to fit the buying power "
                                                     f"left (${budget:,.2f} at ${ref:,.2f}/share)"]))
                    self.ledger.record_event(self.run, EventKind.SHRUNK, base, None, planned=qty, qty=fit,
                                             budget=budget, ref_price=ref)
                    qty, sizing = fit, Sizing.SHRUNK
                budget -= qty * ref
            if po.side == Side.SELL:
                held[po.symbol] = held.get(po.symbol, 0) - qty
            open_sides.setdefault(po.symbol, set()).add(po.side)
            jobs.append(_Job(po, row.attempt, qty, tif, ref, sizing, reason))
        return jobs

    def _skip(self, base: str, reason: str) -> None:
        self.ledger.record_outcome(self.run, base, OrderState.SKIPPED, reason)

    def _ref_price(self, po: PlannedOrder, q: Quote | None, held: dict[str, int]) -> float | None:
        """USD per share the order takes from buying power (None: cannot be priced)."""
        if po.side == Side.BUY:
            if po.type == OrderType.LIMIT:
                return float(po.limit_price)
            return None if q is None else q.ask * (1 + self.ex.market_buffer)
        if held.get(po.symbol, 0) >= po.qty:
            return 0.0  # closes (part of) a long: no buying power needed
        if po.type == OrderType.LIMIT:
            return float(po.limit_price)
        return None if q is None else q.bid

    def _tif(self, po: PlannedOrder, now: datetime) -> tuple[TimeInForce, str]:
        if po.time_in_force != TimeInForce.OPG:
            return po.time_in_force, ""
        if po.take_profit is not None or po.stop_loss is not None:
            return TimeInForce.DAY, "bracket orders must be day or gtc: sent as day instead of opg"
        if not opg_allowed(now):
            t = now.astimezone(NY).strftime("%H:%M")
            return TimeInForce.DAY, f"opg is refused between 09:28 and 19:00 ET (now {t} ET): sent as day"
        return TimeInForce.OPG, ""

    # ---- phase 3: submit ----------------------------------------------------------------------

    def request(self, job: _Job, cid: str) -> OrderRequest:
        po = job.po
        tick = lambda v: None if v is None else round_to_tick(v)  # noqa: E731
        return OrderRequest(po.symbol, job.qty, po.side, po.type, job.tif, cid, po.limit_price,
                            take_profit=tick(po.take_profit), stop_loss=tick(po.stop_loss))

    def place(self, job: _Job) -> None:
        """Work one planned order to a final state (accepted, rejected with a reason) or leave it
        SUBMITTING (outcome unknown after every try) for a re-run to reconcile."""
        base = job.po.client_order_id
        for _ in range(self.ex.max_attempts):
            cid = attempt_client_id(base, job.attempt)
            with self._lock:
                self.by_client[cid] = base
            self.ledger.record_intent(self.run, base, cid, job.attempt, job.qty, type=job.po.type,
                                      time_in_force=job.tif, limit_price=job.po.limit_price, sizing=job.sizing,
                                      reason=job.reason)
            try:
                self._send(job, cid)
                return
            except InsufficientBuyingPower as e:
                self._count("n_ibp")
                if not self._resize(job, e):
                    return
            except _Unresolved:
                return
        self.ledger.record_outcome(self.run, base, OrderState.REJECTED,
                                   f"still over budget after {self.ex.max_attempts} resized attempts")

    def _send(self, job: _Job, cid: str) -> None:
        """Submit under `cid` until the outcome is known; InsufficientBuyingPower propagates."""
        base = job.po.client_order_id
        for i in range(self.ex.max_attempts):
            self.gate.acquire()
            try:
                order = self.broker.submit(self.request(job, cid))
                self.ledger.record_ack(self.run, base, order)
                return
            except DuplicateClientOrderId:
                found = self.lookup(cid)
                if found is None:
                    raise BrokerError(f"{cid}: the broker says this client id exists but cannot find it") from None
                self.ledger.record_ack(self.run, base, found, event=EventKind.DUPLICATE_ADOPTED,
                                       reason=job.reason or "adopted the existing order with this client id")
                return
            except RateLimited as e:
                self._count("n_429")
                self.ledger.record_event(self.run, EventKind.RATE_LIMITED, base, cid, retry_after=e.retry_after)
                self.sleep(self._retry_after(e))
            except BrokerUnavailable as e:
                self._count("n_unknown")
                self.ledger.record_event(self.run, EventKind.UNKNOWN_OUTCOME, base, cid, error=str(e))
                found = self.lookup(cid)
                if found is not None:
                    self.ledger.record_ack(self.run, base, found, event=EventKind.RECONCILED,
                                           reason=job.reason or None)
                    return
                self.sleep(self._backoff(i))
            except OrderRejected as e:  # includes WashTradeRejected
                self.ledger.record_outcome(self.run, base, OrderState.REJECTED, f"refused by the broker: {e}")
                raise _Unresolved from None
        self.ledger.record_event(self.run, EventKind.NOTE, base, cid,
                                 reason=f"outcome unknown after {self.ex.max_attempts} tries; a re-run reconciles")
        raise _Unresolved

    def place_tail(self, job: _Job) -> None:
        """A tail order (one the budget had to cut): re-fit it to the broker's buying power now that
        everything before it is in, then place it. Sequential, so priority decides who gets the rest."""
        if job.ref_price > 0:
            bp = self.call(self.broker.account).buying_power
            fit = min(job.po.qty, int(math.floor(max(0.0, bp) / job.ref_price + 1e-9)))
            base = job.po.client_order_id
            if fit < 1:
                self._skip(base, f"no buying power left for one share (broker reports ${bp:,.2f}, "
                                 f"one share ${job.ref_price:,.2f})")
                return
            if fit < job.qty:
                self.ledger.record_event(self.run, EventKind.SHRUNK, base, None, planned=job.po.qty, qty=fit,
                                         budget=bp, ref_price=job.ref_price)
                job.reason = f"shrunk from {job.po.qty} to {fit} to fit the buying power left " \
                             f"(${bp:,.2f} at ${job.ref_price:,.2f}/share)"
                job.qty, job.sizing = fit, Sizing.SHRUNK
        self.place(job)

    def _resize(self, job: _Job, e: InsufficientBuyingPower) -> bool:
        """After a 403: the next attempt sized to the reported buying power; False when none fits."""
        base = job.po.client_order_id
        bp = e.buying_power if e.buying_power is not None else self.call(self.broker.account).buying_power
        self.ledger.record_event(self.run, EventKind.INSUFFICIENT_BP, base, attempt_client_id(base, job.attempt),
                                 buying_power=bp, cost_basis=e.cost_basis, qty=job.qty)
        ref = job.ref_price if job.ref_price > 0 else job.po.est_price
        if e.cost_basis and job.qty and ref < e.cost_basis / job.qty <= 10 * ref:
            ref = e.cost_basis / job.qty  # what the broker actually charges per share
        fit = min(job.qty - 1, int(math.floor(max(0.0, bp) / ref + 1e-9)))
        if fit < 1:
            self.ledger.record_outcome(
                self.run, base, OrderState.REJECTED,
                f"insufficient buying power: the broker reports ${bp:,.2f}, one share needs ${ref:,.2f}")
            return False
        nxt = job.attempt + 1
        found = self.lookup(attempt_client_id(base, nxt))  # never resubmit without looking first
        if found is not None:
            self.ledger.record_ack(self.run, base, found, event=EventKind.RECONCILED)
            return False
        job.reason = (f"insufficient buying power (broker reported ${bp:,.2f}): resized from {job.qty} to {fit}, "
                      f"attempt {nxt}")
        job.qty, job.attempt, job.sizing = fit, nxt, Sizing.RESIZED
        return True

    # ---- phase 4: settle ----------------------------------------------------------------------

    def settle(self) -> None:
        """Record fills and status changes the broker reported for this run's orders."""
        latest: dict[str, BrokerOrder] = {}
        for u in self.call(self.broker.updates):
            base = self.by_client.get(u.order.client_order_id)
            if base is None:
                continue
            if u.fill is not None:
                self.ledger.record_fill(self.run, base, u.fill)
            latest[base] = u.order
        for base, order in latest.items():
            row = self.ledger.order(self.run, base)
            if row.client_order_id == order.client_order_id and (row.state, row.filled_qty) != (
                    OrderState.of(order.status), order.filled_qty):
                self._ack_status(base, order)

    def _ack_status(self, base: str, order: BrokerOrder) -> None:
        self.ledger.record_ack(self.run, base, order, event=EventKind.STATUS)


class _Unresolved(Exception):
    """Internal: this order's work ends here (its state and reason are already in the ledger)."""


def _result(row: LedgerOrder, quotes: dict[str, Quote], planned: PlannedOrder) -> OrderResult:
    deployed = 0.0
    if row.state.at_broker and row.side == Side.BUY:
        deployed = row.filled_qty * (row.avg_price or 0.0)
        if row.state in (OrderState.ACCEPTED, OrderState.PARTIALLY_FILLED):
            q = quotes.get(row.symbol)
            px = row.submitted_limit if row.submitted_type == "limit" else (q.ask if q else planned.est_price)
            deployed += (row.qty - row.filled_qty) * px
    return OrderResult(
        plan_client_id=row.plan_client_id, symbol=row.symbol, side=Side(row.side), layer=row.layer,
        priority=row.priority, state=row.state, planned_qty=row.planned_qty,
        submitted_qty=row.qty if row.state not in (OrderState.SKIPPED, OrderState.PLANNED) else 0,
        filled_qty=row.filled_qty, avg_price=row.avg_price,
        attempts=row.attempt + 1 if row.client_order_id else 0,
        client_order_id=row.client_order_id, broker_order_id=row.broker_order_id, sizing=row.sizing,
        reason=row.reason, deployed=round(deployed, 2),
    )


def execute_plan(
    plan: OrderPlan, broker: Broker, ledger: Ledger, params: Params, *,
    now: Callable[[], datetime] | None = None,
    sleep: Callable[[float], None] = time.sleep,
    timer: Callable[[], float] = time.monotonic,
    orders_path: str | None = None,
) -> ExecutionReport:
    """Execute `plan` on `broker`, recording everything in `ledger` (see the module docstring).

    `now` is the wall clock (OPG window), `sleep`/`timer` drive rate-limit waits and backoff; all are
    injectable so tests run instantly. Safe to call again on the same plan after a crash.
    """
    clock = now or (lambda: datetime.now(NY))
    started = clock()
    ex = _Executor(plan, broker, ledger, params, clock, sleep, timer)
    execution = ledger.start_run(plan.run_id, as_of=plan.as_of, broker=getattr(broker, "name", "?"),
                                 params_digest=plan.params_digest, orders_path=orders_path,
                                 equity=plan.account.equity)
    ordered = sorted(enumerate(plan.orders), key=lambda t: (t[1].priority, t[0]))
    planned = [po for _, po in ordered]
    ledger.register_orders(plan.run_id, planned)

    pending: list[tuple[PlannedOrder, LedgerOrder]] = []
    for po in planned:
        row = ledger.order(plan.run_id, po.client_order_id)
        if ex.reconcile(po, row) is None:
            pending.append((po, ledger.order(plan.run_id, po.client_order_id)))

    jobs = ex.plan_jobs(pending) if pending else []
    # the head (orders that fit as planned) goes concurrently; from the first cut order on, the tail
    # goes one by one against the broker's own buying power, so priority decides who gets the rest
    cut = next((k for k, j in enumerate(jobs) if j.sizing != Sizing.AS_PLANNED), len(jobs))
    errors: list[BaseException] = []
    with ThreadPoolExecutor(max_workers=params.execution.max_concurrency, thread_name_prefix="wk-exec") as pool:
        for fut in [pool.submit(ex.place, j) for j in jobs[:cut]]:
            exc = fut.exception()
            if exc is not None:
                errors.append(exc)
    if not errors:
        for j in jobs[cut:]:
            ex.place_tail(j)
    ex.settle()

    acct = ex.call(broker.account)
    quotes = ex.call(broker.quotes, sorted({po.symbol for po in planned}))
    rows = {r.plan_client_id: r for r in ledger.orders_for_run(plan.run_id)}
    results = [_result(rows[po.client_order_id], quotes, po) for po in planned]
    counts: dict[str, int] = {}
    for r in results:
        counts[str(r.state)] = counts.get(str(r.state), 0) + 1
    report = ExecutionReport(
        run_id=plan.run_id, broker=getattr(broker, "name", "?"), execution=execution, equity=acct.equity,
        orders=results, insufficient_bp_rejections=ex.n_ibp, rate_limited=ex.n_429,
        unknown_outcomes=ex.n_unknown, started_at=started, finished_at=clock(), counts=counts,
    )
    ledger.finish_run(plan.run_id, "error" if errors else ("incomplete" if report.unresolved else "done"),
                      report.summary())
    if errors:
        raise errors[0]
    return report


# ---- the command line's edge: orders file → broker → report ------------------------------------


def sim_broker_for(plan: OrderPlan, params: Params, now: datetime) -> SimBroker:
    """A simulated account like the plan's, quoted from the data provider (the demo market), or
    from the plan's estimated prices where the provider has no quote."""
    from wolfkit.broker.sim import SimBroker

    b = SimBroker(plan.account.equity, plan.account.multiplier, clock=lambda: datetime.now(NY))
    symbols = sorted({o.symbol for o in plan.orders})
    quotes = pd.DataFrame()
    try:
        from wolfkit.data import get_provider

        quotes = get_provider(params).latest_quotes(symbols, now)
    except Exception:  # noqa: BLE001 — no provider quotes: fall back to the plan's prices, said below
        quotes = pd.DataFrame()
    got = {r.symbol: (r.bid, r.ask) for r in quotes.itertuples()} if len(quotes) else {}
    for o in plan.orders:
        bid, ask = got.get(o.symbol, (o.est_price, o.est_price))
        if not (bid > 0 and ask >= bid):
            bid = ask = o.est_price
        b.market.set(o.symbol, float(bid), float(ask))
    return b


def open_broker(kind: str, plan: OrderPlan, params: Params, state_dir: Path) -> Broker:
    """The broker of a gated `kind` (see `wolfkit.broker.gate.broker_kind_for`): `sim` is the simulated account kept in
    `state_dir/sim_broker.json` (created like the plan's account on first use, saved after every
    change, so `execute` and `intraday` share it); `paper`/`live` are Alpaca with keys from the environment."""
    if kind == "sim":
        from wolfkit.broker.sim import SimBroker

        state = state_dir / "sim_broker.json"
        broker = SimBroker.load(state, clock=lambda: datetime.now(NY)) if state.is_file() \
            else sim_broker_for(plan, params, datetime.now(NY))
        broker.persist(state)
        return broker
    from wolfkit.broker.alpaca import AlpacaBroker

    return AlpacaBroker(paper=kind == "paper", timeout=params.execution.request_timeout)


def execute_orders_file(orders: Path, params: Params, broker_kind: str | None = None, live: bool = False,
                        ) -> tuple[ExecutionReport, Path]:
    """`wolfkit execute`: gate live trading, validate the file (nothing is sent when either is wrong),
    build the broker, execute, export `execution_log.json` beside the orders file."""
    from wolfkit.calendar import today_ny
    from wolfkit.orders import read_orders

    kind = broker_kind_for(params, broker_kind, live)
    plan = read_orders(orders, today=today_ny(), max_age_days=params.execution.max_plan_age_days)
    broker = open_broker(kind, plan, params, orders.parent)
    with Ledger(params.execution.ledger_path) as ledger:
        report = execute_plan(plan, broker, ledger, params, orders_path=str(orders))
        log = ledger.export_execution_log(plan.run_id, orders.parent / "execution_log.json",
                                          extra={"report": report.summary()})
    return report, log
