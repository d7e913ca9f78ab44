"""The sweep notebook's page: heatmaps of each figure over the grid, the table, and what was chosen.

`run` is the notebook's entry (the same `wolfkit.sweep.run_sweep` as `wolfkit sweep`); `figures` draws
from a finished sweep folder (`sweep.csv`, `sweep.json`), so a folder written by the command line reads
the same way; `show` displays the page and records the headline values for tests and audits.
"""

from __future__ import annotations

import json
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
import plotly.graph_objects as go

from wolfkit import sweep
from wolfkit.errors import BadInputError

if TYPE_CHECKING:
    from wolfkit.runs import RunContext

HEATMAP_FIGURES = {"sharpe": "Sharpe", "max_drawdown": "max drawdown", "turnover": "turnover (x equity a year)"}


@dataclass(frozen=True)
class SweepFolder:
    """A finished sweep read back: its rows and its summary."""

    path: Path
    table: pd.DataFrame
    summary: dict[str, Any]

    @property
    def axes(self) -> list[str]:
        return list(self.summary["grid"])


def read_folder(folder: str | Path) -> SweepFolder:
    """Read `sweep.csv` and `sweep.json`; a missing file is a clear error naming it."""
    path = Path(folder)
    for name in ("sweep.csv", "sweep.json"):
        if not (path / name).is_file():
            raise BadInputError(f"{path / name}: not found; point at a folder written by `wolfkit sweep`")
    return SweepFolder(path, pd.read_csv(path / "sweep.csv"), json.loads((path / "sweep.json").read_text()))


def run(ctx: RunContext, grid_file: str, start: str, end: str, train_end: str = "", executor: str = "local",
        workers: int = 0, out: str = "") -> sweep.SweepResult:
    """Run the sweep from the notebook's parameters. Empty `end`: the session before the run date; empty
    `start`: the 42 sessions ending at `end` (as the backtest notebook); empty `out`:
    `<outputs_dir>/sweeps/<run id>/`."""
    from wolfkit import calendar
    from wolfkit.config import project_path
    from wolfkit.notebooks import BACKTEST_DEFAULT_SESSIONS

    grid = sweep.load_grid(project_path(grid_file), ctx.params)
    last = calendar.resolve_date(end) if end else calendar.previous_session(ctx.session)
    first = calendar.resolve_date(start) if start else calendar.sessions_ending(last, BACKTEST_DEFAULT_SESSIONS)[0]
    folder = project_path(out) if out else ctx.outputs_dir / "sweeps" / ctx.run_id
    with ExitStack() as stack:
        pool = sweep.open_executor(executor, stack, workers=workers or None)
        return sweep.run_sweep(ctx.params, grid, first, last, folder, executor=pool,
                               train_end=calendar.resolve_date(train_end) if train_end else None)


def _window_rows(sf: SweepFolder, window: str) -> pd.DataFrame:
    return sf.table[sf.table["window"] == window]


def heatmap(sf: SweepFolder, figure: str, window: str) -> go.Figure:
    """`figure` over the first two grid axes (the best value over any further axes); one axis: bars."""
    rows = _window_rows(sf, window)
    label = HEATMAP_FIGURES.get(figure, figure)
    title = f"{label}, {window} window ({rows['start'].iloc[0]} … {rows['end'].iloc[0]})"
    axes = sf.axes
    if len(axes) == 1:
        fig = go.Figure(go.Bar(x=rows[axes[0]].astype(str), y=rows[figure]))
        fig.update_layout(title=title, xaxis_title=axes[0], yaxis_title=label)
        return fig
    best = "min" if figure == "turnover" else "max"
    grid = rows.pivot_table(index=axes[0], columns=axes[1], values=figure, aggfunc=best)
    if len(axes) > 2:
        title += f" — the {best} over {', '.join(axes[2:])}"
    fig = go.Figure(go.Heatmap(z=grid.to_numpy(), x=[str(c) for c in grid.columns], y=[str(i) for i in grid.index],
                               colorscale="RdYlGn_r" if figure == "turnover" else "RdYlGn",
                               text=grid.round(3).astype(str).to_numpy(), texttemplate="%{text}"))
    fig.update_layout(title=title, xaxis_title=axes[1], yaxis_title=axes[0])
    return fig


def figures(sf: SweepFolder) -> dict[str, go.Figure]:
    """Every heatmap, by `<figure>_<window>`: Sharpe, drawdown and turnover on each window of the sweep."""
    windows = [w for w in ("full", "train", "test") if (sf.table["window"] == w).any()]
    return {f"{f}_{w}": heatmap(sf, f, w) for w in windows for f in HEATMAP_FIGURES}


def show(folder: str | Path) -> dict[str, go.Figure]:
    """Display the sweep page in a notebook and record what it shows."""
    from wolfkit import report

    sf = read_folder(folder)
    s = sf.summary
    chosen = s["chosen"]
    lines = [f"**{s['configurations_tried']} configurations tried**; chosen by {chosen['selected_by']}: "
             f"config {chosen['config']} {chosen['values']}.", "", s["note"] + "."]
    report.markdown("\n".join(lines))
    figs = figures(sf)
    for fig in figs.values():
        report.show(fig)
    cols = ["config", "window", *sf.axes, *sweep.FIGURES]
    report.table(sf.table[cols].round(4), caption="Every configuration and window (sweep.csv)")
    report.record("sweep_out_dir", str(sf.path))
    report.record("sweep_configurations_tried", s["configurations_tried"])
    report.record("sweep_chosen", chosen)
    report.record("sweep_figures", list(figs))
    return figs
