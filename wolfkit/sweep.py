"""Parameter sweeps: one backtest per combination of a grid, on any `concurrent.futures.Executor`.

A grid file maps dotted parameter paths to lists of values::

    portfolio.sector_cap: [0.25, 0.30]
    portfolio.max_positions: [10, 15]

`run_sweep` runs the backtest that trades (`wolfkit.backtest.run_backtest`) once per combination and
writes `sweep.csv` (one row per configuration and window: the grid values in columns named by their
paths, then the figures) and `sweep.json` (how many configurations were tried, the best, and — with a
training cut-off — the configuration chosen on the training window with its figures on the later
window, the only honest estimate of what choosing would have earned).

Configurations run in local processes by default, or on a Dask cluster (`dask.distributed`, the
optional `dask` extra) when one machine is not enough. A configuration's figures do not depend on where
it ran: every task carries the fully resolved parameters (paths made absolute), runs the scan in its
own process (`scan.workers: 0`) and reads the same files.
"""

from __future__ import annotations

import itertools
import json
import math
import time
from concurrent.futures import Executor, Future, ProcessPoolExecutor, as_completed
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import date
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import pandas as pd

from wolfkit.errors import BadInputError

if TYPE_CHECKING:
    from wolfkit.config import Params
    from wolfkit.data.base import DataProvider

SELECTED_BY = "sharpe"
FIGURES = ("sharpe", "cagr", "volatility", "sortino", "max_drawdown", "total_return", "turnover", "fees",
           "hit_rate", "ic_mean", "ic_t", "exposure_total")
"""The figures of each configuration in `sweep.csv`, after the grid columns (all from summary.json)."""


class ExecutorKind(StrEnum):
    """Where configurations run: local processes, or a Dask cluster (`--scheduler`, else a local one)."""

    LOCAL = "local"
    DASK = "dask"


class Window(StrEnum):
    """Which part of the history a row measures: the whole window, or the train/test split."""

    FULL = "full"
    TRAIN = "train"
    TEST = "test"


@dataclass(frozen=True)
class Grid:
    """Dotted parameter path -> the values to try, in file order; configurations are their product."""

    axes: dict[str, list[Any]]

    def configurations(self) -> list[dict[str, Any]]:
        """Every combination, the last axis varying fastest (the order of `sweep.csv`)."""
        keys = list(self.axes)
        return [dict(zip(keys, values)) for values in itertools.product(*self.axes.values())]


def nested(changes: dict[str, Any]) -> dict[str, Any]:
    """Dotted changes (`{"portfolio.sector_cap": 0.3}`) nested as in the YAML, for `Params.with_changes`."""
    out: dict[str, Any] = {}
    for path, value in changes.items():
        *parents, leaf = path.split(".")
        node = out
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return out


def load_grid(path: str | Path, params: Params) -> Grid:
    """Read and check a grid file: every key a parameter path of `params`, every value a non-empty list
    whose values each give valid parameters. Errors name the file, the key and the fix (exit 2)."""
    from wolfkit.config import read_strict_yaml

    p = Path(path)
    if not p.is_file():
        raise BadInputError(f"{p}: grid file not found; write one mapping dotted parameter paths to lists, "
                            "e.g. `portfolio.sector_cap: [0.25, 0.30]`")
    raw = read_strict_yaml(p, "grid file")
    if not isinstance(raw, dict) or not raw:
        raise BadInputError(f"{p}: expected a mapping of dotted parameter paths to lists of values, "
                            "e.g. `portfolio.sector_cap: [0.25, 0.30]`")
    tree = params.model_dump()
    axes: dict[str, list[Any]] = {}
    for key, values in raw.items():
        where = f"{p}: {key}"
        node: Any = tree
        for part in str(key).split("."):
            if not isinstance(node, dict) or part not in node:
                known = sorted(node) if isinstance(node, dict) else []
                raise BadInputError(f"{where}: not a parameter ({part!r} is unknown here; known: {known}); "
                                    "use a dotted path such as portfolio.sector_cap")
            node = node[part]
        if isinstance(node, dict):
            raise BadInputError(f"{where}: names a whole section; name one parameter in it, e.g. {key}.{next(iter(node))}")
        if not isinstance(values, list) or not values:
            raise BadInputError(f"{where}: give a non-empty list of values, e.g. `{key}: [{values!r}]`")
        for v in values:
            try:
                params.with_changes(nested({key: v}), source="grid")
            except BadInputError as e:
                why = str(e).removeprefix("grid: ").removeprefix("invalid parameters:").strip()
                raise BadInputError(f"{where}: value {v!r} gives invalid parameters ({why}); change or drop it") from None
        if len({json.dumps(v, sort_keys=True, default=str) for v in values}) != len(values):
            raise BadInputError(f"{where}: a value is listed twice; keep one of each")
        axes[str(key)] = values
    return Grid(axes)


