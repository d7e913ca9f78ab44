"""The market a backtest walks: every bar loaded once as a panel, and every session's morning from it.

Why: a backtest must scan each session exactly as `wolfkit scan` would on that morning, without
re-reading files, re-fetching bars or re-running a full scan per day. The bars for the whole window
(plus the lookback before it) become one `Panel`; the per-symbol half of every session's scan
(signals, strategy statistics, levels, exclusions) is computed once over that panel
(`wolfkit.panel_scan.PanelScan`, tested equal to `wolfkit.scan.scan_window` on each session's
window: the scan `run_scan` runs) and ranked per session by `wolfkit.scan.rank`, the function both
end with. The backtest has no pre-market quotes: the scan price is the last close. Every row is scanned
once, in worker processes: the traded sessions and, under `portfolio.objective: calibrated`, the
history rows the walk-forward calibration is fitted on (`wolfkit.calibration.walk_forward`: each refit
day's fit from the scores of the sessions before it and their open→close returns). Then each session's
directional target weights (`plan_morning`), again in the workers: they are fractions of equity, so
they need not wait for the trading loop, which sizes them at the previous evening's equity.
"""

from __future__ import annotations

import itertools
from collections import deque
from concurrent.futures import Executor, Future, ProcessPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import date, timedelta
from typing import TYPE_CHECKING, Callable, Iterator, TypeVar

import numpy as np
import pandas as pd

from wolfkit import calibration
from wolfkit.calibration import Calibration, pairs_of
from wolfkit.diversify import Targets, build_targets
from wolfkit.errors import BadInputError, InfeasibleError
from wolfkit.panel_scan import PanelScan
from wolfkit.scan import rank, resolve_signals
from wolfkit.signal_weights import SignalWeights, history_days, weights_for
from wolfkit.signals import Panel

if TYPE_CHECKING:
    from wolfkit.config import Params
    from wolfkit.data.base import DataProvider

T = TypeVar("T")


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


@dataclass(frozen=True)
class _Scanned:
    """One row's ranked scan: the session's table (None for a calibration history row that is not traded)
    and its calibration pairs (None when no fit reads the row)."""

    row: int
    table: pd.DataFrame | None
    pairs: pd.DataFrame | None


_WORKER: dict[str, object] = {}
"""A scan worker process's panel scan and quarantine mask, installed once when the process starts."""


def _install(scanner: PanelScan, quarantine: np.ndarray) -> None:
    _WORKER.update(scanner=scanner, quarantine=quarantine)


def _scan_block(rows: list[int], weights: list[dict[str, float] | None], pairs_for: list[bool],
                params: Params) -> list[_Scanned]:
    """Each row's scan (the per-symbol half from the panel scan, ranked by `scan.rank`): ranked with the
    session's signal weights for a traded row (`weights` not None) and, for a row a calibration reads,
    its (score, open→close) pairs under the fixed weights (`calibration.score_pairs`' scores; the same
    table when the session's weights are the fixed ones)."""
    scanner, quarantine = _WORKER["scanner"], _WORKER["quarantine"]
    assert isinstance(scanner, PanelScan) and isinstance(quarantine, np.ndarray)
    fixed = resolve_signals(params.scan)[1]
    col = pd.Series(np.arange(len(scanner.panel.symbols)), index=scanner.panel.symbols)
    out = []
    for r, sc, w, need in zip(rows, scanner.sessions(rows), weights, pairs_for):
        table = rank(sc.per_symbol, sc.excluded, scanner.universe, w, params)[0] if w is not None else None
        pairs = None
        if need:
            scored = table if table is not None and w == fixed else rank(
                sc.per_symbol, sc.excluded, scanner.universe, fixed, params)[0]
            pairs = pairs_of(scanner.panel, r, scored[["symbol", "score"]], col, quarantine)
        out.append(_Scanned(r, table, pairs))
    return out


def _plan_block(tables: list[pd.DataFrame], dirty: list[set[str]], params: Params, method: str | None,
                calibrations: list[Calibration | None]) -> list[Morning]:
    """Each session's directional targets (with its calibration)."""
    return [plan_morning(t, d, params, method, cal) for t, d, cal in zip(tables, dirty, calibrations)]


