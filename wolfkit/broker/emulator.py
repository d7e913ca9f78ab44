"""An Alpaca-compatible HTTP server on 127.0.0.1, backed by the simulated broker.

It speaks Alpaca's trading API (and the market-data endpoints wolfkit's alpaca data provider calls)
in Alpaca's JSON shapes, status codes and error bodies, so alpaca-py's unmodified clients — and so
`AlpacaBroker` — run offline against a `SimBroker`. Point them at it with
`APCA_API_BASE_URL=http://127.0.0.1:PORT` and `APCA_API_DATA_URL=http://127.0.0.1:PORT`.

Why it exists: the executor's hard cases are transport failures that the in-process broker cannot
produce — a 504 *after* the order was accepted, a connection dropped without a response, bursts of
429s — and alpaca-py's own behaviour (retries, parsing, timeouts). `Faults` switches those on,
seeded, per request; `/_faults` changes them at run time and `/_stats` counts what happened.

Rate limit: every `/v2` request counts against `rate_limit_per_minute` (Alpaca: 200) in a sliding
minute; over it, 429 with `X-Ratelimit-Reset` (epoch seconds). Give the `SimBroker` no limit of its
own, or both apply.
"""

from __future__ import annotations

import logging
import math
import random
import socket
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pandas as pd
from flask import Flask, Response, jsonify, request
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

from wolfkit import calendar
from wolfkit.broker.base import (
    CODE_FORBIDDEN,
    CODE_UNPROCESSABLE,
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
from wolfkit.broker.sim import SimBroker
from wolfkit.broker.submission import SlidingWindowLimiter
from wolfkit.data.base import DataProvider
from wolfkit.domain import OrderType, Side, TimeInForce

ACCOUNT_ID = "9d2f4c1e-0b3a-4e6f-8a7d-5c1b2e3f4a60"
CODE_INVALID = 40010001
CODE_NOT_FOUND = 40410000
CODE_UNAUTHORIZED = 40110000
CODE_RATE_LIMIT = 42910000
DEFAULT_PAGE = 50
MAX_PAGE = 500
_GATEWAY_HTML = "<html><head><title>504 Gateway Time-out</title></head><body><center><h1>504 Gateway Time-out</h1></center></body></html>"


@dataclass
class Faults:
    """Seeded fault switches; each probability is drawn once per `/v2` request (0 turns it off).

    - `latency_s`: every request waits this long before it is handled.
    - `rate_limit_burst`: a request starts a burst of `burst_length` 429s (itself included).
    - `server_error`: 500/502/503 (JSON, HTML or empty body) before anything is processed.
    - `timeout_after_accept`: an order write (POST/PATCH/DELETE under /v2/orders) is processed,
      then answered 504 with an HTML body — the order exists but the client saw an error.
    - `drop_connection`: the socket is closed without a response; half of these happen after
      the request was processed (outcome unknown to the client), half before.
    - `partial_fill`: the simulated broker's chance that a fill opportunity fills only part.
    """

    seed: int = 0
    latency_s: float = 0.0
    rate_limit_burst: float = 0.0
    burst_length: int = 3
    server_error: float = 0.0
    timeout_after_accept: float = 0.0
    drop_connection: float = 0.0
    partial_fill: float = 0.0

    def __post_init__(self) -> None:
        for f in ("rate_limit_burst", "server_error", "timeout_after_accept", "drop_connection", "partial_fill"):
            v = getattr(self, f)
            if not 0 <= v <= 1:
                raise ValueError(f"Faults.{f} is a probability in [0, 1], got {v}")
        if self.latency_s < 0 or self.burst_length < 1:
            raise ValueError("Faults.latency_s must be >= 0 and burst_length >= 1")


class Emulator:
    """The emulator's own state: faults and their RNG, the rate-limit window, counters."""

    def __init__(self, broker: SimBroker, faults: Faults, data: DataProvider | None,
                 rate_limit_per_minute: int | None, timer: Callable[[], float]):
        self.broker = broker
        self.data = data
        self.rate_limit_per_minute = rate_limit_per_minute
        self.timer = timer
        self.stats: Counter[str] = Counter()
        self._lock = threading.Lock()
        self.limiter = SlidingWindowLimiter(rate_limit_per_minute, timer)
        self.set_faults(faults)

    def use(self, broker: SimBroker, faults: Faults | None = None) -> None:
        """Serve `broker` from now on (a fresh account per test run, one server)."""
        with self._lock:
            self.broker = broker
        self.set_faults(faults or self.faults)

    def set_faults(self, faults: Faults) -> None:
        with self._lock:
            self.faults = faults
            self._rng = random.Random(faults.seed)
            self._burst_left = 0
            self.broker.partial_fill_prob = faults.partial_fill

    def draw(self) -> dict[str, bool]:
        """One request's fault draws (a fixed number of draws per request keeps runs reproducible)."""
        f = self.faults
        with self._lock:
            u = [self._rng.random() for _ in range(5)]
            burst = self._burst_left > 0 or u[0] < f.rate_limit_burst
            if burst:
                self._burst_left = (self._burst_left or f.burst_length) - 1
            return {
                "rate_limit": burst,
                "server_error": u[1] < f.server_error,
                "timeout_after_accept": u[2] < f.timeout_after_accept,
                "drop": u[3] < f.drop_connection,
                "drop_after": u[4] < 0.5,
            }

    def choice(self, options: list) -> Any:
        with self._lock:
            return self._rng.choice(options)

    def admit(self) -> float | None:
        """Count a request against the sliding-minute limit; seconds until reset when over it."""
        return self.limiter.admit()

    def remaining(self) -> int | None:
        return self.limiter.remaining()

    def count(self, key: str) -> None:
        with self._lock:
            self.stats[key] += 1


# ---- JSON shapes ----------------------------------------------------------------------------------


def _num(x: float | None) -> str | None:
    """Alpaca sends numbers as strings."""
    if x is None:
        return None
    return f"{x:.6f}".rstrip("0").rstrip(".") or "0"


def _iso(dt: datetime | None) -> str | None:
    if dt is None:
        return None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return dt.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


def _asset_id(symbol: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_DNS, f"{symbol}.asset.wolfkit"))


