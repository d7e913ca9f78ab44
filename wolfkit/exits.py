"""Directional exits: where a long position's target and stop sit, how a trailing stop moves, and when
the time stop closes it — one set of pure rules for the scan's statistics, the order plan, the intraday
engine, the backtest and replay.

The rules (`Params.exits`, `config.ExitParams`), for a long entered at `price` with an ATR `atr`:

- target: every strategy has one. `takeprofit` and `simple`: price + take_profit_atr x ATR;
  `highlow`: its predicted high.
- stop (`stop_rule`): `fixed` — each strategy's own (`takeprofit`: price − stop_loss_atr x ATR,
  `highlow`: the predicted low, `simple`: none); `atr` — price − stop_loss_atr x ATR for every strategy;
  `trailing` — starts at price − trail_atr x ATR and ratchets to (highest price since the entry − trail),
  never down (`ratchet`). The trail is an ATR multiple, carried in the plan in USD (`trail_amount`).
- time stop: `time_stop_minutes` after the session's open the position is closed at market.

Paths (`walk_path`): on minute bars the first minute that touches the stop or the target decides (a
minute touching both counts as the stop), a minute's high raises a trailing stop from the NEXT minute
on (inside one minute the order of high and low is unknown), and the time stop exits at the open of
minute N. A daily bar cannot show the order of the day's prices (`docs/backtest.md`): the low is
assumed to come before the high, so a trailing stop ratchets from the open only; a time stop cannot be
placed inside the day and the position is held to the close (brackets apply all day).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

import numpy as np

from wolfkit.config import ExitParams, StopRule
from wolfkit.domain import Strategy


class ExitReason(StrEnum):
    """Why a position left (the backtest's `fills.csv` `reason` uses the same words)."""

    TAKE_PROFIT = "take_profit"
    STOP = "stop"
    TIME_STOP = "time_stop"


def levels(strategy: Strategy | str, price: np.ndarray, atr: np.ndarray, pred_high: np.ndarray,
           pred_low: np.ndarray, exits: ExitParams) -> tuple[np.ndarray, np.ndarray]:
    """(take_profit, stop) arrays for entries of one strategy at `price` (NaN: none, or unknown ATR).

    Vectorised over symbols (and sessions): the walk-forward statistics price each session's open with
    it, the scan each candidate's price."""
    s = Strategy(strategy)
    nan = np.full(np.shape(price), np.nan)
    with np.errstate(invalid="ignore"):
        target = pred_high + 0 * price if s == Strategy.HIGHLOW else price + exits.take_profit_atr * atr
        if exits.stop_rule == StopRule.TRAILING:
            stop = price - exits.trail_atr * atr
        elif exits.stop_rule == StopRule.ATR or s == Strategy.TAKEPROFIT:
            stop = price - exits.stop_loss_atr * atr
        elif s == Strategy.HIGHLOW:
            stop = pred_low + 0 * price
        else:
            stop = nan
    return np.asarray(target, dtype=float), np.asarray(stop, dtype=float)


def trail_amount(price: float, stop: float | None, exits: ExitParams) -> float | None:
    """USD between the planned price and the first stop under the `trailing` rule (trail_atr x ATR);
    None under the other rules or without a stop."""
    if exits.stop_rule != StopRule.TRAILING or stop is None or not math.isfinite(stop):
        return None
    trail = round(price - stop, 4)
    return trail if trail > 0 else None  # a stop at or above the price (or under a hundredth of a cent): no trail


def ratchet(stop: float, high: float, trail: float | None) -> float:
    """The trailing stop after a new high: (high − trail) when higher, else unchanged — never lower."""
    if trail is None or not math.isfinite(high):
        return stop
    return max(stop, high - trail)


@dataclass(frozen=True)
class PathExit:
    """Where a long position left a session's path: the price (before slippage for the market exits),
    why, and the minute index (0 on a daily bar)."""

    price: float
    reason: ExitReason
    minute: int


def walk_path(path: np.ndarray, take_profit: float | None, stop: float | None, trail: float | None = None,
              time_stop_minutes: int | None = None, *, daily: bool = False) -> PathExit | None:
    """The exit of a long bought at the path's first open, or None (held to the close).

    `path`: n x 4 (open, high, low, close), one row per minute from the session's open, or with `daily`
    one row for the session (the module docstring's conservative rules; no time stop inside the day). A stop fills at its level or at the
    minute's open when the price gapped through it; the target likewise at its level or the open above it.
    """
    tp = take_profit if take_profit is not None and math.isfinite(take_profit) else math.inf
    sl = stop if stop is not None and math.isfinite(stop) else -math.inf
    if daily:  # a daily bar: the low before the high, so a trail ratchets from the open only
        o, h, lo, _ = (float(x) for x in path[0])
        if sl > -math.inf:
            sl = ratchet(sl, o, trail)
        if lo <= sl:
            return PathExit(min(sl, o), ExitReason.STOP, 0)
        if h >= tp:
            return PathExit(max(tp, o), ExitReason.TAKE_PROFIT, 0)
        return None
    for k, (o, h, lo, _) in enumerate(path):
        if time_stop_minutes is not None and k >= time_stop_minutes:
            return PathExit(float(o), ExitReason.TIME_STOP, k)
        if lo <= sl:
            return PathExit(float(min(sl, o)), ExitReason.STOP, k)
        if h >= tp:
            return PathExit(float(max(tp, o)), ExitReason.TAKE_PROFIT, k)
        if sl > -math.inf:
            sl = ratchet(sl, float(h), trail)
    return None


class HasExits(Protocol):
    """What `describe` reads: a planned order (`wolfkit.orders.PlannedOrder`) or anything shaped like one."""

    @property
    def take_profit(self) -> float | None: ...
    @property
    def stop_loss(self) -> float | None: ...
    @property
    def trail_amount(self) -> float | None: ...
    @property
    def time_stop_minutes(self) -> int | None: ...


def managed(order: HasExits) -> list[str]:
    """The exits the intraday engine manages beyond the bracket: a trailing stop, a time stop."""
    parts = []
    if order.trail_amount is not None:
        parts.append(f"trailing {order.trail_amount:.2f}")
    if order.time_stop_minutes is not None:
        parts.append(f"time {order.time_stop_minutes} min")
    return parts


def describe(order: HasExits) -> str:
    """One line of a directional order's exits for the reports, e.g.
    "TP 12.30 · stop 11.10 trailing 0.45 · time 120 min"."""
    parts = [f"TP {order.take_profit:.2f}" if order.take_profit is not None else "no target"]
    if order.stop_loss is None:
        parts.append("no stop")
    else:
        trailing = f" trailing {order.trail_amount:.2f}" if order.trail_amount is not None else ""
        parts.append(f"stop {order.stop_loss:.2f}{trailing}")
    if order.time_stop_minutes is not None:
        parts.append(f"time {order.time_stop_minutes} min")
    return " · ".join(parts)
