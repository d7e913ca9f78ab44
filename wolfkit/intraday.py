"""The intraday two-layer engine: the directional pack and the parallel maxdiff layer, all session long.

Seed 000's insight is that leverage freed by a directional exit sits idle for hours; this engine puts
that room to work with limit orders at the predicted daily extremes (the *maxdiff* layer) while the
directional layer always comes first. It is driven by events — market prices (minute bars or quotes),
order updates and the clock — and the same code runs in a replayed session and live:

- replay: `step(now, market)` after the simulated broker has seen the minute's bars;
- live (`run_streaming`): `on_update(update)` from alpaca-py's `TradingStream` (`StreamSession`),
  `reconcile()` over REST after every (re)connect, and `step` on a quote-driven clock; or polling
  mode (`run_polling`, e.g. against the emulator), where each `step` drains `broker.updates()`.

Definitions (precise, because tests and the ledger rely on them):

- *committed exposure at cost* of a layer = Σ |position| × average fill price + Σ remaining qty of its
  open ENTRY orders × (limit price, or the estimate for market orders). Exits never add exposure.
  Leverage = committed exposure / equity. The engine keeps directional ≤ `directional_max` and
  directional + maxdiff ≤ `total_max` after every event.
- directional exits: an entry whose planned order carries `take_profit`/`stop_loss` goes out as a
  bracket, exactly as the executor sends it, and its legs are the exits, worked by the broker (one
  cancels the other). The builder sets them per strategy: `takeprofit` and `highlow` carry a
  take-profit (at the target, resp. the predicted high) and a stop; `simple` carries none and holds to
  the close. An entry found at the broker WITHOUT legs (sent by hand, or as OPG) gets engine exits:
  for `takeprofit`/`highlow` a resting opposite-side limit at `take_profit`, and for any stop a watch
  on every bar (a low at or through the stop for a long) that cancels the limit and closes at market.
  At `flatten_minutes` before the close, working exits are cancelled and directional positions closed
  at market when `intraday.close_directional_eod`, otherwise kept (brackets and all).
- maxdiff budget at time t = min(share(t) × total_max × equity, total_max × equity − directional
  committed), with share(t) = `leverage.maxdiff_share_at(t)`. Plans are taken in rank order; a plan
  listens while there is room for it (its `room_needed`, or one share), at most `maxdiff_max_active`
  at once, at most `max_positions_per_symbol` positions on its symbol across layers. The rest queue.
  A plan leaves the listening set when its entry fills (FILLED) or `maxdiff.expire_minutes` after its
  order first reached the broker (EXPIRED without a fill; FILLED with the part that did fill, whose
  exit then goes out); the next queued plan then rotates in.
- sizing (`sizing.maxdiff_rule`): `dynamic` (seed 000) gives every listening plan an equal slice of
  the budget left after maxdiff positions; `kelly` uses the plan's own packed `room_needed`, capped by
  that slice. Sizes are recomputed at every step, so an open (or partially filled) entry shrinks or
  grows with the room; a remainder sized to zero is cancelled.
- consolidation: listening plans on one symbol and side share ONE order (a *slot*): qty is the sum,
  the limit is the most conservative of the members (lowest buy, highest sell), as in seed 000.
- ramp: a slot's limit starts at predicted_low × buy_ramp[0] (buy) or predicted_high × sell_ramp[0]
  (sell) and moves every `ramp_step_minutes` linearly to the ramp's end at `ramp_minutes`, through
  order REPLACEMENT (a new client id each time), tick-rounded in the trader's favour; then it stays.
- a `both` plan enters on the side whose target is nearer the last price when it starts listening.
- wash trades: no order is submitted on a symbol while an opposite-side order of either layer is open
  there; it waits (directional orders first, then maxdiff exits, then entries by rank).
- a filled maxdiff entry exits at the other prediction (a buy exits with a sell limit at the predicted
  high, a sell with a buy limit at the predicted low), or at market `flatten_minutes` before the close.

Restart: the whole engine state is a pydantic model saved to the ledger after every step. Client ids
are deterministic (run, slot or position, purpose, sequence number), an id is recorded in the state
*before* it is sent, and a resumed engine looks every recorded id up at the broker (`reconcile`), so a
kill at any point followed by a resume submits nothing twice and loses no fill.
"""

from __future__ import annotations

import logging
import math
import os
import threading
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from enum import StrEnum
from typing import Callable, Sequence

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from wolfkit.broker.base import (
    Broker,
    BrokerError,
    BrokerOrder,
    BrokerUnavailable,
    DuplicateClientOrderId,
    Fill,
    InsufficientBuyingPower,
    OrderRejected,
    OrderRequest,
    OrderStatus,
    OrderUpdate,
    Quote,
    RateLimited,
    UpdateEvent,
)
from wolfkit.calendar import NY
from wolfkit.config import Params
from wolfkit.execute import plan_attempt
from wolfkit.ledger import EventKind, Ledger, load_engine_state, save_engine_state
from wolfkit.orders import (
    Layer,
    MaxdiffPlan,
    OrderPlan,
    OrderType,
    PlanStatus,
    Side,
    TimeInForce,
    client_order_id,
    round_to_tick,
)

log = logging.getLogger(__name__)

# The executor may have sent a plan's orders up to a few days before its session (an OPG order on
# Friday evening for Monday); the broker's order list is read from this long before the session.
PLAN_LOOKBACK = timedelta(days=7)


class Purpose(StrEnum):
    """Why an order exists; part of its deterministic client id."""

    ENTRY = "entry"
    TAKE_PROFIT = "tp"
    STOP = "stop"
    EXIT = "exit"
    CLOSE = "close"


class LegState(StrEnum):
    IDLE = "idle"  # wanted but not (yet) at the broker: waiting for room or a wash-trade block
    OPEN = "open"  # an order is working at the broker
    DONE = "done"  # finished: filled, or cancelled and not wanted any more


def _opposite(side: Side) -> Side:
    return Side.SELL if side == Side.BUY else Side.BUY


