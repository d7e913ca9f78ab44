"""The Alpaca broker (paper or live) behind wolfkit's `Broker` protocol, through alpaca-py.

Two things alpaca-py does by default are unsafe for a batch executor, so the adapter undoes them:
it retries every method (POST included) three times on 429/504 and it sets no request timeout. A
hidden retry of a POST whose first attempt was accepted (a 504 after acceptance) is how an order gets
placed twice; a missing timeout is how a run hangs at the open. Here each call makes exactly one
HTTP request with a timeout, and every failure becomes one of wolfkit's errors — the executor's retry
policy (safe because every submission carries a client order id) is the only one.

Keys come only from the environment (`APCA_API_KEY_ID`, `APCA_API_SECRET_KEY`); `APCA_API_BASE_URL`
and `APCA_API_DATA_URL` point the trading and market-data clients elsewhere (e.g. `wolfkit emulator`).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from typing import Any, TypeVar

import requests
from alpaca.common.enums import Sort
from alpaca.common.exceptions import APIError
from alpaca.common.rest import RESTClient
from alpaca.data.historical.stock import StockHistoricalDataClient
from alpaca.data.requests import StockLatestQuoteRequest
from alpaca.trading.client import TradingClient
from alpaca.trading.enums import OrderClass, QueryOrderStatus
from alpaca.trading.enums import OrderSide as AlpacaSide
from alpaca.trading.enums import TimeInForce as AlpacaTIF
from alpaca.trading.models import Clock, TradeAccount, TradeUpdate
from alpaca.trading.models import Order as AlpacaOrder
from alpaca.trading.models import Position as AlpacaPosition
from alpaca.trading.requests import (
    GetOrdersRequest,
    LimitOrderRequest,
    MarketOrderRequest,
    ReplaceOrderRequest,
    StopLossRequest,
    TakeProfitRequest,
)
from alpaca.trading.stream import TradingStream

from wolfkit.broker.account import AccountKey
from wolfkit.broker.base import (
    AccountInfo,
    BrokerOrder,
    BrokerUnavailable,
    DuplicateClientOrderId,
    Fill,
    InsufficientBuyingPower,
    OrderNotFound,
    OrderRejected,
    OrderRequest,
    OrderStatus,
    OrderUpdate,
    Position,
    Quote,
    RateLimited,
    UpdateEvent,
    WashTradeRejected,
)
from wolfkit.broker.gate import BrokerKind, trading_url
from wolfkit.domain import OrderType, Side, TimeInForce
from wolfkit.errors import BadInputError

KEY_ENV = "APCA_API_KEY_ID"
SECRET_ENV = "APCA_API_SECRET_KEY"
DATA_URL_ENV = "APCA_API_DATA_URL"

PAGE_LIMIT = 500  # Alpaca's maximum page size for GET /v2/orders

# Alpaca statuses outside wolfkit's subset, by what they mean for an order that is still working.
_STATUS_ALIASES = {
    "accepted_for_bidding": OrderStatus.ACCEPTED,
    "stopped": OrderStatus.ACCEPTED,
    "calculated": OrderStatus.ACCEPTED,
    "suspended": OrderStatus.ACCEPTED,
    "pending_review": OrderStatus.PENDING_NEW,
}
# A stop (loss) leg becomes a market order when triggered, a stop-limit a limit order; wolfkit's
# order types are market and limit, and `BrokerOrder.stop_price` carries the trigger.
_TYPE_ALIASES = {"stop": OrderType.MARKET, "stop_limit": OrderType.LIMIT, "trailing_stop": OrderType.MARKET}
# Time-in-force values wolfkit never submits; for reservation and expiry they behave like day orders.
_TIF_ALIASES = {"cls": TimeInForce.DAY, "ioc": TimeInForce.DAY, "fok": TimeInForce.DAY}


class _TimeoutSession(requests.Session):
    """A `requests.Session` that puts a timeout on every request (alpaca-py passes none)."""

    def __init__(self, timeout: float):
        super().__init__()
        self.timeout = timeout

    def request(self, method, url, **kwargs):
        kwargs.setdefault("timeout", self.timeout)
        return super().request(method, url, **kwargs)


def _one_shot(client: RESTClient, timeout: float) -> None:
    """Make `client` send each request exactly once, with a timeout.

    alpaca-py reads these attributes on every call (`RESTClient._request` / `_one_request`); its
    constructor cannot set zero retries (it ignores `retry_attempts=0`), hence the assignment.
    """
    client._retry = 0
    client._retry_codes = []
    client._session = _TimeoutSession(timeout)


M = TypeVar("M")


def _model(value: object, kind: type[M]) -> M:
    """alpaca-py's typed model (its clients return raw dicts only when built with `raw_data=True`,
    which this adapter never does): a dict here means alpaca-py changed, not a broker answer."""
    if not isinstance(value, kind):
        raise BrokerUnavailable(f"alpaca-py returned {type(value).__name__}, expected {kind.__name__}")
    return value


def _credentials() -> tuple[str, str]:
    key, secret = os.environ.get(KEY_ENV, ""), os.environ.get(SECRET_ENV, "")
    missing = [name for name, value in ((KEY_ENV, key), (SECRET_ENV, secret)) if not value]
    if missing:
        raise BadInputError(
            f"Alpaca credentials missing: set {' and '.join(missing)} in the environment "
            "(paper keys from the Alpaca dashboard, or any non-empty values for `wolfkit emulator`)"
        )
    return key, secret


# ---- error mapping ------------------------------------------------------------------------------


def _body(error: APIError) -> dict[str, Any]:
    """The JSON error body, or {} when it is empty, HTML or not an object (APIError.code would raise)."""
    try:
        body = json.loads(str(error))
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _float(value: object) -> float | None:
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None


def _retry_after(response: requests.Response | None) -> float | None:
    """Seconds until the rate-limit window resets: `X-Ratelimit-Reset` (epoch seconds) or `Retry-After`."""
    if response is None:
        return None
    reset = _float(response.headers.get("X-Ratelimit-Reset"))
    if reset is not None:
        return max(0.0, reset - time.time())
    return _float(response.headers.get("Retry-After"))


def map_api_error(error: APIError) -> Exception:
    """Turn alpaca-py's `APIError` into the wolfkit error that says what the caller may do next."""
    status = error.status_code
    body = _body(error)
    message = str(body.get("message") or str(error).strip()[:200] or f"HTTP {status}")
    code = body.get("code") if isinstance(body.get("code"), int) else None
    lowered = message.lower()
    if status == 403 and "insufficient buying power" in lowered:
        return InsufficientBuyingPower(
            message, buying_power=_float(body.get("buying_power")), cost_basis=_float(body.get("cost_basis"))
        )
    if status == 403 and "wash trade" in lowered:
        return WashTradeRejected(message, code=code, status_code=status)
    if status == 422 and "client_order_id must be unique" in lowered:
        return DuplicateClientOrderId(message)
    if status == 429:
        return RateLimited(message, retry_after=_retry_after(error.response))
    if status == 404:
        return OrderNotFound(message)
    if status == 401:
        return BadInputError(
            f"Alpaca refused the credentials (HTTP 401: {message}); check {KEY_ENV} and {SECRET_ENV} "
            "and that paper keys are used with paper trading"
        )
    if status is None or status >= 500:
        return BrokerUnavailable(f"HTTP {status}: {message} (the request's outcome is unknown)")
    return OrderRejected(message, code=code, status_code=status)


