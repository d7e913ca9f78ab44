"""Alpaca's trading API on the wire, as the emulator speaks it: JSON shapes, request parsing, errors.

Every error leaves as Alpaca does it — the HTTP status with a JSON body ``{"code": 8 digits,
"message": "..."}`` (the code starts with the status: 40010000 a malformed body, 40010001 an
invalid request or unknown asset, 40410000 not found, 40310000 forbidden, 42210000 unprocessable,
42910000 rate limited, 50010000 internal) — so alpaca-py raises its `APIError` with `status_code`,
`code` and `message`, and `wolfkit.broker.alpaca.map_api_error` maps that to wolfkit's errors.
"""

from __future__ import annotations

import math
import time
import uuid
from datetime import date, datetime, timezone
from enum import StrEnum
from typing import Any, TypeVar

from flask import Response, jsonify

from wolfkit.broker.base import (
    CODE_FORBIDDEN,
    CODE_INVALID,
    CODE_UNPROCESSABLE,
    AccountInfo,
    BrokerError,
    BrokerOrder,
    DuplicateClientOrderId,
    InsufficientBuyingPower,
    OrderNotFound,
    OrderRejected,
    OrderRequest,
    Position,
    RateLimited,
    WashTradeRejected,
)
from wolfkit.domain import OrderType, Side, TimeInForce

ACCOUNT_ID = "9d2f4c1e-0b3a-4e6f-8a7d-5c1b2e3f4a60"
CODE_MALFORMED = 40010000
CODE_NOT_FOUND = 40410000
CODE_UNAUTHORIZED = 40110000
CODE_RATE_LIMIT = 42910000
CODE_INTERNAL = 50010000

E = TypeVar("E", bound=StrEnum)


def status_code_of(status: int) -> int:
    """Alpaca's generic code for an HTTP status (404 → 40410000)."""
    return status * 100_000 + 10_000


class ApiError(Exception):
    """A request the emulator answers with an Alpaca error body (`status`, `code`, `message`)."""

    def __init__(self, message: str, status: int = 422, code: int = CODE_INVALID):
        super().__init__(message)
        self.status, self.code = status, code


# ---- responses ------------------------------------------------------------------------------------


def error_response(status: int, code: int, message: str, **extra: Any) -> Response:
    resp = jsonify({**extra, "code": code, "message": message})
    resp.status_code = status
    return resp


def rate_limited(retry_after: float) -> Response:
    resp = error_response(429, CODE_RATE_LIMIT, "rate limit exceeded")
    resp.headers["X-Ratelimit-Reset"] = str(math.ceil(time.time() + retry_after))
    return resp


def broker_error_response(e: BrokerError) -> Response:
    """wolfkit's broker errors with Alpaca's status codes and bodies."""
    if isinstance(e, InsufficientBuyingPower):
        return error_response(403, CODE_FORBIDDEN, "insufficient buying power",
                              buying_power=num(e.buying_power or 0.0), cost_basis=num(e.cost_basis or 0.0))
    if isinstance(e, WashTradeRejected):
        return error_response(403, CODE_FORBIDDEN, str(e))
    if isinstance(e, DuplicateClientOrderId):
        return error_response(422, CODE_INVALID, "client_order_id must be unique")
    if isinstance(e, OrderNotFound):
        return error_response(404, CODE_NOT_FOUND, str(e) or "order not found")
    if isinstance(e, RateLimited):
        return rate_limited(e.retry_after or 1.0)
    if isinstance(e, OrderRejected):
        return error_response(e.status_code or 422, e.code or CODE_UNPROCESSABLE, str(e))
    return error_response(500, CODE_INTERNAL, str(e) or type(e).__name__)


# ---- JSON shapes ----------------------------------------------------------------------------------


def num(x: float | None) -> str | None:
    """Alpaca sends numbers as strings."""
    if x is None:
        return None
    return f"{x:.6f}".rstrip("0").rstrip(".") or "0"


def iso(dt: datetime | None) -> str | None:
    if dt is None:
        return None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return dt.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


def asset_id(symbol: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_DNS, f"{symbol}.asset.wolfkit"))


