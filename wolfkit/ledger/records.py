"""The ledger's vocabulary: order states, sizing, event kinds, the typed rows it hands out, and its errors."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from wolfkit.broker.base import OrderStatus
from wolfkit.domain import Layer, MaxdiffSide, OrderType, PlanStatus, Side, Strategy, TimeInForce
from wolfkit.errors import BadInputError

UNKNOWN_ACCOUNT = ""  # rows written before the ledger was keyed by account (schema 2 and older)
FIX = "restore it from a backup, or move it aside to start a new ledger (a re-run then reconciles with the broker)"


class LedgerError(BadInputError):
    """The ledger file cannot be used as it is (garbage, truncated, read-only, foreign, no room)."""


class LedgerFull(LedgerError):
    """The disk filled up while writing the ledger: nothing more is sent until space is freed."""


class OrderState(StrEnum):
    """Where a planned order stands, from the executor's point of view."""

    PLANNED = "planned"  # known, nothing sent yet
    SUBMITTING = "submitting"  # intent written; the broker's answer is not (yet) known
    ACCEPTED = "accepted"  # the broker holds it, open
    PARTIALLY_FILLED = "partially_filled"
    FILLED = "filled"
    CANCELED = "canceled"
    EXPIRED = "expired"
    REJECTED = "rejected"  # refused for a reason resubmitting will not fix
    SKIPPED = "skipped"  # deliberately not sent (no budget, wash-trade rule, no quote, …)

    @property
    def at_broker(self) -> bool:
        return self in (OrderState.ACCEPTED, OrderState.PARTIALLY_FILLED, OrderState.FILLED,
                        OrderState.CANCELED, OrderState.EXPIRED)

    @classmethod
    def of(cls, status: OrderStatus) -> OrderState:
        """The ledger state for a broker status."""
        return {
            OrderStatus.FILLED: cls.FILLED, OrderStatus.PARTIALLY_FILLED: cls.PARTIALLY_FILLED,
            OrderStatus.CANCELED: cls.CANCELED, OrderStatus.EXPIRED: cls.EXPIRED,
            OrderStatus.DONE_FOR_DAY: cls.EXPIRED, OrderStatus.REJECTED: cls.REJECTED,
            OrderStatus.REPLACED: cls.CANCELED,
        }.get(status, cls.ACCEPTED)


class Sizing(StrEnum):
    """How the submitted quantity relates to the planned one."""

    AS_PLANNED = "as_planned"
    SHRUNK = "shrunk"  # cut before submitting, to fit the running buying-power budget
    RESIZED = "resized"  # cut after an insufficient-buying-power rejection, to what the broker reported


class EventKind(StrEnum):
    """What an event in the append-only history records."""

    RUN_STARTED = "run_started"
    RUN_FINISHED = "run_finished"
    INTENT = "intent"
    ACK = "ack"
    REJECTED = "rejected"
    INSUFFICIENT_BP = "insufficient_buying_power"
    DUPLICATE_ADOPTED = "duplicate_adopted"
    UNKNOWN_OUTCOME = "unknown_outcome"
    RATE_LIMITED = "rate_limited"
    RECONCILED = "reconciled"
    SKIPPED = "skipped"
    SHRUNK = "shrunk"
    FALLBACK = "fallback"
    FILL = "fill"
    STATUS = "status"
    NOTE = "note"
    REPLACED_BY_PLAN = "replaced_by_plan"  # a later plan for the session cancelled this order (`--replace`)
    SESSION_OVERRIDE = "session_override"  # sent outside the plan's session on purpose (`--session-override`)


@dataclass(frozen=True)
class LedgerOrder:
    """One planned order and where it stands, on one account (`account`: `wolfkit.broker.account.AccountKey`
    as text; "" for rows written before accounts were keyed)."""

    account: str
    run_id: str
    plan_client_id: str
    symbol: str
    side: Side
    layer: Layer
    type: OrderType
    time_in_force: TimeInForce
    limit_price: float | None
    priority: int
    planned_qty: int
    est_price: float
    take_profit: float | None
    stop_loss: float | None
    strategy: Strategy
    sector: str
    cap_tier: str
    score: float
    weight: float
    state: OrderState
    attempt: int
    client_order_id: str | None
    broker_order_id: str | None
    qty: int
    filled_qty: int
    avg_price: float | None
    sizing: Sizing
    reason: str
    submitted_type: OrderType | None
    submitted_tif: TimeInForce | None
    submitted_limit: float | None
    updated_at: str


@dataclass(frozen=True)
class LedgerEvent:
    """One row of the append-only history."""

    id: int
    account: str
    run_id: str
    at: str
    kind: EventKind
    plan_client_id: str | None
    client_order_id: str | None
    detail: dict[str, Any]


@dataclass(frozen=True)
class PlanRow:
    """A maxdiff plan as stored for a session on an account."""

    account: str
    session: str
    run_id: str
    symbol: str
    side: MaxdiffSide
    high_target: float
    low_target: float
    avg_return: float
    status: PlanStatus
    rank: int
    qty: int
    room_needed: float
    updated_at: str