class Leg(BaseModel):
    """One order intent across its replacements: what the engine wants and what the broker did."""

    model_config = ConfigDict(extra="forbid")

    key: str
    symbol: str
    side: Side
    layer: Layer
    purpose: Purpose
    type: OrderType
    target_qty: int = 0  # total shares this leg should trade (filled + working)
    limit_price: float | None = None
    ref_price: float = 0.0  # price used for exposure of a market order
    state: LegState = LegState.IDLE
    filled_qty: int = 0
    filled_value: float = 0.0
    order_id: str | None = None
    client_id: str | None = None
    seq: int = 0  # client ids issued so far (the next id uses this number)
    order_qty: int = 0  # qty of the current broker order
    order_limit: float | None = None  # its limit price
    booked: dict[str, tuple[int, float]] = Field(default_factory=dict)  # order id -> (qty, value) booked
    pending: list[str] = Field(default_factory=list)  # ids sent whose outcome is not yet known

    @property
    def working_qty(self) -> int:
        """Shares still to trade on the current broker order."""
        return max(0, self.order_qty - self.seen_qty) if self.state == LegState.OPEN else 0

    @property
    def seen_qty(self) -> int:
        """Of the current broker order's fills, how many are booked."""
        return self.booked.get(self.order_id, (0, 0.0))[0] if self.order_id else 0

    @property
    def avg_price(self) -> float:
        return self.filled_value / self.filled_qty if self.filled_qty else 0.0


class DirectionalPosition(BaseModel):
    """A directional order of the pack and the exits its strategy calls for."""

    model_config = ConfigDict(extra="forbid")

    symbol: str
    side: Side
    strategy: str
    take_profit: float | None = None
    stop_loss: float | None = None
    entry: Leg
    exits: list[Leg] = Field(default_factory=list)
    bracket: bool = False  # the entry carries take-profit/stop-loss legs: the broker works the exits

    @property
    def qty(self) -> int:
        """Signed-free open quantity of this layer's position (entry fills minus exit fills)."""
        return self.entry.filled_qty - sum(x.filled_qty for x in self.exits)


class MaxdiffPlanState(BaseModel):
    model_config = ConfigDict(extra="forbid")

    rank: int
    symbol: str
    side: str  # buy | sell | both
    high_target: float
    low_target: float
    avg_return: float
    room_needed: float = 0.0
    status: PlanStatus = PlanStatus.QUEUED
    slot: str | None = None  # the slot it trades in while listening or after filling

    def target(self, side: Side) -> float:
        return self.low_target if side == Side.BUY else self.high_target


class Slot(BaseModel):
    """Consolidated maxdiff trading unit: listening plans on one symbol and side share its orders."""

    model_config = ConfigDict(extra="forbid")

    id: str
    symbol: str
    side: Side
    members: list[int]  # plan ranks, best first
    activated_at: datetime  # when its entry first reached the broker (the ramp and expiry clocks)
    started: bool = False  # False while it waits (wash-trade block): the clocks have not started
    entry: Leg
    exit: Leg | None = None
    closed: bool = False  # entry finished (filled, expired or cancelled)

    @property
    def qty(self) -> int:
        return self.entry.filled_qty - (self.exit.filled_qty if self.exit else 0)


class EngineState(BaseModel):
    """Everything the engine knows; saved to the ledger after each step and reloaded on restart."""

    model_config = ConfigDict(extra="forbid")

    run_id: str
    session: date
    equity: float
    maxdiff_enabled: bool = True
    now: datetime | None = None
    flattened: bool = False
    directional: list[DirectionalPosition] = Field(default_factory=list)
    plans: list[MaxdiffPlanState] = Field(default_factory=list)
    slots: list[Slot] = Field(default_factory=list)
    last_price: dict[str, float] = Field(default_factory=dict)
    # client ids of the plan's opening maxdiff orders ("SYMBOL-side" -> id), which the executor may
    # have sent at the open: the first slot on that symbol and side adopts it; after the first step
    # any left over that is still open at the broker is cancelled (the engine owns the layer)
    planned_ids: dict[str, str] = Field(default_factory=dict)
    planned_checked: bool = False
    realized: dict[str, float] = Field(default_factory=lambda: {"directional": 0.0, "maxdiff": 0.0})


@dataclass(frozen=True)
class Market:
    """Prices of one event, aligned to `IntradayEngine.symbols`: a minute bar, or a quote (high = low = close).

    NaN where a symbol has no price in this event.
    """

    high: np.ndarray
    low: np.ndarray
    close: np.ndarray


@dataclass(frozen=True)
class Exposure:
    """Committed exposure at cost (USD) by layer, and leverage as multiples of equity."""

    directional: float
    maxdiff: float
    equity: float

    @property
    def total(self) -> float:
        return self.directional + self.maxdiff

    @property
    def directional_leverage(self) -> float:
        return self.directional / self.equity

    @property
    def maxdiff_leverage(self) -> float:
        return self.maxdiff / self.equity

    @property
    def leverage(self) -> float:
        return self.total / self.equity


@dataclass(frozen=True)
class FillRecord:
    """A booked fill, by layer (for replay statistics and the ledger)."""

    at: datetime | None
    layer: Layer
    purpose: Purpose
    symbol: str
    side: Side
    qty: int
    price: float
    client_order_id: str


def _committed(entry: Leg, held: int) -> float:
    if entry.state == LegState.OPEN:
        working = entry.working_qty
    elif entry.state == LegState.IDLE:
        working = max(0, entry.target_qty - entry.filled_qty)
    else:
        working = 0
    return max(0, held) * entry.avg_price + working * (entry.limit_price or entry.ref_price)


def exposure_of(state: EngineState) -> Exposure:
    """Committed exposure at cost by layer of a saved engine state (see the module docstring)."""
    d = sum(_committed(x.entry, x.qty) for x in state.directional)
    m = sum(_committed(s.entry, s.qty) for s in state.slots)
    return Exposure(d, m, state.equity)


def maxdiff_budget(params: Params, equity: float, directional_committed: float, t: time) -> float:
    """USD the maxdiff layer may commit at wall-clock time `t`: its time-of-day share of the total
    bucket, never more than the room the directional layer leaves in it."""
    total = params.leverage.total_max * equity
    share = params.leverage.maxdiff_share_at(t)
    return max(0.0, min(share * total, total - directional_committed))