@contextmanager
def _mapped_errors() -> Iterator[None]:
    """Every alpaca-py or transport failure leaves as a wolfkit error (transport = outcome unknown)."""
    try:
        yield
    except APIError as e:
        raise map_api_error(e) from e
    except requests.RequestException as e:  # timeout, dropped connection, truncated or non-JSON body
        raise BrokerUnavailable(f"{type(e).__name__}: {e} (the request's outcome is unknown)") from e


# ---- model conversion ---------------------------------------------------------------------------


def _value(x: object) -> str:
    return str(getattr(x, "value", x))


def _status(x: object) -> OrderStatus:
    v = _value(x)
    return _STATUS_ALIASES[v] if v in _STATUS_ALIASES else OrderStatus(v)


def to_broker_order(o: AlpacaOrder) -> BrokerOrder:
    """alpaca-py's `Order` as wolfkit's `BrokerOrder` (legs included)."""
    order_type = _value(o.type or o.order_type)
    tif = _value(o.time_in_force)
    return BrokerOrder(
        id=str(o.id),
        client_order_id=o.client_order_id,
        symbol=o.symbol or "",
        side=Side(_value(o.side)),
        qty=int(float(o.qty or 0)),
        type=_TYPE_ALIASES.get(order_type) or OrderType(order_type),
        time_in_force=_TIF_ALIASES.get(tif) or TimeInForce(tif),
        status=_status(o.status),
        limit_price=_float(o.limit_price),
        stop_price=_float(o.stop_price),
        filled_qty=int(float(o.filled_qty or 0)),
        filled_avg_price=_float(o.filled_avg_price),
        submitted_at=o.submitted_at,
        replaced_by=str(o.replaced_by) if o.replaced_by else None,
        replaces=str(o.replaces) if o.replaces else None,
        legs=[to_broker_order(leg) for leg in (o.legs or [])],
        extended_hours=bool(getattr(o, "extended_hours", False)),
    )


