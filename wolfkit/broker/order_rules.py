"""What Alpaca accepts in an order, checked before it reaches the book (HTTP 422 when not).

Whole positive quantities; client ids of 1–128 characters; limits (and bracket exits) positive and
on the tick; market orders without a limit; extended hours only for DAY limit orders without
exits; OPG orders outside 09:28–19:00 ET. Whether the symbol is known is the market's question
(`SimBroker` asks its quote book).
"""

from __future__ import annotations

import math
from datetime import datetime

from wolfkit.broker.base import CODE_UNPROCESSABLE, OrderRejected, OrderRequest, opg_allowed
from wolfkit.domain import OrderType, TimeInForce, round_to_tick


def invalid(message: str) -> OrderRejected:
    """Alpaca's 422 for an order it will not take."""
    return OrderRejected(message, CODE_UNPROCESSABLE, 422)


def check_order(r: OrderRequest, now: datetime) -> None:
    """Raise `OrderRejected` (422) when Alpaca would refuse `r` at `now`."""
    if not isinstance(r.qty, int) or r.qty <= 0:
        raise invalid(f"qty must be a positive whole number, got {r.qty}")
    if not r.client_order_id or len(r.client_order_id) > 128:
        raise invalid("client_order_id must be 1 to 128 characters")
    if r.type == OrderType.LIMIT:
        lp = r.limit_price
        if lp is None or not math.isfinite(lp) or lp <= 0:
            raise invalid("limit orders require a positive limit_price")
        if abs(round_to_tick(lp) - lp) > 1e-9:
            raise invalid(f"invalid limit_price {lp}. sub-penny increment does not fulfill minimum pricing criteria")
    elif r.limit_price is not None:
        raise invalid("market orders must not have a limit_price")
    for name in ("take_profit", "stop_loss"):
        v = getattr(r, name)
        if v is not None and (not math.isfinite(v) or v <= 0 or abs(round_to_tick(v) - v) > 1e-9):
            raise invalid(f"invalid {name} price {v} (must be positive and on the tick)")
    if r.extended_hours and (r.type != OrderType.LIMIT or r.time_in_force != TimeInForce.DAY
                             or r.take_profit is not None or r.stop_loss is not None):
        raise invalid("extended hours order must be DAY limit orders")
    if r.time_in_force == TimeInForce.OPG and not opg_allowed(now):
        raise invalid("opg orders are not accepted between 9:28am and 7:00pm ET")
