"""The scan of every session of a long panel at once, equal to `wolfkit.scan.scan_window` on each one.

Why: the backtest scans hundreds of sessions whose lookback windows overlap almost entirely;
re-running the scan per session costs tens of milliseconds each. Here the per-symbol half of the
scan (signal values, walk-forward strategy statistics, levels, exclusions) is computed once over the
whole dates x symbols panel (cumulative sums, range maxima, returns and levels over all rows); a
session's values are read off those arrays. The cross-sectional half (ranks, composite score, the table) is `scan.rank`, the very
function `scan_window` ends with, so the ranking has one definition.

Where the window matters, and how it is kept: a scan window forward-fills the close only from its
own first row, and its rolling means start there. So, per symbol and session, with `f` the first
row of the window holding a close:

- a signal reads the window's close only from `f` on (`signals.Windows`);
- the levels and strategy returns of rows `f .. f + atr_period` differ from the whole panel's
  (the previous close and the ATR/range means there see only the window); they are recomputed as
  the window sees them (one batch of short panels per block of sessions) and swapped into the
  window. From row `f + atr_period + 1` on, every input of a row lies inside the window and
  the whole-panel value is the window's value. Before `f` the symbol has no bar (a bar without a
  close is no bar, `Panel.from_bars`), so every return there is NaN either way;
- exclusions: a symbol with a close on every row of the window and no non-positive price cannot be
  excluded by its bars; the others (few) go through `exclusions.exclusions` on their window columns.

The table equals the per-session scan's to the last bit (tests/test_panel_scan.py): each window's
strategy means and standard deviations are summed over its rows in the same order as `scan_window`
sums them (`walk_forward.stats`, on a batch of windows: sessions x rows x symbols); the signal values
behind the ranks are differences of cumulative sums, equal to rounding, and their ranks identical.
A user signal without `compute_panel` is computed per session from its window (`signals.PanelSignal`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Sequence

import numpy as np
import pandas as pd

from wolfkit.exclusions import exclusions
from wolfkit.rolling import ffill
from wolfkit.scan import risk_inputs
from wolfkit.signal_weights import raw_signals
from wolfkit.signals import Windows, signal_values
from wolfkit.walk_forward import BarArrays, Levels, choose_strategy, levels, maxdiff_returns, stats, trade_returns

if TYPE_CHECKING:
    from wolfkit.config import Params
    from wolfkit.signals import Panel, Signal

BLOCK = 16  # sessions computed together (their windows of returns: BLOCK x lookback x symbols)


@dataclass(frozen=True)
class SessionScan:
    """The per-symbol half of one session's scan: what `scan.rank` turns into the table.

    `per_symbol`: `scan.scan_chunk`'s columns for the symbols not excluded; `excluded`: symbol, reason.
    """

    per_symbol: pd.DataFrame
    excluded: pd.DataFrame


class PanelScan:
    """Scan inputs for any session (row) of `panel`, from whole-panel arrays computed once.

    `panel`: raw bars of the universe (a backtest's `Market.panel`); `universe` indexed by symbol;
    `signals` as `scan.resolve_signals` gives them. `sessions(rows)` gives, for each row r, what
    `scan_window(panel.rows(r - lookback, r), ...)` computes before ranking.
    """

    def __init__(self, panel: Panel, universe: pd.DataFrame, signals: list[Signal], params: Params) -> None:
        self.panel, self.universe, self.signals, self.params = panel, universe, signals, params
        scan = params.scan
        self.lookback, self.period = scan.lookback_days, scan.atr_period
        self.windows = Windows.of(panel, self.lookback)
        # a signal without a panel form (None) is computed per session from its window
        self.raw = raw_signals(panel, signals, self.lookback, self.windows, per_row=False)
        self.levels = levels(panel, self.period)
        self.returns = self._series(panel, self.levels)
        obs = ~np.isnan(panel.close)
        nonpos = np.zeros(panel.shape, dtype=bool)
        for f in [panel.close] + ([panel.open, panel.high, panel.low] if panel.has_ohlc else []):
            nonpos |= obs & (f <= 0)
        zero = np.zeros((1, panel.shape[1]))
        self.n_obs = np.vstack([zero, np.cumsum(obs, axis=0)])
        self.n_nonpos = np.vstack([zero, np.cumsum(nonpos, axis=0)])
        self.absent = [s for s in universe.index if s not in set(panel.symbols)]

    def _series(self, bars: Panel | BarArrays, lv: Levels) -> dict[str, np.ndarray]:
        """Every walk-forward return series the scan averages, by key (strategy name, maxdiff side)."""
        out = {str(k): v for k, v in trade_returns(bars, lv, self.params.exits).items()}
        if bars.has_ohlc:
            out["maxdiff_buy"], out["maxdiff_sell"] = maxdiff_returns(bars, lv)
        return out

    def sessions(self, rows: Sequence[int]) -> list[SessionScan]:
        """The per-symbol half of the scan of each session (row of the panel), in order."""
        out: list[SessionScan] = []
        for k in range(0, len(rows), BLOCK):
            out += self._block(np.asarray(rows[k:k + BLOCK], dtype=int))
        return out

    def _block(self, R: np.ndarray) -> list[SessionScan]:
        P, w = self.panel, self.period
        T, N = P.shape
        t, s = R - 1, np.maximum(R - self.lookback, 0)
        first = self.windows.first[t]                                     # (B, N)
        # the window's first atr_period + 1 rows with a close, as the window sees them
        idx = first[:, None, :] + np.arange(w + 1)[None, :, None]          # (B, w+1, N)
        inside = idx < R[:, None, None]
        ci, cols = np.minimum(idx, T - 1), np.arange(N)[None, None, :]

        def head(a: np.ndarray) -> np.ndarray:
            return np.where(inside, a[ci, cols], np.nan)

        bars = BarArrays(head(P.open), head(P.high), head(P.low), head(P.close), P.has_ohlc)
        lv_head = levels(bars, w)
        window_head = self._series(bars, lv_head)
        # each session's window of walk-forward returns: the whole panel's rows, with the head swapped in
        L = self.lookback
        rows = R[:, None] - L + np.arange(L)[None, :]                      # (B, L); < 0 before the data
        at_row = np.clip(rows, 0, T - 1)[:, :, None]
        pos = idx - (R - L)[:, None, None]                                 # the head rows' places in the window
        b_, k_, j_ = np.nonzero(inside)
        moments = {}
        for key, whole in self.returns.items():
            win = np.where((rows >= s[:, None])[:, :, None], whole[at_row, np.arange(N)], np.nan)
            win[b_, pos[b_, k_, j_], j_] = window_head[key][b_, k_, j_]
            moments[key] = stats(win)
        values: dict[str, np.ndarray] = {f"raw_{n}": v[t] for n, v in self.raw.items() if v is not None}
        values["last_close"] = self.windows.close_back(0)[t]
        settled = t[:, None] >= first + w                                  # the last row's means lie past the head
        at = np.clip(t[:, None] - first, 0, w)[:, None, :]
        for name in ("atr", "range_up", "range_down"):
            whole, local = getattr(self.levels, name)[t], np.take_along_axis(getattr(lv_head, name), at, axis=1)[:, 0]
            values[name] = np.where(settled, whole, local) if P.has_ohlc else np.full(whole.shape, np.nan)
        values["strategy"], values["expected_return"], values["return_std"] = choose_strategy(
            {k: v for k, v in moments.items() if not k.startswith("maxdiff")})
        for side in ("maxdiff_buy", "maxdiff_sell"):
            nan = np.full((len(R), N), np.nan)
            values[side], values[f"{side}_std"] = (moments[side][0], moments[side][1]) if side in moments else (nan, nan)
        return [self._session(int(R[b]), int(s[b]), {k: v[b] for k, v in values.items()}) for b in range(len(R))]

    def _session(self, r: int, s: int, values: dict[str, np.ndarray]) -> SessionScan:
        P, scan = self.panel, self.params.scan
        length = r - s
        flagged = ((self.n_obs[r] - self.n_obs[s] < length) | (self.n_nonpos[r] - self.n_nonpos[s] > 0)
                   | (length < scan.min_history))
        window = P.rows(s, r)
        excluded = exclusions(window.take(np.flatnonzero(flagged)), self.universe, scan, self.absent)
        keep = np.flatnonzero(~P.symbols.isin(excluded["symbol"]) & P.symbols.isin(self.universe.index))
        cols: dict[str, np.ndarray] = {}
        for sig in self.signals:
            name = f"raw_{sig.name}"
            if name not in values:  # no panel form: the signal's own compute on this window
                sub = window.take(keep)
                values[name] = np.full(P.shape[1], np.nan)
                values[name][keep] = signal_values(sig, replace(sub, close=ffill(sub.close)))
            cols[name] = values[name][keep]
        for name in ("last_close", "atr", "range_up", "range_down", "strategy", "expected_return", "return_std",
                     "maxdiff_buy", "maxdiff_sell", "maxdiff_buy_std", "maxdiff_sell_std"):
            cols[name] = values[name][keep]
        tail = max(s, r - max(self.params.risk.adv_days, self.params.risk.volatility_days + 1))
        cols["adv_usd"], cols["volatility"] = risk_inputs(
            P.close[tail:r][:, keep], P.volume[tail:r][:, keep], self.params.risk)
        return SessionScan(pd.DataFrame(cols, index=P.symbols[keep]), excluded)

