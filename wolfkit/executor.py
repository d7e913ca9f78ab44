"""The batch executor's working parts: budget, sending loop, the answers of the broker, settling.

`wolfkit.execute.execute_plan` drives one `Executor` per execution:

1. **Reconciles first**, from the broker's own list of the run's orders (`wolfkit.reconciliation`).
2. **Works layer by layer** (`run_layer`): every directional order is settled (accepted, resized and
   accepted, or final) before any maxdiff order spends buying power; concurrency only within a layer.
3. **Sizes from fresh data** with a running buying-power budget in priority order (`plan_jobs`): a
   market buy costs ask × (1 + `execution.market_buffer`), a limit buy its limit; a sell costs nothing
   unless it opens a short (then the bid). The tail is *shrunk* to what is left instead of being
   rejected; an order that cannot get one share is *skipped* with the reason.
4. **Submits** the orders that fit as planned on up to `execution.max_concurrency` threads, then the
   rest one by one in priority order against the broker's own buying power; against a broker that
   limits requests, inside a sliding-window rate limit (`execution.rate_limit_per_minute` requests in
   any 60 s, every request counted; the in-process simulator has no limit, so no gate).
5. **Handles every answer** through the one submission path (`wolfkit.broker.submission`):
   insufficient buying power (403) → resize to the `buying_power` the broker reported, at what it
   charges per share (`resize_after_403`), and resubmit under a NEW client id (attempt n+1; a 403 met
   while the head goes out concurrently waits for the sequential pass, so priority decides);
   duplicate client id (422) → the order exists: adopt it; unknown outcome (5xx, timeout, dropped
   connection) → a fresh listing of the run's orders decides, and the SAME id is resent only if it
   is not listed; rate limited (429) → wait `retry_after` and retry the same id; any other refusal
   (wash trade, sub-penny price, …) → REJECTED with the broker's reason: final, never retried.
6. **Knows the rules**: OPG only before 09:28 ET (or from 19:00), else sent as `day` with the reason
   logged; bracket legs attached where the plan has them (an OPG bracket is sent as day); an order
   whose opposite side is open on the symbol (or planned earlier in this batch) is skipped — Alpaca
   would refuse it as a potential wash trade.

Requests: on a clean run, one per order plus a handful per execution — the listing, the account,
one quote request for every planned symbol, the open orders (shared with the session guard's read),
positions only when a sell or another live plan needs them, and one read of the order updates.
"""

from __future__ import annotations

import math
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Callable, Sequence, TypeVar, cast