def order_json(o: BrokerOrder, nested: bool = True) -> dict[str, Any]:
    """A `BrokerOrder` in Alpaca's order shape (stop legs are `type: stop`)."""
    ts = _iso(o.submitted_at)
    order_type = "stop" if o.stop_price is not None else str(o.type)
    status = str(o.status)
    order_class = ("bracket" if len(o.legs) == 2 else "oto") if o.legs else "simple"
    return {
        "id": o.id, "client_order_id": o.client_order_id, "created_at": ts, "updated_at": ts,
        "submitted_at": ts, "filled_at": ts if status == "filled" else None, "expired_at": None,
        "canceled_at": ts if status == "canceled" else None, "failed_at": None,
        "replaced_at": ts if status == "replaced" else None, "replaced_by": o.replaced_by, "replaces": o.replaces,
        "asset_id": _asset_id(o.symbol), "symbol": o.symbol, "asset_class": "us_equity", "notional": None,
        "qty": str(o.qty), "filled_qty": str(o.filled_qty), "filled_avg_price": _num(o.filled_avg_price),
        "order_class": order_class, "order_type": order_type, "type": order_type, "side": str(o.side),
        "position_intent": ("buy_to_open" if o.side == Side.BUY else "sell_to_close"),
        "time_in_force": str(o.time_in_force), "limit_price": _num(o.limit_price), "stop_price": _num(o.stop_price),
        "status": status, "extended_hours": False,
        "legs": [order_json(leg) for leg in o.legs] if (nested and o.legs) else None,
        "trail_percent": None, "trail_price": None, "hwm": None,
    }


