"""The simulated broker: an in-process account that behaves like Alpaca where wolfkit cares.

It is the embedded default broker, the engine behind `wolfkit emulator`, and the test bed for the
executor and the intraday engine. What it reproduces:

- **Buying power and reservations** (Alpaca's rule, formula in `sim_account`): every open buy
  reserves buying power until it fills or is cancelled. A market buy is priced at the ask (the mid
  outside regular hours) times ``1 + market_buffer``; a limit buy at its limit. A sell reserves only
  the part that would open or grow a short (at the bid).
- **Rejections with Alpaca's meaning**: over budget → `InsufficientBuyingPower` (HTTP 403, code
  40310000, carrying the `buying_power` the body would report); a reused client id, even of a
  cancelled order → `DuplicateClientOrderId`; a limit off the tick, a non-positive quantity, an
  extended-hours order that is not a DAY limit → `OrderRejected` (422); a symbol the market has no
  quote for → `OrderRejected` ("asset not found", 422); an OPG order between 09:28 and 19:00 ET →
  `OrderRejected`; an opposite-side order while another is open on the symbol →
  `WashTradeRejected`; more than `rate_limit_per_minute` calls in a sliding minute →
  `RateLimited(retry_after=…)`.
- **The clock** (`matching`): orders trade only while the market is open for their kind at `now()`.
  An order sent outside its hours is `accepted` and waits (a day market order fills at the next
  open's prices, an OPG order at its session's first fill opportunity); DAY and OPG orders expire
  when their session ends.
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

`now()` is `clock()` if a clock is given, else the timestamp of the latest bar or quote update,
else the wall clock.
"""

from __future__ import annotations

import json
import math
import os
import threading
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from wolfkit.broker import matching
from wolfkit.broker.base import (
    CODE_FORBIDDEN,
    CODE_INVALID,
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
)
from wolfkit.broker.order_book import (
    OrderBook,
    copy_order,
    fill_to_dict,
    fills_from_dicts,
    order_from_dict,
    order_to_dict,
)
from wolfkit.broker.order_rules import check_order, invalid
from wolfkit.broker.quotes import QuoteBook
from wolfkit.broker.sim_account import SimAccount
from wolfkit.broker.sim_fills import FillEngine
from wolfkit.broker.submission import SlidingWindowLimiter
from wolfkit.calendar import NY
from wolfkit.domain import OrderType, Side, TimeInForce

__all__ = ["NY", "QuoteBook", "SimBroker", "order_from_dict", "order_to_dict"]

SNAPSHOT_SCHEMA = "wolfkit.simbroker/1"
_ID_NAMESPACE = uuid.UUID("6f1d2c4e-8b0a-4c55-9a57-0b1f5c3e9d21")


def _aware(t: datetime) -> datetime:
    """`t` with a time zone (a naive time is read as New York, like the session test)."""
    return t if t.tzinfo is not None else t.replace(tzinfo=NY)