@dataclass(frozen=True)
class Task:
    """One backtest of one configuration on one window: everything a worker needs, picklable."""

    config: int
    window: Window
    params: Params
    changes: dict[str, Any]
    start: date
    end: date
    out_dir: str

    def resolved_params(self) -> Params:
        """The parameters this backtest runs with: the grid's changes, and the scan in the task's own
        process (a cluster worker may not start processes of its own; the figures do not depend on it)."""
        return self.params.with_changes({**nested(self.changes), "scan": {"workers": 0}}, source="sweep")


def figures(summary: dict[str, Any]) -> dict[str, Any]:
    """The `FIGURES` of one backtest's summary.json (None where undefined)."""
    out = {k: summary.get(k) for k in FIGURES if k != "exposure_total"}
    out["exposure_total"] = (summary.get("exposure") or {}).get("total")
    return out


_PROVIDERS: dict[str, DataProvider] = {}


def _provider(params: Params) -> DataProvider:
    """One provider per data section and process: a worker reads the bars file once for all its tasks."""
    from wolfkit.data import get_provider

    key = params.data.model_dump_json()
    if key not in _PROVIDERS:
        _PROVIDERS[key] = get_provider(params)
    return _PROVIDERS[key]


def run_task(task: Task) -> dict[str, Any]:
    """Run one task (in whatever process or cluster worker it landed) and return its `sweep.csv` row."""
    from wolfkit.backtest import run_backtest

    params = task.resolved_params()
    result = run_backtest(params, task.start, task.end, task.out_dir, progress=False, provider=_provider(params),
                          report=False)
    s = result.summary
    return {"config": task.config, "window": str(task.window), "start": s["window"]["start"],
            "end": s["window"]["end"], "sessions": s["window"]["sessions"], **task.changes, **figures(s),
            "params_digest": s["params_digest"], "folder": task.out_dir, "elapsed_s": result.elapsed_s}


def absolute_paths(params: Params) -> Params:
    """The same parameters with data paths made absolute, so a worker in another folder reads the same files."""
    from wolfkit.config import project_path

    data = {k: str(project_path(v)) for k in ("bars_path", "universe_path", "cache_dir")
            if (v := getattr(params.data, k))}
    return params.with_changes({"data": data}, source="sweep") if data else params


def plan_tasks(params: Params, grid: Grid, start: date, end: date, out: Path,
               train_end: date | None = None) -> list[Task]:
    """The backtests of a sweep: one per configuration, or two (train, test) with a training cut-off."""
    from wolfkit import calendar

    if start > end:
        raise BadInputError(f"--start {start} is after --end {end}; pass start <= end")
    if train_end is None:
        windows = [(Window.FULL, start, end)]
    else:
        test_start = calendar.next_session(train_end)
        if not (start <= train_end and test_start <= end):
            raise BadInputError(f"--train-end {train_end}: must leave sessions on both sides of it within "
                                f"{start} … {end}")
        windows = [(Window.TRAIN, start, train_end), (Window.TEST, test_start, end)]
    base = absolute_paths(params)
    return [Task(i, w, base, changes, a, b, str(out / "configs" / f"{i:03d}-{w}"))
            for i, changes in enumerate(grid.configurations()) for w, a, b in windows]


@dataclass
class SweepResult:
    """A finished sweep: its folder, one row per configuration and window, and the choice made."""

    out_dir: Path
    table: pd.DataFrame
    summary: dict[str, Any]
    elapsed_s: float
    task_seconds: dict[str, float] = field(default_factory=dict)


def _score(v: Any) -> float:
    return float(v) if isinstance(v, (int, float)) and math.isfinite(v) else -math.inf


def choose(table: pd.DataFrame, grid: Grid) -> dict[str, Any]:
    """The configuration with the best Sharpe on the training window (the full window without one), and
    its figures on every window; ties go to the earlier configuration."""
    pick_from = Window.TRAIN if (table["window"] == Window.TRAIN).any() else Window.FULL
    rows = table[table["window"] == pick_from]
    best = rows.iloc[max(range(len(rows)), key=lambda i: (_score(rows.iloc[i][SELECTED_BY]), -i))]
    cid = int(best["config"])
    mine = table[table["config"] == cid]
    return {
        "config": cid,
        "values": {k: _plain(best[k]) for k in grid.axes},
        "selected_by": f"{SELECTED_BY} on the {pick_from} window",
        **{str(r["window"]): {k: _plain(r[k]) for k in ("start", "end", "sessions", *FIGURES)}
           for _, r in mine.iterrows()},
    }


def _plain(v: Any) -> Any:
    if hasattr(v, "item"):
        v = v.item()
    return None if isinstance(v, float) and math.isnan(v) else v


