"""The emulator's Flask app: Alpaca's trading endpoints (and the market-data endpoints wolfkit's
alpaca data provider calls) over a `SimBroker`, with seeded faults injected per request.

Every answer is Alpaca's: its JSON shapes and, for every error — a bad body, a failed validation,
an unknown symbol or order, a route or method that does not exist, an internal failure — its status
with a ``{"code", "message"}`` JSON body, never an HTML page (`alpaca_wire`). The only non-JSON
answers are the injected faults that imitate a gateway in the way (HTML 5xx/504, dropped sockets).
`/v2/clock` reads the broker's clock, the same clock that decides what may fill (`matching`).
"""

from __future__ import annotations

import logging
import math
import socket
import time
from collections.abc import Callable
from dataclasses import asdict, fields
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pandas as pd
from flask import Flask, Response, jsonify, request
from flask.json.provider import DefaultJSONProvider
from werkzeug.exceptions import HTTPException

from wolfkit import calendar
from wolfkit.broker import matching
from wolfkit.broker.alpaca_wire import (
    CODE_INTERNAL,
    CODE_MALFORMED,
    CODE_NOT_FOUND,
    CODE_UNAUTHORIZED,
    ApiError,
    account_json,
    asset_json,
    broker_error_response,
    day,
    error_response,
    flag,
    iso,
    order_json,
    parse_order,
    position_json,
    price,
    qty,
    rate_limited,
    status_code_of,
    when,
)
from wolfkit.broker.base import CODE_UNPROCESSABLE, BrokerError, BrokerOrder, OrderNotFound
from wolfkit.broker.emulator_state import Emulator, Faults
from wolfkit.broker.sim import SimBroker
from wolfkit.data.base import DataProvider
from wolfkit.errors import BadInputError

DEFAULT_PAGE = 50
MAX_PAGE = 500
_GATEWAY_HTML = "<html><head><title>504 Gateway Time-out</title></head><body><center><h1>504 Gateway Time-out</h1></center></body></html>"
log = logging.getLogger("wolfkit.emulator")


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