class SimBroker(FillEngine):
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
    fill_on_submit: fill market/marketable orders immediately (when the market is open for them)
        instead of on the next step/bar.
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
        self.market = market if market is not None else QuoteBook()
        self.acct = SimAccount(equity, multiplier, self.market)
        self.book = OrderBook()
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
        self._fills: list[Fill] = []
        self._updates: list[OrderUpdate] = []
        self._counter = 0
        self._last_stamp: datetime | None = None
        self._persist_path: Path | None = None
        self._bar_key: tuple[str, ...] | None = None
        self._bar_pos: dict[str, int] = {}
        self.request_count = 0

    @property
    def multiplier(self) -> float:
        return self.acct.multiplier

    @property
    def cash(self) -> float:
        return self.acct.cash

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

    def _stamp(self, now: datetime) -> datetime:
        """A submission time: `now`, but strictly after the previous one (a microsecond later on a
        tie), so submission times are unique and ordered as at Alpaca and lists page by time."""
        t = _aware(now)
        if self._last_stamp is not None and t <= self._last_stamp:
            t = self._last_stamp + timedelta(microseconds=1)
        self._last_stamp = t
        return t

    def _new_id(self) -> str:
        self._counter += 1
        return str(uuid.uuid5(_ID_NAMESPACE, f"{self.seed}-{self._counter}"))

    def _emit(self, event: UpdateEvent, o: BrokerOrder, fill: Fill | None = None) -> None:
        self._updates.append(OrderUpdate(event, copy_order(o), fill, self.now()))

    def _changed(self) -> None:
        if self._persist_path is not None:
            self.save(self._persist_path)

    # ---- account --------------------------------------------------------------------------------

    def _buying_power(self) -> float:
        return self.acct.totals(self.book.reserved()).buying_power

    def account(self) -> AccountInfo:
        self._call()
        with self._lock:
            return self.acct.info(self.book.reserved())

    def quotes(self, symbols: Sequence[str]) -> dict[str, Quote]:
        """Latest quotes for the symbols the book knows (unknown symbols are left out)."""
        self._call()
        with self._lock:
            return {s: q for s in symbols if (q := self.market.get(s)) is not None}

    def positions(self) -> list[Position]:
        self._call()
        with self._lock:
            return self.acct.position_list()

    # ---- orders ---------------------------------------------------------------------------------

    def _reserve_price(self, side: Side, type_: OrderType, limit: float | None, quote: Quote,
                       qty: int, now: datetime) -> float:
        """USD reserved per share of a new order (0 for a sell that only closes a long)."""
        if side == Side.BUY:
            if type_ == OrderType.LIMIT and limit is not None:
                return limit
            ref = quote.ask if matching.regular_hours(now) else quote.mid
            return ref * (1 + self.market_buffer)
        selling = sum(o.remaining_qty for o in self.book.working(quote.symbol)
                      if o.side == Side.SELL and o.status != OrderStatus.HELD)
        short_qty = max(0, qty - max(0.0, self.acct.held(quote.symbol) - selling))
        if short_qty == 0:
            return 0.0
        ref = limit if type_ == OrderType.LIMIT and limit is not None else quote.bid
        return ref * short_qty / qty

    def _validate(self, r: OrderRequest, now: datetime) -> Quote:
        """Alpaca's order checks (`order_rules`); returns the quote that prices the order."""
        check_order(r, now)
        quote = self.market.get(r.symbol)
        if quote is None:
            raise OrderRejected(f'asset "{r.symbol}" not found (the simulated market has no quote for it)',
                                CODE_INVALID, 422)
        return quote

    def _opening_status(self, o: BrokerOrder, now: datetime) -> OrderStatus:
        """`new` when the market is open for the order now, else `accepted` (queued, as at Alpaca)."""
        return OrderStatus.NEW if matching.may_trade(o, now) else OrderStatus.ACCEPTED

    def submit(self, request: OrderRequest) -> BrokerOrder:
        self._call()
        with self._lock:
            r = request
            if r.client_order_id in self.book.by_client:
                raise DuplicateClientOrderId("client_order_id must be unique")
            now = self.now()
            quote = self._validate(r, now)
            if self.wash_trade_check:
                for o in self.book.working(r.symbol):
                    if o.side != r.side and o.status != OrderStatus.HELD:
                        raise WashTradeRejected(
                            "potential wash trade detected. use complex orders", CODE_FORBIDDEN, 403
                        )
            px = self._reserve_price(r.side, r.type, r.limit_price, quote, r.qty, now)
            cost = px * r.qty
            bp = self._buying_power()
            if cost > bp + 1e-6:
                raise InsufficientBuyingPower("insufficient buying power", buying_power=round(bp, 2),
                                              cost_basis=round(cost, 2))
            o = BrokerOrder(
                id=self._new_id(), client_order_id=r.client_order_id, symbol=r.symbol, side=r.side,
                qty=r.qty, type=r.type, time_in_force=r.time_in_force, status=OrderStatus.NEW,
                limit_price=r.limit_price, submitted_at=self._stamp(now), extended_hours=r.extended_hours,
            )
            o.status = self._opening_status(o, now)
            self.book.add(o, px)
            exit_side = r.side.opposite()
            if r.take_profit is not None:
                self._add_leg(o, exit_side, OrderType.LIMIT, limit=r.take_profit, stop=None)
            if r.stop_loss is not None:
                self._add_leg(o, exit_side, OrderType.MARKET, limit=None, stop=r.stop_loss)
            self._emit(UpdateEvent.NEW, o)
            if self.fill_on_submit:
                self._try_fill_on_quote(o, now)
            self._changed()
            return copy_order(o)

    def _add_leg(self, parent: BrokerOrder, side: Side, type_: OrderType, limit: float | None,
                 stop: float | None) -> None:
        kind = "tp" if stop is None else "sl"
        leg = BrokerOrder(
            id=self._new_id(), client_order_id=f"{parent.client_order_id[:120]}-{kind}", symbol=parent.symbol,
            side=side, qty=parent.qty, type=type_, time_in_force=TimeInForce.GTC, status=OrderStatus.HELD,
            limit_price=limit, stop_price=stop, submitted_at=self._stamp(self.now()),
        )
        self.book.add(leg, 0.0, parent=parent)

    def _order(self, order_id: str) -> BrokerOrder:
        o = self.book.orders.get(order_id)
        if o is None:
            raise OrderNotFound(f"order not found for {order_id}")
        return o

    def get(self, order_id: str) -> BrokerOrder:
        self._call()
        with self._lock:
            return copy_order(self._order(order_id))

    def get_by_client_id(self, client_order_id: str) -> BrokerOrder | None:
        self._call()
        with self._lock:
            o = self.book.by_client_id(client_order_id)
            return copy_order(o) if o is not None else None

    def _finish(self, o: BrokerOrder, status: OrderStatus, event: UpdateEvent | None) -> None:
        o.status = status
        self.book.track(o)
        if event is not None:
            self._emit(event, o)

    def cancel(self, order_id: str) -> None:
        """Cancel an open order (and its bracket legs); cancelling a finished order is refused (422)."""
        self._call()
        with self._lock:
            o = self._order(order_id)
            if not o.status.is_open:
                raise invalid(f"order is already {o.status}")
            self._finish(o, OrderStatus.CANCELED, UpdateEvent.CANCELED)
            for leg in o.legs:
                if leg.status.is_open:
                    self._finish(leg, OrderStatus.CANCELED, UpdateEvent.CANCELED)
            self._changed()

    def cancel_all(self) -> int:
        """Cancel every open parent order; returns how many were cancelled."""
        with self._lock:
            ids = [o.id for o in self.book.working() if o.id not in self.book.parent]
        for i in ids:
            self.cancel(i)
        return len(ids)

    def replace(
        self, order_id: str, *, qty: int | None = None, limit_price: float | None = None,
        stop_price: float | None = None, client_order_id: str | None = None,
    ) -> BrokerOrder:
        """Replace an open order: the old one ends REPLACED, the new one (new id) reserves
        max(old reservation, new cost); the check needs only the increase in buying power. A bracket's
        active leg is replaced in its bracket (`_replace_leg`)."""
        self._call()
        with self._lock:
            old = self._order(order_id)
            if not old.status.is_open or old.status == OrderStatus.HELD:
                raise invalid(f"order is {old.status}; only a working order can be replaced")
            parent = self.book.parent_of(old)
            if parent is not None:
                return self._replace_leg(old, parent, qty, limit_price, stop_price, client_order_id)
            if stop_price is not None and old.stop_price is None:
                raise invalid("stop_price: only a stop order can be given one")
            new_qty = old.qty if qty is None else qty
            new_limit = old.limit_price if limit_price is None else limit_price
            cid = client_order_id or f"{old.client_order_id[:110]}-x{self._counter + 1}"
            if cid in self.book.by_client:
                raise DuplicateClientOrderId("client_order_id must be unique")
            now = self.now()
            req = OrderRequest(old.symbol, new_qty - old.filled_qty, old.side, old.type, old.time_in_force,
                               cid, new_limit, extended_hours=old.extended_hours)
            quote = self._validate(req, now)
            old_res = self.book.reservation(old)
            new_cost = self._reserve_price(old.side, old.type, new_limit, quote, req.qty, now) * req.qty
            extra = max(0.0, new_cost - old_res)
            bp = self._buying_power()
            if extra > bp + 1e-6:
                raise InsufficientBuyingPower("insufficient buying power", buying_power=round(bp, 2),
                                              cost_basis=round(new_cost, 2))
            new = BrokerOrder(
                id=self._new_id(), client_order_id=cid, symbol=old.symbol, side=old.side, qty=req.qty,
                type=old.type, time_in_force=old.time_in_force, status=OrderStatus.NEW, limit_price=new_limit,
                submitted_at=self._stamp(now), replaces=old.id, extended_hours=old.extended_hours,
            )
            new.status = self._opening_status(new, now)
            old.replaced_by = new.id
            self._finish(old, OrderStatus.REPLACED, UpdateEvent.REPLACED)
            self.book.add(new, max(old_res, new_cost) / req.qty)
            for leg in old.legs:  # the bracket follows the replacement
                self.book.parent[leg.id] = new.id
                new.legs.append(leg)
            self._emit(UpdateEvent.NEW, new)
            if self.fill_on_submit:
                self._try_fill_on_quote(new, now)
            self._changed()
            return copy_order(new)

    def open_orders(self) -> list[BrokerOrder]:
        """Working orders: open parents (legs inside), and active bracket legs whose parent has filled."""
        self._call()
        with self._lock:
            out = []
            for o in self.book.working():
                parent = self.book.parent_of(o)
                if parent is None or not parent.status.is_open:
                    out.append(copy_order(o))
            return out

    def orders(self) -> list[BrokerOrder]:
        """Every order the broker has accepted (parents; legs are inside them), in submission order."""
        with self._lock:
            return [copy_order(o) for o in self.book.parents()]

    def orders_by_prefix(self, prefix: str, since: datetime | None = None) -> list[BrokerOrder]:
        """Every order (any status) whose client id starts with `prefix`, submitted at or after `since`,
        in submission order (legs inside their parents). One request, like Alpaca's order list."""
        self._call()
        floor = _aware(since) if since is not None else None
        with self._lock:
            return [copy_order(o) for o in self.book.parents() if o.client_order_id.startswith(prefix)
                    and (floor is None or o.submitted_at is None or _aware(o.submitted_at) >= floor)]

    def fills(self) -> list[Fill]:
        with self._lock:
            return list(self._fills)

    def updates(self) -> list[OrderUpdate]:
        with self._lock:
            out, self._updates = self._updates, []
            return out

    # ---- state ----------------------------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        """The whole broker state as JSON-able data (runtime knobs like latency are not state)."""
        with self._lock:
            return {
                "schema": SNAPSHOT_SCHEMA, "seed": self.seed, "counter": self._counter,
                "market_buffer": self.market_buffer, "slippage_bps": self.slippage_bps,
                "partial_fill_prob": self.partial_fill_prob, "fill_on_submit": self.fill_on_submit,
                "wash_trade_check": self.wash_trade_check, "rate_limit_per_minute": self.rate_limit_per_minute,
                **self.acct.to_dict(), **self.book.to_dict(),
                "fills": [fill_to_dict(f) for f in self._fills],
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
        b.acct.load(state)
        b.book = OrderBook.from_dict(state)
        b._counter = state["counter"]
        stamps = [o.submitted_at for o in b.book.orders.values() if o.submitted_at is not None]
        b._last_stamp = max((_aware(t) for t in stamps), default=None)
        b._fills = fills_from_dicts(state["fills"])
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