from wolfkit.broker.base import (
    AccountInfo,
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
from wolfkit.broker.submission import (
    Outcome,
    SlidingWindowLimiter,
    Submitted,
    backoff,
    charged_per_share,
    resize_after_403,
    retry_after,
    submit,
)
from wolfkit.calendar import NY
from wolfkit.config import Params
from wolfkit.domain import Layer, OrderType, Side, TimeInForce, attempt_client_id, round_to_tick
from wolfkit.errors import BrokerError
from wolfkit.ledger import EventKind, Ledger, LedgerOrder, OrderState, Sizing
from wolfkit.orders import OrderPlan, PlannedOrder
from wolfkit.reconciliation import RunListing, ledger_row, reconcile

T = TypeVar("T")


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


class _Unresolved(Exception):
    """Internal: this order's work ends here (its state and reason are already in the ledger)."""


class Executor:
    """One execution of a plan on a broker, recorded in a ledger (see the module docstring).

    `now` is the wall clock (OPG window), `sleep`/`timer` drive rate-limit waits and backoff.
    """

    def __init__(self, plan: OrderPlan, broker: Broker, ledger: Ledger, params: Params,
                 now: Callable[[], datetime], sleep: Callable[[float], None], timer: Callable[[], float]):
        self.plan, self.broker, self.ledger = plan, broker, ledger
        self.ex = params.execution
        self.now, self.sleep = now, sleep
        # gate only a broker that limits requests (Alpaca); the in-process simulator has no limit
        limited = broker.rate_limit_per_minute is not None
        self.gate = SlidingWindowLimiter(self.ex.rate_limit_per_minute if limited else None, timer)
        self.run = plan.run_id
        self.listing = RunListing(plan, broker, self.call)
        self.by_client: dict[str, str] = {}  # every client id used -> plan client id
        self.held_back: dict[str, str] = {}  # plan client id -> why it was not sent in this execution
        self.account_seen: AccountInfo | None = None  # the account as the budget first read it
        self._quotes: dict[str, Quote] = {}
        self._quoted: set[str] = set()  # symbols asked for (the broker may have no quote for some)
        self._reads: dict[str, Any] = {}  # open orders / positions, until something is sent
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

    def snapshot(self, fn: Callable[[], T]) -> T:
        """A read of the account's state (open orders, positions) answered from the previous read of
        the same kind while nothing has been sent since: the session guard's read serves the budget."""
        key = getattr(fn, "__name__", repr(fn))
        with self._lock:
            if key in self._reads:
                return cast(T, self._reads[key])
        got = self.call(fn)
        with self._lock:
            self._reads[key] = got
        return got

    def remember(self, fn: Callable[[], T], value: T) -> None:
        """Seed `snapshot` with a read just made elsewhere (the account read that named the account)."""
        with self._lock:
            self._reads[getattr(fn, "__name__", repr(fn))] = value

    def forget(self) -> None:
        """Something was sent or cancelled: the next `snapshot` reads the broker again."""
        with self._lock:
            self._reads.clear()

    def quotes(self, symbols: Sequence[str]) -> dict[str, Quote]:
        """Quotes for `symbols`, read once per execution (one request for every symbol not asked yet)."""
        missing = sorted(set(symbols) - self._quoted)
        if missing:
            got = self.call(self.broker.quotes, missing)
            with self._lock:
                self._quotes.update(got)
                self._quoted.update(missing)
        return {s: self._quotes[s] for s in symbols if s in self._quotes}

    def _count(self, name: str) -> None:
        with self._lock:
            setattr(self, name, getattr(self, name) + 1)

    def lookup(self, client_id: str) -> BrokerOrder | None:
        """The order with this client id, asked by id (exact; one request)."""
        return self.call(self.broker.get_by_client_id, client_id)

    # ---- phase 1: reconcile -------------------------------------------------------------------

    def reconcile(self, planned: list[PlannedOrder]) -> list[tuple[PlannedOrder, LedgerOrder]]:
        """List the run's orders once and adopt what the broker holds; the orders still to be sent."""
        self.listing.refresh()
        held = self.listing.held()
        pending = []
        for po in planned:
            base = po.client_order_id
            row = ledger_row(self.ledger, self.run, base)
            top = max(held.get(base, {}), default=-1)
            for a in range(max(row.attempt, top), -1, -1):
                self.by_client[attempt_client_id(base, a)] = base
            if reconcile(self.ledger, self.run, po, row, held.get(base, {}), self.lookup) is None:
                pending.append((po, ledger_row(self.ledger, self.run, base)))
        return pending

    # ---- phase 2: budget ----------------------------------------------------------------------

    def plan_jobs(self, pending: list[tuple[PlannedOrder, LedgerOrder]]) -> list[_Job]:
        """Decide quantities in priority order with a running budget; record skips and shrinks."""
        acct = self.snapshot(self.broker.account)  # the guard's read when nothing was sent since
        self.account_seen = self.account_seen or acct
        budget = acct.buying_power
        quotes = self.quotes(sorted({po.symbol for po in self.plan.orders}))
        sells = any(po.side == Side.SELL for po, _ in pending)
        held = {p.symbol: p.qty for p in self.snapshot(self.broker.positions)} if sells else {}
        open_sides: dict[str, set[Side]] = {}
        for o in self.snapshot(self.broker.open_orders):
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
            tif, why_tif = self._tif(po, now)
            if why_tif:
                self.ledger.record_event(self.run, EventKind.FALLBACK, base, None, reason=why_tif)
            ref = self._ref_price(po, quotes.get(po.symbol), held)
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
            if po.type == OrderType.LIMIT and po.limit_price is not None:
                return float(po.limit_price)
            return None if q is None else q.ask * (1 + self.ex.market_buffer)
        if held.get(po.symbol, 0) >= po.qty:
            return 0.0  # closes (part of) a long: no buying power needed
        if po.type == OrderType.LIMIT and po.limit_price is not None:
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
            self.forget()
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
        it; InsufficientBuyingPower propagates (the caller resizes). After an unknown outcome the
        run's listing decides whether the broker holds `cid` (`RunListing.find`)."""
        base = job.po.client_order_id

        def rate_limited(e: RateLimited) -> None:
            self._count("n_429")
            self.ledger.record_event(self.run, EventKind.RATE_LIMITED, base, cid, retry_after=e.retry_after)

        def unknown(e: BrokerUnavailable) -> None:
            self._count("n_unknown")
            self.ledger.record_event(self.run, EventKind.UNKNOWN_OUTCOME, base, cid, error=str(e))

        got = submit(self.broker, self.request(job, cid), lookup=self.listing.find,
                     max_attempts=self.ex.max_attempts, limiter=self.gate, sleep=self.sleep,
                     on_rate_limited=rate_limited, on_unknown=unknown)
        if got.outcome == Outcome.DUPLICATE_MISSING:
            # the broker says the id exists and the listing does not show it (outside its window, or
            # not listed yet): ask for it by id, exactly
            found = self.lookup(cid)
            if found is None:
                raise BrokerError(f"{cid}: the broker says this client id exists but cannot find it")
            got = Submitted(Outcome.ADOPTED, found)
        acks = {Outcome.ACCEPTED: (EventKind.ACK, None),
                Outcome.ADOPTED: (EventKind.DUPLICATE_ADOPTED, job.reason or "adopted the existing order with this "
                                                                             "client id"),
                Outcome.RECONCILED: (EventKind.RECONCILED, job.reason or None)}
        if got.order is not None and got.outcome in acks:
            kind, why = acks[got.outcome]
            self.ledger.record_ack(self.run, base, got.order, event=kind, reason=why)
            return
        if got.outcome == Outcome.INSUFFICIENT_BP and isinstance(got.error, InsufficientBuyingPower):
            raise got.error
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
        """The next attempt number; None when the latest listing already shows it (then adopted).

        No request: the listing at the start adopted the highest attempt the broker held, and an
        attempt id the broker holds anyway is answered 422 when sent, and adopted.
        """
        base = job.po.client_order_id
        nxt = job.attempt + 1
        found = self.listing.known(attempt_client_id(base, nxt))
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
            row = ledger_row(self.ledger, self.run, base)
            if row.client_order_id == order.client_order_id and (row.state, row.filled_qty) != (
                    OrderState.of(order.status), order.filled_qty):
                self.ledger.record_ack(self.run, base, order, event=EventKind.STATUS)
        # fills no update brought (made while another process ran, or before a crash): the broker's
        # filled quantity per order is the truth, the ledger stores what it does not have yet
        for row in self.ledger.orders_for_run(self.run):
            if row.broker_order_id and row.avg_price and \
                    row.filled_qty > self.ledger.recorded_fill_qty(row.broker_order_id):
                self.ledger.record_fill(self.run, row.plan_client_id, Fill(
                    row.broker_order_id, row.client_order_id or row.plan_client_id, row.symbol, Side(row.side),
                    row.filled_qty, row.avg_price, self.now(), row.filled_qty))