def position_json(p: Position) -> dict[str, Any]:
    price = p.market_value / p.qty if p.qty else p.avg_entry_price
    cost = p.avg_entry_price * p.qty
    return {
        "asset_id": _asset_id(p.symbol), "symbol": p.symbol, "exchange": "NYSE", "asset_class": "us_equity",
        "asset_marginable": True, "avg_entry_price": _num(p.avg_entry_price), "qty": str(p.qty),
        "qty_available": str(p.qty), "side": "long" if p.qty >= 0 else "short",
        "market_value": _num(p.market_value), "cost_basis": _num(cost), "unrealized_pl": _num(p.unrealized_pl),
        "unrealized_plpc": _num(p.unrealized_pl / abs(cost)) if cost else "0",
        "unrealized_intraday_pl": _num(p.unrealized_pl),
        "unrealized_intraday_plpc": _num(p.unrealized_pl / abs(cost)) if cost else "0",
        "current_price": _num(price), "lastday_price": _num(price), "change_today": "0",
    }


def _drop_connection() -> Response:
    """Shut the client's socket: the server's write then fails and the client gets no response.

    werkzeug treats the failed write as a dropped connection (`connection_dropped`), so this is
    the same thing the client would see if the network died mid-request.
    """
    sock = request.environ.get("werkzeug.socket")
    if sock is not None:
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
    return Response(status=500)


def _error(status: int, code: int, message: str, **extra: Any) -> Response:
    resp = jsonify({**extra, "code": code, "message": message})
    resp.status_code = status
    return resp


class _BadRequest(Exception):
    def __init__(self, message: str, status: int = 422, code: int = CODE_INVALID):
        super().__init__(message)
        self.status, self.code = status, code


def _broker_error(e: BrokerError) -> Response:
    """wolfkit's broker errors with Alpaca's status codes and bodies."""
    if isinstance(e, InsufficientBuyingPower):
        return _error(403, CODE_FORBIDDEN, "insufficient buying power",
                      buying_power=_num(e.buying_power or 0.0), cost_basis=_num(e.cost_basis or 0.0))
    if isinstance(e, WashTradeRejected):
        return _error(403, CODE_FORBIDDEN, str(e))
    if isinstance(e, DuplicateClientOrderId):
        return _error(422, CODE_INVALID, "client_order_id must be unique")
    if isinstance(e, OrderNotFound):
        return _error(404, CODE_NOT_FOUND, str(e) or "order not found")
    if isinstance(e, RateLimited):
        return _rate_limited(e.retry_after or 1.0)
    if isinstance(e, OrderRejected):
        return _error(e.status_code or 422, e.code or CODE_UNPROCESSABLE, str(e))
    return _error(500, 50010000, str(e))


def _rate_limited(retry_after: float) -> Response:
    resp = _error(429, CODE_RATE_LIMIT, "rate limit exceeded")
    resp.headers["X-Ratelimit-Reset"] = str(math.ceil(time.time() + retry_after))
    return resp


# ---- request parsing ------------------------------------------------------------------------------


def _price(body: dict, name: str) -> float | None:
    v = body.get(name)
    if v is None or v == "":
        return None
    try:
        x = float(v)
    except (TypeError, ValueError):
        raise _BadRequest(f"invalid {name} {v!r}") from None
    if not math.isfinite(x):
        raise _BadRequest(f"invalid {name} {v!r}")
    return x


def _qty(v: Any) -> int:
    try:
        x = float(v)
    except (TypeError, ValueError):
        raise _BadRequest(f"invalid qty {v!r}") from None
    if not math.isfinite(x) or x <= 0 or x != int(x):
        raise _BadRequest(f"qty must be a positive whole number, got {v!r} (fractional orders are not emulated)")
    return int(x)


def _enum(enum: type, body: dict, name: str) -> Any:
    try:
        return enum(str(body.get(name, "")).lower())
    except ValueError:
        allowed = ", ".join(str(e) for e in enum)
        raise _BadRequest(f"invalid {name} {body.get(name)!r}; the emulator supports {allowed}") from None


