"""The simulated broker: an in-process account that behaves like Alpaca where wolfkit cares.

It is the embedded default broker, the engine behind `wolfkit emulator`, and the test bed for the
executor and the intraday engine. What it reproduces:

- **Buying power and reservations** (Alpaca's rule): every open buy reserves buying power until it
  fills or is cancelled. A market buy is priced at the ask (the mid outside 09:30–16:00 ET) times
  ``1 + market_buffer``; a limit buy at its limit. A sell reserves only the part that would open or
  grow a short (at the bid). The exact formula::

      equity        = cash + Σ qty × mark                      (mark: quote mid, else last fill)
      buying_power  = max(0, multiplier × equity − Σ |qty| × mark − Σ open reservations)

  With multiplier 1 (cash account) this is cash minus reservations; with 2 (Reg-T margin) it is
  twice equity less the gross position value and reservations.
- **Rejections with Alpaca's meaning**: over budget → `InsufficientBuyingPower` (HTTP 403, code
  40310000, carrying the `buying_power` the body would report); a reused client id, even of a
  cancelled order → `DuplicateClientOrderId`; a limit off the tick, a non-positive quantity or a
  symbol without a quote → `OrderRejected` (422); an OPG order between 09:28 and 19:00 ET →
  `OrderRejected`; an opposite-side order while another is open on the symbol → `WashTradeRejected`;
  more than `rate_limit_per_minute` calls in a sliding minute → `RateLimited(retry_after=…)`.
- **Fills**: market (and OPG) orders at the ask/bid with `slippage_bps`, on submit when
  `fill_on_submit`, else on the next `step()` or bar; limit orders when marketable on `step()` or
  when a bar's low/high touches the limit (filled at the limit); bracket legs (take-profit limit,
  stop-loss stop) activate when the parent fills and cancel each other; seeded random partial fills.
- **Replace** returns a new order id and reserves the larger of the old and new cost.
- **State** is a plain JSON document (`snapshot()` / `SimBroker.restore(...)`, `save` / `load`);
  `persist(path)` saves it after every change so a broker survives its process being killed.

Market data comes from a `QuoteBook`: set quotes per symbol, or advance through minute bars with
`SimBroker.on_bar(symbols, high, low, close, ts)` — vectorised across symbols, and only symbols with
open orders are examined for fills, so a 390-minute × 500-symbol replay stays fast.

The clock (used for the OPG window, the session test and timestamps) is `clock` if given, else the
timestamp of the latest bar or quote update, else the wall clock.
"""

from __future__ import annotations

import json
import math
import os
import threading
import time
import uuid
from dataclasses import asdict, replace
from datetime import datetime, timezone
from datetime import time as dtime
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from wolfkit.broker.base import (
    CODE_FORBIDDEN,
    CODE_UNPROCESSABLE,
    AccountInfo,
    BrokerOrder,
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
    opg_allowed,
)
from wolfkit.broker.submission import SlidingWindowLimiter
from wolfkit.calendar import NY
from wolfkit.domain import OrderType, Side, TimeInForce, round_to_tick

SNAPSHOT_SCHEMA = "wolfkit.simbroker/1"
_ID_NAMESPACE = uuid.UUID("6f1d2c4e-8b0a-4c55-9a57-0b1f5c3e9d21")


