"""The market a backtest walks: every bar loaded once as a panel, and every session's morning from it.

Why: a backtest must scan each session exactly as `wolfkit scan` would on that morning, without
re-reading files, re-fetching bars or re-running a full scan per day. The bars for the whole window
(plus the lookback before it) become one `Panel`; the per-symbol half of every session's scan
(signals, strategy statistics, levels, exclusions) is computed once over that panel
(`wolfkit.panel_scan.PanelScan`, tested equal to `wolfkit.scan.scan_window` on each session's
window: the scan `run_scan` runs) and ranked per session by `wolfkit.scan.rank`, the function both
end with. The backtest has no pre-market quotes: the scan price is the last close. Each scan is
followed, in the same (worker) process, by the directional target weights (`plan_morning`): they are
fractions of equity, so they need not wait for the trading loop. Under `portfolio.objective:
calibrated` each session's targets use the walk-forward calibration of its refit day
(`wolfkit.calibration.walk_forward`: the scores of the sessions before it, from the same panel scan,
and their open→close returns), fitted before the sessions are planned.
"""

from __future__ import annotations

from collections import deque
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from datetime import date, timedelta
from typing import TYPE_CHECKING, Callable, Iterator

import numpy as np
import pandas as pd

from wolfkit.calibration import Calibration, walk_forward
from wolfkit.diversify import Targets, build_targets
from wolfkit.errors import BadInputError, InfeasibleError
from wolfkit.panel_scan import PanelScan, SessionScan
from wolfkit.scan import rank, resolve_signals
from wolfkit.signal_weights import SignalWeights, history_days, weights_for
from wolfkit.signals import Panel

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
    calibration: Calibration | None = None


def plan_morning(scan: pd.DataFrame, dirty: set[str], params: Params, method: str | None,
                 calibration: Calibration | None = None) -> Morning:
    """`diversify.build_targets` on the scan's clean candidates (`dirty`: symbols left out), with the
    session's calibration (None under the raw objective). The weights are planned before the equity is
    known: the liquidity cap on weight uses the starting equity (`backtest.equity`), and the packer caps
    each order's shares at the day's equity."""
    opps = scan[~scan["symbol"].isin(dirty).to_numpy(bool)] if dirty else scan
    try:
        return Morning(scan, opps, build_targets(opps, params, method, calibration, equity=params.backtest.equity),
                       calibration=calibration)
    except InfeasibleError as e:
        return Morning(scan, opps, None, str(e), calibration)


def load_market(provider: DataProvider, params: Params, start: date, end: date) -> Market:
    """Read the universe and the bars once: from `scan.lookback_days` sessions before `start` (and, with
    fitted signal weights, their IC window) to `end`."""
    if end < start:
        raise BadInputError(f"--start {start} is after --end {end}; pick a window with start <= end")
    uni = provider.universe().copy()
    uni["symbol"] = uni["symbol"].astype(str)
    if params.data.symbols:
        uni = uni[uni["symbol"].isin(params.data.symbols)]
    uni = uni.drop_duplicates("symbol").set_index("symbol")
    symbols = list(uni.index)
    first = start - timedelta(days=history_days(params.scan))  # fitted weights read their IC window too
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


def _dirty(quarantine: np.ndarray, symbols: pd.Index, row: int, lookback: int) -> set[str]:
    """Symbols with a quarantined date among the `lookback` bar dates before `row`: not candidates."""
    return set(symbols[quarantine[max(0, row - lookback):row].any(axis=0)])


def _plan_block(scans: list[SessionScan], dirty: list[set[str]], universe: pd.DataFrame,
                weights: list[dict[str, float]], params: Params, method: str | None,
                calibrations: list[Calibration | None]) -> list[Morning]:
    """Rank each session's scan (`scan.rank`, as `scan_window` does, with that session's signal weights)
    and plan its directional targets (with its calibration)."""
    return [plan_morning(rank(sc.per_symbol, sc.excluded, universe, w, params)[0], d, params, method, cal)
            for sc, d, w, cal in zip(scans, dirty, weights, calibrations)]


def signal_weights(market: Market, params: Params, scanner: PanelScan | None = None) -> SignalWeights:
    """Every session's signal weights (`scan.weights`): fixed, or fitted walk-forward from the ICs of
    the sessions before each refit (`wolfkit.signal_weights`, the live scan's own code)."""
    signals, fixed = resolve_signals(params.scan)
    return weights_for(market.panel, signals, fixed, market.dates(), params.scan,
                       raw=scanner.raw if scanner is not None else None)


def scan_sessions(market: Market, params: Params, advance: Callable[[int], None] = lambda n: None, *,
                  quarantine: np.ndarray | None = None, method: str | None = None,
                  weights: SignalWeights | None = None) -> Iterator[Morning]:
    """Every session's morning (its scan, candidates and directional targets), in order, as they are ready.

    The per-symbol half of every scan comes from one `PanelScan` over the whole panel (computed here,
    block by block); ranking and the targets run per session. `quarantine`: the dates x symbols mask
    of quarantined bars (None: none). With `scan.workers` > 0 blocks of sessions are ranked and
    planned in worker processes while the caller trades earlier ones. `weights`: each session's signal
    weights (None: `signal_weights`).
    """
    rows = [int(r) for r in market.sessions]
    q = np.zeros(market.panel.shape, dtype=bool) if quarantine is None else quarantine
    signals, _ = resolve_signals(params.scan)
    scanner = PanelScan(market.panel, market.universe, signals, params)
    sw = weights if weights is not None else signal_weights(market, params, scanner)
    lookback = params.scan.lookback_days
    blocks = iter([rows[k:k + BLOCK] for k in range(0, len(rows), BLOCK)])
    dates = market.panel.dates
    cals: dict[int, Calibration] = (walk_forward(market.panel, market.universe, params, rows, q, scanner)
                                    if params.portfolio.objective == "calibrated" else {})

    def inputs(block: list[int]) -> tuple[list[SessionScan], list[set[str]], pd.DataFrame, list[dict[str, float]],
                                          Params, str | None, list[Calibration | None]]:
        dirty = [_dirty(q, market.panel.symbols, r, lookback) for r in block]
        w = [sw.for_session(dates[r].date()) for r in block]
        return (scanner.sessions(block), dirty, market.universe, w, params, method,
                [cals.get(r) for r in block])

    workers = params.scan.workers
    if workers <= 0:
        for block in blocks:
            for morning in _plan_block(*inputs(block)):
                advance(1)
                yield morning
        return
    pool = ProcessPoolExecutor(max_workers=workers)
    pending: deque[Future[list[Morning]]] = deque()

    def submit_next() -> None:
        block = next(blocks, None)
        if block is not None:
            pending.append(pool.submit(_plan_block, *inputs(block)))

    try:
        for _ in range(2 * workers):  # keep the workers busy while this process scans the next blocks
            submit_next()
        while pending:
            done = pending.popleft()
            submit_next()
            for morning in done.result():
                advance(1)
                yield morning
    finally:
        pool.shutdown(cancel_futures=True)
