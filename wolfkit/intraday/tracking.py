"""Order tracking for the intraday engine: make the broker match the legs, and the legs match the broker.

Every order goes out through the one submission path (`wolfkit.broker.submission`): a submit or a
replace waits on 429, looks its client id up after any unknown outcome before anything is resent,
adopts the order on a duplicate id, and a directional entry refused for buying power is resized by
the executor's rule (`resize_after_403`). Client ids are deterministic (run, leg, attempt); an id is
recorded in the leg (`pending`) *before* it is sent, and `reconcile` looks every such id up, so a
kill at any point followed by a resume submits nothing twice and loses no fill.

Fills are booked as deltas of each broker order's cumulative filled quantity (idempotent: an update
seen twice, or a look-up after a stream update, books nothing more).
"""

from __future__ import annotations

import logging
import os
from datetime import datetime, time, timedelta
from typing import Callable

from wolfkit.broker.base import (
    Broker,
    BrokerError,
    BrokerOrder,
    Fill,
    InsufficientBuyingPower,
    OrderRequest,
    OrderStatus,
    OrderUpdate,
)
from wolfkit.broker.submission import Outcome, Submitted, deliver, resize_after_403
from wolfkit.calendar import NY
from wolfkit.config import Params
from wolfkit.domain import (
    ClientOrderId,
    Layer,
    OrderType,
    Side,
    TimeInForce,
    attempt_number,
    plan_attempt,
    round_to_tick,
)
from wolfkit.intraday.state import (
    EngineState,
    FillRecord,
    Leg,
    LegEvent,
    LegState,
    Purpose,
)
from wolfkit.ledger import EventKind, Ledger

log = logging.getLogger(__name__)

# The executor may have sent a plan's orders up to a few days before its session (an OPG order on
# Friday evening for Monday); the broker's order list is read from this long before the session.
PLAN_LOOKBACK = timedelta(days=7)


