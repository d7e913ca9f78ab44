"""The `Broker` protocol, its typed request/response models, and the errors every broker maps to.

Modelled on Alpaca's trading API (and alpaca-py's typed models) so the simulated broker, the Alpaca
adapter and the emulator agree on meaning: an open buy reserves buying power until it fills or is
cancelled; a client order id is unique forever; a replace yields a new order id.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from datetime import time as dtime
from enum import StrEnum
from typing import Protocol, Sequence, runtime_checkable

from wolfkit.calendar import NY
from wolfkit.domain import OrderType, Side, TimeInForce
from wolfkit.errors import BrokerError

# Alpaca's error codes (the body is {"code": …, "message": …}): one 403 code covers insufficient buying power, wash trades and more (so the
# message must be matched too); 422 is an invalid order (tick, OPG window, duplicate client id).
CODE_INVALID = 40010001  # a malformed or invalid request (also Alpaca's "asset not found")
CODE_FORBIDDEN = 40310000
CODE_UNPROCESSABLE = 42210000
# Alpaca refuses OPG orders from 09:28 to 19:00 ET; before and after, they queue for the next open.
OPG_REFUSED = (dtime(9, 28), dtime(19, 0))


def opg_allowed(now: datetime) -> bool:
    """True when Alpaca accepts an OPG order at `now` (naive times are read as New York)."""
    t = now.astimezone(NY).time() if now.tzinfo else now.time()
    return not OPG_REFUSED[0] <= t < OPG_REFUSED[1]


class OrderStatus(StrEnum):
    """Alpaca's order statuses (the subset wolfkit meets)."""

    PENDING_NEW = "pending_new"
    NEW = "new"
    ACCEPTED = "accepted"
    PARTIALLY_FILLED = "partially_filled"
    FILLED = "filled"
    DONE_FOR_DAY = "done_for_day"
    CANCELED = "canceled"
    EXPIRED = "expired"
    REPLACED = "replaced"
    PENDING_CANCEL = "pending_cancel"
    PENDING_REPLACE = "pending_replace"
    REJECTED = "rejected"
    HELD = "held"  # a bracket leg waiting for its parent to fill

    @property
    def is_open(self) -> bool:
        return self in _OPEN

    @property
    def is_final(self) -> bool:
        return self in _FINAL


_OPEN = {
    OrderStatus.PENDING_NEW, OrderStatus.NEW, OrderStatus.ACCEPTED, OrderStatus.PARTIALLY_FILLED,
    OrderStatus.PENDING_CANCEL, OrderStatus.PENDING_REPLACE, OrderStatus.HELD,
}
_FINAL = {
    OrderStatus.FILLED, OrderStatus.CANCELED, OrderStatus.EXPIRED, OrderStatus.REPLACED,
    OrderStatus.REJECTED, OrderStatus.DONE_FOR_DAY,
}


@dataclass(frozen=True)
class OrderRequest:
    """What to submit. `take_profit`/`stop_loss` make it a bracket order."""

    symbol: str
    qty: int
    side: Side
    type: OrderType
    time_in_force: TimeInForce
    client_order_id: str
    limit_price: float | None = None
    take_profit: float | None = None
    stop_loss: float | None = None
    extended_hours: bool = False  # a DAY limit that may also trade pre-market and after-hours


@dataclass
class BrokerOrder:
    """An order as the broker knows it."""

    id: str
    client_order_id: str
    symbol: str
    side: Side
    qty: int
    type: OrderType
    time_in_force: TimeInForce
    status: OrderStatus
    limit_price: float | None = None
    stop_price: float | None = None  # set on a bracket's stop-loss leg (a stop order)
    filled_qty: int = 0
    filled_avg_price: float | None = None
    submitted_at: datetime | None = None
    replaced_by: str | None = None
    replaces: str | None = None
    legs: list[BrokerOrder] = field(default_factory=list)
    extended_hours: bool = False

    @property
    def remaining_qty(self) -> int:
        return self.qty - self.filled_qty


@dataclass(frozen=True)
class AccountInfo:
    equity: float
    cash: float
    buying_power: float
    multiplier: float
    long_market_value: float = 0.0
    short_market_value: float = 0.0


@dataclass(frozen=True)
class Position:
    symbol: str
    qty: int  # signed: negative is short
    avg_entry_price: float
    market_value: float
    unrealized_pl: float