def order_json(o: BrokerOrder, nested: bool = True) -> dict[str, Any]:
    """A `BrokerOrder` in Alpaca's order shape (stop legs are `type: stop`)."""
    ts = iso(o.submitted_at)
    order_type = "stop" if o.stop_price is not None else str(o.type)
    status = str(o.status)
    order_class = ("bracket" if len(o.legs) == 2 else "oto") if o.legs else "simple"
    return {
        "id": o.id, "client_order_id": o.client_order_id, "created_at": ts, "updated_at": ts,
        "submitted_at": ts, "filled_at": ts if status == "filled" else None,
        "expired_at": ts if status == "expired" else None,
        "canceled_at": ts if status == "canceled" else None, "failed_at": None,
        "replaced_at": ts if status == "replaced" else None, "replaced_by": o.replaced_by, "replaces": o.replaces,
        "asset_id": asset_id(o.symbol), "symbol": o.symbol, "asset_class": "us_equity", "notional": None,
        "qty": str(o.qty), "filled_qty": str(o.filled_qty), "filled_avg_price": num(o.filled_avg_price),
        "order_class": order_class, "order_type": order_type, "type": order_type, "side": str(o.side),
        "position_intent": ("buy_to_open" if o.side == Side.BUY else "sell_to_close"),
        "time_in_force": str(o.time_in_force), "limit_price": num(o.limit_price), "stop_price": num(o.stop_price),
        "status": status, "extended_hours": o.extended_hours,
        "legs": [order_json(leg) for leg in o.legs] if (nested and o.legs) else None,
        "trail_percent": None, "trail_price": None, "hwm": None,
    }


def position_json(p: Position) -> dict[str, Any]:
    price = p.market_value / p.qty if p.qty else p.avg_entry_price
    cost = p.avg_entry_price * p.qty
    return {
        "asset_id": asset_id(p.symbol), "symbol": p.symbol, "exchange": "NYSE", "asset_class": "us_equity",
        "asset_marginable": True, "avg_entry_price": num(p.avg_entry_price), "qty": str(p.qty),
        "qty_available": str(p.qty), "side": "long" if p.qty >= 0 else "short",
        "market_value": num(p.market_value), "cost_basis": num(cost), "unrealized_pl": num(p.unrealized_pl),
        "unrealized_plpc": num(p.unrealized_pl / abs(cost)) if cost else "0",
        "unrealized_intraday_pl": num(p.unrealized_pl),
        "unrealized_intraday_plpc": num(p.unrealized_pl / abs(cost)) if cost else "0",
        "current_price": num(price), "lastday_price": num(price), "change_today": "0",
    }


def account_json(a: AccountInfo) -> dict[str, Any]:
    return {
        "id": ACCOUNT_ID, "account_number": "PAWOLFKIT1", "status": "ACTIVE", "crypto_status": "INACTIVE",
        "currency": "USD", "buying_power": num(a.buying_power), "regt_buying_power": num(a.buying_power),
        "daytrading_buying_power": num(a.buying_power if a.multiplier > 1 else 0.0),
        "non_marginable_buying_power": num(min(a.buying_power, max(a.cash, 0.0))),
        "cash": num(a.cash), "accrued_fees": "0", "pending_transfer_in": "0", "portfolio_value": num(a.equity),
        "pattern_day_trader": False, "trading_blocked": False, "transfers_blocked": False,
        "account_blocked": False, "created_at": "2024-01-02T14:30:00Z", "trade_suspended_by_user": False,
        "multiplier": num(a.multiplier), "shorting_enabled": a.multiplier > 1, "equity": num(a.equity),
        "last_equity": num(a.equity), "long_market_value": num(a.long_market_value),
        "short_market_value": num(a.short_market_value), "initial_margin": "0", "maintenance_margin": "0",
        "last_maintenance_margin": "0", "sma": "0", "daytrade_count": 0,
    }


def asset_json(symbol: str) -> dict[str, Any]:
    return {"id": asset_id(symbol), "class": "us_equity", "exchange": "NYSE", "symbol": symbol, "name": symbol,
            "status": "active", "tradable": True, "marginable": True, "shortable": True, "easy_to_borrow": True,
            "fractionable": False, "attributes": []}


