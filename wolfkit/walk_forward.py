"""Walk-forward strategy statistics: what each directional strategy and each maxdiff side would have
returned, session by session, from levels known before each session.

Arrays are dates x symbols (a leading batch axis of several windows is allowed: the panel form of
the scan computes many windows' first rows at once). `wolfkit.scan` takes their means and standard
deviations over a scan's lookback window; `wolfkit.panel_scan` does the same for every session.

Directional strategies (long, one session, entered at the session's open `O`; the levels use only
bars before the session; within a bar the extreme nearer the open is assumed to come first):

- `takeprofit`: take profit at O + exits.take_profit_atr x ATR, stop at O - exits.stop_loss_atr x ATR
  (ATR: the mean true range over `atr_period` sessions before the session); if neither is touched,
  exit at the close.
- `highlow`: take profit at the predicted high, stop at the predicted low (below); exit at the close
  if neither is touched; no trade when the open is already outside the predicted range.
- `simple`: buy at the open, take profit at O + exits.take_profit_atr x ATR, else sell at the close.
  On close-only data the open is unknown, so it is backtested close to close (the only strategy
  available there).

The stops above are the `fixed` rule; `exits.stop_rule` `atr` or `trailing` replaces every strategy's
stop by `wolfkit.exits.levels` (a trailing stop at its open-based level: the daily-bar rule).

The predicted range for a session with reference price P (the prior close in the backtest, the
scan price for the coming session): pred_high = P x (1 + mean(high / prior close - 1)),
pred_low = P x (1 - mean(1 - low / prior close)), means over the last `atr_period` sessions.

`expected_return` / `return_std` are the mean and standard deviation of the per-trade returns of
the chosen strategy — the one with the highest mean among those with at least `MIN_TRADES` trades —
walked forward over the lookback. `take_profit` / `stop_loss` are the levels the chosen strategy
uses around the price (`wolfkit.exits.levels`).

Maxdiff: each session, a buy limit at pred_low and a sell limit (short) at pred_high. A buy fills
when the low reaches pred_low (at the open if it opens below), exits at pred_high if the high is
reached after the fill, else at the close; the sell mirrors it. A day whose limit is not touched
returns 0. `maxdiff_avg_return` is the mean daily return per unit of capital of the chosen side:
`both` when both sides average > 0 (their mean), else the better side. `maxdiff_return_std` is the
standard deviation of that side's daily returns (for `both`, of the even mixture of the two sides:
sqrt((var_buy + var_sell) / 2 + ((mean_buy - mean_sell) / 2)^2)); the maxdiff Kelly sizes from it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import numpy as np

from wolfkit.domain import Strategy
from wolfkit.exits import levels as exit_levels
from wolfkit.rolling import ffill, rolling_mean, shift

if TYPE_CHECKING:
    from wolfkit.config import ExitParams

MIN_TRADES = 20


class Bars(Protocol):
    """Open, high, low and close as aligned arrays (a `wolfkit.signals.Panel`, or a batch of windows)."""

    @property
    def open(self) -> np.ndarray: ...
    @property
    def high(self) -> np.ndarray: ...
    @property
    def low(self) -> np.ndarray: ...
    @property
    def close(self) -> np.ndarray: ...
    @property
    def has_ohlc(self) -> bool: ...


@dataclass(frozen=True)
class BarArrays:
    """A plain `Bars`: what the panel scan builds for a batch of windows."""

    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    has_ohlc: bool = True


def _bracket_exit(H: np.ndarray, L: np.ndarray, C: np.ndarray, tp: np.ndarray, sl: np.ndarray,
                  low_first: np.ndarray) -> np.ndarray:
    hit_tp, hit_sl = H >= tp, L <= sl
    return np.where(hit_tp & hit_sl, np.where(low_first, sl, tp), np.where(hit_tp, tp, np.where(hit_sl, sl, C)))


@dataclass(frozen=True)
class Levels:
    """Per-session inputs known before the open (rows: sessions of the panel).

    `prev_close` is the last close before each session; `atr` and the range means are computed
    through each row (use the previous row's value to trade a session).
    """

    prev_close: np.ndarray
    atr: np.ndarray
    range_up: np.ndarray
    range_down: np.ndarray


def levels(panel: Bars, period: int) -> Levels:
    """ATR and the mean up/down range around the prior close, walk-forward."""
    pc = shift(ffill(panel.close))
    with np.errstate(invalid="ignore", divide="ignore"):
        tr = np.fmax(panel.high, pc) - np.fmin(panel.low, pc)
        tr = np.where(np.isnan(panel.high) | np.isnan(panel.low), np.nan, tr)
        up = panel.high / pc - 1
        down = 1 - panel.low / pc
    return Levels(pc, rolling_mean(tr, period), rolling_mean(up, period), rolling_mean(down, period))


def trade_returns(panel: Bars, lv: Levels, exits: ExitParams) -> dict[Strategy, np.ndarray]:
    """Per-session returns of each directional strategy (dates x symbols; NaN: no trade / no data).

    Row t trades session t using only rows before t for its levels. On close-only data only
    `simple` (close to close) is returned. `lv` is `levels(panel, scan.atr_period)`. Targets and stops
    are `wolfkit.exits.levels` around the open (`exits`: the stop rule; a trailing stop is its
    open-based level, as on any daily bar).
    """
    O, H, L, C = panel.open, panel.high, panel.low, panel.close
    with np.errstate(invalid="ignore", divide="ignore"):
        if not panel.has_ohlc:
            return {Strategy.SIMPLE: C / lv.prev_close - 1}
        low_first = (O - L) <= (H - O)
        atr = shift(lv.atr)
        ph = lv.prev_close * (1 + shift(lv.range_up))
        pl = lv.prev_close * (1 - shift(lv.range_down))
        out = {}
        for s in (Strategy.TAKEPROFIT, Strategy.HIGHLOW, Strategy.SIMPLE):
            target, stop = exit_levels(s, O, atr, ph, pl, exits)
            out[s] = _bracket_exit(H, L, C, target, stop, low_first) / O - 1
        out[Strategy.TAKEPROFIT] = np.where(np.isnan(atr), np.nan, out[Strategy.TAKEPROFIT])
        out[Strategy.HIGHLOW] = np.where((pl < O) & (O < ph), out[Strategy.HIGHLOW], np.nan)
    return out


def maxdiff_returns(panel: Bars, lv: Levels) -> tuple[np.ndarray, np.ndarray]:
    """Per-session returns of the maxdiff buy side and sell side (0 when the limit was not touched)."""
    O, H, L, C = panel.open, panel.high, panel.low, panel.close
    with np.errstate(invalid="ignore", divide="ignore"):
        ph = lv.prev_close * (1 + shift(lv.range_up))
        pl = lv.prev_close * (1 - shift(lv.range_down))
        low_first = (O - L) <= (H - O)
        known = ~(np.isnan(ph) | np.isnan(pl) | np.isnan(O) | np.isnan(H) | np.isnan(L) | np.isnan(C))
        buy_entry = np.fmin(O, pl)
        buy_exit = np.where(((O <= pl) | low_first) & (H >= ph), ph, C)
        buy = np.where(L <= pl, buy_exit / buy_entry - 1, 0.0)
        sell_entry = np.fmax(O, ph)
        sell_exit = np.where(((O >= ph) | ~low_first) & (L <= pl), pl, C)
        sell = np.where(H >= ph, 1 - sell_exit / sell_entry, 0.0)
    return np.where(known, buy, np.nan), np.where(known, sell, np.nan)


def stats(r: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean, sample std and count of the finite values down the rows (axis -2), without warnings.

    Two passes, each summed row after row (`_down`): numpy's own reductions add in an order that
    depends on the array's shape, and a batch of windows (sessions x rows x symbols, the panel form
    of the scan) must give each window the very bits a scan of that window alone gives.
    """
    ok = np.isfinite(r)
    n = ok.sum(axis=-2)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(n > 0, _down(np.where(ok, r, 0.0)) / n, np.nan)
        dev = np.where(ok, r - np.expand_dims(mean, -2), 0.0)
        var = np.where(n > 1, _down(dev * dev) / (n - 1), np.nan)
    return mean, np.sqrt(var), n


def _down(x: np.ndarray) -> np.ndarray:
    """Sum down axis -2, one row after the other (a fixed order, whatever the shape)."""
    total = np.zeros(x.shape[:-2] + x.shape[-1:])
    for i in range(x.shape[-2]):
        total += x[..., i, :]
    return total


def choose_strategy(stats_by: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(strategy name or None, expected_return, return_std) per symbol from each strategy's (mean, std, count).

    Keys: `Strategy` values, in `trade_returns`' order. The strategy with the highest mean among those
    with at least `MIN_TRADES` trades; the first listed wins a tie. Arrays of any shape (one value per
    symbol, or sessions x symbols).
    """
    names = np.asarray([str(s) for s in stats_by], dtype=object)
    M = np.stack([np.where(n >= MIN_TRADES, m, np.nan) for m, _, n in stats_by.values()])
    S = np.stack([sd for _, sd, _ in stats_by.values()])
    has = ~np.isnan(M).all(axis=0)
    best = np.argmax(np.where(np.isnan(M), -np.inf, M), axis=0)
    mean = np.take_along_axis(M, best[None], axis=0)[0]
    std = np.take_along_axis(S, best[None], axis=0)[0]
    chosen = names[best]
    chosen[~has] = None
    return chosen, np.where(has, mean, np.nan), np.where(has, std, np.nan)