@dataclass(frozen=True)
class Quote:
    symbol: str
    bid: float
    ask: float
    timestamp: datetime | None = None

    @property
    def mid(self) -> float:
        return (self.bid + self.ask) / 2


@dataclass(frozen=True)
class Fill:
    """One execution. Its identity is the broker's: (`order_id`, `cum_qty`) — the order's filled
    quantity after this execution only grows, so it names the execution in every process; the
    timestamp is data, never identity."""

    order_id: str
    client_order_id: str
    symbol: str
    side: Side
    qty: int
    price: float
    timestamp: datetime
    cum_qty: int  # the order's filled quantity including this execution


class UpdateEvent(StrEnum):
    NEW = "new"
    FILL = "fill"
    PARTIAL_FILL = "partial_fill"
    CANCELED = "canceled"
    EXPIRED = "expired"
    REPLACED = "replaced"
    REJECTED = "rejected"


@dataclass(frozen=True)
class OrderUpdate:
    """One trade update (as on Alpaca's trade_updates stream)."""

    event: UpdateEvent
    order: BrokerOrder
    fill: Fill | None = None
    at: datetime | None = None


# ---- errors: every broker maps its failures to these --------------------------------------------


class InsufficientBuyingPower(BrokerError):
    """HTTP 403, code 40310000, "insufficient buying power"; `buying_power` is what the body reported."""

    def __init__(self, message: str, buying_power: float | None = None, cost_basis: float | None = None):
        super().__init__(message)
        self.buying_power = buying_power
        self.cost_basis = cost_basis


class DuplicateClientOrderId(BrokerError):
    """HTTP 422 "client_order_id must be unique": an order with this id already exists."""


class OrderRejected(BrokerError):
    """The broker refused the order for a reason resubmitting will not fix (tick, OPG window, …)."""

    def __init__(self, message: str, code: int | None = None, status_code: int | None = None):
        super().__init__(message)
        self.code = code
        self.status_code = status_code


class WashTradeRejected(OrderRejected):
    """An opposite-side order while another is open on the symbol (potential wash trade)."""


class RateLimited(BrokerError):
    """HTTP 429; `retry_after` seconds until the window resets (from X-Ratelimit-Reset)."""

    def __init__(self, message: str, retry_after: float | None = None):
        super().__init__(message)
        self.retry_after = retry_after


class BrokerUnavailable(BrokerError):
    """5xx, timeout or dropped connection: the request's outcome is UNKNOWN (it may have been accepted)."""


class OrderNotFound(BrokerError):
    """No order with that id or client id."""


@runtime_checkable
class Broker(Protocol):
    """What the executor and the intraday engine need from a broker."""

    name: str

    @property
    def rate_limit_per_minute(self) -> int | None:
        """Requests the broker allows in any 60 s; None: no limit (the in-process simulator, unless a
        test gives it one). The executor keeps under `execution.rate_limit_per_minute` only when there
        is one. Read-only here, so a broker may declare it as a plain `int`."""
        ...

    def account(self) -> AccountInfo: ...

    def quotes(self, symbols: Sequence[str]) -> dict[str, Quote]: ...

    def submit(self, request: OrderRequest) -> BrokerOrder: ...

    def get_by_client_id(self, client_order_id: str) -> BrokerOrder | None:
        """The order with this client id, or None if the broker has never seen it."""
        ...

    def get(self, order_id: str) -> BrokerOrder:
        """The order with this broker id (`OrderNotFound` if none)."""
        ...

    def cancel(self, order_id: str) -> None: ...

    def replace(
        self, order_id: str, *, qty: int | None = None, limit_price: float | None = None,
        stop_price: float | None = None, client_order_id: str | None = None,
    ) -> BrokerOrder:
        """Replace an open order; returns the NEW order (new id). Reserves the larger of old and new.
        `stop_price` moves a stop order (a bracket's stop-loss leg: the trailing stop)."""
        ...

    def open_orders(self) -> list[BrokerOrder]: ...

    def orders_by_prefix(self, prefix: str, since: datetime | None = None) -> list[BrokerOrder]:
        """Every order, in any status, whose client id starts with `prefix` and that was submitted at
        or after `since`, oldest first (legs inside their parents): what the broker itself holds for a
        run, whatever a ledger says."""
        ...

    def positions(self) -> list[Position]: ...

    def updates(self) -> list[OrderUpdate]:
        """Order updates (fills, cancels, …) since the previous call, oldest first."""
        ...