def parse_order(body: dict) -> OrderRequest:
    """Alpaca's POST /v2/orders body as an `OrderRequest` (market/limit, simple/bracket/oto)."""
    if not isinstance(body, dict):
        raise _BadRequest("request body must be a JSON object", 400, CODE_INVALID)
    if body.get("notional") is not None:
        raise _BadRequest("notional orders are not emulated; send qty")
    order_class = str(body.get("order_class") or "simple").lower()
    if order_class not in ("simple", "bracket", "oto"):
        raise _BadRequest(f"order_class {order_class!r} is not emulated (simple, bracket, oto)")
    take_profit = _price(body.get("take_profit") or {}, "limit_price")
    stop_loss = _price(body.get("stop_loss") or {}, "stop_price")
    if order_class == "bracket" and (take_profit is None or stop_loss is None):
        raise _BadRequest("bracket orders require take_profit.limit_price and stop_loss.stop_price")
    if order_class == "oto" and take_profit is None and stop_loss is None:
        raise _BadRequest("oto orders require take_profit or stop_loss")
    if order_class == "simple" and (take_profit is not None or stop_loss is not None):
        raise _BadRequest("take_profit/stop_loss need order_class bracket or oto")
    return OrderRequest(
        symbol=str(body.get("symbol") or "").upper() or _missing("symbol"),
        qty=_qty(body.get("qty")),
        side=_enum(Side, body, "side"),
        type=_enum(OrderType, body, "type"),
        time_in_force=_enum(TimeInForce, body, "time_in_force"),
        client_order_id=str(body.get("client_order_id") or uuid.uuid4()),
        limit_price=_price(body, "limit_price"),
        take_profit=take_profit,
        stop_loss=stop_loss,
    )


def _missing(name: str) -> str:
    raise _BadRequest(f"{name} is required")


def _when(text: str | None, name: str) -> datetime | None:
    if not text:
        return None
    try:
        dt = datetime.fromisoformat(text.replace(" ", "+"))  # a '+' in a query string may arrive as ' '
    except ValueError:
        raise _BadRequest(f"invalid {name} {text!r}; expected RFC 3339", 400) from None
    return dt if dt.tzinfo else dt.replace(tzinfo=timezone.utc)


def _flag(text: str | None) -> bool:
    return str(text).lower() in ("true", "1", "yes")


def _day(text: str | None, default: date) -> date:
    if not text:
        return default
    try:
        return date.fromisoformat(text[:10])
    except ValueError:
        raise _BadRequest(f"invalid date {text!r}; expected YYYY-MM-DD", 400) from None


def _sessions(start: date, end: date) -> list[date]:
    return calendar.sessions_between(start, end) if start <= end else []


# ---- the app --------------------------------------------------------------------------------------


