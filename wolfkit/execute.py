"""The batch executor: gets the whole pack into the broker, in priority order, exactly once.

Sizing every order from the same starting buying power fails when the open gaps up: the tail of
the pack is refused. `execute_plan` instead:

1. **Reconciles first, from the broker.** Before anything is sent, the broker lists every order of
   the run (client ids with the plan's prefix, `Broker.orders_by_prefix`); each planned order whose
   base id or any `-rN` attempt the broker holds adopts the highest attempt, *whatever the ledger
   says* — so a lost, moved or stale ledger never causes a resubmission. Intents the ledger holds
   that the list does not show are looked up by client id. Only then does it act.
2. **Works layer by layer**: every directional order is settled (accepted, resized and accepted, or
   final) before any maxdiff order spends buying power; maxdiff orders wait for a re-run when a
   directional outcome is still unknown. Concurrency is only within a layer.
3. **Sizes from fresh data** with a running buying-power budget in priority order: a market buy
   costs ask × (1 + `execution.market_buffer`), a limit buy its limit; a sell costs nothing unless it
   opens a short (then the bid). The tail is *shrunk* to what is left instead of being rejected;
   an order that cannot get one share is *skipped* with the reason.
4. **Submits** the orders that fit as planned on up to `execution.max_concurrency` threads, then the
   rest one by one in priority order against the broker's own buying power; against a broker that
   limits requests, inside a sliding-window rate limit (`execution.rate_limit_per_minute` requests in
   any 60 s, every request counted; the in-process simulator has no limit, so no gate).
5. **Handles every answer** through the one submission path (`wolfkit.broker.submission`):
   insufficient buying power (403) → resize to the `buying_power` the broker reported, at what it
   charges per share (`resize_after_403`), and resubmit under a NEW client id (attempt n+1), after
   looking the new id up (a 403 met while the head goes out concurrently waits for the sequential
   pass, so priority decides);
   duplicate client id (422) → the order exists: adopt it; unknown outcome (5xx, timeout, dropped
   connection) → look the id up, and retry with the SAME id only if absent; rate limited (429) →
   wait `retry_after` and retry the same id; any other refusal (wash trade, sub-penny price, …) →
   REJECTED with the broker's reason: a final state, never retried and not "unresolved".
6. **Knows the rules**: OPG only before 09:28 ET (or from 19:00), else sent as `day` with the reason
   logged; bracket legs (take-profit/stop-loss) attached where the plan has them (brackets must be
   day/gtc, so an OPG bracket is sent as day); an order whose opposite side is open on the symbol
   (or planned earlier in this batch) is skipped — Alpaca would refuse it as a potential wash trade.

Before any of that, under the run lock for the account and session (`wolfkit.runlock`: a second
executor waits or exits 2), the ledger's disk must have room and no other plan for the session may
be live on the account (`wolfkit.session_guard`): a second plan would double positions, so it exits 2
unless it is a deliberate replacement (`replace=True`, `wolfkit execute --replace`).

Everything goes to the ledger; `ExecutionReport` says, per planned order, its final state, the
quantity submitted vs planned, the attempts and the reason; its fill counts come from the ledger,
whose fills are keyed by the broker's identity, so re-runs never inflate them.
"""

from __future__ import annotations

import math
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, TypeVar

import pandas as pd

from wolfkit.broker.account import AccountKey, account_key, sim_account
from wolfkit.broker.base import (
    Broker,
    BrokerOrder,
    BrokerUnavailable,
    Fill,
    InsufficientBuyingPower,
    OrderRequest,
    Quote,
    RateLimited,
    opg_allowed,
)
from wolfkit.broker.gate import broker_kind_for
from wolfkit.broker.submission import (
    Outcome,
    SlidingWindowLimiter,
    backoff,
    charged_per_share,
    resize_after_403,
    retry_after,
    submit,
)
from wolfkit.calendar import NY
from wolfkit.config import Params, project_path
from wolfkit.domain import (
    Layer,
    OrderType,
    Side,
    TimeInForce,
    attempt_client_id,
    plan_attempt,
    round_to_tick,
)
from wolfkit.errors import BrokerError
from wolfkit.execution_report import ExecutionReport, order_result
from wolfkit.ledger import EventKind, Ledger, LedgerOrder, OrderState, Sizing
from wolfkit.orders import OrderPlan, PlannedOrder
from wolfkit.runlock import RunLock
from wolfkit.session_guard import check_plan_account, guard_session

