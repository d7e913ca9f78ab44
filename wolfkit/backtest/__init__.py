"""The research backtester: the daily loop that trades, walked session by session over history.

`run_backtest` loads the bars once (`panel`), scans every session from the bars strictly before it
(`panel.scan_sessions`, the scanner's own code, with each session's directional targets), trades each
session with the live builder and conservative fill rules (`engine`, `fills`), and writes the output
folder (`folder`): equity, fills,
scores, data quality, a summary with the statistics of `wolfkit.performance` and the tear sheet of
`wolfkit.tearsheet`. See docs/backtest.md.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import date
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator

import numpy as np
import pandas as pd

from wolfkit.backtest.engine import walk
from wolfkit.backtest.folder import (
    SCHEMA_ID,
    benchmarks,
    claim,
    equity_frame,
    fills_frame,
    scores_frame,
    write_summary,
    write_tables,
)
from wolfkit.backtest.panel import Market, load_market, scan_sessions, signal_weights
from wolfkit.config import SignalWeighting
from wolfkit.errors import BadInputError
from wolfkit.sector_tilt import tilt_summary

if TYPE_CHECKING:
    from rich.progress import Progress

    from wolfkit.config import Params
    from wolfkit.data.base import DataProvider

__all__ = ["BacktestResult", "Layers", "run_backtest"]


class Layers(StrEnum):
    """Which layers trade: both (directional + maxdiff) or the directional pack alone."""

    BOTH = "both"
    DIRECTIONAL = "directional"


@dataclass
class BacktestResult:
    """A finished run: its folder and the tables written there."""

    out_dir: Path | None
    equity: pd.DataFrame
    fills: pd.DataFrame
    scores: pd.DataFrame
    summary: dict
    elapsed_s: float
    timings: dict[str, float] = field(default_factory=dict)


class _Stages:
    """A rich progress bar per stage (console or notebook), or nothing."""

    def __init__(self, show: bool) -> None:
        self.show = show
        self._bar: Progress | None = None

    def __enter__(self) -> _Stages:
        if self.show:
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
            )

            self._bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                 TimeElapsedColumn())
            self._bar.__enter__()
        return self

    def stage(self, name: str, total: int) -> Callable[[int], None]:
        bar = self._bar
        if bar is None:
            return lambda n: None
        task = bar.add_task(name, total=total)
        return lambda n: bar.advance(task, n)

    def __exit__(self, *exc) -> None:
        if self._bar is not None:
            self._bar.__exit__(*exc)


class _Timed:
    """An iterator that adds up the time spent waiting for its items."""

    def __init__(self, it: Iterator) -> None:
        self.it, self.seconds = it, 0.0

    def __iter__(self) -> _Timed:
        return self

    def __next__(self):
        t = time.perf_counter()
        try:
            return next(self.it)
        finally:
            self.seconds += time.perf_counter() - t


def _quarantine_mask(market: Market, jumps: pd.DataFrame) -> np.ndarray:
    P = market.panel
    mask = np.zeros(P.shape, dtype=bool)
    if len(jumps):
        i = P.dates.get_indexer(pd.to_datetime(jumps["date"]))
        j = P.symbols.get_indexer(jumps["symbol"].astype(str))
        ok = (i >= 0) & (j >= 0)
        mask[i[ok], j[ok]] = True
    return mask


def _warnings(params: Params, provider: DataProvider, start: date, jumps: pd.DataFrame,
              bad_rows: pd.DataFrame) -> list[str]:
    from wolfkit.data.quality import quarantine_count, survivorship_warning

    out = []
    if provider.synthetic:
        from wolfkit.data.demo import SYNTHETIC_NOTICE

        out.append(SYNTHETIC_NOTICE)
    else:
        surv = survivorship_warning(params.data.universe_as_of, start)
        if surv:
            out.append(surv)
    if len(bad_rows):
        out.append(f"{quarantine_count(bad_rows)} bad row(s) of the data files quarantined (left out); "
                   "listed in data_quality.csv")
    if len(jumps):
        shown = ", ".join(f"{s} {pd.Timestamp(d).date()}" for s, d in zip(jumps["symbol"], jumps["date"]))
        out.append(f"{len(jumps)} one-day jump(s) quarantined, not booked and not used as signals: {shown}")
    return out


def _fixed_ic(scores: pd.DataFrame, fixed: dict[str, float]) -> dict:
    """IC mean and t of the composite the fixed weights would have given on the same sessions and names
    (the components are percentile ranks, so ranking them again gives the scan's own composite; rows in
    the scan's symbol order, so near-ties round as they did there)."""
    from wolfkit import performance
    from wolfkit.scan import composite_scores

    comps = [f"score_{k}" for k in fixed]
    parts = []
    for _, g in scores.sort_values(["date", "symbol"], kind="stable").groupby("date", sort=True):
        raw = g[comps].set_axis(list(fixed), axis=1)
        parts.append(g[["date", "open_to_close"]].assign(score=composite_scores(raw, fixed)["score"].to_numpy()))
    if not parts:
        return performance.ic_stats(pd.Series(dtype=float))
    return performance.ic_stats(performance.information_coefficient(pd.concat(parts))["ic"])


def run_backtest(params: Params, start: date, end: date, out_dir: str | Path | None = None, *,
                 method: str | None = None, layers: str = "both", equity: float | None = None,
                 provider: DataProvider | None = None, market: Market | None = None, progress: bool = True,
                 report: bool = True) -> BacktestResult:
    """Walk the daily loop over [start, end] and write the output folder (None: `outputs/backtests/<run-id>/`).

    `report` False leaves out the tear sheet (`report.html`, a few MB): sweeps run many backtests and
    read their tables, not their pages. `market`: the window's bars already loaded from `provider` by
    `panel.load_market` with these data and scan settings (the tuning panel's comparisons reuse one)."""
    from wolfkit import performance, tearsheet
    from wolfkit.config import project_root
    from wolfkit.data.quality import (
        find_jumps,
        quarantine_count,
        quarantined_rows,
        write_data_quality,
    )
    from wolfkit.runs import new_run_id

    t0 = time.perf_counter()
    try:
        mode = Layers(layers)
    except ValueError:
        raise BadInputError(f"--layers {layers!r}: use both or directional") from None
    if method is not None and method not in ("optimal", "greedy"):
        raise BadInputError(f"--method {method!r}: use optimal or greedy")
    if mode is Layers.DIRECTIONAL:
        params = params.with_changes({"maxdiff": {"enabled": False}})
    equity0 = float(params.backtest.equity if equity is None else equity)
    if not (np.isfinite(equity0) and equity0 > 0):
        raise BadInputError(f"--equity {equity}: use a positive amount in USD")
    if equity is not None:  # the targets' liquidity bound is planned at the starting equity (backtest.panel)
        params = params.with_changes({"backtest": {"equity": equity0}})
    run_id = new_run_id("backtest", start)
    folder = Path(out_dir).expanduser() if out_dir is not None else Path("outputs") / "backtests" / run_id
    folder = claim(folder if folder.is_absolute() else project_root() / folder)
    if provider is None:
        from wolfkit.data import get_provider

        provider = get_provider(params)

    timings: dict[str, float] = {}
    tick = time.perf_counter()
    if market is None:
        market = load_market(provider, params, start, end)
    sectors = market.universe["sector"]
    jumps = find_jumps(market.bars, sectors, params.data.jump_threshold)
    quarantine = _quarantine_mask(market, jumps)
    timings["load"] = time.perf_counter() - tick
    n = len(market.sessions)
    with _Stages(progress) as stages:
        tick = time.perf_counter()
        weights = signal_weights(market, params)
        mornings = _Timed(scan_sessions(market, params, stages.stage("scanning sessions", n), quarantine=quarantine,
                                        method=method, weights=weights))
        w = walk(market, mornings, params, equity0, quarantine, provider=provider, method=method,
                 advance=stages.stage("trading sessions", n))
        timings["scan"] = mornings.seconds  # waiting for scans + targets (all of them when scan.workers is 0)
        timings["trade"] = time.perf_counter() - tick - mornings.seconds

    tick = time.perf_counter()
    eq = equity_frame(w, benchmarks(market, quarantine, equity0))
    fills = fills_frame(w)
    scores = scores_frame(market, w.scans, w, quarantine, params)
    write_tables(folder, eq, fills, scores)
    bad_rows = quarantined_rows(provider)
    write_data_quality(folder / "data_quality.csv", bad_rows, jumps)
    dates = market.dates()
    summary: dict[str, Any] = {
        "schema": SCHEMA_ID,
        "run_id": run_id,
        "window": {"start": dates[0].isoformat(), "end": dates[-1].isoformat(), "sessions": n},
        "params_digest": params.digest(),
        "method": method or params.portfolio.method,
        "layers": str(mode),
        "equity_start": equity0,
        "elapsed_s": None,
        "fill_rules": w.fill_rules,
        "data": {"source": params.data.source, "provider": str(provider.name), "synthetic": bool(provider.synthetic),
                 "quarantined_rows": quarantine_count(bad_rows), "quarantined_jumps": len(jumps)},
        "warnings": _warnings(params, provider, start, jumps, bad_rows) + w.warnings,
    }
    summary.update(performance.summarize(eq, fills, scores, params))
    weights_record = weights.record()
    if weights.mode is SignalWeighting.FITTED:  # the same sessions scored with the fixed weights: IC against IC
        weights_record["ic_fixed_weights"] = _fixed_ic(scores, weights.fixed)
    summary["signal_weights"] = weights_record
    if params.portfolio.sector_tilt.enabled:
        summary["sector_tilt"], line = tilt_summary(w.tilts, n)
        summary["warnings"] = [*summary["warnings"], line]
    timings["stats"] = time.perf_counter() - tick
    elapsed = time.perf_counter() - t0
    summary["elapsed_s"] = round(elapsed, 3)
    summary["timings_s"] = {k: round(v, 3) for k, v in timings.items()}
    write_summary(folder, summary)
    if report:
        tearsheet.write_report(folder)
    return BacktestResult(folder, eq, fills, scores, summary, time.perf_counter() - t0, timings)
