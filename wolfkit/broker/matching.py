"""When a simulated order may trade, and at what price: the one home of the matching rules.

`SimBroker` applies these rules and the HTTP emulator serves a `SimBroker`, so the simulator and the
emulator cannot disagree. The rules follow Alpaca's:

- **Market phases** (New York time, XNYS sessions with their early closes): pre-market 04:00 to the
  open, regular hours open to close, after-hours close to 20:00; closed otherwise and on non-sessions.
- **Who trades when**: in regular hours every working order; in pre-market and after-hours only limit
  orders sent with `extended_hours` (Alpaca accepts those only as DAY limits); when closed, nothing.
  A day market order sent outside regular hours is accepted and waits for the next open, where it
  fills at the prices of that moment; an OPG order trades at the first fill opportunity of its
  session's regular hours (the opening auction).
- **One session per DAY or OPG order**: the session in progress when it was sent, else the next one.
  It cannot trade before that session and expires at its close (an extended-hours order at 20:00);
  GTC orders (bracket exits) never expire.
- **Prices**: market orders and triggered stops at the touch (ask for a buy, bid for a sell) moved by
  the slippage; limits when the touch is at or through the limit, at the touch on a quote and at the
  limit on a bar whose range reaches it; stops when the quote or the bar trades through the stop.
"""

from __future__ import annotations

from datetime import date, datetime
from datetime import time as dtime
from enum import StrEnum
from functools import lru_cache

from wolfkit import calendar
from wolfkit.broker.base import BrokerOrder, Quote
from wolfkit.calendar import NY
from wolfkit.domain import OrderType, Side, TimeInForce

PRE_MARKET_START = dtime(4, 0)
AFTER_HOURS_END = dtime(20, 0)


class MarketPhase(StrEnum):
    CLOSED = "closed"
    PRE_MARKET = "pre_market"
    REGULAR = "regular"
    AFTER_HOURS = "after_hours"


def as_ny(t: datetime) -> datetime:
    """`t` in New York time (a naive time is read as New York)."""
    return t.astimezone(NY) if t.tzinfo is not None else t.replace(tzinfo=NY)


@lru_cache(maxsize=4096)
def _hours(day: date) -> tuple[datetime, datetime] | None:
    """(open, close) of session `day`, or None when the exchange does not trade that day (cached:
    a replay asks once per order per minute)."""
    if not calendar.is_trading_day(day):
        return None
    return calendar.session_open(day), calendar.session_close(day)


@lru_cache(maxsize=4096)
def phase_at(now: datetime) -> MarketPhase:
    """The market phase at `now`."""
    t = as_ny(now)
    day = t.date()
    hours = _hours(day)
    if hours is None:
        return MarketPhase.CLOSED
    open_, close = hours
    if open_ <= t < close:
        return MarketPhase.REGULAR
    if datetime.combine(day, PRE_MARKET_START, NY) <= t < open_:
        return MarketPhase.PRE_MARKET
    if close <= t < datetime.combine(day, AFTER_HOURS_END, NY):
        return MarketPhase.AFTER_HOURS
    return MarketPhase.CLOSED


def regular_hours(now: datetime) -> bool:
    return phase_at(now) == MarketPhase.REGULAR


def session_end(day: date, extended_hours: bool) -> datetime:
    """When a DAY order of session `day` stops working: the close, or 20:00 for extended hours."""
    if extended_hours:
        return datetime.combine(day, AFTER_HOURS_END, NY)
    hours = _hours(day)
    return hours[1] if hours is not None else calendar.session_close(day)


@lru_cache(maxsize=65536)
def order_session(submitted_at: datetime, extended_hours: bool = False) -> date:
    """The session a DAY or OPG order sent at `submitted_at` works in: the one in progress, else the next."""
    t = as_ny(submitted_at)
    day = t.date()
    if _hours(day) is not None and t < session_end(day, extended_hours):
        return day
    return calendar.next_session(day)


def expired(o: BrokerOrder, now: datetime) -> bool:
    """True when a DAY or OPG order's session is over at `now` (GTC orders never expire)."""
    if o.time_in_force == TimeInForce.GTC or o.submitted_at is None:
        return False
    day = order_session(o.submitted_at, o.extended_hours)
    return as_ny(now) >= session_end(day, o.extended_hours)


def may_trade(o: BrokerOrder, now: datetime) -> bool:
    """True when the market is open at `now` for this order's kind (see the module docstring)."""
    if o.time_in_force != TimeInForce.GTC and o.submitted_at is not None:
        if as_ny(now).date() < order_session(o.submitted_at, o.extended_hours):
            return False  # queued for a later session
    phase = phase_at(now)
    if phase == MarketPhase.REGULAR:
        return True
    if phase in (MarketPhase.PRE_MARKET, MarketPhase.AFTER_HOURS):
        return o.extended_hours and o.type == OrderType.LIMIT and o.stop_price is None
    return False


def _slip(side: Side, slippage_bps: float) -> float:
    return 1 + slippage_bps / 1e4 if side == Side.BUY else 1 - slippage_bps / 1e4


def quote_fill_price(o: BrokerOrder, q: Quote, slippage_bps: float) -> float | None:
    """The price `o` fills at against quote `q`, or None when it is not marketable."""
    touch = q.ask if o.side == Side.BUY else q.bid
    if o.stop_price is not None:  # a stop-loss leg triggers when the price trades through the stop
        hit = q.bid <= o.stop_price if o.side == Side.SELL else q.ask >= o.stop_price
        return touch * _slip(o.side, slippage_bps) if hit else None
    if o.type == OrderType.MARKET or o.limit_price is None:
        return touch * _slip(o.side, slippage_bps)
    hit = touch <= o.limit_price if o.side == Side.BUY else touch >= o.limit_price
    return touch if hit else None


def bar_fill_price(o: BrokerOrder, high: float, low: float, q: Quote | None, slippage_bps: float) -> float | None:
    """The price `o` fills at in a minute bar (range `low`..`high`, quote `q` from its close), or None.
    Market orders trade at the bar-close quote; limits at the limit and stops at the stop when the
    range reaches them."""
    if o.stop_price is not None:
        hit = low <= o.stop_price if o.side == Side.SELL else high >= o.stop_price
        return o.stop_price * _slip(o.side, slippage_bps) if hit else None
    if o.type == OrderType.MARKET or o.limit_price is None:
        return quote_fill_price(o, q, slippage_bps) if q is not None else None
    hit = low <= o.limit_price if o.side == Side.BUY else high >= o.limit_price
    return o.limit_price if hit else None
