"""What the intraday engine knows, and the only ways it may change.

The engine's whole state is one pydantic model (`EngineState`), saved to the ledger after every step
and reloaded on restart. A leg's state (`LegState`) and a maxdiff plan's status (`PlanStatus`) change
only through `Leg.move` and `MaxdiffPlanState.move`, by the explicit tables `LEG_TRANSITIONS` and
`PLAN_TRANSITIONS`: anything else raises `IllegalTransition` — a bug, never a silent state.

Committed exposure at cost of a layer = Σ |position| × average fill price + Σ remaining qty of its
open ENTRY orders × (limit price, or the estimate for market orders). Exits never add exposure.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from wolfkit.domain import Layer, MaxdiffSide, OrderType, PlanStatus, Side
from wolfkit.errors import WolfkitError


class IllegalTransition(WolfkitError):
    """A leg or plan was asked to change state in a way the transition table does not allow (a bug)."""


class Purpose(StrEnum):
    """Why an order exists; part of its deterministic client id."""

    ENTRY = "entry"
    TAKE_PROFIT = "tp"
    STOP = "stop"
    EXIT = "exit"
    CLOSE = "close"
    TIME_STOP = "time"  # the time stop: closed at market N minutes after the open


class LegState(StrEnum):
    IDLE = "idle"  # wanted but not (yet) at the broker: waiting for room or a wash-trade block
    OPEN = "open"  # an order is working at the broker
    DONE = "done"  # finished: filled, or cancelled and not wanted any more


class LegEvent(StrEnum):
    """What happened to a leg: the only inputs that change its `LegState`."""

    WORKING = "working"  # the broker holds a working order of the leg (sent, replaced, or found by a look-up)
    ENDED = "ended"  # its order ended (cancelled, expired, refused) while shares are still wanted
    COMPLETED = "completed"  # nothing more to trade: filled, no longer wanted, or refused for good
    REOPENED = "reopened"  # a finished exit wants shares again (the position grew, or the close flattens it)


# (state, event) -> next state. WORKING from DONE: an id sent without a known answer (5xx, timeout)
# turned out live at the broker after the leg stood down — the engine must track it (and cancel it).
LEG_TRANSITIONS: dict[tuple[LegState, LegEvent], LegState] = {
    (LegState.IDLE, LegEvent.WORKING): LegState.OPEN,
    (LegState.OPEN, LegEvent.WORKING): LegState.OPEN,
    (LegState.DONE, LegEvent.WORKING): LegState.OPEN,
    (LegState.IDLE, LegEvent.ENDED): LegState.IDLE,
    (LegState.OPEN, LegEvent.ENDED): LegState.IDLE,
    (LegState.IDLE, LegEvent.COMPLETED): LegState.DONE,
    (LegState.OPEN, LegEvent.COMPLETED): LegState.DONE,
    (LegState.DONE, LegEvent.COMPLETED): LegState.DONE,
    (LegState.DONE, LegEvent.REOPENED): LegState.IDLE,
}

# A plan listens while it has room, goes back to the queue when it loses it, and leaves the
# listening set when its entry fills (for good) or expires. An expired plan (nothing filled) returns to
# the queue when room frees after its expiry and a whole listening period still fits before the flatten
# time (`decisions.requeue_expired`).
PLAN_TRANSITIONS: frozenset[tuple[PlanStatus, PlanStatus]] = frozenset({
    (PlanStatus.QUEUED, PlanStatus.LISTENING),
    (PlanStatus.LISTENING, PlanStatus.QUEUED),
    (PlanStatus.LISTENING, PlanStatus.FILLED),
    (PlanStatus.LISTENING, PlanStatus.EXPIRED),
    (PlanStatus.EXPIRED, PlanStatus.QUEUED),
})


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
    stop_price: float | None = None  # a stop leg: the stop wanted (a trailing stop raises it)
    order_stop: float | None = None  # the current broker order's stop price
    booked: dict[str, tuple[int, float]] = Field(default_factory=dict)  # order id -> (qty, value) booked
    pending: list[str] = Field(default_factory=list)  # ids sent whose outcome is not yet known
    waiting: str | None = None  # why the broker does not yet match this leg (the wash-trade rule), if so

    @classmethod
    def new(cls, key: str, symbol: str, side: Side, layer: Layer, purpose: Purpose, type_: OrderType,
            qty: int, limit: float | None) -> Leg:
        return cls(key=key, symbol=symbol, side=side, layer=layer, purpose=purpose, type=type_,
                   target_qty=qty, limit_price=limit, ref_price=limit or 0.0)

    def move(self, event: LegEvent) -> LegState:
        """Apply `event` by `LEG_TRANSITIONS`; raises `IllegalTransition` for any other change."""
        nxt = LEG_TRANSITIONS.get((self.state, event))
        if nxt is None:
            raise IllegalTransition(f"leg {self.key}: {event} is not allowed in state {self.state}")
        self.state = nxt
        return nxt

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
    trail_amount: float | None = None  # a trailing stop: stop_loss follows the high water by this (USD)
    time_stop_minutes: int | None = None  # closed at market this many minutes after the open
    high_water: float | None = None  # the highest price since the entry filled (the trailing stop's anchor)
    entry: Leg
    exits: list[Leg] = Field(default_factory=list)
    bracket: bool = False  # the entry carries take-profit/stop-loss legs: the broker works the exits
    reduces: bool = False  # a rebalance trim or exit: sells shares held before the plan; no room, exits or close

    @property
    def qty(self) -> int:
        """Signed-free open quantity of this layer's position (entry fills minus exit fills)."""
        return self.entry.filled_qty - sum(x.filled_qty for x in self.exits)


class MaxdiffPlanState(BaseModel):
    model_config = ConfigDict(extra="forbid")

    rank: int
    symbol: str
    side: MaxdiffSide
    high_target: float
    low_target: float
    avg_return: float
    room_needed: float = 0.0
    status: PlanStatus = PlanStatus.QUEUED
    slot: str | None = None  # the slot it trades in while listening or after filling
    expired_at_exits: int | None = None  # when it expired: shares the exits had filled (`exit_shares`)

    def target(self, side: Side) -> float:
        return self.low_target if side == Side.BUY else self.high_target

    def move(self, status: PlanStatus) -> None:
        """Change status by `PLAN_TRANSITIONS`; raises `IllegalTransition` for any other change."""
        if (self.status, status) not in PLAN_TRANSITIONS:
            raise IllegalTransition(f"maxdiff plan {self.rank} ({self.symbol}): {self.status} -> {status} "
                                    "is not allowed")
        self.status = status


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
    buying_power: float | None = None  # the plan's; None: the parameters' rule (Params.account)
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

    def legs(self) -> list[Leg]:
        """Every leg: directional entries and exits, then maxdiff slot entries and exits."""
        out: list[Leg] = []
        for d in self.directional:
            out.append(d.entry)
            out.extend(d.exits)
        for s in self.slots:
            out.append(s.entry)
            if s.exit is not None:
                out.append(s.exit)
        return out


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


def exit_shares(state: EngineState) -> int:
    """Shares every exit of both layers has filled so far: it grows exactly when an exit frees room."""
    return (sum(x.filled_qty for d in state.directional for x in d.exits)
            + sum(s.exit.filled_qty for s in state.slots if s.exit is not None))


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
    d = sum(_committed(x.entry, x.qty) for x in state.directional if not x.reduces)  # a sale of held shares adds none
    m = sum(_committed(s.entry, s.qty) for s in state.slots)
    return Exposure(d, m, state.equity)