class OrderTracker:
    """Books, adopts, reconciles, sends, replaces and cancels the orders of an `EngineState`'s legs."""

    def __init__(self, params: Params, state: EngineState, broker: Broker, ledger: Ledger | None,
                 sleep: Callable[[float], None] | None = None):
        self.params, self.state, self.broker, self.ledger = params, state, broker, ledger
        self.sleep = sleep
        self.fills: list[FillRecord] = []
        self._plan_ids: dict[str, str] | None = None  # plan id -> the client id the broker holds for it
        self._by_order: dict[str, Leg] = {}
        self._by_cid: dict[str, Leg] = {}
        for leg in state.legs():
            self._track(leg)

    # ---- index --------------------------------------------------------------------------------

    def _track(self, leg: Leg) -> None:
        if leg.order_id:
            self._by_order[leg.order_id] = leg
        if leg.client_id:
            self._by_cid[leg.client_id] = leg
        for cid in leg.pending:
            self._by_cid[cid] = leg

    def _reindex_orders(self) -> None:
        self._by_order = {leg.order_id: leg for leg in self.state.legs() if leg.order_id}

    def _next_cid(self, leg: Leg) -> str:
        cid = str(ClientOrderId.for_order(self.state.run_id, leg.key, leg.symbol, leg.layer).retry(leg.seq))
        leg.seq += 1
        leg.pending.append(cid)
        self._by_cid[cid] = leg
        return cid

    # ---- booking ------------------------------------------------------------------------------

    def book(self, leg: Leg, order: BrokerOrder) -> None:
        """Bring `leg` up to date with the broker's view of one of its orders (fills as deltas, idempotent)."""
        seen_q, seen_v = leg.booked.get(order.id, (0, 0.0))
        dq = order.filled_qty - seen_q
        if dq > 0:  # any order of the leg, current or replaced: each fill is booked exactly once
            total_value = (order.filled_avg_price or 0.0) * order.filled_qty
            leg.booked[order.id] = (order.filled_qty, total_value)
            self._on_fill(leg, order, dq, (total_value - seen_v) / dq)
        if order.id != leg.order_id:
            return  # an older order of this leg: its status no longer decides the leg's
        if order.status.is_final and order.status != OrderStatus.REPLACED:
            # a replacement is adopted by `_replace`; any other end frees the leg
            leg.move(LegEvent.COMPLETED if leg.filled_qty >= leg.target_qty else LegEvent.ENDED)
            leg.order_id, leg.order_qty, leg.order_limit = None, 0, None

    def _on_fill(self, leg: Leg, order: BrokerOrder, qty: int, price: float) -> None:
        leg.filled_qty += qty
        leg.filled_value += qty * price
        self.fills.append(FillRecord(self.state.now, leg.layer, leg.purpose, leg.symbol, leg.side, qty, price,
                                     order.client_order_id))
        if self.ledger is not None:
            at = self.state.now or datetime.now().astimezone()
            self.ledger.record_fill(self.state.run_id, leg.key, Fill(
                order.id, order.client_order_id, leg.symbol, leg.side, qty, round(price, 4),
                at, order.filled_qty))
        if leg.purpose != Purpose.ENTRY:
            self._realize(leg, qty, price)

    def _realize(self, exit_leg: Leg, qty: int, price: float) -> None:
        """Realised P/L of an exit fill against its layer's entry average."""
        entry = self._entry_for(exit_leg)
        sign = 1.0 if entry.side == Side.BUY else -1.0
        pnl = sign * (price - entry.avg_price) * qty
        self.state.realized[str(exit_leg.layer)] = self.state.realized.get(str(exit_leg.layer), 0.0) + pnl

    def _entry_for(self, exit_leg: Leg) -> Leg:
        if exit_leg.layer == Layer.DIRECTIONAL:
            return next(d.entry for d in self.state.directional if any(x is exit_leg for x in d.exits))
        return next(s.entry for s in self.state.slots if s.exit is exit_leg)

    # ---- the broker's side of things ------------------------------------------------------------

    def on_update(self, update: OrderUpdate) -> None:
        """One trade update (stream or poll): book fills and status changes of our orders; ignore others."""
        o = update.order
        leg = self._by_order.get(o.id) or self._by_cid.get(o.client_order_id)
        if leg is None:
            return
        ours = o.client_order_id in leg.pending or (o.replaces is not None and o.replaces == leg.order_id)
        if ours and leg.client_id != o.client_order_id:  # sent without a known answer, or our replacement
            self.adopt(leg, o)
        self.book(leg, o)

    def adopt(self, leg: Leg, order: BrokerOrder) -> None:
        """Make `order` (one we sent, found by its client id) the leg's current order."""
        if order.client_order_id in leg.pending:
            leg.pending.remove(order.client_order_id)
        leg.order_id, leg.client_id, leg.order_qty = order.id, order.client_order_id, order.qty
        leg.order_limit, leg.order_stop = order.limit_price, order.stop_price
        leg.seq = max(leg.seq, attempt_number(order.client_order_id) + 1)  # never issue an id the broker has
        if order.legs and leg.layer == Layer.DIRECTIONAL and leg.purpose == Purpose.ENTRY:
            self._adopt_bracket(leg, order)
        if order.status.is_open:
            leg.move(LegEvent.WORKING)
        self._track(leg)

    def _adopt_bracket(self, entry: Leg, order: BrokerOrder) -> None:
        """The entry went out as a bracket (by us or the executor): its take-profit and stop-loss legs
        are this position's exits, worked by the broker."""
        d = next(x for x in self.state.directional if x.entry is entry)
        if d.bracket:
            return
        d.bracket = True
        for bl in order.legs:
            purpose = Purpose.TAKE_PROFIT if bl.stop_price is None else Purpose.STOP
            kind = "tp" if purpose == Purpose.TAKE_PROFIT else "sl"  # never ends like the engine's own "-stop"
            leg = Leg.new(f"d-{d.symbol}-{d.side}-bracket-{kind}", d.symbol, bl.side, Layer.DIRECTIONAL,
                          purpose, bl.type, bl.qty, bl.limit_price)
            leg.stop_price = bl.stop_price
            if purpose == Purpose.STOP and bl.stop_price is not None and d.stop_loss is not None:
                leg.stop_price = max(bl.stop_price, round_to_tick(d.stop_loss))  # a trail may have risen already
            d.exits.append(leg)
            self.adopt(leg, bl)

    def reconcile_legs(self) -> None:
        """REST reconciliation (after a restart, and on a timer while streaming): look up every order we know or
        may have sent, book what happened while we were not listening."""
        for leg in self.state.legs():
            self.settle_pending(leg)
            if leg.client_id and leg.state == LegState.OPEN:
                o = self.broker.get_by_client_id(leg.client_id)
                if o is not None:
                    self.book(leg, o)
                    if o.replaced_by:  # replaced by us before the crash: follow the chain
                        nxt = next((x for x in self.broker.open_orders() if x.id == o.replaced_by), None)
                        if nxt is not None:
                            self.adopt(leg, nxt)
        self._reindex_orders()

    def settle_pending(self, leg: Leg) -> None:
        """Look up every id of `leg` sent without a known answer (a submit or a replace met a 5xx, a
        timeout, a 504 after acceptance or a 429) and adopt what the broker holds, so the leg points
        at the live order; an id the broker does not hold is dropped. A look-up that fails leaves its
        id pending and raises: the next step (or `reconcile`) looks again — nothing is sent meanwhile."""
        for cid in list(leg.pending):
            o = self.broker.get_by_client_id(cid)
            if o is None:
                leg.pending.remove(cid)
                continue
            self._retire_current(leg)
            self.adopt(leg, o)  # takes the id off `pending`
            self.book(leg, o)

    def _retire_current(self, leg: Leg) -> None:
        """Book the final fills of a leg's current order before a newer one takes over."""
        if leg.client_id and leg.order_id:
            o = self.broker.get_by_client_id(leg.client_id)
            if o is not None:
                self.book(leg, o)

    def drain(self) -> None:
        """Polling mode: fetch and book the broker's updates since the last call."""
        for u in self.broker.updates():
            self.on_update(u)

    def planned_order(self, plan_id: str) -> BrokerOrder | None:
        """The order the executor placed for a plan id, as the broker has it now: its highest attempt
        (`-rN` after a 403 resize), found in one listing of the run's orders (read on first use, as the
        executor reconciles), then read fresh by client id."""
        if self._plan_ids is None:
            bases = {leg.client_id for leg in self.state.legs() if leg.seq == 0 and leg.client_id}
            bases |= set(self.state.planned_ids.values())
            since = datetime.combine(self.state.session, time(0), tzinfo=NY) - PLAN_LOOKBACK
            found: dict[str, tuple[int, str]] = {}
            listed = self.broker.orders_by_prefix(os.path.commonprefix(sorted(bases)), since) if bases else []
            for o in listed:
                hit = plan_attempt(o.client_order_id, bases)
                if hit is not None and hit[1] >= found.get(hit[0], (-1, ""))[0]:
                    found[hit[0]] = (hit[1], o.client_order_id)
            self._plan_ids = {b: cid for b, (_, cid) in found.items()}
        return self.broker.get_by_client_id(self._plan_ids.get(plan_id, plan_id))

    def cancel_unadopted(self) -> None:
        """Opening maxdiff orders of the plan that no slot took over are cancelled (never left unmanaged)."""
        for cid in self.state.planned_ids.values():
            o = self.planned_order(cid)
            if o is not None and o.status.is_open:
                try:
                    self.broker.cancel(o.id)
                except BrokerError as e:
                    log.warning("could not cancel the unadopted opening order %s: %s", cid, e)
        self.state.planned_ids.clear()
        self.state.planned_checked = True

    # ---- sending ------------------------------------------------------------------------------

    def send(self) -> None:
        """Make the broker match the legs: cancels first, then replacements, then new orders.

        The wash-trade rule holds for every order the engine places, new or replaced: none goes out while
        an opposite-side order of another leg is open on its symbol (any layer; a bracket's held exit legs
        count, they work once their entry fills). Such a leg skips the step and retries at the next one,
        its reason in `Leg.waiting` and the ledger (`skipped`). A maxdiff entry found beside an
        opposite-side order (a bracket's exits went live after the entry filled) is cancelled and waits:
        the directional layer comes first."""
        legs = self.state.legs()
        for leg in legs:  # cancels: open legs that want nothing more
            if leg.state == LegState.OPEN and leg.target_qty <= leg.filled_qty:
                self.cancel(leg)
        group = self._order_groups()
        by_symbol: dict[str, list[Leg]] = {}
        for leg in legs:
            by_symbol.setdefault(leg.symbol, []).append(leg)

        def blocker(leg: Leg) -> Leg | None:
            """An open opposite-side order of another order on the leg's symbol (a wash-trade risk)."""
            return next((x for x in by_symbol.get(leg.symbol, ()) if x.state == LegState.OPEN
                         and x.side != leg.side and group.get(x.key, x.key) != group.get(leg.key, leg.key)), None)

        for leg in legs:  # a maxdiff entry never sits beside an opposite-side order: it yields
            if leg.layer == Layer.MAXDIFF and leg.purpose == Purpose.ENTRY and leg.state == LegState.OPEN:
                other = blocker(leg)
                if other is not None and (other.layer, other.purpose) != (Layer.MAXDIFF, Purpose.ENTRY):
                    self._wait(leg, other, "cancelled")
                    self.cancel(leg)
        for leg in legs:  # replacements (qty or price changed)
            if leg.state != LegState.OPEN:
                continue
            want = leg.target_qty - leg.filled_qty
            if (want != leg.working_qty or (leg.type == OrderType.LIMIT and leg.limit_price != leg.order_limit)
                    or (leg.stop_price is not None and leg.stop_price != leg.order_stop)):
                if want <= 0:
                    self.cancel(leg)
                    continue
                other = blocker(leg)
                if other is not None:
                    self._wait(leg, other, "replacement")
                    continue
                leg.waiting = None
                self._replace(leg, want)
        for leg in self._priority(legs):  # submissions: directional, maxdiff exits, maxdiff entries by rank
            if leg.state != LegState.IDLE or leg.target_qty <= leg.filled_qty:
                continue
            other = blocker(leg)
            if other is not None:
                self._wait(leg, other, "order")
                if self._planned(leg) and self._adopt_planned(leg) and leg.state == LegState.OPEN:
                    self.cancel(leg)  # the executor's order sits beside the opposite one: never left unmanaged
                continue
            leg.waiting = None
            if self._submit(leg):
                if leg.layer == Layer.DIRECTIONAL and leg.purpose == Purpose.ENTRY:  # a bracket's legs came along
                    d = next(x for x in self.state.directional if x.entry is leg)
                    by_symbol[leg.symbol] = [*by_symbol[leg.symbol], *(x for x in d.exits
                                                                        if x not in by_symbol[leg.symbol])]
                    group.update(self._order_groups())
                if leg.layer == Layer.MAXDIFF and leg.purpose == Purpose.ENTRY:
                    slot = next(x for x in self.state.slots if x.entry is leg)
                    if not slot.started:
                        slot.started, slot.activated_at = True, self.state.now or slot.activated_at

    def _order_groups(self) -> dict[str, str]:
        """Leg key -> the order it belongs to: a bracket's exit legs are one order with their entry (the
        broker holds them together; they never count as a wash trade against each other)."""
        return {x.key: d.entry.key for d in self.state.directional if d.bracket
                for x in d.exits if "-bracket-" in x.key}

    def _wait(self, leg: Leg, other: Leg, what: str) -> None:
        """The leg skips this step (wash-trade rule); the reason goes to its state and, once, to the ledger."""
        reason = (f"wash-trade rule: {what} waits, {other.side} order {other.key} is open on {leg.symbol}")
        if leg.waiting != reason:
            leg.waiting = reason
            self._log(EventKind.SKIPPED, leg, leg.client_id, reason=reason)

    def _priority(self, legs: list[Leg]) -> list[Leg]:
        rank = {s.entry.key: min(s.members, default=10**9) for s in self.state.slots}

        def key(leg: Leg) -> tuple[int, int]:
            if leg.layer == Layer.DIRECTIONAL:
                return (0, 0)
            return (1, 0) if leg.purpose == Purpose.EXIT else (2, rank.get(leg.key, 10**9))

        return sorted(legs, key=key)

    def _deliver(self, leg: Leg, cid: str, send: Callable[[], BrokerOrder], **kw: object) -> Submitted:
        """Through the one submission path, with every 429 and unknown outcome in the ledger's trail."""
        return deliver(
            send, cid, lookup=self.broker.get_by_client_id, max_attempts=self.params.execution.max_attempts,
            sleep=self.sleep,
            on_rate_limited=lambda e: self._log(EventKind.RATE_LIMITED, leg, cid, retry_after=e.retry_after),
            on_unknown=lambda e: self._log(EventKind.UNKNOWN_OUTCOME, leg, cid, error=str(e)), **kw)  # type: ignore[arg-type]

    @staticmethod
    def _planned(leg: Leg) -> bool:
        """An entry whose first id is the plan's: the executor may have sent it (or a resize of it)."""
        return leg.purpose == Purpose.ENTRY and leg.seq == 0 and leg.client_id is not None

    def _adopt_planned(self, leg: Leg) -> bool:
        """Adopt the executor's order of a planned entry when the broker holds one (True)."""
        assert leg.client_id is not None
        existing = self.planned_order(leg.client_id)
        if existing is None:
            return False
        leg.seq = 1  # the planned id is used: any later order of this leg gets a fresh one
        self.adopt(leg, existing)
        self.book(leg, existing)
        return True

    def _submit(self, leg: Leg) -> bool:
        qty = leg.target_qty - leg.filled_qty
        if self._planned(leg) and leg.client_id is not None:
            if self._adopt_planned(leg):
                return leg.state == LegState.OPEN
            cid = leg.client_id
            leg.seq = 1
            leg.pending.append(cid)
        else:
            cid = self._next_cid(leg)
        tp = sl = None
        if leg.layer == Layer.DIRECTIONAL and leg.purpose == Purpose.ENTRY:  # as the executor sends it
            d = next(x for x in self.state.directional if x.entry is leg)
            tp = round_to_tick(d.take_profit) if d.take_profit is not None else None
            sl = round_to_tick(d.stop_loss) if d.stop_loss is not None else None
        req = OrderRequest(symbol=leg.symbol, qty=qty, side=leg.side, type=leg.type,
                           time_in_force=TimeInForce.DAY, client_order_id=cid,
                           limit_price=leg.limit_price if leg.type == OrderType.LIMIT else None,
                           take_profit=tp, stop_loss=sl)
        self._log(EventKind.INTENT, leg, cid, action="submit", qty=qty, type=leg.type, limit_price=req.limit_price,
                  take_profit=tp, stop_loss=sl)
        got = self._deliver(leg, cid, lambda: self.broker.submit(req))
        if got.outcome in (Outcome.UNKNOWN, Outcome.DUPLICATE_MISSING):
            return False  # the id stays pending: the next step looks it up before anything else is sent
        if got.outcome in (Outcome.INSUFFICIENT_BP, Outcome.REJECTED):
            self._refused(leg, cid, qty, got.error)
            return False
        if got.outcome == Outcome.ADOPTED:
            self._log(EventKind.DUPLICATE_ADOPTED, leg, cid, broker_order_id=got.order.id)  # type: ignore[union-attr]
        order = got.order
        assert order is not None
        self._log(EventKind.ACK, leg, cid, broker_order_id=order.id, status=order.status)
        self.adopt(leg, order)
        self.book(leg, order)
        return leg.state == LegState.OPEN

    def _refused(self, leg: Leg, cid: str, qty: int, e: Exception | None) -> None:
        """A submit the broker refused: an exit retries next step, a maxdiff entry waits for sizing, a
        directional entry refused for buying power is resized by the executor's rule (new id next step)."""
        leg.pending.remove(cid)
        self._log(EventKind.REJECTED, leg, cid, reason=str(e))
        log.warning("order %s %s %s x%d refused: %s", cid, leg.symbol, leg.side, qty, e)
        if leg.purpose != Purpose.ENTRY:
            return  # an exit is retried at the next step: a position is never left behind
        if leg.layer == Layer.MAXDIFF:
            leg.target_qty = leg.filled_qty  # the plan waits; sizing tries again at the next step
        elif isinstance(e, InsufficientBuyingPower):
            fit = resize_after_403(e, qty, leg.limit_price or leg.ref_price,
                                   lambda: self.broker.account().buying_power)
            leg.target_qty = leg.filled_qty + fit.qty
        else:
            leg.target_qty = leg.filled_qty  # refused for good (tick, symbol, …): not resent
        if leg.target_qty <= leg.filled_qty:
            leg.move(LegEvent.COMPLETED)

    def _log(self, kind: EventKind, leg: Leg, cid: str | None, **detail: object) -> None:
        """The ledger's append-only event trail of every order the engine sends, replaces or cancels."""
        if self.ledger is not None:
            self.ledger.record_event(self.state.run_id, kind, leg.key, cid, layer=leg.layer, purpose=leg.purpose,
                                     symbol=leg.symbol, side=leg.side, at=self.state.now, **detail)

    def _replace(self, leg: Leg, qty: int) -> None:
        """Replace the leg's order under a new client id — a submit like any other (`deliver`): after an
        unknown outcome the new id is looked up and adopted when the broker holds it, so the leg
        always points at the live order; a refusal leaves the old order standing."""
        assert leg.order_id is not None
        cid = self._next_cid(leg)  # pending until the answer is known
        self._log(EventKind.INTENT, leg, cid, action="replace", replaces=leg.client_id, qty=qty,
                  limit_price=leg.limit_price, stop_price=leg.stop_price)
        order_id, limit = leg.order_id, leg.limit_price if leg.type == OrderType.LIMIT else None
        # Alpaca's qty is the new total, fills included; a bracket leg's qty follows its entry (not sent)
        total = None if "-bracket-" in leg.key else qty + leg.seen_qty
        got = self._deliver(leg, cid, lambda: self.broker.replace(
            order_id, qty=total, limit_price=limit, stop_price=leg.stop_price, client_order_id=cid),
            final=(BrokerError,))
        if got.outcome in (Outcome.UNKNOWN, Outcome.DUPLICATE_MISSING):
            log.info("replace of %s: no known answer; %s stays pending", leg.client_id, cid)
            self.settle_pending(leg)  # adopts the replacement if it exists by now; raises if it cannot look
            if leg.client_id != cid:
                self._refresh(leg)  # not replaced: the old order stands (it may have filled meanwhile)
            return
        if got.outcome in (Outcome.INSUFFICIENT_BP, Outcome.REJECTED):  # the order filled or ended, …: it stands
            leg.pending.remove(cid)
            self._log(EventKind.REJECTED, leg, cid, reason=str(got.error))
            log.info("replace of %s failed (%s); re-reading it", leg.client_id, got.error)
            self._refresh(leg)
            return
        order = got.order
        assert order is not None
        self._log(EventKind.ACK, leg, cid, broker_order_id=order.id, status=order.status)
        old = self.broker.get_by_client_id(leg.client_id) if leg.client_id else None
        if old is not None:
            self.book(leg, old)
        self._by_order.pop(leg.order_id or "", None)
        self.adopt(leg, order)
        self.book(leg, order)

    def cancel(self, leg: Leg) -> None:
        """Ask the broker to cancel the leg's order; the leg stays OPEN until the broker says it ended."""
        assert leg.order_id is not None
        self._log(EventKind.STATUS, leg, leg.client_id, action="cancel", broker_order_id=leg.order_id)
        try:
            self.broker.cancel(leg.order_id)
        except BrokerError as e:
            log.info("cancel of %s failed (%s); re-reading it", leg.client_id, e)
        self._refresh(leg)  # a cancel still pending at the broker leaves the leg OPEN until it completes

    def _refresh(self, leg: Leg) -> None:
        if leg.client_id:
            o = self.broker.get_by_client_id(leg.client_id)
            if o is not None:
                self.book(leg, o)

