"""The market side of the simulated broker: fills, bracket legs (and replacing one), expiry at the session's end.

`FillEngine` is mixed into `SimBroker` (which owns the order book, the account and the order
lifecycle: submit, replace, cancel); this half decides, at each fill opportunity — `step()`, a
minute bar in `on_bar()`, or a submit with `fill_on_submit` — which working orders trade and at what
price, by the rules in `matching` (the clock: only while the market is open for the order's kind).
"""

from __future__ import annotations

import math
import threading
from dataclasses import replace as copy_with
from datetime import datetime
from typing import TYPE_CHECKING, Sequence

import numpy as np
import numpy.typing as npt

from wolfkit.broker import matching
from wolfkit.broker.base import BrokerOrder, DuplicateClientOrderId, Fill, OrderStatus, UpdateEvent
from wolfkit.broker.order_book import OrderBook, copy_order
from wolfkit.broker.order_rules import invalid
from wolfkit.broker.quotes import QuoteBook
from wolfkit.broker.sim_account import SimAccount
from wolfkit.domain import TimeInForce


class FillEngine:
    """Fills and expiry over the state `SimBroker` keeps (declared here for the type checker)."""

    market: QuoteBook
    acct: SimAccount
    book: OrderBook
    slippage_bps: float
    partial_fill_prob: float
    _rng: np.random.Generator
    _lock: threading.RLock
    _fills: list[Fill]
    _bar_key: tuple[str, ...] | None
    _bar_pos: dict[str, int]

    if TYPE_CHECKING:  # provided by SimBroker
        def now(self) -> datetime: ...

        def _emit(self, event: UpdateEvent, o: BrokerOrder, fill: Fill | None = None) -> None: ...

        def _finish(self, o: BrokerOrder, status: OrderStatus, event: UpdateEvent | None) -> None: ...

        def _changed(self) -> None: ...

        def _new_id(self) -> str: ...

        def _stamp(self, now: datetime) -> datetime: ...

    _counter: int

    def _replace_leg(self, old: BrokerOrder, parent: BrokerOrder, qty: int | None, limit_price: float | None,
                     stop_price: float | None, client_order_id: str | None) -> BrokerOrder:
        """Alpaca's PATCH on a bracket leg (e.g. a trailing stop raised): the new leg takes the old one's
        place in the bracket (one-cancels-other with its sibling); an exit reserves no buying power."""
        if qty is not None and qty != old.qty:
            raise invalid("qty: a bracket leg's quantity follows its entry and cannot be replaced")
        if stop_price is not None and old.stop_price is None:
            raise invalid("stop_price: only the stop-loss leg has a stop price")
        if limit_price is not None and old.limit_price is None:
            raise invalid("limit_price: the stop-loss leg of a bracket is a stop (market) order")
        for name, v in (("stop_price", stop_price), ("limit_price", limit_price)):
            if v is not None and not (math.isfinite(v) and v > 0):
                raise invalid(f"{name} must be a positive number, got {v}")
        cid = client_order_id or f"{old.client_order_id[:110]}-x{self._counter + 1}"
        if cid in self.book.by_client:
            raise DuplicateClientOrderId("client_order_id must be unique")
        new = copy_with(old, id=self._new_id(), client_order_id=cid, status=OrderStatus.NEW,
                      limit_price=old.limit_price if limit_price is None else limit_price,
                      stop_price=old.stop_price if stop_price is None else stop_price,
                      submitted_at=self._stamp(self.now()), replaces=old.id, replaced_by=None, legs=[])
        old.replaced_by = new.id
        self._finish(old, OrderStatus.REPLACED, UpdateEvent.REPLACED)
        parent.legs.remove(old)
        self.book.add(new, 0.0, parent=parent)
        self._emit(UpdateEvent.NEW, new)
        self._changed()
        return copy_order(new)

    def _fill_qty(self, remaining: int) -> int:
        if remaining > 1 and self.partial_fill_prob and self._rng.random() < self.partial_fill_prob:
            return int(self._rng.integers(1, remaining))
        return remaining

    def _apply_fill(self, o: BrokerOrder, qty: int, price: float) -> None:
        price = round(price, 4)
        self.acct.book_fill(o.symbol, o.side, qty, price)
        prev = o.filled_avg_price or 0.0
        o.filled_avg_price = round((prev * o.filled_qty + price * qty) / (o.filled_qty + qty), 4)
        o.filled_qty += qty
        fill = Fill(o.id, o.client_order_id, o.symbol, o.side, qty, price, self.now(), o.filled_qty)
        self._fills.append(fill)
        done = o.filled_qty >= o.qty
        o.status = OrderStatus.FILLED if done else OrderStatus.PARTIALLY_FILLED
        self.book.track(o)
        self._emit(UpdateEvent.FILL if done else UpdateEvent.PARTIAL_FILL, o, fill)
        parent = self.book.parent_of(o)
        if parent is not None:  # a bracket leg: the other leg is one-cancels-other
            for leg in parent.legs:
                if leg.id != o.id and leg.status.is_open:
                    if done:
                        self._finish(leg, OrderStatus.CANCELED, UpdateEvent.CANCELED)
                    else:
                        leg.qty = o.remaining_qty + leg.filled_qty
        else:
            for leg in o.legs:  # legs cover what the parent filled so far
                if leg.status.is_open:
                    leg.qty = o.filled_qty
                    if done and leg.status == OrderStatus.HELD:
                        leg.status = OrderStatus.NEW
                        self._emit(UpdateEvent.NEW, leg)

    def _ready(self, o: BrokerOrder, now: datetime) -> bool:
        """True when `o` may trade now; a queued (`accepted`) order is routed (`new`) when it may."""
        if o.status == OrderStatus.HELD or not o.status.is_open or not matching.may_trade(o, now):
            return False
        if o.status == OrderStatus.ACCEPTED:
            o.status = OrderStatus.NEW
        return True

    def _try_fill_on_quote(self, o: BrokerOrder, now: datetime) -> None:
        """Fill against the current quote if the market is open for the order and it is marketable."""
        q = self.market.get(o.symbol)
        if q is None or not self._ready(o, now):
            return
        price = matching.quote_fill_price(o, q, self.slippage_bps)
        if price is not None:
            self._apply_fill(o, self._fill_qty(o.remaining_qty), price)

    def _expire(self, now: datetime, *, closing: bool = False) -> int:
        """Expire DAY/OPG orders whose session is over (with `closing`, also today's session's: the
        close), cancelling their held legs; returns how many expired."""
        today = matching.as_ny(now).date()
        n = 0
        for o in self.book.working():
            if o.id in self.book.parent or o.time_in_force == TimeInForce.GTC:
                continue
            ends_today = closing and o.submitted_at is not None and \
                matching.order_session(o.submitted_at, o.extended_hours) <= today
            if ends_today or matching.expired(o, now):
                self._finish(o, OrderStatus.EXPIRED, UpdateEvent.EXPIRED)
                for leg in o.legs:
                    if leg.status == OrderStatus.HELD:
                        self._finish(leg, OrderStatus.CANCELED, UpdateEvent.CANCELED)
                n += 1
        return n

    def step(self) -> int:
        """Give every open order one chance to fill at the current quotes (orders whose session has
        ended expire first); returns fills made."""
        with self._lock:
            now = self.now()
            n = len(self._fills)
            expired = self._expire(now)
            for o in self.book.working():
                self._try_fill_on_quote(o, now)
            made = len(self._fills) - n
            if made or expired:
                self._changed()
            return made

    def on_bar(self, symbols: Sequence[str], high: npt.ArrayLike, low: npt.ArrayLike, close: npt.ArrayLike,
               ts: datetime | None = None) -> int:
        """Advance one minute: quotes from the closes (all symbols, vectorised), then fills for the
        symbols with open orders only — market orders at the new quote, limits and take-profits at
        their limit when the bar's range touches it, stops at the stop. Returns the fills made."""
        with self._lock:
            self.market.update_from_bars(symbols, close, ts)
            if not self.book.open_by_symbol:
                return 0
            now = self.now()
            expired = self._expire(now)
            highs = np.asarray(high, dtype=float)
            lows = np.asarray(low, dtype=float)
            index = self._bar_index(symbols)
            n = len(self._fills)
            for s in list(self.book.open_by_symbol):
                k = index.get(s)
                if k is None:
                    continue
                for o in self.book.working(s):
                    if not self._ready(o, now):
                        continue
                    price = matching.bar_fill_price(o, float(highs[k]), float(lows[k]), self.market.get(s),
                                                    self.slippage_bps)
                    if price is not None:
                        self._apply_fill(o, self._fill_qty(o.remaining_qty), price)
            made = len(self._fills) - n
            if made or expired:
                self._changed()
            return made

    def _bar_index(self, symbols: Sequence[str]) -> dict[str, int]:
        """symbol -> position in the bar arrays, cached while the symbol order stays the same."""
        key = tuple(symbols)
        if key != self._bar_key:
            self._bar_key, self._bar_pos = key, {s: k for k, s in enumerate(key)}
        return self._bar_pos

    def end_of_day(self) -> int:
        """The close: expire open DAY and OPG orders of today's session or earlier (and their held
        legs); orders queued for a later session stay. Returns how many expired."""
        with self._lock:
            n = self._expire(self.now(), closing=True)
            if n:
                self._changed()
            return n