def _to_position(p: AlpacaPosition) -> Position:
    qty = int(float(p.qty))
    return Position(
        symbol=p.symbol,
        qty=-abs(qty) if _value(p.side) == "short" else qty,
        avg_entry_price=float(p.avg_entry_price),
        market_value=_float(p.market_value) or 0.0,
        unrealized_pl=_float(p.unrealized_pl) or 0.0,
    )


def _to_account(a: TradeAccount) -> AccountInfo:
    return AccountInfo(
        equity=_float(a.equity) or 0.0,
        cash=_float(a.cash) or 0.0,
        buying_power=_float(a.buying_power) or 0.0,
        multiplier=_float(a.multiplier) or 1.0,
        long_market_value=_float(a.long_market_value) or 0.0,
        short_market_value=_float(a.short_market_value) or 0.0,
    )


def to_alpaca_request(r: OrderRequest) -> MarketOrderRequest | LimitOrderRequest:
    """wolfkit's `OrderRequest` as alpaca-py's typed request; both exits make a bracket, one an OTO."""
    legs: dict[str, Any] = {}
    if r.take_profit is not None or r.stop_loss is not None:
        both = r.take_profit is not None and r.stop_loss is not None
        legs = {
            "order_class": OrderClass.BRACKET if both else OrderClass.OTO,
            "take_profit": TakeProfitRequest(limit_price=r.take_profit) if r.take_profit is not None else None,
            "stop_loss": StopLossRequest(stop_price=r.stop_loss) if r.stop_loss is not None else None,
        }
    common = dict(
        symbol=r.symbol, qty=r.qty, side=AlpacaSide(str(r.side)), time_in_force=AlpacaTIF(str(r.time_in_force)),
        client_order_id=r.client_order_id, extended_hours=r.extended_hours or None, **legs,
    )
    if r.type == OrderType.LIMIT:
        return LimitOrderRequest(limit_price=r.limit_price, **common)
    return MarketOrderRequest(**common)


# ---- the broker ---------------------------------------------------------------------------------


def broker_name(paper: bool) -> str:
    """The broker's (and account's) name in the ledger and the run lock: known before connecting."""
    return "alpaca-paper" if paper else "alpaca-live"