def create_app(
    broker: SimBroker,
    faults: Faults | None = None,
    *,
    data: DataProvider | None = None,
    rate_limit_per_minute: int | None = 200,
    state_path: str | Path | None = None,
    timer: Callable[[], float] = time.monotonic,
) -> Flask:
    """The Flask app: Alpaca's endpoints over `broker`, with `faults` injected per request.

    `data` serves `/v2/stocks/bars` (daily and minute bars); latest quotes come from the broker's
    quote book. `state_path` saves the broker after every change (restart with `SimBroker.load`).
    """
    app = Flask("wolfkit.emulator")
    app.json.sort_keys = False
    emu = Emulator(broker, faults or Faults(), data, rate_limit_per_minute, timer)
    app.extensions["wolfkit.emulator"] = emu
    if state_path is not None:
        broker.persist(state_path)

    @app.before_request
    def _gate() -> Response | None:
        if not request.path.startswith("/v2/"):
            return None
        emu.count("requests")
        if not (request.headers.get("APCA-API-KEY-ID") and request.headers.get("APCA-API-SECRET-KEY")):
            emu.count("401")
            return _error(401, CODE_UNAUTHORIZED, "request is not authorized")
        draw = emu.draw()
        request.environ["wolfkit.faults"] = draw
        if emu.faults.latency_s:
            time.sleep(emu.faults.latency_s)
        if draw["rate_limit"]:
            emu.count("429_injected")
            return _rate_limited(1.0)
        wait = emu.admit()
        if wait is not None:
            emu.count("429_limit")
            return _rate_limited(wait)
        if draw["server_error"]:
            emu.count("5xx_injected")
            status = emu.choice([500, 502, 503])
            kind = emu.choice(["json", "html", "empty"])
            body = {"json": '{"code":50010000,"message":"internal server error"}',
                    "html": f"<html><body><h1>{status}</h1></body></html>", "empty": ""}[kind]
            return Response(body, status=status, mimetype="application/json" if kind == "json" else "text/html")
        if draw["drop"] and not draw["drop_after"]:
            emu.count("dropped_before")
            return _drop_connection()
        return None

    @app.after_request
    def _after(resp: Response) -> Response:
        draw = request.environ.get("wolfkit.faults")
        if draw is None:
            return resp
        is_order_write = request.method in ("POST", "PATCH", "DELETE") and request.path.startswith("/v2/orders")
        if resp.status_code < 400 and draw["drop"] and draw["drop_after"]:
            emu.count("dropped_after")
            return _drop_connection()
        if resp.status_code < 400 and is_order_write and draw["timeout_after_accept"]:
            emu.count("504_after_accept")
            return Response(_GATEWAY_HTML, status=504, mimetype="text/html")
        remaining = emu.remaining()
        if remaining is not None:
            resp.headers["X-Ratelimit-Limit"] = str(emu.rate_limit_per_minute)
            resp.headers["X-Ratelimit-Remaining"] = str(remaining)
        emu.count(str(resp.status_code))
        return resp

    @app.errorhandler(_BadRequest)
    def _bad(e: _BadRequest) -> Response:
        return _error(e.status, e.code, str(e))

    @app.errorhandler(BrokerError)
    def _broker(e: BrokerError) -> Response:
        return _broker_error(e)

    # ---- trading ----

    @app.get("/v2/account")
    def account() -> Response:
        a = emu.broker.account()
        return jsonify({
            "id": ACCOUNT_ID, "account_number": "PAWOLFKIT1", "status": "ACTIVE", "crypto_status": "INACTIVE",
            "currency": "USD", "buying_power": _num(a.buying_power), "regt_buying_power": _num(a.buying_power),
            "daytrading_buying_power": _num(a.buying_power if a.multiplier > 1 else 0.0),
            "non_marginable_buying_power": _num(min(a.buying_power, max(a.cash, 0.0))),
            "cash": _num(a.cash), "accrued_fees": "0", "pending_transfer_in": "0", "portfolio_value": _num(a.equity),
            "pattern_day_trader": False, "trading_blocked": False, "transfers_blocked": False,
            "account_blocked": False, "created_at": "2024-01-02T14:30:00Z", "trade_suspended_by_user": False,
            "multiplier": _num(a.multiplier), "shorting_enabled": a.multiplier > 1, "equity": _num(a.equity),
            "last_equity": _num(a.equity), "long_market_value": _num(a.long_market_value),
            "short_market_value": _num(a.short_market_value), "initial_margin": "0", "maintenance_margin": "0",
            "last_maintenance_margin": "0", "sma": "0", "daytrade_count": 0,
        })

    @app.post("/v2/orders")
    def submit() -> Response:
        o = emu.broker.submit(parse_order(request.get_json(silent=True)))
        return jsonify(order_json(o))

    @app.get("/v2/orders")
    def list_orders() -> Response:
        args = request.args
        status = (args.get("status") or "open").lower()
        if status not in ("open", "closed", "all"):
            raise _BadRequest(f"invalid status {status!r}; open, closed or all", 400)
        try:
            limit = min(int(args.get("limit") or DEFAULT_PAGE), MAX_PAGE)
        except ValueError:
            raise _BadRequest(f"invalid limit {args.get('limit')!r}", 400) from None
        after, until = _when(args.get("after"), "after"), _when(args.get("until"), "until")
        direction = (args.get("direction") or "desc").lower()
        symbols = {s.strip().upper() for s in (args.get("symbols") or "").split(",") if s.strip()}
        side = (args.get("side") or "").lower()
        nested = _flag(args.get("nested"))
        epoch = datetime.min.replace(tzinfo=timezone.utc)

        def keep(o: BrokerOrder) -> bool:
            t = o.submitted_at or epoch
            return ((status == "all" or (status == "open") == o.status.is_open)
                    and (after is None or t > after) and (until is None or t < until)
                    and (not symbols or o.symbol in symbols) and (not side or str(o.side) == side))

        rows: list[BrokerOrder] = []
        for parent in emu.broker.orders():
            if not nested:
                rows.extend(filter(keep, [parent, *parent.legs]))
            elif keep(parent):
                rows.append(parent)
            else:  # nested: a leg still working after its parent closed is listed on its own
                rows.extend(filter(keep, parent.legs))
        rows.sort(key=lambda o: o.submitted_at or epoch, reverse=direction != "asc")
        return jsonify([order_json(o, nested) for o in rows[:limit]])

    @app.delete("/v2/orders")
    def cancel_all() -> Response:
        out = []
        for o in emu.broker.orders():
            if o.status.is_open:
                emu.broker.cancel(o.id)
                out.append({"id": o.id, "status": 200, "body": order_json(emu.broker.get(o.id))})
        resp = jsonify(out)
        resp.status_code = 207
        return resp

    @app.get("/v2/orders:by_client_order_id")
    def by_client_id() -> Response:
        cid = request.args.get("client_order_id") or ""
        o = emu.broker.get_by_client_id(cid)
        if o is None:
            raise OrderNotFound(f"order not found for client_order_id {cid}")
        return jsonify(order_json(o))

    @app.get("/v2/orders/<order_id>")
    def get_order(order_id: str) -> Response:
        return jsonify(order_json(emu.broker.get(order_id), nested=_flag(request.args.get("nested", "true"))))

    @app.patch("/v2/orders/<order_id>")
    def replace_order(order_id: str) -> Response:
        body = request.get_json(silent=True) or {}
        for name in ("stop_price", "trail"):
            if body.get(name) is not None:
                raise _BadRequest(f"replacing {name} is not emulated")
        old = emu.broker.get(order_id)
        if body.get("time_in_force") not in (None, str(old.time_in_force)):
            raise _BadRequest("changing time_in_force is not emulated")
        new = emu.broker.replace(
            order_id, qty=_qty(body["qty"]) if body.get("qty") is not None else None,
            limit_price=_price(body, "limit_price"), client_order_id=body.get("client_order_id") or None,
        )
        return jsonify(order_json(new))

    @app.delete("/v2/orders/<order_id>")
    def cancel_order(order_id: str) -> Response:
        if not emu.broker.get(order_id).status.is_open:
            return _error(422, CODE_UNPROCESSABLE, "order is not cancelable")
        emu.broker.cancel(order_id)
        return Response(status=204)

    @app.get("/v2/positions")
    def positions() -> Response:
        return jsonify([position_json(p) for p in emu.broker.positions()])

    @app.get("/v2/clock")
    def clock() -> Response:
        now = emu.broker.now()
        now = now if now.tzinfo else now.replace(tzinfo=timezone.utc)
        today = now.astimezone(calendar.NY).date()
        is_open = calendar.is_trading_day(today) and calendar.session_open(today) <= now < calendar.session_close(today)
        if calendar.is_trading_day(today) and now < calendar.session_open(today):
            next_open_day = today
        else:
            next_open_day = calendar.next_session(today)
        next_close_day = today if is_open else next_open_day
        return jsonify({
            "timestamp": now.astimezone(calendar.NY).isoformat(), "is_open": is_open,
            "next_open": calendar.session_open(next_open_day).isoformat(),
            "next_close": calendar.session_close(next_close_day).isoformat(),
        })

    @app.get("/v2/calendar")
    def market_calendar() -> Response:
        today = emu.broker.now().astimezone(calendar.NY).date()
        start = _day(request.args.get("start"), today - timedelta(days=365))
        end = _day(request.args.get("end"), today + timedelta(days=365))
        return jsonify([
            {"date": d.isoformat(), "open": calendar.session_open(d).strftime("%H:%M"),
             "close": calendar.session_close(d).strftime("%H:%M"), "session_open": "0400",
             "session_close": "2000", "settlement_date": calendar.next_session(d).isoformat()}
            for d in _sessions(start, end)
        ])

    # ---- market data ----

    @app.get("/v2/stocks/quotes/latest")
    def latest_quotes() -> Response:
        symbols = [s.strip().upper() for s in (request.args.get("symbols") or "").split(",") if s.strip()]
        if not symbols:
            raise _BadRequest("symbols is required", 400)
        quotes = emu.broker.quotes(symbols)
        now = _iso(emu.broker.now())
        return jsonify({"quotes": {
            s: {"t": _iso(q.timestamp) or now, "ax": "V", "ap": q.ask, "as": 1, "bx": "V", "bp": q.bid, "bs": 1,
                "c": ["R"], "z": "A"}
            for s, q in quotes.items()
        }})

    @app.get("/v2/stocks/bars")
    def bars() -> Response:
        if emu.data is None:
            raise _BadRequest("this emulator has no market data for bars (start it with a data provider)", 404,
                              CODE_NOT_FOUND)
        args = request.args
        symbols = [s.strip().upper() for s in (args.get("symbols") or "").split(",") if s.strip()]
        if not symbols:
            raise _BadRequest("symbols is required", 400)
        timeframe = (args.get("timeframe") or "1Day").lower()
        start = _when(args.get("start"), "start") or datetime(1970, 1, 1, tzinfo=timezone.utc)
        end = _when(args.get("end"), "end") or emu.broker.now()
        frame = _bars(emu.data, symbols, timeframe, start, end)
        if (args.get("sort") or "asc").lower() == "desc":
            frame = frame.iloc[::-1]
        try:
            offset = int(args.get("page_token") or 0)
            limit = min(int(args.get("limit") or 1000), 10_000)
        except ValueError:
            raise _BadRequest("invalid page_token or limit", 400) from None
        page = frame.iloc[offset: offset + limit]
        out: dict[str, list] = {}
        for row in page.itertuples(index=False):
            out.setdefault(row.symbol, []).append({
                "t": _iso(row.t), "o": _float_or_none(row.open), "h": _float_or_none(row.high),
                "l": _float_or_none(row.low), "c": float(row.close), "v": _float_or_none(row.volume) or 0,
                "n": 0, "vw": float(row.close),
            })
        more = offset + limit < len(frame)
        return jsonify({"bars": out, "next_page_token": str(offset + limit) if more else None})

    @app.route("/_faults", methods=["GET", "PUT", "POST"])
    def faults_route() -> Response:
        if request.method != "GET":
            body = request.get_json(silent=True) or {}
            unknown = set(body) - {f.name for f in fields(Faults)}
            if unknown:
                raise _BadRequest(f"unknown fault fields {sorted(unknown)}", 400)
            emu.set_faults(Faults(**body))
        return jsonify(asdict(emu.faults))

    @app.get("/_stats")
    def stats_route() -> Response:
        return jsonify(dict(emu.stats))

    return app


