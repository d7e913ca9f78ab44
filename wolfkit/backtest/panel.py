"""The market a backtest walks: every bar loaded once as a panel, and every session's morning from it.

Why: a backtest must scan each session exactly as `wolfkit scan` would on that morning, without
re-reading files or re-fetching bars per day. The bars for the whole window (plus the lookback
before it) become one `Panel`; session t is scanned from the row slice of the `scan.lookback_days`
bar dates before it through `wolfkit.scan.scan_window`, the same function `run_scan` calls, so the
two cannot disagree. The backtest has no pre-market quotes: the scan price is the last close.
Each scan is followed, in the same (worker) process, by the directional target weights
(`plan_morning`): they are fractions of equity, so they need not wait for the trading loop.
"""

from __future__ import annotations

from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from datetime import date, timedelta
from typing import TYPE_CHECKING, Callable, Iterator

import numpy as np
import pandas as pd

from wolfkit.diversify import Targets, build_targets
from wolfkit.errors import BadInputError, InfeasibleError
from wolfkit.scan import resolve_signals, scan_window
from wolfkit.signals import PANEL_FIELDS, Panel

if TYPE_CHECKING:
    from wolfkit.config import Params
    from wolfkit.data.base import DataProvider


@dataclass(frozen=True)
class Market:
    """Bars of the window and its lookback as one panel, the universe, and the sessions to trade.

    `sessions`: row positions in `panel` of the bar dates inside [start, end] that have at least
    `scan.min_history` rows before them. `bars`: the long frame the panel was built from.
    """

    panel: Panel
    universe: pd.DataFrame
    sessions: np.ndarray
    bars: pd.DataFrame

    def dates(self) -> list[date]:
        return [d.date() for d in self.panel.dates[self.sessions]]



@dataclass(frozen=True)
class Morning:
    """The equity-free half of a session's build: the scan, the candidates (the scan without symbols
    that have a quarantined date in their lookback window) and the directional target weights, or
    why none exist. Target weights are fractions of equity, so they are planned beside the scan (in
    the scan workers) and only the sizing waits for the previous evening's equity."""

    scan: pd.DataFrame
    opps: pd.DataFrame
    targets: Targets | None
    infeasible: str | None = None


def plan_morning(scan: pd.DataFrame, dirty: set[str], params: Params, method: str | None) -> Morning:
    """`diversify.build_targets` on the scan's clean candidates (`dirty`: symbols left out)."""
    opps = scan[~scan["symbol"].isin(dirty).to_numpy(bool)] if dirty else scan
    try:
        return Morning(scan, opps, build_targets(opps, params, method))
    except InfeasibleError as e:
        return Morning(scan, opps, None, str(e))


def load_market(provider: DataProvider, params: Params, start: date, end: date) -> Market:
    """Read the universe and the bars once: from `scan.lookback_days` sessions before `start` to `end`."""
    if end < start:
        raise BadInputError(f"--start {start} is after --end {end}; pick a window with start <= end")
    uni = provider.universe().copy()
    uni["symbol"] = uni["symbol"].astype(str)
    if params.data.symbols:
        uni = uni[uni["symbol"].isin(params.data.symbols)]
    uni = uni.drop_duplicates("symbol").set_index("symbol")
    symbols = list(uni.index)
    first = start - timedelta(days=int(params.scan.lookback_days * 1.5) + 30)
    bars = provider.daily_bars(symbols, first, end)
    bars = bars[bars["symbol"].astype(str).isin(symbols)].reset_index(drop=True)
    bars["symbol"] = bars["symbol"].astype(str)
    if bars.empty:
        raise BadInputError(f"{provider.name}: no daily bars between {first} and {end}; check data.source and the window")
    panel = Panel.from_bars(bars, has_ohlc=provider.has_ohlc)
    in_window = (panel.dates >= pd.Timestamp(start)) & (panel.dates <= pd.Timestamp(end))
    rows = np.flatnonzero(in_window & (np.arange(len(panel.dates)) >= params.scan.min_history))
    if len(rows) == 0:
        have = f"{panel.dates[0].date()} … {panel.dates[-1].date()}"
        raise BadInputError(
            f"{provider.name}: no session in {start} … {end} has {params.scan.min_history} bar dates before it "
            f"(scan.min_history); the data covers {have}: pick a later --start or a longer data file"
        )
    return Market(panel, uni, rows, bars)


BLOCK = 16  # sessions per task sent to a worker process


def window(panel: Panel, row: int, lookback: int) -> Panel:
    """The scan panel for the session at `row`: the `lookback` bar dates strictly before it."""
    return _rows(panel, max(0, row - lookback), row)


def _dirty(quarantine: np.ndarray, symbols: pd.Index, row: int, lookback: int) -> set[str]:
    """Symbols with a quarantined date among the `lookback` bar dates before `row`: not candidates."""
    return set(symbols[quarantine[max(0, row - lookback):row].any(axis=0)])


def _morning_rows(panel: Panel, quarantine: np.ndarray, universe: pd.DataFrame, rows: list[int], params: Params,
                  method: str | None) -> list[Morning]:
    signals, weights = resolve_signals(params.scan)
    solo = params.with_changes({"scan": {"workers": 0}})
    lookback = params.scan.lookback_days
    return [plan_morning(scan_window(window(panel, r, lookback), universe, signals, weights, solo)[0],
                         _dirty(quarantine, panel.symbols, r, lookback), params, method)
            for r in rows]


def scan_sessions(market: Market, params: Params, advance: Callable[[int], None] = lambda n: None, *,
                  quarantine: np.ndarray | None = None, method: str | None = None) -> Iterator[Morning]:
    """Every session's morning (its scan, candidates and directional targets), in order, as they are ready.

    `quarantine`: the dates x symbols mask of quarantined bars (None: none). With `scan.workers` > 0
    blocks of consecutive sessions are scanned and planned in worker processes (each gets only the
    panel rows its block reads) while the caller trades earlier ones: the scans overlap with the
    trading loop instead of preceding it.
    """
    rows = [int(r) for r in market.sessions]
    q = np.zeros(market.panel.shape, dtype=bool) if quarantine is None else quarantine
    workers = params.scan.workers
    if workers <= 0:
        for r in rows:
            morning = _morning_rows(market.panel, q, market.universe, [r], params, method)[0]
            advance(1)
            yield morning
        return
    lookback = params.scan.lookback_days
    pool = ProcessPoolExecutor(max_workers=workers)
    try:
        futures = []
        for k in range(0, len(rows), BLOCK):
            block = rows[k:k + BLOCK]
            lo = max(0, block[0] - lookback)
            futures.append(pool.submit(_morning_rows, _rows(market.panel, lo, block[-1]), q[lo:block[-1]],
                                       market.universe, [r - lo for r in block], params, method))
        for f in futures:
            for morning in f.result():
                advance(1)
                yield morning
    finally:
        pool.shutdown(cancel_futures=True)


def _rows(panel: Panel, lo: int, hi: int) -> Panel:
    """Rows lo..hi-1 of the panel (all symbols): what a block of sessions ending before `hi` reads."""
    return Panel(panel.dates[lo:hi], panel.symbols, has_ohlc=panel.has_ohlc,
                 **{f: getattr(panel, f)[lo:hi] for f in PANEL_FIELDS})