def signal_weights(market: Market, params: Params, scanner: PanelScan | None = None) -> SignalWeights:
    """Every session's signal weights (`scan.weights`): fixed, or fitted walk-forward from the ICs of
    the sessions before each refit (`wolfkit.signal_weights`, the live scan's own code)."""
    signals, fixed = resolve_signals(params.scan)
    return weights_for(market.panel, signals, fixed, market.dates(), params.scan,
                       raw=scanner.raw if scanner is not None else None)


def _in_order(pool: Executor | None, fn: Callable[..., list[T]], tasks: Iterator[tuple], ahead: int) -> Iterator[T]:
    """`fn(*task)` for each task, results in task order: in this process (`pool` None) or in the pool
    with up to `ahead` tasks running while the caller consumes earlier results."""
    if pool is None:
        for task in tasks:
            yield from fn(*task)
        return
    pending: deque[Future[list[T]]] = deque()
    for task in itertools.islice(tasks, ahead):
        pending.append(pool.submit(fn, *task))
    while pending:
        done = pending.popleft()
        for task in itertools.islice(tasks, 1):
            pending.append(pool.submit(fn, *task))
        yield from done.result()


def scan_sessions(market: Market, params: Params, advance: Callable[[int], None] = lambda n: None, *,
                  quarantine: np.ndarray | None = None, method: str | None = None,
                  weights: SignalWeights | None = None) -> Iterator[Morning]:
    """Every session's morning (its scan, candidates and directional targets), in order, as they are ready.

    Two passes, each in blocks of `BLOCK` rows, in `scan.workers` worker processes when > 0 (in this
    one otherwise). First every row's scan: the per-symbol half from one `PanelScan` over the whole
    panel, ranked per session — the traded sessions and, under `portfolio.objective: calibrated`, the
    history rows the walk-forward calibration is fitted on, each scanned once (`advance` counts the
    traded sessions). Then the calibrations (`calibration.walk_forward`), and each session's targets,
    yielded while the caller trades the earlier ones. `quarantine`: the dates x symbols mask of
    quarantined bars (None: none). `weights`: each session's signal weights (None: `signal_weights`).
    """
    rows = [int(r) for r in market.sessions]
    q = np.zeros(market.panel.shape, dtype=bool) if quarantine is None else quarantine
    signals, _ = resolve_signals(params.scan)
    scanner = PanelScan(market.panel, market.universe, signals, params)
    sw = weights if weights is not None else signal_weights(market, params, scanner)
    dates = market.panel.dates
    calibrated = params.portfolio.objective == "calibrated"
    plan = calibration.schedule(dates, rows, params) if calibrated else None
    history = set(plan.rows_needed()) if plan is not None else set()
    traded = set(rows)
    every = sorted(traded | history)
    workers = params.scan.workers
    with ExitStack() as stack:
        pool: Executor | None = None
        if workers > 0:
            pool = ProcessPoolExecutor(max_workers=workers, initializer=_install, initargs=(scanner, q))
            stack.callback(pool.shutdown, cancel_futures=True)
        else:
            _install(scanner, q)
            stack.callback(_WORKER.clear)

        def scan_tasks() -> Iterator[tuple]:
            for k in range(0, len(every), BLOCK):
                block = every[k:k + BLOCK]
                yield (block, [sw.for_session(dates[r].date()) if r in traded else None for r in block],
                       [r in history for r in block], params)

        tables: dict[int, pd.DataFrame] = {}
        pairs: list[pd.DataFrame] = []
        for scanned in _in_order(pool, _scan_block, scan_tasks(), 2 * workers):
            if scanned.table is not None:
                tables[scanned.row] = scanned.table
                advance(1)
            if scanned.pairs is not None:
                pairs.append(scanned.pairs)
        cals: dict[int, Calibration] = (
            calibration.walk_forward(dates, plan, pd.concat(pairs, ignore_index=True) if pairs
                                     else pd.DataFrame(columns=calibration.PAIR_COLUMNS), params)
            if plan is not None else {})
        lookback = params.scan.lookback_days

        def plan_tasks() -> Iterator[tuple]:
            for k in range(0, len(rows), BLOCK):
                block = rows[k:k + BLOCK]
                yield ([tables.pop(r) for r in block], [_dirty(q, market.panel.symbols, r, lookback) for r in block],
                       params, method, [cals.get(r) for r in block])

        yield from _in_order(pool, _plan_block, plan_tasks(), 2 * workers)