def _float_or_none(x: object) -> float | None:
    v = float(x)  # type: ignore[arg-type]
    return None if math.isnan(v) else v


def _bars(data: DataProvider, symbols: list[str], timeframe: str, start: datetime, end: datetime) -> pd.DataFrame:
    """Bars in [start, end] from the provider, one column `t` (bar start, UTC), sorted by symbol, t."""
    cols = ["symbol", "t", "open", "high", "low", "close", "volume"]
    ny_start, ny_end = start.astimezone(calendar.NY), end.astimezone(calendar.NY)
    if timeframe in ("1day", "1d"):
        frame = data.daily_bars(symbols, ny_start.date(), ny_end.date())
        t = pd.to_datetime(frame["date"]).dt.tz_localize(calendar.NY).dt.tz_convert("UTC")
        frame = frame.assign(t=t)
    elif timeframe in ("1min", "1m", "1t"):
        parts = [data.minute_bars(symbols, d) for d in _sessions(ny_start.date(), ny_end.date())]
        frame = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=cols)
        frame = frame.assign(t=pd.to_datetime(frame["timestamp"], utc=True))
    else:
        raise _BadRequest(f"timeframe {timeframe!r} is not emulated (1Day, 1Min)", 422)
    frame = frame[(frame["t"] >= pd.Timestamp(start)) & (frame["t"] <= pd.Timestamp(end))]
    return frame.sort_values(["symbol", "t"])[cols].reset_index(drop=True)