def run_sweep(params: Params, grid: Grid, start: date, end: date, out: str | Path, *,
              executor: Executor | None = None, train_end: date | None = None,
              advance: Callable[[int], None] = lambda n: None) -> SweepResult:
    """Run every configuration of `grid` over [start, end] (split at `train_end` when given) on `executor`
    (None: one after another in this process) and write `sweep.csv` and `sweep.json` into `out`."""
    from wolfkit.backtest.folder import claim

    t0 = time.perf_counter()
    folder = claim(Path(out).expanduser().resolve())
    tasks = plan_tasks(params, grid, start, end, folder, train_end)
    rows: list[dict[str, Any]] = []
    if executor is None:
        for t in tasks:
            rows.append(run_task(t))
            advance(1)
    else:
        futures: list[Future] = [executor.submit(run_task, t) for t in tasks]
        for f in as_completed(futures):
            rows.append(f.result())
            advance(1)
    rows.sort(key=lambda r: (r["config"], r["window"] != Window.TRAIN))
    seconds = {f"{r['config']:03d}-{r['window']}": round(r.pop("elapsed_s"), 3) for r in rows}
    table = pd.DataFrame(rows)
    table.to_csv(folder / "sweep.csv", index=False)
    summary = {
        "window": {"start": start.isoformat(), "end": end.isoformat(),
                   "train_end": train_end.isoformat() if train_end else None},
        "grid": grid.axes,
        "configurations_tried": len(grid.configurations()),
        "params_digest": params.digest(),
        "chosen": choose(table, grid),
        "note": ("chosen on the training window; the test window's figures are the out-of-sample estimate"
                 if train_end else "chosen in sample among all configurations tried: expect less out of sample"),
        "task_seconds": seconds,
    }
    (folder / "sweep.json").write_text(json.dumps(summary, indent=2, default=str))
    return SweepResult(folder, table, summary, time.perf_counter() - t0, seconds)


def open_executor(kind: str, stack: ExitStack, *, scheduler: str | None = None,
                  workers: int | None = None) -> Executor:
    """A `concurrent.futures.Executor` for `kind`, closed with `stack`: local processes, or a Dask
    cluster at `scheduler` (a `LocalCluster` of `workers` processes on this machine when no address)."""
    try:
        which = ExecutorKind(kind)
    except ValueError:
        raise BadInputError(f"--executor {kind!r}: use local or dask") from None
    if which is ExecutorKind.LOCAL:
        if scheduler:
            raise BadInputError("--scheduler needs --executor dask")
        return stack.enter_context(ProcessPoolExecutor(max_workers=workers))
    try:
        from dask.distributed import Client, LocalCluster
    except ImportError:
        raise BadInputError("--executor dask needs dask.distributed: pip install 'wolfkit[dask]'") from None
    if scheduler:
        client = stack.enter_context(Client(scheduler))
    else:
        cluster = stack.enter_context(LocalCluster(n_workers=workers or 2, threads_per_worker=1, processes=True,
                                                   dashboard_address=None))
        client = stack.enter_context(Client(cluster))
    return client.get_executor()


def console_table(result: SweepResult, top: int = 10):
    """A rich table of the best configurations by the selection figure, titled with how many were tried
    and what was chosen (the test window's figures when the sweep has one)."""
    from rich.table import Table

    s, t = result.summary, result.table
    chosen = s["chosen"]
    pick = Window.TRAIN if (t["window"] == Window.TRAIN).any() else Window.FULL
    ranked = t[t["window"] == pick].assign(_k=lambda d: d[SELECTED_BY].map(_score)).sort_values("_k", ascending=False)
    axes = list(s["grid"])
    table = Table(title=f"{s['configurations_tried']} configurations tried; the best {min(top, len(ranked))} by "
                        f"{chosen['selected_by']}")
    for col in ("config", *axes, "sharpe", "cagr", "max_drawdown", "turnover", "ic_mean"):
        table.add_column(col, justify="right")
    for _, r in ranked.head(top).iterrows():
        table.add_row(str(r["config"]), *(str(_plain(r[a])) for a in axes), *(_fmt(r[k], f) for k, f in (
            ("sharpe", ".2f"), ("cagr", ".2%"), ("max_drawdown", ".2%"), ("turnover", ".1f"), ("ic_mean", ".4f"))))
    test = chosen.get(str(Window.TEST))
    if test:
        table.caption = (f"chosen: config {chosen['config']} {chosen['values']}; out of sample "
                         f"{test['start']} … {test['end']}: Sharpe {_fmt(test['sharpe'], '.2f')}, "
                         f"CAGR {_fmt(test['cagr'], '.2%')}, max drawdown {_fmt(test['max_drawdown'], '.2%')}")
    else:
        table.caption = f"chosen in sample: config {chosen['config']} {chosen['values']} ({s['note']})"
    return table


def _fmt(v: Any, spec: str) -> str:
    return format(v, spec) if isinstance(v, (int, float)) and math.isfinite(v) else "n/a"