def _json_body() -> Any:
    """The request's JSON body; an unreadable one is Alpaca's 400 "request body format is invalid"."""
    body = request.get_json(silent=True)
    if body is None and request.get_data():
        raise ApiError("request body format is invalid (not JSON)", 400, CODE_MALFORMED)
    return body


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
    if isinstance(app.json, DefaultJSONProvider):
        app.json.sort_keys = False  # keep Alpaca's field order
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
            return error_response(401, CODE_UNAUTHORIZED, "request is not authorized")
        draw = emu.draw()
        request.environ["wolfkit.faults"] = draw
        if emu.faults.latency_s:
            time.sleep(emu.faults.latency_s)
        if draw["rate_limit"]:
            emu.count("429_injected")
            return rate_limited(1.0)
        wait = emu.admit()
        if wait is not None:
            emu.count("429_limit")
            return rate_limited(wait)
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

    @app.errorhandler(ApiError)
    def _bad(e: ApiError) -> Response:
        return error_response(e.status, e.code, str(e))

    @app.errorhandler(BrokerError)
    def _broker(e: BrokerError) -> Response:
        return broker_error_response(e)

    @app.errorhandler(HTTPException)
    def _http(e: HTTPException) -> Response:  # unknown route (404), wrong method (405), unreadable body
        status = e.code or 500
        if status == 400:
            return error_response(400, CODE_MALFORMED, "request body format is invalid")
        message = {404: f"endpoint not found: {request.method} {request.path}",
                   405: f"method {request.method} not allowed for {request.path}"}.get(status, e.name.lower())
        resp = error_response(status, status_code_of(status), message)
        allowed = getattr(e, "valid_methods", None)
        if status == 405 and allowed:
            resp.headers["Allow"] = ", ".join(allowed)
        return resp

    @app.errorhandler(Exception)
    def _internal(e: Exception) -> Response:  # a bug in the emulator: still Alpaca's shape, and logged
        log.exception("emulator error on %s %s", request.method, request.path)
        return error_response(500, CODE_INTERNAL, f"internal server error: {type(e).__name__}: {e}")

    # ---- trading ----

    @app.get("/v2/account")
    def account() -> Response:
        return jsonify(account_json(emu.broker.account()))

    @app.get("/v2/assets/<symbol>")
    def asset(symbol: str) -> Response:
        symbol = symbol.upper()
        if not emu.broker.quotes([symbol]):
            return error_response(404, CODE_NOT_FOUND, f"asset not found for {symbol}")
        return jsonify(asset_json(symbol))

    @app.get("/v2/positions/<symbol>")
    def position(symbol: str) -> Response:
        symbol = symbol.upper()
        for p in emu.broker.positions():
            if p.symbol == symbol:
                return jsonify(position_json(p))
        return error_response(404, CODE_NOT_FOUND, "position does not exist")

    @app.post("/v2/orders")
    def submit() -> Response:
        o = emu.broker.submit(parse_order(_json_body()))
        return jsonify(order_json(o))

    @app.get("/v2/orders")
    def list_orders() -> Response:
        args = request.args
        status = (args.get("status") or "open").lower()
        if status not in ("open", "closed", "all"):
            raise ApiError(f"invalid status {status!r}; open, closed or all", 400)
        try:
            limit = int(args.get("limit") or DEFAULT_PAGE)
        except ValueError:
            raise ApiError(f"invalid limit {args.get('limit')!r}", 422) from None
        if not 1 <= limit <= MAX_PAGE:
            raise ApiError(f"limit must be between 1 and {MAX_PAGE}, got {limit}", 422)
        after, until = when(args.get("after"), "after"), when(args.get("until"), "until")
        direction = (args.get("direction") or "desc").lower()
        if direction not in ("asc", "desc"):
            raise ApiError(f"invalid direction {direction!r}; asc or desc", 422)
        symbols = {s.strip().upper() for s in (args.get("symbols") or "").split(",") if s.strip()}
        side = (args.get("side") or "").lower()
        nested = flag(args.get("nested"))
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
        # oldest or newest first; the simulator's submission times are unique, so a client pages by
        # moving `after` (asc) or `until` (desc) to the last row's submitted_at, as with Alpaca
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
        return jsonify(order_json(emu.broker.get(order_id), nested=flag(request.args.get("nested", "true"))))

    @app.patch("/v2/orders/<order_id>")
    def replace_order(order_id: str) -> Response:
        body = _json_body()
        if not isinstance(body, dict):
            raise ApiError("request body format is invalid (expected a JSON object)", 400, CODE_MALFORMED)
        if body.get("trail") is not None:
            raise ApiError("replacing trail is not emulated")
        old = emu.broker.get(order_id)
        if body.get("time_in_force") not in (None, str(old.time_in_force)):
            raise ApiError("changing time_in_force is not emulated")
        new = emu.broker.replace(
            order_id, qty=qty(body["qty"]) if body.get("qty") is not None else None,
            limit_price=price(body, "limit_price"), stop_price=price(body, "stop_price"),
            client_order_id=body.get("client_order_id") or None,
        )
        return jsonify(order_json(new))

    @app.delete("/v2/orders/<order_id>")
    def cancel_order(order_id: str) -> Response:
        if not emu.broker.get(order_id).status.is_open:
            return error_response(422, CODE_UNPROCESSABLE, "order is not cancelable")
        emu.broker.cancel(order_id)
        return Response(status=204)

    @app.get("/v2/positions")
    def positions() -> Response:
        return jsonify([position_json(p) for p in emu.broker.positions()])

    @app.get("/v2/clock")
    def clock() -> Response:
        now = matching.as_ny(emu.broker.now())
        today = now.date()
        is_open = matching.regular_hours(now)
        if calendar.is_trading_day(today) and now < calendar.session_open(today):
            next_open_day = today
        else:
            next_open_day = calendar.next_session(today)
        next_close_day = today if is_open else next_open_day
        return jsonify({
            "timestamp": now.isoformat(), "is_open": is_open,
            "next_open": calendar.session_open(next_open_day).isoformat(),
            "next_close": calendar.session_close(next_close_day).isoformat(),
        })

    @app.get("/v2/calendar")
    def market_calendar() -> Response:
        today = emu.broker.now().astimezone(calendar.NY).date()
        start = day(request.args.get("start"), today - timedelta(days=365))
        end = day(request.args.get("end"), today + timedelta(days=365))
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
            raise ApiError("symbols is required", 400)
        quotes = emu.broker.quotes(symbols)
        now = iso(emu.broker.now())
        return jsonify({"quotes": {
            s: {"t": iso(q.timestamp) or now, "ax": "V", "ap": q.ask, "as": 1, "bx": "V", "bp": q.bid, "bs": 1,
                "c": ["R"], "z": "A"}
            for s, q in quotes.items()
        }})

    @app.get("/v2/stocks/bars")
    def bars() -> Response:
        if emu.data is None:
            raise ApiError("this emulator has no market data for bars (start it with a data provider)", 404,
                              CODE_NOT_FOUND)
        args = request.args
        symbols = [s.strip().upper() for s in (args.get("symbols") or "").split(",") if s.strip()]
        if not symbols:
            raise ApiError("symbols is required", 400)
        timeframe = (args.get("timeframe") or "1Day").lower()
        start = when(args.get("start"), "start") or datetime(1970, 1, 1, tzinfo=timezone.utc)
        end = when(args.get("end"), "end") or emu.broker.now()
        known = _known_symbols(emu.data)  # Alpaca answers unknown symbols with no bars, not an error
        symbols = [s for s in symbols if known is None or s in known]
        if not symbols:
            return jsonify({"bars": {}, "next_page_token": None})
        try:
            frame = _bars(emu.data, symbols, timeframe, start, end)
        except BadInputError as e:  # the provider refused the request: Alpaca's invalid request
            raise ApiError(str(e), 422) from None
        if (args.get("sort") or "asc").lower() == "desc":
            frame = frame.iloc[::-1]
        try:
            offset = int(args.get("page_token") or 0)
            limit = min(int(args.get("limit") or 1000), 10_000)
        except ValueError:
            raise ApiError("invalid page_token or limit", 400) from None
        page = frame.iloc[offset: offset + limit]
        out: dict[str, list] = {}
        for row in page.itertuples(index=False):
            out.setdefault(row.symbol, []).append({
                "t": iso(row.t), "o": _float_or_none(row.open), "h": _float_or_none(row.high),
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
                raise ApiError(f"unknown fault fields {sorted(unknown)}", 400)
            emu.set_faults(Faults(**body))
        return jsonify(asdict(emu.faults))

    @app.get("/_stats")
    def stats_route() -> Response:
        return jsonify(dict(emu.stats))

    return app


def _float_or_none(x: Any) -> float | None:
    v = float(x)
    return None if math.isnan(v) else v


def _known_symbols(data: DataProvider) -> set[str] | None:
    """The provider's universe, or None when it cannot say (then every symbol is asked for)."""
    try:
        return {str(s).upper() for s in data.universe()["symbol"]}
    except Exception:
        return None


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
        raise ApiError(f"timeframe {timeframe!r} is not emulated (1Day, 1Min)", 422)
    frame = frame[(frame["t"] >= pd.Timestamp(start)) & (frame["t"] <= pd.Timestamp(end))]
    return frame.sort_values(["symbol", "t"])[cols].reset_index(drop=True)


def emulator_of(app: Flask) -> Emulator:
    """The `Emulator` state behind an app made by `create_app` (faults, stats)."""
    return app.extensions["wolfkit.emulator"]