# ---- request parsing ------------------------------------------------------------------------------


def price(body: dict[str, Any], name: str) -> float | None:
    v = body.get(name)
    if v is None or v == "":
        return None
    try:
        x = float(v)
    except (TypeError, ValueError):
        raise ApiError(f"invalid {name} {v!r}") from None
    if not math.isfinite(x):
        raise ApiError(f"invalid {name} {v!r}")
    return x


def qty(v: Any) -> int:
    if v is None or v == "":
        raise ApiError("qty is required")
    try:
        x = float(v)
    except (TypeError, ValueError):
        raise ApiError(f"invalid qty {v!r}") from None
    if not math.isfinite(x) or x <= 0 or x != int(x):
        raise ApiError(f"qty must be a positive whole number, got {v!r} (fractional orders are not emulated)")
    return int(x)


def _enum(enum: type[E], body: dict[str, Any], name: str) -> E:
    try:
        return enum(str(body.get(name, "")).lower())
    except ValueError:
        allowed = ", ".join(e.value for e in enum)
        raise ApiError(f"invalid {name} {body.get(name)!r}; the emulator supports {allowed}") from None


def _exit(body: dict[str, Any], name: str, field: str) -> float | None:
    part = body.get(name)
    if part is None:
        return None
    if not isinstance(part, dict):
        raise ApiError(f"{name} must be an object with {field}")
    return price(part, field)


def parse_order(body: Any) -> OrderRequest:
    """Alpaca's POST /v2/orders body as an `OrderRequest` (market/limit, simple/bracket/oto)."""
    if not isinstance(body, dict):
        raise ApiError("request body format is invalid (expected a JSON object)", 400, CODE_MALFORMED)
    if body.get("notional") is not None:
        raise ApiError("notional orders are not emulated; send qty")
    order_class = str(body.get("order_class") or "simple").lower()
    if order_class not in ("simple", "bracket", "oto"):
        raise ApiError(f"order_class {order_class!r} is not emulated (simple, bracket, oto)")
    take_profit = _exit(body, "take_profit", "limit_price")
    stop_loss = _exit(body, "stop_loss", "stop_price")
    if order_class == "bracket" and (take_profit is None or stop_loss is None):
        raise ApiError("bracket orders require take_profit.limit_price and stop_loss.stop_price")
    if order_class == "oto" and take_profit is None and stop_loss is None:
        raise ApiError("oto orders require take_profit or stop_loss")
    if order_class == "simple" and (take_profit is not None or stop_loss is not None):
        raise ApiError("take_profit/stop_loss need order_class bracket or oto")
    symbol = str(body.get("symbol") or "").upper()
    if not symbol:
        raise ApiError("symbol is required")
    return OrderRequest(
        symbol=symbol,
        qty=qty(body.get("qty")),
        side=_enum(Side, body, "side"),
        type=_enum(OrderType, body, "type"),
        time_in_force=_enum(TimeInForce, body, "time_in_force"),
        client_order_id=str(body.get("client_order_id") or uuid.uuid4()),
        limit_price=price(body, "limit_price"),
        take_profit=take_profit,
        stop_loss=stop_loss,
        extended_hours=flag(body.get("extended_hours")),
    )


def when(text: str | None, name: str) -> datetime | None:
    if not text:
        return None
    try:
        dt = datetime.fromisoformat(text.replace(" ", "+"))  # a '+' in a query string may arrive as ' '
    except ValueError:
        raise ApiError(f"invalid {name} {text!r}; expected RFC 3339", 400) from None
    return dt if dt.tzinfo else dt.replace(tzinfo=timezone.utc)


def flag(value: object) -> bool:
    return str(value).lower() in ("true", "1", "yes")


def day(text: str | None, default: date) -> date:
    if not text:
        return default
    try:
        return date.fromisoformat(text[:10])
    except ValueError:
        raise ApiError(f"invalid date {text!r}; expected YYYY-MM-DD", 400) from None