class AlpacaBroker:
    """Alpaca's trading API as a wolfkit `Broker`: one request per call, a timeout on each.

    `paper=False` trades real money; the command line only passes it with `--live` and
    `broker: live` in the parameters. `base_url`/`data_url` override the trading and data URLs
    (defaults: `APCA_API_BASE_URL`, `APCA_API_DATA_URL`, then Alpaca's own); the trading URL passes
    the live gate (`wolfkit.broker.gate.trading_url`) first: paper never reaches a live URL.
    """

    rate_limit_per_minute: int | None = 200  # Alpaca's per-account request limit

    def __init__(
        self, paper: bool = True, *, timeout: float = 10.0, base_url: str | None = None,
        data_url: str | None = None,
    ):
        if not timeout > 0:
            raise BadInputError(f"AlpacaBroker timeout must be > 0 seconds, got {timeout}")
        url = trading_url(live=not paper, url=base_url)  # the live gate: before keys, before any request
        key, secret = _credentials()
        self.paper = paper
        self.name = broker_name(paper)
        self.trading = TradingClient(key, secret, paper=paper, url_override=url)
        data_override = (data_url or os.environ.get(DATA_URL_ENV) or "").rstrip("/") or None
        self.data = StockHistoricalDataClient(key, secret, url_override=data_override)
        for client in (self.trading, self.data):
            _one_shot(client, timeout)
        self._watch_from: datetime | None = None  # updates() covers orders submitted from here on
        self._known: dict[str, BrokerOrder] = {}
        self._number: str | None = None  # the account number, once an account request told it

    def __repr__(self) -> str:  # never shows the keys
        return f"AlpacaBroker(name={self.name!r}, url={self.trading._base_url!r})"

    def account(self) -> AccountInfo:
        with _mapped_errors():
            a = _model(self.trading.get_account(), TradeAccount)
        self._number = str(a.account_number or a.id)
        return _to_account(a)

    def account_key(self) -> AccountKey:
        """This account as the ledger keys it: paper or live, Alpaca's account number (asked once, or
        remembered from `account()`), the trading URL."""
        if self._number is None:
            self.account()
        return AccountKey(kind=BrokerKind.PAPER if self.paper else BrokerKind.LIVE,
                          account_id=str(self._number), base_url=str(self.trading._base_url))

    def quotes(self, symbols: Sequence[str]) -> dict[str, Quote]:
        if not symbols:
            return {}
        with _mapped_errors():
            raw = self.data.get_stock_latest_quote(StockLatestQuoteRequest(symbol_or_symbols=list(symbols)))
        return {
            s: Quote(symbol=s, bid=float(q.bid_price), ask=float(q.ask_price), timestamp=q.timestamp)
            for s, q in raw.items()
        }

    def submit(self, request: OrderRequest) -> BrokerOrder:
        try:
            alpaca_request = to_alpaca_request(request)
        except ValueError as e:  # alpaca-py validated it before sending: nothing was submitted
            raise OrderRejected(f"{request.client_order_id}: not sent, alpaca-py refused it: {e}") from e
        with _mapped_errors():
            return self._watch(to_broker_order(_model(self.trading.submit_order(alpaca_request), AlpacaOrder)))

    def get_by_client_id(self, client_order_id: str) -> BrokerOrder | None:
        try:
            with _mapped_errors():
                return to_broker_order(_model(self.trading.get_order_by_client_id(client_order_id), AlpacaOrder))
        except OrderNotFound:
            return None

    def get(self, order_id: str) -> BrokerOrder:
        with _mapped_errors():
            return to_broker_order(_model(self.trading.get_order_by_id(order_id), AlpacaOrder))

    def cancel(self, order_id: str) -> None:
        with _mapped_errors():
            self.trading.cancel_order_by_id(order_id)

    def replace(
        self, order_id: str, *, qty: int | None = None, limit_price: float | None = None,
        stop_price: float | None = None, client_order_id: str | None = None,
    ) -> BrokerOrder:
        try:
            req = ReplaceOrderRequest(qty=qty, limit_price=limit_price, stop_price=stop_price,
                                      client_order_id=client_order_id)
        except ValueError as e:
            raise OrderRejected(f"replace {order_id}: not sent, alpaca-py refused it: {e}") from e
        with _mapped_errors():
            return self._watch(to_broker_order(_model(self.trading.replace_order_by_id(order_id, req), AlpacaOrder)))

    def _watch(self, order: BrokerOrder) -> BrokerOrder:
        """Start `updates()` at the first order this object placed (in the broker's own clock)."""
        if self._watch_from is None and order.submitted_at is not None:
            self._watch_from = order.submitted_at - timedelta(seconds=1)
        return order

    def _orders(self, status: QueryOrderStatus, after: datetime | None = None) -> list[BrokerOrder]:
        """Every order with `status`, oldest first, paging past Alpaca's 500-per-page limit."""
        seen: dict[str, BrokerOrder] = {}
        cursor = after
        while True:
            req = GetOrdersRequest(
                status=status, limit=PAGE_LIMIT, direction=Sort.ASC, nested=True, after=cursor,
            )
            with _mapped_errors():
                page = [to_broker_order(_model(o, AlpacaOrder)) for o in _model(self.trading.get_orders(req), list)]
            fresh = [o for o in page if o.id not in seen]
            seen.update((o.id, o) for o in fresh)
            if len(page) < PAGE_LIMIT or not fresh:
                return list(seen.values())
            # `after` is exclusive; same-timestamp orders are re-fetched and de-duplicated above
            cursor = max(o.submitted_at for o in page if o.submitted_at) - timedelta(microseconds=1)

    def open_orders(self) -> list[BrokerOrder]:
        return self._orders(QueryOrderStatus.OPEN)

    def orders_by_prefix(self, prefix: str, since: datetime | None = None) -> list[BrokerOrder]:
        """Every order (any status) whose client id starts with `prefix`, submitted after `since`,
        oldest first: `GET /v2/orders?status=all` page by page (limit 500, `after` moving forward),
        filtered here — Alpaca cannot filter by client id."""
        return [o for o in self._orders(QueryOrderStatus.ALL, after=since) if o.client_order_id.startswith(prefix)]

    def positions(self) -> list[Position]:
        with _mapped_errors():
            return [_to_position(_model(p, AlpacaPosition)) for p in _model(self.trading.get_all_positions(), list)]

    def updates(self) -> list[OrderUpdate]:
        """Order updates since the previous call, found by polling (the diff of order states).

        Covers orders submitted from the first order this object placed — or, if it has placed
        none, from a minute before the first call (by the broker's clock, so a skewed local clock
        or the emulator's simulated time does not hide orders). Fills are derived from the change
        in filled quantity and average price and carry the order's cumulative filled quantity: a
        fresh process sees a filled order as one fill from zero, and the ledger, keyed on (order id,
        cumulative quantity), records only what it has not seen — never the clock. (Streaming trade
        updates are the intraday engine's.)
        """
        if self._watch_from is None:
            with _mapped_errors():
                self._watch_from = _model(self.trading.get_clock(), Clock).timestamp - timedelta(minutes=1)
        now = datetime.now(timezone.utc)
        events: list[OrderUpdate] = []
        for order in self._orders(QueryOrderStatus.ALL, after=self._watch_from):
            events.extend(_diff(self._known.get(order.id), order, now))
            self._known[order.id] = order
        return events