if TYPE_CHECKING:
    from wolfkit.broker.sim import SimBroker
    from wolfkit.market_hours import SessionOverride

T = TypeVar("T")


SIM_STATE = "sim_broker.json"  # the simulated account beside the orders file (`open_broker`)

# The broker's order list is read from this long before the plan was created: the clock of the
# machine that built the plan and the broker's may disagree, and a day more costs one page at most.
LIST_LOOKBACK = timedelta(days=1)


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
    refused: bool = False  # the broker refused an earlier attempt for buying power (403)


class _Executor:
    def __init__(self, plan: OrderPlan, broker: Broker, ledger: Ledger, params: Params,
                 now: Callable[[], datetime], sleep: Callable[[float], None], timer: Callable[[], float]):
        self.plan, self.broker, self.ledger = plan, broker, ledger
        self.ex = params.execution
        self.now, self.sleep = now, sleep
        # gate only a broker that limits requests (Alpaca); the in-process simulator has no limit
        limited = broker.rate_limit_per_minute is not None
        self.gate = SlidingWindowLimiter(self.ex.rate_limit_per_minute if limited else None, timer)
        self.run = plan.run_id
        self.by_client: dict[str, str] = {}  # every client id used -> plan client id
        self.held_back: dict[str, str] = {}  # plan client id -> why it was not sent in this execution
        self._lock = threading.Lock()
        self.n_ibp = self.n_429 = self.n_unknown = 0

    # ---- broker calls through the gate --------------------------------------------------------

    def call(self, fn: Callable[..., T], *args: Any) -> T:
        """A read-only or idempotent broker call: rate-limited, retried on 429 and on unavailability."""
        last: Exception | None = None
        for i in range(self.ex.max_attempts):
            self.gate.acquire(self.sleep)
            try:
                return fn(*args)
            except RateLimited as e:
                self._count("n_429")
                self.ledger.record_event(self.run, EventKind.RATE_LIMITED, call=fn.__name__, retry_after=e.retry_after)
                self.sleep(retry_after(e))
                last = e
            except BrokerUnavailable as e:
                self.sleep(backoff(i))
                last = e
        raise BrokerError(f"{getattr(fn, '__name__', fn)}: broker unavailable after {self.ex.max_attempts} tries "
                          f"({last}); re-run `wolfkit execute` to continue (nothing is submitted twice)")

    def _count(self, name: str) -> None:
        with self._lock:
            setattr(self, name, getattr(self, name) + 1)

    def lookup(self, client_id: str) -> BrokerOrder | None:
        return self.call(self.broker.get_by_client_id, client_id)

    # ---- phase 1: reconcile -------------------------------------------------------------------

    def broker_orders(self) -> dict[str, dict[int, BrokerOrder]]:
        """The run's orders as the broker lists them (client ids with the plan's common prefix,
        submitted since a day before the plan was made), by planned client id and attempt number."""
        bases = {po.client_order_id for po in self.plan.orders}
        prefix = os.path.commonprefix(sorted(bases))
        made = self.plan.created_at
        since = (made if made.tzinfo else made.replace(tzinfo=NY)) - LIST_LOOKBACK
        held: dict[str, dict[int, BrokerOrder]] = {}
        for o in self.call(self.broker.orders_by_prefix, prefix, since):
            hit = plan_attempt(o.client_order_id, bases)
            if hit is not None:
                held.setdefault(hit[0], {})[hit[1]] = o
        return held

    def reconcile(self, po: PlannedOrder, row: LedgerOrder, held: dict[int, BrokerOrder]) -> LedgerOrder | None:
        """Bring the ledger row in line with the broker; None when the order still has to be sent.

        `held` is what the broker lists for this planned order (attempt -> order): its highest
        attempt is adopted whatever the ledger says, so a lost, moved or stale ledger never causes a
        resubmission, and the ledger's attempt becomes the broker's. Only when the broker lists
        nothing are the ledger's own intents looked up one by one (a list is a window; a look-up by
        client id is not), and only then may the order be sent.
        """
        base = po.client_order_id
        top = max(held, default=-1)
        for a in range(max(row.attempt, top), -1, -1):
            self.by_client[attempt_client_id(base, a)] = base
        if held:
            found = held[top]
            if (row.client_order_id, row.broker_order_id, row.state, row.filled_qty, row.attempt) != (
                    found.client_order_id, found.id, OrderState.of(found.status), found.filled_qty, top):
                self.ledger.record_ack(self.run, base, found, event=EventKind.RECONCILED, attempt=top)
            return self.ledger.order(self.run, base)
        if row.state in (OrderState.REJECTED, OrderState.SKIPPED):
            return row  # a deliberate final decision from an earlier execution
        if row.client_order_id is not None:  # an intent was written: the broker may hold any attempt
            for a in range(row.attempt, -1, -1):
                found = self.lookup(attempt_client_id(base, a))
                if found is not None:
                    self.ledger.record_ack(self.run, base, found, event=EventKind.RECONCILED, attempt=a)
                    return self.ledger.order(self.run, base)
        if row.state.at_broker:
            raise BrokerError(
                f"{po.symbol}: the ledger says order {row.client_order_id} was accepted (broker id "
                f"{row.broker_order_id}) on account {self.ledger.account} but that account does not know it: "
                "its orders were reset (a deleted or replaced sim_broker.json, a reset paper account) or the keys "
                "reach another account with the same number. Nothing more was sent. If the account was reset on "
                f"purpose, move the ledger {self.ledger.path} aside (or set execution.ledger_path to a new file) and "
                "run again; otherwise point APCA_API_BASE_URL and the keys at the account the plan ran on")
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
            other = po.side.opposite()
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

    def run_layer(self, pending: list[tuple[PlannedOrder, LedgerOrder]]) -> list[BaseException]:
        """Size and place one layer's orders: those that fit as planned concurrently, then — one by
        one, in priority order, against the broker's own buying power — the ones the budget cut and
        the ones the broker refused for buying power meanwhile. Returns the errors met."""
        jobs = self.plan_jobs(pending)
        cut = next((k for k, j in enumerate(jobs) if j.sizing != Sizing.AS_PLANNED), len(jobs))
        errors: list[BaseException] = []
        deferred: list[_Job] = []
        with ThreadPoolExecutor(max_workers=self.ex.max_concurrency, thread_name_prefix="wk-exec") as pool:
            for fut in [pool.submit(self.place, j, defer_resize=True) for j in jobs[:cut]]:
                exc = fut.exception()
                if exc is not None:
                    errors.append(exc)
                elif (later := fut.result()) is not None:
                    deferred.append(later)
        if errors:
            return errors
        try:
            for j in deferred + jobs[cut:]:  # deferred ones come from the head: they rank first
                self.place_tail(j)
        except Exception as e:
            errors.append(e)
        return errors

    def unsettled(self, layer: Layer) -> list[str]:
        """Symbols of `layer` whose outcome is still unknown (or that were never sent)."""
        return [r.symbol for r in self.ledger.orders_for_run(self.run)
                if r.layer == str(layer) and r.state in (OrderState.SUBMITTING, OrderState.PLANNED)]

    def hold_back(self, pending: list[tuple[PlannedOrder, LedgerOrder]], reason: str) -> None:
        for po, _ in pending:
            self.held_back[po.client_order_id] = reason
            self.ledger.record_event(self.run, EventKind.NOTE, po.client_order_id, None, reason=reason)

    def place(self, job: _Job, *, defer_resize: bool = False) -> _Job | None:
        """Work one planned order to a final state (accepted, rejected with a reason) or leave it
        SUBMITTING (outcome unknown after every try) for a re-run to reconcile.

        With `defer_resize` (the concurrent head), a 403 ends the work here and returns the job, its
        next attempt reserved: it is resized in the sequential pass, where priority decides.
        """
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
                return None
            except InsufficientBuyingPower as e:
                self._count("n_ibp")
                if defer_resize:
                    return job if self._defer(job, e) else None
                if not self._resize(job, e):
                    return None
            except _Unresolved:
                return None
        self.ledger.record_outcome(self.run, base, OrderState.REJECTED,
                                   f"still over budget after {self.ex.max_attempts} resized attempts")
        return None

    def _send(self, job: _Job, cid: str) -> None:
        """Submit under `cid` through the one submission path until the outcome is known and record
        it; InsufficientBuyingPower propagates (the caller resizes)."""
        base = job.po.client_order_id

        def rate_limited(e: RateLimited) -> None:
            self._count("n_429")
            self.ledger.record_event(self.run, EventKind.RATE_LIMITED, base, cid, retry_after=e.retry_after)

        def unknown(e: BrokerUnavailable) -> None:
            self._count("n_unknown")
            self.ledger.record_event(self.run, EventKind.UNKNOWN_OUTCOME, base, cid, error=str(e))

        got = submit(self.broker, self.request(job, cid), lookup=self.lookup, max_attempts=self.ex.max_attempts,
                     limiter=self.gate, sleep=self.sleep, on_rate_limited=rate_limited, on_unknown=unknown)
        if got.outcome == Outcome.ACCEPTED:
            self.ledger.record_ack(self.run, base, got.order)
            return
        if got.outcome == Outcome.ADOPTED:
            self.ledger.record_ack(self.run, base, got.order, event=EventKind.DUPLICATE_ADOPTED,
                                   reason=job.reason or "adopted the existing order with this client id")
            return
        if got.outcome == Outcome.RECONCILED:
            self.ledger.record_ack(self.run, base, got.order, event=EventKind.RECONCILED, reason=job.reason or None)
            return
        if got.outcome == Outcome.DUPLICATE_MISSING:
            raise BrokerError(f"{cid}: the broker says this client id exists but cannot find it")
        if got.outcome == Outcome.INSUFFICIENT_BP:
            raise got.error  # type: ignore[misc]
        if got.outcome == Outcome.REJECTED:
            self.ledger.record_outcome(self.run, base, OrderState.REJECTED, f"refused by the broker: {got.error}")
            raise _Unresolved
        self.ledger.record_event(self.run, EventKind.NOTE, base, cid,
                                 reason=f"outcome unknown after {self.ex.max_attempts} tries; a re-run reconciles")
        raise _Unresolved

    def place_tail(self, job: _Job) -> None:
        """A tail order (one the budget had to cut, or the broker refused for buying power in the
        head): re-fit it to the broker's buying power now that everything before it is in, then place
        it. Sequential, so priority decides who gets the rest."""
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
                job.reason = "; ".join(filter(None, [
                    job.reason if job.refused else "", f"shrunk from {job.po.qty} to {fit} to fit the buying power "
                    f"left (${bp:,.2f} at ${job.ref_price:,.2f}/share)"]))
                job.qty, job.sizing = fit, Sizing.RESIZED if job.refused else Sizing.SHRUNK
        self.place(job)

    def _account_bp(self) -> float:
        return self.call(self.broker.account).buying_power

    def _record_403(self, job: _Job, e: InsufficientBuyingPower, bp: float) -> None:
        base = job.po.client_order_id
        self.ledger.record_event(self.run, EventKind.INSUFFICIENT_BP, base, attempt_client_id(base, job.attempt),
                                 buying_power=bp, cost_basis=e.cost_basis, qty=job.qty)

    def _job_ref(self, job: _Job) -> float:
        """USD per share of this order as we priced it (the plan's estimate for a sell that closes)."""
        return job.ref_price if job.ref_price > 0 else job.po.est_price

    def _next_attempt(self, job: _Job) -> int | None:
        """The next attempt number, after looking its client id up (never resubmit without looking
        first); None when the broker already holds it (then adopted)."""
        base = job.po.client_order_id
        nxt = job.attempt + 1
        found = self.lookup(attempt_client_id(base, nxt))
        if found is not None:
            self.ledger.record_ack(self.run, base, found, event=EventKind.RECONCILED, attempt=nxt)
            return None
        return nxt

    def _defer(self, job: _Job, e: InsufficientBuyingPower) -> bool:
        """After a 403 in the concurrent head: reserve the next attempt for the sequential pass, priced
        at what the broker charges; False when the broker already holds that attempt."""
        bp = e.buying_power if e.buying_power is not None else self._account_bp()
        self._record_403(job, e, bp)
        ref = charged_per_share(e, job.qty, self._job_ref(job))
        nxt = self._next_attempt(job)
        if nxt is None:
            return False
        job.reason = (f"insufficient buying power (broker reported ${bp:,.2f}) while the orders before it went "
                      f"out: sent after them as attempt {nxt}")
        job.attempt, job.ref_price, job.refused = nxt, ref, True
        return True

    def _resize(self, job: _Job, e: InsufficientBuyingPower) -> bool:
        """After a 403: the next attempt sized to the reported buying power; False when none fits."""
        base = job.po.client_order_id
        r = resize_after_403(e, job.qty, self._job_ref(job), self._account_bp)
        self._record_403(job, e, r.buying_power)
        bp, ref, fit = r.buying_power, r.per_share, r.qty
        if fit < 1:
            self.ledger.record_outcome(
                self.run, base, OrderState.REJECTED,
                f"insufficient buying power: the broker reports ${bp:,.2f}, one share needs ${ref:,.2f}")
            return False
        nxt = self._next_attempt(job)
        if nxt is None:
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
        # fills no update brought (made while another process ran, or before a crash): the broker's
        # filled quantity per order is the truth, the ledger stores what it does not have yet
        for row in self.ledger.orders_for_run(self.run):
            if row.broker_order_id and row.avg_price and \
                    row.filled_qty > self.ledger.recorded_fill_qty(row.broker_order_id):
                self.ledger.record_fill(self.run, row.plan_client_id, Fill(
                    row.broker_order_id, row.client_order_id or row.plan_client_id, row.symbol, Side(row.side),
                    row.filled_qty, row.avg_price, self.now(), row.filled_qty))

    def _ack_status(self, base: str, order: BrokerOrder) -> None:
        self.ledger.record_ack(self.run, base, order, event=EventKind.STATUS)