class QuoteBook:
    """Latest bid/ask per symbol, stored in arrays so a whole minute updates in one assignment.

    `update` takes parallel sequences; passing the same symbol order every minute (a replay) hits a
    cached index and costs a few vector assignments. Bars become quotes at close ± half `spread_bps`.
    """

    def __init__(self, spread_bps: float = 0.0):
        if not (spread_bps >= 0 and math.isfinite(spread_bps)):
            raise ValueError(f"spread_bps must be a finite number >= 0, got {spread_bps}")
        self.spread_bps = spread_bps
        self._index: dict[str, int] = {}
        self._symbols: list[str] = []
        self._bid = np.full(0, np.nan)
        self._ask = np.full(0, np.nan)
        self._ts: list[datetime | None] = []
        self._cache_key: tuple[str, ...] | None = None
        self._cache_pos: np.ndarray | None = None
        self.last_update: datetime | None = None

    def _positions(self, symbols: Sequence[str]) -> np.ndarray:
        key = tuple(symbols)
        if key == self._cache_key and self._cache_pos is not None:
            return self._cache_pos
        new = [s for s in dict.fromkeys(key) if s not in self._index]
        if new:
            start = len(self._symbols)
            for i, s in enumerate(new):
                self._index[s] = start + i
            self._symbols.extend(new)
            self._ts.extend([None] * len(new))
            pad = np.full(len(new), np.nan)
            self._bid = np.concatenate([self._bid, pad])
            self._ask = np.concatenate([self._ask, pad])
        pos = np.fromiter((self._index[s] for s in key), dtype=np.int64, count=len(key))
        self._cache_key, self._cache_pos = key, pos
        return pos

    def update(self, symbols: Sequence[str], bid, ask, ts: datetime | None = None) -> None:
        """Set bid/ask for many symbols at once (arrays or sequences aligned with `symbols`)."""
        bid = np.asarray(bid, dtype=float)
        ask = np.asarray(ask, dtype=float)
        if bid.shape != (len(symbols),) or ask.shape != (len(symbols),):
            raise ValueError("bid and ask must have one value per symbol")
        bad = ~(np.isfinite(bid) & np.isfinite(ask) & (bid > 0) & (ask >= bid))
        if bad.any():
            i = int(np.argmax(bad))
            raise ValueError(f"{symbols[i]}: bid {bid[i]} / ask {ask[i]} must be finite, > 0, bid <= ask")
        pos = self._positions(symbols)
        self._bid[pos] = bid
        self._ask[pos] = ask
        if ts is not None:
            for p in pos.tolist():
                self._ts[p] = ts
            self.last_update = ts

    def set(self, symbol: str, bid: float, ask: float | None = None, ts: datetime | None = None) -> None:
        """Set one symbol's quote (`ask` defaults to `bid`: a mark with no spread)."""
        self.update([symbol], [bid], [bid if ask is None else ask], ts)

    def update_from_bars(self, symbols: Sequence[str], close, ts: datetime | None = None) -> None:
        """Quotes from bar closes: close ∓ half the spread."""
        close = np.asarray(close, dtype=float)
        half = self.spread_bps / 2e4
        self.update(symbols, close * (1 - half), close * (1 + half), ts)

    def get(self, symbol: str) -> Quote | None:
        i = self._index.get(symbol)
        if i is None or not math.isfinite(self._bid[i]):
            return None
        return Quote(symbol, float(self._bid[i]), float(self._ask[i]), self._ts[i])

    def symbols(self) -> list[str]:
        return [s for s in self._symbols if math.isfinite(self._bid[self._index[s]])]

    def to_dict(self) -> dict[str, Any]:
        return {
            "spread_bps": self.spread_bps,
            "quotes": {
                s: [float(self._bid[i]), float(self._ask[i]), self._ts[i].isoformat() if self._ts[i] else None]
                for s, i in self._index.items() if math.isfinite(self._bid[i])
            },
            "last_update": self.last_update.isoformat() if self.last_update else None,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> QuoteBook:
        book = cls(d.get("spread_bps", 0.0))
        for s, (b, a, ts) in d["quotes"].items():
            book.set(s, b, a, datetime.fromisoformat(ts) if ts else None)
        book.last_update = datetime.fromisoformat(d["last_update"]) if d.get("last_update") else None
        return book


def order_to_dict(o: BrokerOrder) -> dict[str, Any]:
    """A `BrokerOrder` as JSON-able data (enums as strings, times ISO-8601)."""
    d = asdict(o)
    d["submitted_at"] = o.submitted_at.isoformat() if o.submitted_at else None
    d["legs"] = [order_to_dict(leg) for leg in o.legs]
    for k in ("side", "type", "time_in_force", "status"):
        d[k] = str(d[k])
    return d


def order_from_dict(d: dict[str, Any]) -> BrokerOrder:
    """Inverse of `order_to_dict`."""
    d = dict(d)
    d["side"] = Side(d["side"])
    d["type"] = OrderType(d["type"])
    d["time_in_force"] = TimeInForce(d["time_in_force"])
    d["status"] = OrderStatus(d["status"])
    d["submitted_at"] = datetime.fromisoformat(d["submitted_at"]) if d["submitted_at"] else None
    d["legs"] = [order_from_dict(x) for x in d["legs"]]
    return BrokerOrder(**d)


def _aware(t: datetime) -> datetime:
    """`t` with a time zone (a naive time is read as New York, like the session test)."""
    return t if t.tzinfo is not None else t.replace(tzinfo=NY)


def _copy(o: BrokerOrder) -> BrokerOrder:
    """A detached copy, so callers cannot change the broker's state by mutating what it returned."""
    return replace(o, legs=[replace(leg) for leg in o.legs])


class SimBroker:
    """An in-process Alpaca-like broker (see the module docstring for the rules it enforces).

    Parameters
    ----------
    equity: starting cash (and equity; no positions).
    multiplier: 1 for a cash account, 2 for Reg-T margin.
    market: the quote book (a new empty one by default).
    clock: returns "now" (tz-aware); default: latest market-data time, else the wall clock.
    market_buffer: market buys reserve ask × (1 + market_buffer) per share.
    slippage_bps: market fills at ask × (1 + s) / bid × (1 − s).
    partial_fill_prob: chance that a fill opportunity fills only part of the remaining quantity.
    seed: seeds the partial-fill draws (and makes order ids reproducible).
    rate_limit_per_minute: calls allowed in any 60 s window (None: unlimited).
    latency_s: every call sleeps this long (outside the lock, so concurrent calls overlap).
    fill_on_submit: fill market/marketable orders immediately instead of on the next step/bar.
    wash_trade_check: refuse an opposite-side order while another is open on the symbol.
    timer: monotonic seconds for the rate limiter (injectable for tests).
    """

    name = "sim"

    def __init__(
        self,
        equity: float,
        multiplier: float = 1.0,
        *,
        market: QuoteBook | None = None,
        clock: Callable[[], datetime] | None = None,
        market_buffer: float = 0.0,
        slippage_bps: float = 0.0,
        partial_fill_prob: float = 0.0,
        seed: int = 0,
        rate_limit_per_minute: int | None = None,
        latency_s: float = 0.0,
        fill_on_submit: bool = False,
        wash_trade_check: bool = True,
        timer: Callable[[], float] = time.monotonic,
    ):
        if not (equity > 0 and math.isfinite(equity)):
            raise ValueError(f"equity must be a positive number, got {equity}")
        if multiplier < 1:
            raise ValueError(f"multiplier must be >= 1 (1 cash, 2 margin), got {multiplier}")
        if not 0 <= partial_fill_prob <= 1:
            raise ValueError(f"partial_fill_prob must be in [0, 1], got {partial_fill_prob}")
        if market_buffer < 0 or slippage_bps < 0 or latency_s < 0:
            raise ValueError("market_buffer, slippage_bps and latency_s must be >= 0")
        if rate_limit_per_minute is not None and rate_limit_per_minute < 1:
            raise ValueError(f"rate_limit_per_minute must be >= 1 or None, got {rate_limit_per_minute}")
        self.multiplier = float(multiplier)
        self.market = market if market is not None else QuoteBook()
        self.clock = clock
        self.market_buffer = market_buffer
        self.slippage_bps = slippage_bps
        self.partial_fill_prob = partial_fill_prob
        self.seed = seed
        self.rate_limit_per_minute = rate_limit_per_minute
        self.latency_s = latency_s
        self.fill_on_submit = fill_on_submit
        self.wash_trade_check = wash_trade_check
        self.timer = timer
        self._rng = np.random.default_rng(seed)
        self._lock = threading.RLock()
        self._limiter = SlidingWindowLimiter(rate_limit_per_minute, timer)
        self.cash = float(equity)
        self._pos: dict[str, list[float]] = {}  # symbol -> [signed qty, avg entry]
        self._last_px: dict[str, float] = {}
        self._orders: dict[str, BrokerOrder] = {}  # id -> order (legs are also here, by their id)
        self._by_client: dict[str, str] = {}
        self._reserve_px: dict[str, float] = {}  # id -> USD reserved per remaining share
        self._parent: dict[str, str] = {}  # leg id -> parent id
        self._open_by_symbol: dict[str, set[str]] = {}
        self._fills: list[Fill] = []
        self._updates: list[OrderUpdate] = []
        self._counter = 0
        self._persist_path: Path | None = None
        self._bar_key: tuple[str, ...] | None = None
        self._bar_pos: dict[str, int] = {}
        self.request_count = 0

    # ---- plumbing -------------------------------------------------------------------------------

    def now(self) -> datetime:
        if self.clock is not None:
            return self.clock()
        return self.market.last_update or datetime.now(timezone.utc)

    def _call(self) -> None:
        """Latency, then the sliding-window rate limit (every request counts, as at Alpaca)."""
        if self.latency_s:
            time.sleep(self.latency_s)
        with self._lock:
            self.request_count += 1
            retry = self._limiter.admit()
            if retry is not None:
                raise RateLimited("rate limit exceeded", retry_after=retry)

    def _new_id(self) -> str:
        self._counter += 1
        return str(uuid.uuid5(_ID_NAMESPACE, f"{self.seed}-{self._counter}"))

    def _in_session(self, now: datetime) -> bool:
        t = now.astimezone(NY) if now.tzinfo else now
        return t.weekday() < 5 and dtime(9, 30) <= t.time() < dtime(16, 0)

    def _mark(self, symbol: str) -> float:
        q = self.market.get(symbol)
        if q is not None:
            return q.mid
        return self._last_px.get(symbol, self._pos.get(symbol, [0, 0.0])[1])

    def _track_open(self, o: BrokerOrder) -> None:
        ids = self._open_by_symbol.setdefault(o.symbol, set())
        if o.status.is_open:
            ids.add(o.id)
        else:
            ids.discard(o.id)
            if not ids:
                del self._open_by_symbol[o.symbol]

    def _emit(self, event: UpdateEvent, o: BrokerOrder, fill: Fill | None = None) -> None:
        self._updates.append(OrderUpdate(event, _copy(o), fill, self.now()))

    def _changed(self) -> None:
        if self._persist_path is not None:
            self.save(self._persist_path)

    # ---- account --------------------------------------------------------------------------------

    def _reservation(self, o: BrokerOrder) -> float:
        if not o.status.is_open or o.status == OrderStatus.HELD:
            return 0.0
        return o.remaining_qty * self._reserve_px.get(o.id, 0.0)

    def _totals(self) -> tuple[float, float, float, float]:
        """(equity, long market value, short market value, reservations)."""
        lmv = smv = 0.0
        for s, (q, _) in self._pos.items():
            v = q * self._mark(s)
            if q > 0:
                lmv += v
            else:
                smv += v
        reserved = sum(self._reservation(self._orders[i]) for ids in self._open_by_symbol.values() for i in ids)
        return self.cash + lmv + smv, lmv, smv, reserved

    def _buying_power(self) -> float:
        equity, lmv, smv, reserved = self._totals()
        return max(0.0, self.multiplier * equity - (lmv - smv) - reserved)

    def account(self) -> AccountInfo:
        self._call()
        with self._lock:
            equity, lmv, smv, reserved = self._totals()
            bp = max(0.0, self.multiplier * equity - (lmv - smv) - reserved)
            return AccountInfo(
                equity=round(equity, 2), cash=round(self.cash, 2), buying_power=round(bp, 2),
                multiplier=self.multiplier, long_market_value=round(lmv, 2), short_market_value=round(smv, 2),
            )

    def quotes(self, symbols: Sequence[str]) -> dict[str, Quote]:
        """Latest quotes for the symbols the book knows (unknown symbols are left out)."""
        self._call()
        with self._lock:
            return {s: q for s in symbols if (q := self.market.get(s)) is not None}

    def positions(self) -> list[Position]:
        self._call()
        with self._lock:
            out = []
            for s, (q, avg) in sorted(self._pos.items()):
                m = self._mark(s)
                out.append(Position(s, int(q), avg, round(q * m, 2), round(q * (m - avg), 2)))
            return out

    # ---- orders ---------------------------------------------------------------------------------

    def _reserve_price(self, req_side: Side, type_: OrderType, limit: float | None, symbol: str,
                       qty: int, now: datetime) -> float:
        """USD reserved per share of a new order (0 for a sell that only closes a long)."""
        q = self.market.get(symbol)
        if req_side == Side.BUY:
            if type_ == OrderType.LIMIT:
                return float(limit)
            ref = q.ask if self._in_session(now) else q.mid
            return ref * (1 + self.market_buffer)
        held = self._pos.get(symbol, [0, 0.0])[0]
        selling = sum(o.remaining_qty for i in self._open_by_symbol.get(symbol, ())
                      if (o := self._orders[i]).side == Side.SELL and o.status != OrderStatus.HELD)
        short_qty = max(0, qty - max(0.0, held - selling))
        if short_qty == 0:
            return 0.0
        ref = limit if type_ == OrderType.LIMIT else q.bid
        return ref * short_qty / qty

    def _validate(self, r: OrderRequest, now: datetime) -> None:
        if not isinstance(r.qty, int) or r.qty <= 0:
            raise OrderRejected(f"qty must be a positive whole number, got {r.qty}", CODE_UNPROCESSABLE, 422)
        if not r.client_order_id or len(r.client_order_id) > 128:
            raise OrderRejected("client_order_id must be 1 to 128 characters", CODE_UNPROCESSABLE, 422)
        if r.type == OrderType.LIMIT:
            lp = r.limit_price
            if lp is None or not math.isfinite(lp) or lp <= 0:
                raise OrderRejected("limit orders require a positive limit_price", CODE_UNPROCESSABLE, 422)
            if abs(round_to_tick(lp) - lp) > 1e-9:
                raise OrderRejected(
                    f"invalid limit_price {lp}. sub-penny increment does not fulfill minimum pricing criteria",
                    CODE_UNPROCESSABLE, 422,
                )
        elif r.limit_price is not None:
            raise OrderRejected("market orders must not have a limit_price", CODE_UNPROCESSABLE, 422)
        for name in ("take_profit", "stop_loss"):
            v = getattr(r, name)
            if v is not None and (not math.isfinite(v) or v <= 0 or abs(round_to_tick(v) - v) > 1e-9):
                raise OrderRejected(f"invalid {name} price {v} (must be positive and on the tick)",
                                    CODE_UNPROCESSABLE, 422)
        if r.time_in_force == TimeInForce.OPG:
            if not opg_allowed(now):
                raise OrderRejected(
                    "opg orders are not accepted between 9:28am and 7:00pm ET", CODE_UNPROCESSABLE, 422
                )
        if self.market.get(r.symbol) is None:
            raise OrderRejected(f"no market data for {r.symbol}; cannot price the order", CODE_UNPROCESSABLE, 422)

    def submit(self, request: OrderRequest) -> BrokerOrder:
        self._call()
        with self._lock:
            r = request
            if r.client_order_id in self._by_client:
                raise DuplicateClientOrderId("client_order_id must be unique")
            now = self.now()
            self._validate(r, now)
            if self.wash_trade_check:
                for i in self._open_by_symbol.get(r.symbol, ()):
                    o = self._orders[i]
                    if o.side != r.side and o.status != OrderStatus.HELD:
                        raise WashTradeRejected(
                            "potential wash trade detected. use complex orders", CODE_FORBIDDEN, 403
                        )
            px = self._reserve_price(r.side, r.type, r.limit_price, r.symbol, r.qty, now)
            cost = px * r.qty
            bp = self._buying_power()
            if cost > bp + 1e-6:
                raise InsufficientBuyingPower("insufficient buying power", buying_power=round(bp, 2),
                                              cost_basis=round(cost, 2))
            o = BrokerOrder(
                id=self._new_id(), client_order_id=r.client_order_id, symbol=r.symbol, side=r.side,
                qty=r.qty, type=r.type, time_in_force=r.time_in_force, status=OrderStatus.NEW,
                limit_price=r.limit_price, submitted_at=now,
            )
            self._register(o, px)
            exit_side = r.side.opposite()
            if r.take_profit is not None:
                self._add_leg(o, exit_side, OrderType.LIMIT, limit=r.take_profit, stop=None)
            if r.stop_loss is not None:
                self._add_leg(o, exit_side, OrderType.MARKET, limit=None, stop=r.stop_loss)
            self._emit(UpdateEvent.NEW, o)
            if self.fill_on_submit:
                self._try_fill_on_quote(o)
            self._changed()
            return _copy(self._orders[o.id])

    def _register(self, o: BrokerOrder, reserve_px: float) -> None:
        self._orders[o.id] = o
        self._by_client[o.client_order_id] = o.id
        self._reserve_px[o.id] = reserve_px
        self._track_open(o)

    def _add_leg(self, parent: BrokerOrder, side: Side, type_: OrderType, limit: float | None,
                 stop: float | None) -> None:
        kind = "tp" if stop is None else "sl"
        leg = BrokerOrder(
            id=self._new_id(), client_order_id=f"{parent.client_order_id[:120]}-{kind}", symbol=parent.symbol,
            side=side, qty=parent.qty, type=type_, time_in_force=TimeInForce.GTC, status=OrderStatus.HELD,
            limit_price=limit, stop_price=stop, submitted_at=parent.submitted_at,
        )
        self._register(leg, 0.0)
        self._parent[leg.id] = parent.id
        parent.legs.append(leg)

    def get(self, order_id: str) -> BrokerOrder:
        self._call()
        with self._lock:
            o = self._orders.get(order_id)
            if o is None:
                raise OrderNotFound(f"order not found for {order_id}")
            return _copy(o)

    def get_by_client_id(self, client_order_id: str) -> BrokerOrder | None:
        self._call()
        with self._lock:
            i = self._by_client.get(client_order_id)
            return _copy(self._orders[i]) if i is not None else None

    def _finish(self, o: BrokerOrder, status: OrderStatus, event: UpdateEvent | None) -> None:
        o.status = status
        self._track_open(o)
        if event is not None:
            self._emit(event, o)

    def cancel(self, order_id: str) -> None:
        """Cancel an open order (and its bracket legs); cancelling a finished order is refused (422)."""
        self._call()
        with self._lock:
            o = self._orders.get(order_id)
            if o is None:
                raise OrderNotFound(f"order not found for {order_id}")
            if not o.status.is_open:
                raise OrderRejected(f"order is already {o.status}", CODE_UNPROCESSABLE, 422)
            self._finish(o, OrderStatus.CANCELED, UpdateEvent.CANCELED)
            for leg in o.legs:
                if leg.status.is_open:
                    self._finish(leg, OrderStatus.CANCELED, UpdateEvent.CANCELED)
            self._changed()

    def cancel_all(self) -> int:
        """Cancel every open parent order; returns how many were cancelled."""
        with self._lock:
            ids = [i for ids in self._open_by_symbol.values() for i in ids if i not in self._parent]
        for i in ids:
            self.cancel(i)
        return len(ids)

    def replace(
        self, order_id: str, *, qty: int | None = None, limit_price: float | None = None,
        client_order_id: str | None = None,
    ) -> BrokerOrder:
        """Replace an open order: the old one ends REPLACED, the new one (new id) reserves
        max(old reservation, new cost); the check needs only the increase in buying power."""
        self._call()
        with self._lock:
            old = self._orders.get(order_id)
            if old is None:
                raise OrderNotFound(f"order not found for {order_id}")
            if not old.status.is_open or old.status == OrderStatus.HELD:
                raise OrderRejected(f"order is {old.status}; only a working order can be replaced",
                                    CODE_UNPROCESSABLE, 422)
            new_qty = old.qty if qty is None else qty
            new_limit = old.limit_price if limit_price is None else limit_price
            cid = client_order_id or f"{old.client_order_id[:110]}-x{self._counter + 1}"
            if cid in self._by_client:
                raise DuplicateClientOrderId("client_order_id must be unique")
            now = self.now()
            req = OrderRequest(old.symbol, new_qty - old.filled_qty, old.side, old.type, old.time_in_force,
                               cid, new_limit)
            self._validate(req, now)
            old_res = self._reservation(old)
            px = self._reserve_price(old.side, old.type, new_limit, old.symbol, req.qty, now)
            new_cost = px * req.qty
            extra = max(0.0, new_cost - old_res)
            bp = self._buying_power()
            if extra > bp + 1e-6:
                raise InsufficientBuyingPower("insufficient buying power", buying_power=round(bp, 2),
                                              cost_basis=round(new_cost, 2))
            new = BrokerOrder(
                id=self._new_id(), client_order_id=cid, symbol=old.symbol, side=old.side, qty=req.qty,
                type=old.type, time_in_force=old.time_in_force, status=OrderStatus.NEW, limit_price=new_limit,
                submitted_at=now, replaces=old.id,
            )
            old.replaced_by = new.id
            self._finish(old, OrderStatus.REPLACED, UpdateEvent.REPLACED)
            self._register(new, max(old_res, new_cost) / req.qty)
            for leg in old.legs:  # the bracket follows the replacement
                self._parent[leg.id] = new.id
                new.legs.append(leg)
            self._emit(UpdateEvent.NEW, new)
            if self.fill_on_submit:
                self._try_fill_on_quote(new)
            self._changed()
            return _copy(new)

    def open_orders(self) -> list[BrokerOrder]:
        """Working orders: open parents (legs inside), and active bracket legs whose parent has filled."""
        self._call()
        with self._lock:
            ids = {i for ids in self._open_by_symbol.values() for i in ids}
            return [_copy(self._orders[i]) for i in sorted(ids, key=self._submit_key)
                    if i not in self._parent or not self._orders[self._parent[i]].status.is_open]

    def _submit_key(self, i: str) -> tuple:
        o = self._orders[i]
        return (o.submitted_at or datetime.min.replace(tzinfo=timezone.utc), i)

    def orders(self) -> list[BrokerOrder]:
        """Every order the broker has accepted (parents; legs are inside them), in submission order."""
        with self._lock:
            return [_copy(o) for i, o in self._orders.items() if i not in self._parent]

    def orders_by_prefix(self, prefix: str, since: datetime | None = None) -> list[BrokerOrder]:
        """Every order (any status) whose client id starts with `prefix`, submitted at or after `since`,
        in submission order (legs inside their parents). One request, like Alpaca's order list."""
        self._call()
        floor = _aware(since) if since is not None else None
        with self._lock:
            return [_copy(o) for i, o in self._orders.items()
                    if i not in self._parent and o.client_order_id.startswith(prefix)
                    and (floor is None or o.submitted_at is None or _aware(o.submitted_at) >= floor)]

    def fills(self) -> list[Fill]:
        with self._lock:
            return list(self._fills)

    def updates(self) -> list[OrderUpdate]:
        with self._lock:
            out, self._updates = self._updates, []
            return out

    # ---- fills ----------------------------------------------------------------------------------

    def _fill_qty(self, remaining: int) -> int:
        if remaining > 1 and self.partial_fill_prob and self._rng.random() < self.partial_fill_prob:
            return int(self._rng.integers(1, remaining))
        return remaining

    def _apply_fill(self, o: BrokerOrder, qty: int, price: float) -> None:
        now = self.now()
        price = round(price, 4)
        sign = 1 if o.side == Side.BUY else -1
        self.cash -= sign * qty * price
        q, avg = self._pos.get(o.symbol, [0, 0.0])
        nq = q + sign * qty
        if q == 0 or (q > 0) == (sign > 0):  # opening or adding
            avg = (abs(q) * avg + qty * price) / abs(nq)
        elif (nq > 0) != (q > 0) and nq != 0:  # crossed through zero
            avg = price
        if nq == 0:
            self._pos.pop(o.symbol, None)
        else:
            self._pos[o.symbol] = [nq, avg]
        self._last_px[o.symbol] = price
        prev = o.filled_avg_price or 0.0
        o.filled_avg_price = round((prev * o.filled_qty + price * qty) / (o.filled_qty + qty), 4)
        o.filled_qty += qty
        fill = Fill(o.id, o.client_order_id, o.symbol, o.side, qty, price, now, o.filled_qty)
        self._fills.append(fill)
        done = o.filled_qty >= o.qty
        o.status = OrderStatus.FILLED if done else OrderStatus.PARTIALLY_FILLED
        self._track_open(o)
        self._emit(UpdateEvent.FILL if done else UpdateEvent.PARTIAL_FILL, o, fill)
        parent_id = self._parent.get(o.id)
        if parent_id is not None:  # a bracket leg: the other leg is one-cancels-other
            for leg in self._orders[parent_id].legs:
                if leg.id != o.id and leg.status.is_open:
                    if done:
                        self._finish(leg, OrderStatus.CANCELED, UpdateEvent.CANCELED)
                    else:
                        leg.qty = o.remaining_qty + leg.filled_qty
        elif o.legs:
            for leg in o.legs:  # legs cover what the parent filled so far
                if leg.status.is_open:
                    leg.qty = o.filled_qty
                    if done and leg.status == OrderStatus.HELD:
                        leg.status = OrderStatus.NEW
                        self._emit(UpdateEvent.NEW, leg)

    def _slip(self, side: Side) -> float:
        return 1 + self.slippage_bps / 1e4 if side == Side.BUY else 1 - self.slippage_bps / 1e4

    def _try_fill_on_quote(self, o: BrokerOrder) -> None:
        """Fill against the current quote if the order is marketable."""
        if o.status == OrderStatus.HELD or not o.status.is_open:
            return
        q = self.market.get(o.symbol)
        if q is None:
            return
        touch = q.ask if o.side == Side.BUY else q.bid
        if o.stop_price is not None:  # stop-loss leg: triggers when the price trades through the stop
            hit = q.bid <= o.stop_price if o.side == Side.SELL else q.ask >= o.stop_price
            price = touch * self._slip(o.side)
        elif o.type == OrderType.MARKET:
            hit, price = True, touch * self._slip(o.side)
        else:
            hit = touch <= o.limit_price if o.side == Side.BUY else touch >= o.limit_price
            price = touch
        if hit:
            self._apply_fill(o, self._fill_qty(o.remaining_qty), price)

    def step(self) -> int:
        """Give every open order one chance to fill at the current quotes; returns fills made."""
        with self._lock:
            n = len(self._fills)
            for i in sorted({i for ids in self._open_by_symbol.values() for i in ids}, key=self._submit_key):
                self._try_fill_on_quote(self._orders[i])
            made = len(self._fills) - n
            if made:
                self._changed()
            return made

    def on_bar(self, symbols: Sequence[str], high, low, close, ts: datetime | None = None) -> int:
        """Advance one minute: quotes from the closes (all symbols, vectorised), then fills for the
        symbols with open orders only — market orders at the new quote, limits and take-profits at
        their limit when the bar's range touches it, stops at the stop. Returns the fills made."""
        with self._lock:
            self.market.update_from_bars(symbols, close, ts)
            if not self._open_by_symbol:
                return 0
            high = np.asarray(high, dtype=float)
            low = np.asarray(low, dtype=float)
            index = self._bar_index(symbols)
            n = len(self._fills)
            for s in list(self._open_by_symbol):
                k = index.get(s)
                if k is None:
                    continue
                hi, lo = float(high[k]), float(low[k])
                for i in sorted(self._open_by_symbol.get(s, ()), key=self._submit_key):
                    o = self._orders[i]
                    if o.status == OrderStatus.HELD or not o.status.is_open:
                        continue
                    if o.stop_price is not None:
                        hit = lo <= o.stop_price if o.side == Side.SELL else hi >= o.stop_price
                        if hit:
                            self._apply_fill(o, self._fill_qty(o.remaining_qty), o.stop_price * self._slip(o.side))
                    elif o.type == OrderType.MARKET:
                        self._try_fill_on_quote(o)
                    else:
                        hit = lo <= o.limit_price if o.side == Side.BUY else hi >= o.limit_price
                        if hit:
                            self._apply_fill(o, self._fill_qty(o.remaining_qty), o.limit_price)
            made = len(self._fills) - n
            if made:
                self._changed()
            return made

    def _bar_index(self, symbols: Sequence[str]) -> dict[str, int]:
        """symbol -> position in the bar arrays, cached while the symbol order stays the same."""
        key = tuple(symbols)
        if key != self._bar_key:
            self._bar_key, self._bar_pos = key, {s: k for k, s in enumerate(key)}
        return self._bar_pos

    def end_of_day(self) -> int:
        """Expire open DAY and OPG orders (and their held legs), as at the close; returns how many."""
        with self._lock:
            ids = [i for ids in self._open_by_symbol.values() for i in ids
                   if i not in self._parent and self._orders[i].time_in_force != TimeInForce.GTC]
            for i in ids:
                o = self._orders[i]
                self._finish(o, OrderStatus.EXPIRED, UpdateEvent.EXPIRED)
                for leg in o.legs:
                    if leg.status == OrderStatus.HELD:
                        self._finish(leg, OrderStatus.CANCELED, UpdateEvent.CANCELED)
            if ids:
                self._changed()
            return len(ids)

    # ---- state ----------------------------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        """The whole broker state as JSON-able data (runtime knobs like latency are not state)."""
        with self._lock:
            return {
                "schema": SNAPSHOT_SCHEMA,
                "multiplier": self.multiplier, "cash": self.cash, "seed": self.seed, "counter": self._counter,
                "market_buffer": self.market_buffer, "slippage_bps": self.slippage_bps,
                "partial_fill_prob": self.partial_fill_prob, "fill_on_submit": self.fill_on_submit,
                "wash_trade_check": self.wash_trade_check, "rate_limit_per_minute": self.rate_limit_per_minute,
                "positions": {s: list(v) for s, v in self._pos.items()},
                "last_px": dict(self._last_px),
                "orders": [order_to_dict(o) for i, o in self._orders.items() if i not in self._parent],
                "reserve_px": dict(self._reserve_px),
                "fills": [{**asdict(f), "side": str(f.side), "timestamp": f.timestamp.isoformat()}
                          for f in self._fills],
                "rng": self._rng.bit_generator.state,
                "market": self.market.to_dict(),
            }

    @classmethod
    def restore(cls, state: dict[str, Any], **runtime: Any) -> SimBroker:
        """A broker in exactly the saved state; `runtime` sets clock, latency_s, timer, …"""
        if state.get("schema") != SNAPSHOT_SCHEMA:
            raise ValueError(f"not a SimBroker snapshot (schema {state.get('schema')!r}, want {SNAPSHOT_SCHEMA!r})")
        kw = {k: state[k] for k in ("multiplier", "seed", "market_buffer", "slippage_bps", "partial_fill_prob",
                                    "fill_on_submit", "wash_trade_check", "rate_limit_per_minute")}
        kw.update(runtime)
        b = cls(1.0, market=QuoteBook.from_dict(state["market"]), **kw)
        b.cash = state["cash"]
        b._counter = state["counter"]
        b._pos = {s: list(v) for s, v in state["positions"].items()}
        b._last_px = dict(state["last_px"])
        b._reserve_px = dict(state["reserve_px"])
        for d in state["orders"]:
            o = order_from_dict(d)
            b._orders[o.id] = o
            b._by_client[o.client_order_id] = o.id
            b._track_open(o)
            for leg in o.legs:
                b._orders[leg.id] = leg
                b._by_client[leg.client_order_id] = leg.id
                b._parent[leg.id] = o.id
                b._track_open(leg)
        cum: dict[str, int] = {}  # snapshots written before fills carried cum_qty: the running sum per order
        for f in state["fills"]:
            cum[f["order_id"]] = f.get("cum_qty") or cum.get(f["order_id"], 0) + f["qty"]
            b._fills.append(Fill(**{**f, "side": Side(f["side"]), "timestamp": datetime.fromisoformat(f["timestamp"]),
                                    "cum_qty": cum[f["order_id"]]}))
        b._rng.bit_generator.state = state["rng"]
        return b

    def save(self, path: str | Path) -> Path:
        """Write the snapshot atomically (write a temporary file, fsync, rename)."""
        p = Path(path)
        tmp = p.with_name(p.name + f".{os.getpid()}.{threading.get_ident()}.tmp")
        with self._lock:
            data = json.dumps(self.snapshot())
            with open(tmp, "w") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            tmp.replace(p)
        return p

    @classmethod
    def load(cls, path: str | Path, **runtime: Any) -> SimBroker:
        return cls.restore(json.loads(Path(path).read_text()), **runtime)

    def persist(self, path: str | Path | None) -> None:
        """Save after every state change to `path` (None stops); saves once now."""
        self._persist_path = Path(path) if path is not None else None
        if self._persist_path is not None:
            self.save(self._persist_path)