def emulator_of(app: Flask) -> Emulator:
    """The `Emulator` state behind an app made by `create_app` (faults, stats)."""
    return app.extensions["wolfkit.emulator"]


class _QuietHandler(WSGIRequestHandler):
    """No access log, and a dropped connection is expected here, not an error."""

    def log_request(self, *args: Any, **kwargs: Any) -> None:
        pass

    def connection_dropped(self, error: BaseException, environ: dict | None = None) -> None:
        pass


class EmulatorServer:
    """A running emulator: `url`, `port`; `start()` in a thread (tests) or `serve_forever()`."""

    def __init__(self, app: Flask, port: int = 0, host: str = "127.0.0.1", quiet: bool = True):
        self.app = app
        self._server: BaseWSGIServer = make_server(
            host, port, app, threaded=True, request_handler=_QuietHandler if quiet else WSGIRequestHandler
        )
        self.host, self.port = host, self._server.server_port
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def emulator(self) -> Emulator:
        return emulator_of(self.app)

    def start(self) -> EmulatorServer:
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="wolfkit-emulator", daemon=True)
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        self._server.serve_forever()

    def shutdown(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> EmulatorServer:
        return self.start() if self._thread is None else self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()


def serve(app: Flask, port: int = 0, host: str = "127.0.0.1", *, quiet: bool = True) -> EmulatorServer:
    """Serve `app` (from `create_app`) in a background thread; port 0 picks a free one.
    Returns at once; `shutdown()` stops it."""
    return EmulatorServer(app, port, host, quiet=quiet).start()


class DemoFeed:
    """Keeps a `SimBroker`'s quotes current from a provider (the demo market) and lets open
    orders fill: every `interval_s`, latest quotes for the universe at wall-clock time, then a
    fill step. Runs in a daemon thread; a failed refresh is counted, not fatal."""

    def __init__(self, broker: SimBroker, provider: DataProvider, interval_s: float = 5.0,
                 clock: Callable[[], datetime] = lambda: datetime.now(calendar.NY)):
        self.broker, self.provider, self.interval_s, self.clock = broker, provider, interval_s, clock
        self.symbols = list(provider.universe()["symbol"])
        self.errors = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def refresh(self) -> None:
        now = self.clock()
        # a provider may build its price history lazily; ask for recent bars first
        self.provider.daily_bars(self.symbols[:1], now.date() - timedelta(days=10), now.date())
        q = self.provider.latest_quotes(self.symbols, now)
        self.broker.market.update(list(q["symbol"]), q["bid"].to_numpy(), q["ask"].to_numpy(), now)
        self.broker.step()

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.refresh()
            except Exception:
                self.errors += 1

    def start(self) -> DemoFeed:
        self.refresh()
        self._thread = threading.Thread(target=self._loop, name="wolfkit-demo-feed", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()


def run_demo(port: int, *, provider: DataProvider, equity: float = 100_000.0, multiplier: float = 2.0,
             state_path: str | Path | None = None, host: str = "127.0.0.1",
             on_ready: Callable[[EmulatorServer], None] | None = None) -> None:
    """`wolfkit emulator`: a paper account on the demo market, served until interrupted.

    With `state_path`, the account is loaded from it when it exists and saved after every change,
    so a restart keeps every order (client ids stay unique across restarts, as at Alpaca).
    """
    clock = lambda: datetime.now(calendar.NY)  # noqa: E731
    if state_path is not None and Path(state_path).exists():
        broker = SimBroker.load(state_path, clock=clock)
    else:
        broker = SimBroker(equity, multiplier, clock=clock)
    feed = DemoFeed(broker, provider, clock=clock).start()
    app = create_app(broker, data=provider, state_path=state_path)
    server = EmulatorServer(app, port, host, quiet=False)
    if on_ready is not None:
        on_ready(server)
    try:
        server.serve_forever()
    finally:
        feed.stop()
        server._server.server_close()


logging.getLogger("werkzeug").setLevel(logging.WARNING)