class _Unresolved(Exception):
    """Internal: this order's work ends here (its state and reason are already in the ledger)."""


def execute_plan(
    plan: OrderPlan, broker: Broker, ledger: Ledger, params: Params, *,
    now: Callable[[], datetime] | None = None,
    sleep: Callable[[float], None] = time.sleep,
    timer: Callable[[], float] = time.monotonic,
    orders_path: str | None = None,
    replace: bool = False,
    account: AccountKey | None = None,
) -> ExecutionReport:
    """Execute `plan` on `broker`, recording everything in `ledger` (see the module docstring).

    `now` is the wall clock (OPG window), `sleep`/`timer` drive rate-limit waits and backoff; all are
    injectable so tests run instantly. Safe to call again on the same plan after a crash. Holds the
    run lock for the broker's account and the plan's session throughout; `replace` deliberately
    replaces another live plan of the session (`guard_session`). Everything is recorded under
    `account` (default: the account `ledger` is bound to, else the broker's own,
    `wolfkit.broker.account.account_key`), so the same plan on another account starts afresh instead
    of colliding with this one's rows.
    """
    clock = now or (lambda: datetime.now(NY))
    if account is not None or ledger.account is None:  # a view already bound to an account stays on it
        ledger = ledger.for_account(account or account_key(broker))
    with RunLock(ledger.path, getattr(broker, "name", "?"), plan.as_of, params.execution.lock_wait_seconds):
        ledger.check_room(params.execution.min_free_disk_mb)
        guard = _Executor(plan, broker, ledger, params, clock, sleep, timer)
        plan, notes = guard_session(plan, guard, replace, orders_path)
        if ledger.notice:
            notes.insert(0, ledger.notice)
        return _execute(plan, broker, ledger, params, clock, sleep, timer, orders_path, notes, guard.gate)