def ramp_price(params: Params, side: Side, target: float, minutes_active: float) -> float:
    """The maxdiff limit after `minutes_active` minutes: stepwise-linear from the ramp start to its end."""
    md = params.maxdiff
    start, end = md.buy_ramp if side == Side.BUY else md.sell_ramp
    steps = math.floor(max(0.0, minutes_active) / md.ramp_step_minutes)
    frac = min(1.0, steps * md.ramp_step_minutes / md.ramp_minutes)
    return round_to_tick(target * (start + (end - start) * frac), side)


class IntradayEngine:
    """The two-layer engine over a `Broker`. Build with `start` (fresh) or `resume` (after a restart)."""

    def __init__(
        self,
        params: Params,
        state: EngineState,
        broker: Broker,
        *,
        ledger: Ledger | None = None,
    ):
        self.params = params
        self.state = state
        self.broker = broker
        self.ledger = ledger
        self.fills: list[FillRecord] = []
        self._index_legs()
        syms = sorted({d.symbol for d in state.directional} | {p.symbol for p in state.plans})
        self.symbols: list[str] = syms
        self.symbol_index = {s: i for i, s in enumerate(syms)}
        self._plan_by_rank = {p.rank: p for p in state.plans}
        self._market: Market | None = None
        self._plan_ids: dict[str, str] | None = None  # plan id -> the client id the broker holds for it
        self._saved_status: dict[int, PlanStatus] = {}
        self._close_at: datetime | None = None

    # ---- construction -------------------------------------------------------------------------

    @classmethod
    def start(
        cls,
        params: Params,
        plan: OrderPlan,
        broker: Broker,
        *,
        equity: float | None = None,
        session: date | None = None,
        maxdiff: bool | None = None,
        ledger: Ledger | None = None,
    ) -> IntradayEngine:
        """A fresh engine for the plan's session: directional entries of the plan, maxdiff plans queued."""
        eq = equity if equity is not None else plan.account.equity
        md_on = params.maxdiff.enabled if maxdiff is None else maxdiff
        state = EngineState(run_id=plan.run_id, session=session or plan.as_of, equity=eq, maxdiff_enabled=md_on)
        room = params.leverage.directional_max * eq  # directional first, but never past its own bucket
        for o in sorted(plan.orders, key=lambda o: o.priority):
            if o.layer == Layer.MAXDIFF:
                state.planned_ids[f"{o.symbol}-{o.side}"] = o.client_order_id
                continue
            ref = o.limit_price or o.est_price
            qty = min(o.qty, int(max(0.0, room) // ref))
            if qty < o.qty:
                log.warning("%s: %d of %d planned shares fit the directional bucket", o.symbol, qty, o.qty)
            if qty == 0:
                continue
            room -= qty * ref
            entry = Leg(
                key=f"d-{o.symbol}-{o.side}-entry", symbol=o.symbol, side=o.side, layer=Layer.DIRECTIONAL,
                purpose=Purpose.ENTRY, type=o.type, target_qty=qty, limit_price=o.limit_price,
                ref_price=o.limit_price or o.est_price, client_id=o.client_order_id,
            )
            state.directional.append(DirectionalPosition(
                symbol=o.symbol, side=o.side, strategy=o.strategy, take_profit=o.take_profit,
                stop_loss=o.stop_loss, entry=entry,
            ))
        if md_on:
            for p in sorted(plan.maxdiff_plans, key=lambda p: p.rank):
                if p.avg_return < params.maxdiff.min_avg_return:
                    continue
                state.plans.append(MaxdiffPlanState(
                    rank=p.rank, symbol=p.symbol, side=p.side, high_target=p.high_target,
                    low_target=p.low_target, avg_return=p.avg_return, room_needed=p.room_needed,
                ))
        eng = cls(params, state, broker, ledger=ledger)
        eng._save_plans()
        return eng

    @classmethod
    def resume(
        cls,
        params: Params,
        broker: Broker,
        ledger: Ledger,
        run_id: str,
    ) -> IntradayEngine:
        """The engine as saved by its last step, reconciled with the broker (fills and cancels it missed)."""
        raw = load_engine_state(ledger, run_id)
        if raw is None:
            raise BrokerError(f"no saved intraday state for run {run_id!r} in {ledger.path}; start the engine instead")
        eng = cls(params, EngineState.model_validate_json(raw), broker, ledger=ledger)
        eng.reconcile()
        return eng

    # ---- bookkeeping --------------------------------------------------------------------------

    def _index_legs(self) -> None:
        self._by_order: dict[str, Leg] = {}
        self._by_cid: dict[str, Leg] = {}
        for leg in self._legs():
            self._track(leg)

    def _track(self, leg: Leg) -> None:
        if leg.order_id:
            self._by_order[leg.order_id] = leg
        if leg.client_id:
            self._by_cid[leg.client_id] = leg
        for cid in leg.pending:
            self._by_cid[cid] = leg

    def _legs(self) -> list[Leg]:
        out: list[Leg] = []
        for d in self.state.directional:
            out.append(d.entry)
            out.extend(d.exits)
        for s in self.state.slots:
            out.append(s.entry)
            if s.exit is not None:
                out.append(s.exit)
        return out

    def _next_cid(self, leg: Leg) -> str:
        cid = client_order_id(self.state.run_id, leg.key, leg.symbol, leg.layer, attempt=leg.seq)
        leg.seq += 1
        leg.pending.append(cid)
        self._by_cid[cid] = leg
        return cid

    def _book(self, leg: Leg, order: BrokerOrder) -> None:
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
            leg.state = LegState.DONE if leg.filled_qty >= leg.target_qty else LegState.IDLE
            leg.order_id, leg.order_qty, leg.order_limit = None, 0, None

    def _on_fill(self, leg: Leg, order: BrokerOrder, qty: int, price: float) -> None:
        leg.filled_qty += qty
        leg.filled_value += qty * price
        rec = FillRecord(self.state.now, leg.layer, leg.purpose, leg.symbol, leg.side, qty, price,
                         order.client_order_id)
        self.fills.append(rec)
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

    # ---- events -------------------------------------------------------------------------------

    def on_update(self, update: OrderUpdate) -> None:
        """One trade update (stream or poll): book fills and status changes of our orders; ignore others."""
        o = update.order
        leg = self._by_order.get(o.id) or self._by_cid.get(o.client_order_id)
        if leg is None:
            return
        ours = o.client_order_id in leg.pending or (o.replaces is not None and o.replaces == leg.order_id)
        if ours and leg.client_id != o.client_order_id:  # sent without a known answer, or our replacement
            self._adopt(leg, o)
        self._book(leg, o)

    def _adopt(self, leg: Leg, order: BrokerOrder) -> None:
        """Make `order` (one we sent, found by its client id) the leg's current order."""
        if order.client_order_id in leg.pending:
            leg.pending.remove(order.client_order_id)
        leg.order_id, leg.client_id, leg.order_qty = order.id, order.client_order_id, order.qty
        leg.order_limit = order.limit_price
        leg.seq = max(leg.seq, _attempt_of(order.client_order_id) + 1)  # never issue an id the broker has
        if order.legs and leg.layer == Layer.DIRECTIONAL and leg.purpose == Purpose.ENTRY:
            self._adopt_bracket(leg, order)
        leg.state = LegState.OPEN if order.status.is_open else leg.state
        self._track(leg)

    def reconcile(self) -> None:
        """REST reconciliation (after a restart or a stream reconnect): look up every order we know or
        may have sent, book what happened while we were not listening."""
        for leg in self._legs():
            self._settle_pending(leg)
            if leg.client_id and leg.state == LegState.OPEN:
                o = self.broker.get_by_client_id(leg.client_id)
                if o is not None:
                    self._book(leg, o)
                    if o.replaced_by:  # replaced by us before the crash: follow the chain
                        nxt = next((x for x in self.broker.open_orders() if x.id == o.replaced_by), None)
                        if nxt is not None:
                            self._adopt(leg, nxt)
        self._reindex_orders()
        mismatch = self.position_mismatches()
        if mismatch:  # shares the engine cannot attribute to a layer: say so, never trade them blindly
            log.warning("positions differ from the broker after reconciling: %s", mismatch)
        if self.ledger is not None:
            self.ledger.record_event(self.state.run_id, EventKind.RECONCILED, None, None, at=self.state.now,
                                     mismatches={k: list(v) for k, v in mismatch.items()})

    def net_positions(self) -> dict[str, int]:
        """The engine's signed net position per symbol across both layers (what the broker should hold)."""
        net: dict[str, int] = {}
        for d in self.state.directional:
            if d.qty:
                net[d.symbol] = net.get(d.symbol, 0) + (d.qty if d.side == Side.BUY else -d.qty)
        for s in self.state.slots:
            if s.qty:
                net[s.symbol] = net.get(s.symbol, 0) + (s.qty if s.side == Side.BUY else -s.qty)
        return {k: v for k, v in net.items() if v}

    def position_mismatches(self) -> dict[str, tuple[int, int]]:
        """symbol -> (engine net qty, broker qty) for the engine's symbols where the two differ."""
        mine = self.net_positions()
        theirs = {p.symbol: p.qty for p in self.broker.positions() if p.symbol in self.symbol_index}
        return {s: (mine.get(s, 0), theirs.get(s, 0)) for s in sorted(set(mine) | set(theirs))
                if mine.get(s, 0) != theirs.get(s, 0)}

    def _settle_pending(self, leg: Leg) -> None:
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
            self._adopt(leg, o)  # takes the id off `pending`
            self._book(leg, o)

    def _retire_current(self, leg: Leg) -> None:
        """Book the final fills of a leg's current order before a newer one takes over."""
        if leg.client_id and leg.order_id:
            o = self.broker.get_by_client_id(leg.client_id)
            if o is not None:
                self._book(leg, o)

    def _reindex_orders(self) -> None:
        self._by_order = {leg.order_id: leg for leg in self._legs() if leg.order_id}

    def drain(self) -> None:
        """Polling mode: fetch and book the broker's updates since the last call."""
        for u in self.broker.updates():
            self.on_update(u)

    def step(self, now: datetime, market: Market | None = None, *, poll: bool = True) -> None:
        """One event: book updates (polling), take in prices, then act (exits, sizing, ramps, rotation)."""
        self.state.now = now
        if poll:
            self.drain()
        if market is not None:
            self._market = market
        self._act(now, market)
        if self.ledger is not None:
            self._save_plans()
            save_engine_state(self.ledger, self.state.run_id, self.state.session, self.state.model_dump_json())

    def _save_plans(self) -> None:
        """Mirror plan statuses into the ledger's maxdiff_plans table (only rows that changed)."""
        if self.ledger is None:
            return
        saved = self._saved_status
        for p in self.state.plans:
            if saved.get(p.rank) == p.status:
                continue
            saved[p.rank] = p.status
            self.ledger.upsert_plan(self.state.session, self.state.run_id, MaxdiffPlan(
                symbol=p.symbol, high_target=p.high_target, low_target=p.low_target, side=p.side,
                avg_return=p.avg_return, status=p.status, rank=p.rank, room_needed=p.room_needed,
                qty=self._plan_qty(p)))

    def _plan_qty(self, p: MaxdiffPlanState) -> int:
        s = next((x for x in self.state.slots if x.id == p.slot), None)
        return s.entry.target_qty // max(1, len(s.members)) if s is not None else 0

    # ---- decisions ----------------------------------------------------------------------------

    def _price(self, symbol: str) -> float:
        m = self._market
        if m is not None:
            p = m.close[self.symbol_index[symbol]]
            if not np.isnan(p):
                self.state.last_price[symbol] = float(p)
        return self.state.last_price.get(symbol, float("nan"))

    def _act(self, now: datetime, market: Market | None) -> None:
        for leg in self._legs():  # ids sent without a known answer first: decide on the live orders
            if leg.pending:
                self._settle_pending(leg)
        if self._close_at is None:
            self._close_at = _session_close(self.state.session, now)
        close_at = self._close_at
        flatten = now >= close_at - timedelta(minutes=self.params.intraday.flatten_minutes)
        self._directional(now, market, flatten)
        if self.state.maxdiff_enabled:
            self._maxdiff(now, flatten)
        if not self.state.planned_checked:
            self._cancel_unadopted()
        self._send()

    def _planned_order(self, plan_id: str) -> BrokerOrder | None:
        """The order the executor placed for a plan id, as the broker has it now: its highest attempt
        (`-rN` after a 403 resize), found in one listing of the run's orders (read on first use, as the
        executor reconciles), then read fresh by client id."""
        if self._plan_ids is None:
            bases = {leg.client_id for leg in self._legs() if leg.seq == 0 and leg.client_id}
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

    def _cancel_unadopted(self) -> None:
        """Opening maxdiff orders of the plan that no slot took over are cancelled (never left unmanaged)."""
        for cid in self.state.planned_ids.values():
            o = self._planned_order(cid)
            if o is not None and o.status.is_open:
                try:
                    self.broker.cancel(o.id)
                except BrokerError as e:
                    log.warning("could not cancel the unadopted opening order %s: %s", cid, e)
        self.state.planned_ids.clear()
        self.state.planned_checked = True

    def _directional(self, now: datetime, market: Market | None, flatten: bool) -> None:
        eod = flatten and self.params.intraday.close_directional_eod
        for d in self.state.directional:
            e = d.entry
            if eod and e.state != LegState.DONE:
                e.target_qty = e.filled_qty  # an entry still working at the close is cancelled
                if e.state == LegState.OPEN:
                    self._cancel(e)
            if e.state == LegState.OPEN:
                continue  # exits wait for the entry to end (they are opposite-side)
            held = d.qty
            if held <= 0:
                for x in d.exits:  # flat: nothing left to exit (e.g. the other bracket leg after a fill)
                    self._stand_down(x)
                continue
            exit_side = _opposite(d.side)
            stop_hit = False
            if d.stop_loss is not None and market is not None and not d.bracket:  # a bracket's stop is the broker's
                i = self.symbol_index[d.symbol]
                stop_hit = bool(market.low[i] <= d.stop_loss) if d.side == Side.BUY else bool(market.high[i] >= d.stop_loss)
            if stop_hit or eod:
                mkt = next((x for x in d.exits if x.key.endswith(("-stop", "-close"))), None)
                for x in d.exits:  # resting exits go first (no double exit)
                    if x is not mkt:
                        self._stand_down(x)
                held = d.qty
                resting = sum(x.working_qty for x in d.exits if x is not mkt)  # a cancel still pending
                if mkt is None:
                    purpose = Purpose.STOP if stop_hit else Purpose.CLOSE
                    mkt = self._new_leg(f"d-{d.symbol}-{d.side}-{purpose}", d.symbol, exit_side, Layer.DIRECTIONAL,
                                        purpose, OrderType.MARKET, 0, None)
                    d.exits.append(mkt)
                mkt.ref_price = self._price(d.symbol)
                want = mkt.filled_qty + mkt.working_qty + max(0, held - resting - mkt.working_qty)
                if want > mkt.target_qty:
                    mkt.target_qty = want
                    if mkt.state == LegState.DONE:
                        mkt.state = LegState.IDLE
                continue
            if d.strategy in ("takeprofit", "highlow") and d.take_profit is not None and not d.exits:
                d.exits.append(self._new_leg(f"d-{d.symbol}-{d.side}-tp", d.symbol, exit_side, Layer.DIRECTIONAL,
                                             Purpose.TAKE_PROFIT, OrderType.LIMIT, held,
                                             round_to_tick(d.take_profit, exit_side)))

    def _stand_down(self, leg: Leg) -> None:
        """This exit is no longer wanted: cancel what works, never resend."""
        if leg.state == LegState.DONE:
            return
        leg.target_qty = leg.filled_qty
        if leg.state == LegState.OPEN:
            self._cancel(leg)
        else:
            leg.state = LegState.DONE

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
            leg = self._new_leg(f"d-{d.symbol}-{d.side}-bracket-{kind}", d.symbol, bl.side, Layer.DIRECTIONAL,
                                purpose, bl.type, bl.qty, bl.limit_price)
            d.exits.append(leg)
            self._adopt(leg, bl)

    def _new_leg(self, key: str, symbol: str, side: Side, layer: Layer, purpose: Purpose, type_: OrderType,
                 qty: int, limit: float | None) -> Leg:
        return Leg(key=key, symbol=symbol, side=side, layer=layer, purpose=purpose, type=type_,
                   target_qty=qty, limit_price=limit, ref_price=limit or 0.0)

    # maxdiff -------------------------------------------------------------------------------------

    def exposure(self) -> Exposure:
        """Committed exposure at cost by layer (see the module docstring)."""
        return exposure_of(self.state)

    def _maxdiff(self, now: datetime, flatten: bool) -> None:
        md = self.params.maxdiff
        plans = self._plan_by_rank
        slots = {s.id: s for s in self.state.slots}
        # 1. finished entries: fills and expiries move plans out of the listening set
        for s in self.state.slots:
            if s.closed:
                continue
            age = _age(s, now)
            entry_done = s.entry.state == LegState.DONE or (
                s.entry.state == LegState.IDLE and s.entry.filled_qty > 0 and s.entry.target_qty <= s.entry.filled_qty)
            # after `expire_minutes` an unfilled entry expires; a partly filled one stops growing, so the
            # filled part can exit (the exit is opposite-side: it must wait for the entry to end)
            expired = flatten or (s.started and age >= md.expire_minutes)
            if entry_done and s.entry.filled_qty > 0 or expired:
                self._close_entry(s, plans, PlanStatus.FILLED if s.entry.filled_qty > 0 else PlanStatus.EXPIRED)
        # 2. exits of held slots
        for s in self.state.slots:
            held = s.qty
            if held <= 0 or not s.closed:
                continue
            ex_side = _opposite(s.side)
            if s.exit is None:
                members = [plans[r] for r in s.members]
                tgt = (min(p.high_target for p in members) if ex_side == Side.SELL
                       else max(p.low_target for p in members))
                s.exit = self._new_leg(f"m-{s.id}-exit", s.symbol, ex_side, Layer.MAXDIFF, Purpose.EXIT,
                                       OrderType.LIMIT, held, round_to_tick(tgt, ex_side))
            if flatten and s.exit.type == OrderType.LIMIT:
                if s.exit.state == LegState.OPEN:
                    s.exit.target_qty = s.exit.filled_qty
                    self._cancel(s.exit)
                held = s.qty
                s.exit.type, s.exit.limit_price, s.exit.ref_price = OrderType.MARKET, None, self._price(s.symbol)
                s.exit.target_qty = s.exit.filled_qty + s.exit.working_qty + held
                if s.exit.state == LegState.DONE and held > 0:
                    s.exit.state = LegState.IDLE
            elif s.exit.target_qty != s.exit.filled_qty + held:
                s.exit.target_qty = s.exit.filled_qty + held
                if s.exit.state == LegState.DONE:
                    s.exit.state = LegState.IDLE
        if flatten:
            return
        # 3. who listens: rank order, room, max active, per-symbol limit
        e = self.exposure()
        budget = maxdiff_budget(self.params, self.state.equity, e.directional, _et(now).time())
        held_value = sum(max(0, s.qty) * s.entry.avg_price for s in self.state.slots)
        free = max(0.0, budget - held_value)
        listening: list[MaxdiffPlanState] = []
        need_sum = 0.0
        max_active = self.params.sizing.maxdiff_max_active
        per_symbol = self.params.leverage.max_positions_per_symbol
        open_slot = {(s.symbol, s.side): s for s in self.state.slots if not s.closed}
        count = self._position_counts()
        for p in self.state.plans:  # rank order; a full bucket makes the rest of the walk cheap
            if p.status in (PlanStatus.FILLED, PlanStatus.EXPIRED):
                continue
            slot = slots.get(p.slot) if p.slot else None
            locked = slot is not None and slot.entry.filled_qty > 0  # a partly filled plan keeps listening
            need = p.room_needed if p.room_needed > 0 else p.low_target
            if not locked and (len(listening) >= max_active or need_sum + need > free + 1e-9):
                if slot is not None:
                    self._demote(p, slots)
                continue
            if slot is None:
                price = self._price(p.symbol)
                side = self._entry_side(p, (p.low_target + p.high_target) / 2 if math.isnan(price) else price)
                joined = open_slot.get((p.symbol, side))
                if joined is None and count.get(p.symbol, 0) >= per_symbol:
                    continue  # at most `per_symbol` positions on a symbol across layers: it stays queued
                slot = self._join(p, side, now, joined)
                if joined is None:
                    slots[slot.id] = open_slot[(p.symbol, side)] = slot
                    count[p.symbol] = count.get(p.symbol, 0) + 1
            listening.append(p)
            need_sum += need
        # 4. size and price each open slot from the room
        n = len(listening)
        slice_ = free / n if n else 0.0
        for s in self.state.slots:
            if s.closed:
                continue
            members = [plans[r] for r in s.members]
            prices = [ramp_price(self.params, s.side, p.target(s.side), _age(s, now)) for p in members]
            lim = min(prices) if s.side == Side.BUY else max(prices)  # the most conservative member
            room = slice_ * len(members)
            if self.params.sizing.maxdiff_rule == "kelly":
                room = min(room, sum(p.room_needed or slice_ for p in members))
            s.entry.limit_price = lim
            s.entry.ref_price = lim
            s.entry.target_qty = s.entry.filled_qty + int(room // lim)

    @staticmethod
    def _entry_side(p: MaxdiffPlanState, price: float) -> Side:
        """A `both` plan enters on the side whose target is nearer the price when it starts listening."""
        if p.side != "both":
            return Side(p.side)
        return Side.BUY if (price - p.low_target) <= (p.high_target - price) else Side.SELL

    def _position_counts(self) -> dict[str, int]:
        """Positions per symbol across layers: a directional position (held or entering) and each
        maxdiff slot that is open or still holds shares."""
        count: dict[str, int] = {}
        for d in self.state.directional:
            if d.qty > 0 or d.entry.state != LegState.DONE:
                count[d.symbol] = count.get(d.symbol, 0) + 1
        for s in self.state.slots:
            if not s.closed or s.qty > 0:
                count[s.symbol] = count.get(s.symbol, 0) + 1
        return count

    def positions_on(self, symbol: str) -> int:
        """Positions on `symbol` across both layers (the per-symbol limit counts these)."""
        return self._position_counts().get(symbol, 0)

    def _join(self, p: MaxdiffPlanState, side: Side, now: datetime, slot: Slot | None) -> Slot:
        """Put a plan into the open slot of its symbol and side (consolidation) or open a new slot."""
        if slot is None:
            sid = f"{p.symbol}-{side}-{p.rank}-{sum(1 for s in self.state.slots if s.symbol == p.symbol)}"
            entry = self._new_leg(f"m-{sid}-entry", p.symbol, side, Layer.MAXDIFF, Purpose.ENTRY, OrderType.LIMIT,
                                  0, None)
            entry.client_id = self.state.planned_ids.pop(f"{p.symbol}-{side}", None)
            slot = Slot(id=sid, symbol=p.symbol, side=side, members=[], activated_at=now, entry=entry)
            self.state.slots.append(slot)
        slot.members = sorted([*slot.members, p.rank])
        p.slot, p.status = slot.id, PlanStatus.LISTENING
        return slot

    def _demote(self, p: MaxdiffPlanState, slots: dict[str, Slot]) -> None:
        """Back to the queue (no room, or a better plan took its place); its share of the order goes."""
        if p.slot is not None:
            s = slots[p.slot]
            s.members.remove(p.rank)
            if not s.members:
                s.closed = True
                s.entry.target_qty = s.entry.filled_qty
        p.slot, p.status = None, PlanStatus.QUEUED

    def _close_entry(self, s: Slot, plans: dict[int, MaxdiffPlanState], status: PlanStatus) -> None:
        s.closed = True
        s.entry.target_qty = s.entry.filled_qty
        for r in s.members:
            plans[r].status = status

    # ---- sending ------------------------------------------------------------------------------

    def _send(self) -> None:
        """Make the broker match the legs: cancels first, then replacements, then new orders (wash-safe)."""
        legs = self._legs()
        # cancels: open legs that want nothing more
        for leg in legs:
            if leg.state == LegState.OPEN and leg.target_qty <= leg.filled_qty:
                self._cancel(leg)
        open_sides: dict[str, set[Side]] = {}
        for leg in legs:
            if leg.state == LegState.OPEN:
                open_sides.setdefault(leg.symbol, set()).add(leg.side)
        # replacements (qty or price changed)
        for leg in legs:
            if leg.state != LegState.OPEN:
                continue
            want = leg.target_qty - leg.filled_qty
            if want != leg.working_qty or (leg.type == OrderType.LIMIT and leg.limit_price != leg.order_limit):
                if want <= 0:
                    self._cancel(leg)
                else:
                    self._replace(leg, want)
        # submissions in priority: directional, maxdiff exits, maxdiff entries by rank
        for leg in self._priority(legs):
            if leg.state != LegState.IDLE or leg.target_qty <= leg.filled_qty:
                continue
            if _opposite(leg.side) in open_sides.get(leg.symbol, set()):
                continue  # wash-trade risk: wait until the opposite order is gone
            if self._submit(leg):
                open_sides.setdefault(leg.symbol, set()).add(leg.side)
                if leg.layer == Layer.MAXDIFF and leg.purpose == Purpose.ENTRY:
                    slot = next(x for x in self.state.slots if x.entry is leg)
                    if not slot.started:
                        slot.started, slot.activated_at = True, self.state.now or slot.activated_at

    def _priority(self, legs: list[Leg]) -> list[Leg]:
        rank = {s.entry.key: min(s.members, default=10**9) for s in self.state.slots}

        def key(leg: Leg) -> tuple[int, int]:
            if leg.layer == Layer.DIRECTIONAL:
                return (0, 0)
            return (1, 0) if leg.purpose == Purpose.EXIT else (2, rank.get(leg.key, 10**9))

        return sorted(legs, key=key)

    def _submit(self, leg: Leg) -> bool:
        qty = leg.target_qty - leg.filled_qty
        if leg.purpose == Purpose.ENTRY and leg.seq == 0 and leg.client_id:
            existing = self._planned_order(leg.client_id)  # the executor may have sent it (or a resize of it)
            if existing is not None:
                leg.seq = 1  # the planned id is used: any later order of this leg gets a fresh one
                self._adopt(leg, existing)
                self._book(leg, existing)
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
        try:
            order = self.broker.submit(req)
        except DuplicateClientOrderId:
            order = self.broker.get_by_client_id(cid)
            if order is None:
                return False
            self._log(EventKind.DUPLICATE_ADOPTED, leg, cid, broker_order_id=order.id)
        except (InsufficientBuyingPower, OrderRejected) as e:
            leg.pending.remove(cid)
            self._log(EventKind.REJECTED, leg, cid, reason=str(e))
            log.warning("order %s %s %s x%d refused: %s", cid, leg.symbol, leg.side, qty, e)
            if leg.purpose != Purpose.ENTRY:
                return False  # an exit is retried at the next step: a position is never left behind
            if leg.layer == Layer.MAXDIFF:
                leg.target_qty = leg.filled_qty  # the plan waits; sizing tries again at the next step
            elif isinstance(e, InsufficientBuyingPower) and e.buying_power and leg.ref_price > 0:
                # as the executor does: resize to the buying power the broker reported (new id next step)
                leg.target_qty = leg.filled_qty + int(e.buying_power // (leg.limit_price or leg.ref_price))
            else:
                leg.target_qty = leg.filled_qty  # refused for good (tick, symbol, …): not resent
            if leg.target_qty <= leg.filled_qty:
                leg.state = LegState.DONE
            return False
        self._log(EventKind.ACK, leg, cid, broker_order_id=order.id, status=order.status)
        self._adopt(leg, order)
        self._book(leg, order)
        return leg.state == LegState.OPEN

    def _log(self, kind: EventKind, leg: Leg, cid: str | None, **detail: object) -> None:
        """The ledger's append-only event trail of every order the engine sends, replaces or cancels."""
        if self.ledger is not None:
            self.ledger.record_event(self.state.run_id, kind, leg.key, cid, layer=leg.layer, purpose=leg.purpose,
                                     symbol=leg.symbol, side=leg.side, at=self.state.now, **detail)

    def _replace(self, leg: Leg, qty: int) -> None:
        """Replace the leg's order under a new client id — a submit like any other: after an unknown
        outcome (5xx, timeout, a 504 after the broker replaced it) or a 429 the new id is looked up
        and adopted when the broker holds it, so the leg always points at the live order."""
        assert leg.order_id is not None
        cid = self._next_cid(leg)  # pending until the answer is known
        self._log(EventKind.INTENT, leg, cid, action="replace", replaces=leg.client_id, qty=qty,
                  limit_price=leg.limit_price)
        try:
            order = self.broker.replace(  # Alpaca's qty is the order's new total, fills included
                leg.order_id, qty=qty + leg.seen_qty,
                limit_price=leg.limit_price if leg.type == OrderType.LIMIT else None, client_order_id=cid)
        except DuplicateClientOrderId:  # sent before a crash: that replacement exists, take it over
            order = self.broker.get_by_client_id(cid)
            if order is None:
                return
        except (BrokerUnavailable, RateLimited) as e:
            self._log(EventKind.UNKNOWN_OUTCOME, leg, cid, action="replace", error=str(e))
            log.info("replace of %s: no known answer (%s); looking %s up", leg.client_id, e, cid)
            self._settle_pending(leg)  # adopts the replacement if it exists; raises if it cannot look
            if leg.client_id != cid:
                self._refresh(leg)  # not replaced: the old order stands (it may have filled meanwhile)
            return
        except BrokerError as e:  # refused (the order filled or ended, buying power, …): the old one stands
            leg.pending.remove(cid)
            self._log(EventKind.REJECTED, leg, cid, reason=str(e))
            log.info("replace of %s failed (%s); re-reading it", leg.client_id, e)
            self._refresh(leg)
            return
        self._log(EventKind.ACK, leg, cid, broker_order_id=order.id, status=order.status)
        old = self.broker.get_by_client_id(leg.client_id) if leg.client_id else None
        if old is not None:
            self._book(leg, old)
        self._by_order.pop(leg.order_id or "", None)
        self._adopt(leg, order)
        self._book(leg, order)

    def _cancel(self, leg: Leg) -> None:
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
                self._book(leg, o)


def _et(now: datetime) -> datetime:
    """Wall-clock New York time (the time-of-day budget is defined in ET); naive times are taken as ET."""
    return now.astimezone(NY) if now.tzinfo else now


def _attempt_of(cid: str) -> int:
    """The attempt number `client_order_id` put in an id (its `-rN` suffix; 0 for a base id)."""
    head, sep, tail = cid.rpartition("-r")
    return int(tail) if sep and tail.isdigit() else 0


def _age(slot: Slot, now: datetime) -> float:
    """Minutes since the slot's entry first reached the broker (0 while it still waits)."""
    return (now - slot.activated_at).total_seconds() / 60 if slot.started else 0.0


def _session_close(session: date, now: datetime) -> datetime:
    from wolfkit.calendar import session_close

    close = session_close(session)
    return close.astimezone(now.tzinfo) if now.tzinfo else close.replace(tzinfo=None)


# ---- live: streaming with reconciliation, or polling ---------------------------------------------

_STREAM_EVENTS = {e.value: e for e in UpdateEvent}


def update_from_stream(data: object) -> OrderUpdate | None:
    """alpaca-py's `TradeUpdate` as an `OrderUpdate` (None for events the engine does not need,
    e.g. pending_new or restated: the order itself is re-read by the next reconcile)."""
    from wolfkit.broker.alpaca import to_broker_order

    event = str(getattr(data.event, "value", data.event))  # type: ignore[attr-defined]
    kind = _STREAM_EVENTS.get(event)
    if kind is None:
        return None
    return OrderUpdate(kind, to_broker_order(data.order), at=getattr(data, "timestamp", None))  # type: ignore[attr-defined]


class StreamSession:
    """Feeds alpaca-py's `TradingStream` trade updates into an engine, and reconciles over REST after
    every (re)connect: updates sent while the socket was down are lost, so the engine re-reads each of
    its orders by client id (`IntradayEngine.reconcile`) before trusting the stream again.

    The stream runs in its own thread (`run()` blocks); `lock` serialises it with the clock-driven
    `step` calls of the caller.
    """

    def __init__(self, engine: IntradayEngine, lock: threading.RLock | None = None):
        self.engine = engine
        self.lock = lock or threading.RLock()
        self.connects = 0

    async def on_trade_update(self, data: object) -> None:
        update = update_from_stream(data)
        if update is not None:
            with self.lock:
                self.engine.on_update(update)

    def on_connect(self) -> None:
        """Called after each successful (re)connect and authentication."""
        with self.lock:
            self.connects += 1
            self.engine.reconcile()

    def stream(self, key: str, secret: str, *, paper: bool = True, url_override: str | None = None):  # noqa: ANN201
        """A `TradingStream` wired to this session (subscribed; call `.run()` in a thread)."""
        from alpaca.trading.stream import TradingStream

        session = self

        class _ReconcilingStream(TradingStream):
            async def _start_ws(self) -> None:  # every (re)connect passes here
                await super()._start_ws()
                session.on_connect()

        s = _ReconcilingStream(key, secret, paper=paper, url_override=url_override)
        s.subscribe_trade_updates(self.on_trade_update)
        return s


def wall_clock() -> datetime:
    """Now in New York: the live engine's clock (the one place a live run reads the time)."""
    return datetime.now(NY)


def market_from_quotes(symbols: Sequence[str], quotes: dict[str, Quote]) -> Market:
    """A quote event as a `Market` aligned to `symbols` (high = low = close = the mid; NaN when absent)."""
    mid = np.array([quotes[s].mid if s in quotes else np.nan for s in symbols], dtype=float)
    return Market(mid, mid, mid)


def run_polling(
    engine: IntradayEngine,
    *,
    now: Callable[[], datetime],
    sleep: Callable[[float], None],
    until: datetime,
    poll_seconds: float,
    lock: threading.RLock | None = None,
    poll_updates: bool = True,
    max_steps: int | None = None,
    on_step: Callable[[int], None] | None = None,
) -> int:
    """Polling mode (e.g. against the emulator): every `poll_seconds`, fetch quotes (and, with
    `poll_updates`, the broker's order updates) and step the engine, until `until` or after `max_steps`
    steps. `on_step(n)` runs after step n (progress lines, a simulated market's next tick). Returns the steps."""
    lock = lock or threading.RLock()
    steps = 0
    while (t := now()) < until:
        with lock:
            quotes = engine.broker.quotes(engine.symbols)
            engine.step(t, market_from_quotes(engine.symbols, quotes), poll=poll_updates)
        steps += 1
        if on_step is not None:
            on_step(steps)
        if max_steps is not None and steps >= max_steps:
            break
        sleep(poll_seconds)
    return steps


def run_streaming(
    engine: IntradayEngine,
    key: str,
    secret: str,
    *,
    now: Callable[[], datetime],
    sleep: Callable[[float], None],
    until: datetime,
    poll_seconds: float,
    paper: bool = True,
    url_override: str | None = None,
    max_steps: int | None = None,
    on_step: Callable[[int], None] | None = None,
) -> StreamSession:
    """Live mode: trade updates from alpaca-py's `TradingStream` (its own thread; a REST reconcile on
    every (re)connect) and a quote-driven clock step every `poll_seconds` until `until` (or after
    `max_steps`; `on_step` as in `run_polling`)."""
    session = StreamSession(engine)
    stream = session.stream(key, secret, paper=paper, url_override=url_override)
    thread = threading.Thread(target=stream.run, name="wolfkit-trade-updates", daemon=True)
    thread.start()
    try:
        run_polling(engine, now=now, sleep=sleep, until=until, poll_seconds=poll_seconds, lock=session.lock,
                    poll_updates=False, max_steps=max_steps, on_step=on_step)
    finally:
        stream.stop()
        thread.join(timeout=10)
    return session