_FINAL_EVENT = {
    OrderStatus.CANCELED: UpdateEvent.CANCELED,
    OrderStatus.EXPIRED: UpdateEvent.EXPIRED,
    OrderStatus.REPLACED: UpdateEvent.REPLACED,
    OrderStatus.REJECTED: UpdateEvent.REJECTED,
    OrderStatus.DONE_FOR_DAY: UpdateEvent.EXPIRED,
}


def _diff(before: BrokerOrder | None, after: BrokerOrder, now: datetime) -> list[OrderUpdate]:
    """The updates that take an order from `before` (None: unseen) to `after`, in event order."""
    events: list[OrderUpdate] = []
    if before is None:
        events.append(OrderUpdate(UpdateEvent.NEW, after, at=after.submitted_at or now))
    prev_qty = before.filled_qty if before else 0
    prev_cost = prev_qty * (before.filled_avg_price or 0.0) if before else 0.0
    if after.filled_qty > prev_qty and after.filled_avg_price is not None:
        qty = after.filled_qty - prev_qty
        price = (after.filled_qty * after.filled_avg_price - prev_cost) / qty
        fill = Fill(after.id, after.client_order_id, after.symbol, after.side, qty, round(price, 6), now,
                    after.filled_qty)
        kind = UpdateEvent.FILL if after.status == OrderStatus.FILLED else UpdateEvent.PARTIAL_FILL
        events.append(OrderUpdate(kind, after, fill=fill, at=now))
    if after.status in _FINAL_EVENT and (before is None or before.status != after.status):
        events.append(OrderUpdate(_FINAL_EVENT[after.status], after, at=now))
    return events


# ---- the trade-update stream --------------------------------------------------------------------

_STREAM_EVENTS = {e.value: e for e in UpdateEvent}


def update_from_stream(data: TradeUpdate) -> OrderUpdate | None:
    """alpaca-py's `TradeUpdate` as an `OrderUpdate` (None for events the engine does not need,
    e.g. pending_new or restated: the order itself is re-read by the next reconcile)."""
    kind = _STREAM_EVENTS.get(_value(data.event))
    if kind is None:
        return None
    return OrderUpdate(kind, to_broker_order(data.order), at=data.timestamp)


def trade_update_stream(key: str, secret: str, on_update: Callable[[OrderUpdate], None], *, paper: bool = True,
                        url_override: str | None = None) -> TradingStream:
    """alpaca-py's own `TradingStream`, subscribed to trade updates (passed to `on_update` as
    `OrderUpdate`s); call `.run()` in a thread and `.stop()` to end it. Public API only.

    alpaca-py reconnects a dropped socket by itself and tells no one; updates sent while it was down
    are lost. The caller therefore reconciles over REST at the start and on a timer
    (`wolfkit.intraday.live.StreamSession`), which recovers them without knowing when the drop was.
    """

    async def handler(data: TradeUpdate) -> None:
        update = update_from_stream(data)
        if update is not None:
            on_update(update)

    # alpaca-py types `url_override` as `str` and treats an empty one as "not given" (its default URL)
    stream = TradingStream(key, secret, paper=paper, url_override=url_override or "")
    stream.subscribe_trade_updates(handler)
    return stream