def _execute(plan: OrderPlan, broker: Broker, ledger: Ledger, params: Params, clock: Callable[[], datetime],
             sleep: Callable[[float], None], timer: Callable[[], float], orders_path: str | None,
             notes: list[str], gate: SlidingWindowLimiter) -> ExecutionReport:
    started = clock()
    ex = _Executor(plan, broker, ledger, params, clock, sleep, timer)
    ex.gate = gate  # one request budget for the whole execution, the session guard's calls included
    execution = ledger.start_run(plan.run_id, as_of=plan.as_of, broker=getattr(broker, "name", "?"),
                                 params_digest=plan.params_digest, orders_path=orders_path,
                                 equity=plan.account.equity)
    ordered = sorted(enumerate(plan.orders), key=lambda t: (t[1].priority, t[0]))
    planned = [po for _, po in ordered]
    ledger.register_orders(plan.run_id, planned)

    held = ex.broker_orders()  # before anything is sent: the broker's own list decides what exists
    pending: list[tuple[PlannedOrder, LedgerOrder]] = []
    for po in planned:
        row = ledger.order(plan.run_id, po.client_order_id)
        if ex.reconcile(po, row, held.get(po.client_order_id, {})) is None:
            pending.append((po, ledger.order(plan.run_id, po.client_order_id)))

    # layer by layer: every directional order is settled before a maxdiff order spends buying power
    errors: list[BaseException] = []
    for layer in (Layer.DIRECTIONAL, Layer.MAXDIFF):
        todo = [(po, row) for po, row in pending if po.layer == layer]
        if not todo:
            continue
        if errors:
            ex.hold_back(todo, "not sent: the run stopped on an error before the maxdiff layer")
            continue
        waiting = ex.unsettled(Layer.DIRECTIONAL) if layer == Layer.MAXDIFF else []
        if waiting:
            ex.hold_back(todo, f"not sent: the directional order(s) {', '.join(sorted(set(waiting)))} have no "
                               "known outcome yet, and maxdiff orders wait until every directional order is "
                               "settled; re-run `wolfkit execute` to reconcile and send them")
            continue
        errors += ex.run_layer(todo)
    ex.settle()

    acct = ex.call(broker.account)
    quotes = ex.call(broker.quotes, sorted({po.symbol for po in planned}))
    rows = {r.plan_client_id: r for r in ledger.orders_for_run(plan.run_id)}
    results = [order_result(rows[po.client_order_id], quotes, po, ex.held_back.get(po.client_order_id, ""))
               for po in planned]
    counts: dict[str, int] = {}
    for r in results:
        counts[str(r.state)] = counts.get(str(r.state), 0) + 1
    fills = ledger.fills_for_run(plan.run_id)
    report = ExecutionReport(
        run_id=plan.run_id, broker=getattr(broker, "name", "?"), execution=execution, equity=acct.equity,
        orders=results, insufficient_bp_rejections=ex.n_ibp, rate_limited=ex.n_429,
        unknown_outcomes=ex.n_unknown, started_at=started, finished_at=clock(), counts=counts,
        ledger_path=str(ledger.path),
        fills=len(fills), filled_shares=sum(f["qty"] for f in fills), notes=notes,
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
    except Exception:
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

        state = state_dir / SIM_STATE
        broker = SimBroker.load(state, clock=lambda: datetime.now(NY)) if state.is_file() \
            else sim_broker_for(plan, params, datetime.now(NY))
        broker.persist(state)
        return broker
    from wolfkit.broker.alpaca import AlpacaBroker

    return AlpacaBroker(paper=kind == "paper", timeout=params.execution.request_timeout)


def account_name(kind: str) -> str:
    """The account's name for a gated broker kind (what `broker.name` will be), known before connecting."""
    if kind == "sim":
        from wolfkit.broker.sim import SimBroker

        return SimBroker.name
    from wolfkit.broker.alpaca import broker_name

    return broker_name(paper=kind == "paper")


def broker_account(kind: str, broker: Broker, state_dir: Path, attempts: int = 5) -> AccountKey:
    """The account `open_broker(kind, …, state_dir)` trades: the simulated one in its state file, or the
    broker's own (Alpaca: its account number and trading URL, one read-only request, retried like every
    other on a 429 or an unknown outcome)."""
    if kind == "sim":
        return sim_account(state_dir / SIM_STATE)
    for i in range(attempts):
        try:
            return account_key(broker)
        except RateLimited as e:
            time.sleep(retry_after(e))
        except BrokerUnavailable:
            time.sleep(backoff(i))
    raise BrokerError(f"the broker did not say which account it is after {attempts} tries; run the same command "
                      "again (nothing was sent)")


def execute_orders_file(orders: Path, params: Params, broker_kind: str | None = None, live: bool = False,
                        replace: bool = False, override: SessionOverride | None = None,
                        ) -> tuple[ExecutionReport, Path]:
    """`wolfkit execute`: gate live trading, validate the file (nothing is sent when either is wrong),
    open and check the ledger, take the run lock (before the simulated account's state is read, so a
    second process sees the first one's orders), build the broker, execute, and export
    `execution_log.json` beside the orders file — from the ledger, under the lock, so it holds every
    process's work. A relative `execution.ledger_path` is the project's (`wolfkit.config.project_path`),
    whatever the working directory. The session rule (`wolfkit.market_hours.clear_to_send`) is the
    commands' to apply before calling this; a deliberate `override` of it is recorded on the run."""
    from wolfkit.orders import read_orders

    kind = broker_kind_for(params, broker_kind, live)
    plan = read_orders(orders)
    check_plan_account(orders, plan, kind)
    with Ledger(project_path(params.execution.ledger_path)) as ledger, \
            RunLock(ledger.path, account_name(kind), plan.as_of, params.execution.lock_wait_seconds):
        ledger.check_room(params.execution.min_free_disk_mb)
        broker = open_broker(kind, plan, params, orders.parent)
        account = broker_account(kind, broker, orders.parent, params.execution.max_attempts)
        book = ledger.for_account(account)
        if override is not None:
            book.record_event(plan.run_id, EventKind.SESSION_OVERRIDE, command="execute", orders=str(orders),
                              **override.detail())
        report = execute_plan(plan, broker, ledger, params, orders_path=str(orders), replace=replace,
                              account=account)
        log = book.export_execution_log(plan.run_id, orders.parent / "execution_log.json",
                                        extra={"report": report.summary()})
    return report, log
