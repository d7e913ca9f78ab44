"""The market a backtest walks: every bar loaded once as a panel, and every session's scan from it.

Why: a backtest must scan each session exactly as `wolfkit scan` would on that morning, without
re-reading files or re-fetching bars per day. The bars for the whole window (plus the lookback
before it) become one `Panel`; session t is scanned from the row slice of the `scan.lookback_days`
bar dates before it through `wolfkit.scan.scan_window`, the same function `run_scan` calls, so the
two cannot disagree. The backtest has no pre-market quotes: the scan price is the last close.
"""

from __future__ import annotations

from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from datetime import date, timedelta
from typing import TYPE_CHECKING, Callable

import numpy as np
import pandas as pd

from wolfkit.errors import BadInputError
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


def window(panel: Panel, row: int, lookback: int) -> Panel:
    """The scan panel for the session at `row`: the `lookback` bar dates strictly before it."""
    lo = max(0, row - lookback)
    return Panel(panel.dates[lo:row], panel.symbols, has_ohlc=panel.has_ohlc,
                 **{f: getattr(panel, f)[lo:row] for f in PANEL_FIELDS})


def _scan_rows(panel: Panel, universe: pd.DataFrame, rows: list[int], params: Params) -> list[pd.DataFrame]:
    signals, weights = resolve_signals(params.scan)
    solo = params.model_copy(update={"scan": params.scan.model_copy(update={"workers": 0})})
    return [scan_window(window(panel, r, params.scan.lookback_days), universe, signals, weights, solo)[0]
            for r in rows]


def scan_sessions(market: Market, params: Params, advance: Callable[[int], None] = lambda n: None) -> list[pd.DataFrame]:
    """The opportunities table of every session, in order (`scan.workers` > 0: sessions in parallel)."""
    rows = [int(r) for r in market.sessions]
    workers = params.scan.workers
    if workers <= 0 or len(rows) < 2 * workers:
        out = []
        for r in rows:
            out.extend(_scan_rows(market.panel, market.universe, [r], params))
            advance(1)
        return out
    blocks = [rows[i::workers] for i in range(workers)]  # interleaved: equal work per process
    with ProcessPoolExecutor(max_workers=workers) as pool:
        futures = [pool.submit(_scan_rows, market.panel, market.universe, b, params) for b in blocks]
        results = []
        for f in futures:
            results.append(f.result())
            advance(len(results[-1]))
    by_row: dict[int, pd.DataFrame] = {}
    for b, res in zip(blocks, results):
        by_row.update(zip(b, res))
    return [by_row[r] for r in rows]
