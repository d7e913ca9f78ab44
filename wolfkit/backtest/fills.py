"""Fill rules: what an order would have got from one session's bars (pure functions).

Daily bars cannot say in which order the day's prices came, so every rule here is the
conservative reading (docs/backtest.md explains each one):

- market orders (entries at the open, exits at the close, a stop that triggers) fill at the bar's
  price moved against us by `backtest.slippage_bps`; limit orders fill at their limit when the
  range reaches it, or at the open when the session opens beyond it (the only price there was);
- a directional position with a take-profit T and a stop S: on a daily bar the stop is taken when
  the low reaches S (at S, or at the open when the open is already below it), else T when the high
  reaches it, else the position is held to the close — when both lie inside the day's range, the
  stop is assumed first. On minute bars the first minute that touches either decides; a minute that
  touches both counts as the stop. A trailing stop and a time stop follow `wolfkit.exits` (a daily
  bar ratchets the trail from the open only and cannot place a time stop inside the day);
- a maxdiff plan (buy limit at the ramp start above the predicted low, exit at the predicted high;
  the sell side mirrors it): the entry fills when the range reaches its limit, at the limit; on a
  daily bar the same-day exit at the target is taken only when the entry came first for certain
  (the session opened through the limit), else the position is closed at the close. On minute
  bars the exit must touch in a later minute than the entry.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

import numpy as np

from wolfkit.config import BacktestParams
from wolfkit.exits import walk_path


class Reason(StrEnum):
    """Why a fill happened (the `reason` column of fills.csv)."""

    OPEN = "open"
    TAKE_PROFIT = "take_profit"
    STOP = "stop"
    TIME_STOP = "time_stop"
    CLOSE = "close"
    MAXDIFF_ENTRY = "maxdiff_entry"
    MAXDIFF_EXIT = "maxdiff_exit"


@dataclass(frozen=True)
class Bar:
    """One session of one symbol; `minutes` (n x 4: open, high, low, close) when the provider has them."""

    open: float
    high: float
    low: float
    close: float
    minutes: np.ndarray | None = None


def fee(qty: float, price: float, bt: BacktestParams) -> float:
    """The cost of one fill: per share plus bp of the notional, at least `min_fee` when not zero."""
    f = abs(qty) * bt.fee_per_share + abs(qty) * price * bt.fee_bps / 1e4
    return max(f, bt.min_fee) if f > 0 or bt.min_fee > 0 else 0.0


def market_price(price: float, buy: bool, bt: BacktestParams) -> float:
    """A market fill: `slippage_bps` worse than the bar's price."""
    s = bt.slippage_bps / 1e4
    return price * (1 + s) if buy else price * (1 - s)


def bracket_exit(bar: Bar, take_profit: float | None, stop: float | None, trail: float | None = None,
                 time_stop_minutes: int | None = None) -> tuple[float, Reason] | None:
    """The exit of a long position bought at the open: (price before slippage for a stop, reason), or None.

    `wolfkit.exits.walk_path` over the bar's minutes, or over the daily bar by its conservative rule:
    a stop fills at its level, or at the (minute's) open when the price gapped through it; a take-profit
    (a limit) at its level, or at the open when the price opened beyond it; a trailing stop ratchets
    (on a daily bar from the open only); a time stop leaves at the open of its minute (minute bars only).
    """
    daily = bar.minutes is None
    path = np.array([[bar.open, bar.high, bar.low, bar.close]]) if bar.minutes is None else bar.minutes
    hit = walk_path(path, take_profit, stop, trail, time_stop_minutes, daily=daily)
    return None if hit is None else (hit.price, Reason(hit.reason.value))


def maxdiff_trade(bar: Bar, buy: bool, limit: float, target: float) -> tuple[float, float, Reason] | None:
    """A maxdiff round trip in one session: (entry price, exit price, exit reason) or None (not filled).

    `buy`: enter long at the buy limit, exit at `target` (the predicted high); else enter short at
    the sell limit and cover at `target` (the predicted low). The exit reason is `maxdiff_exit` at the
    target, `close` at the session's close (before slippage).
    """
    if bar.minutes is not None:
        m = bar.minutes
        touched = m[:, 2] <= limit if buy else m[:, 1] >= limit
        if not touched.any():
            return None
        k = int(np.argmax(touched))
        entry = min(limit, m[k, 0]) if buy else max(limit, m[k, 0])
        later = m[k + 1:]
        hit = later[:, 1] >= target if buy else later[:, 2] <= target
        if hit.any():
            return entry, target, Reason.MAXDIFF_EXIT
        return entry, bar.close, Reason.CLOSE
    if (buy and bar.low > limit) or (not buy and bar.high < limit):
        return None
    entry_first = bar.open <= limit if buy else bar.open >= limit
    entry = (min(limit, bar.open) if buy else max(limit, bar.open)) if entry_first else limit
    reached = bar.high >= target if buy else bar.low <= target
    if entry_first and reached:
        return entry, target, Reason.MAXDIFF_EXIT
    return entry, bar.close, Reason.CLOSE
