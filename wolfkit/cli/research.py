"""The research commands: backtest, sweep and learn (what a setting would have done, and what earned it)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from wolfkit.cli.app import ParamsOpt, app, console


@app.command()
def backtest(
    params: Path = ParamsOpt,
    start: str = typer.Option(..., "--start", help="first session, YYYY-MM-DD"),
    end: str = typer.Option(..., "--end", help="last session, YYYY-MM-DD"),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="output folder (default outputs/backtests/<run-id>/)"),
    method: Optional[str] = typer.Option(None, "--method", help="optimal | greedy (default: parameters)"),
    layers: str = typer.Option("both", "--layers", help="both | directional"),
    equity: Optional[float] = typer.Option(None, "--equity", help="starting equity in USD (default: backtest.equity)"),
) -> None:
    """Walk the daily loop over history: scan, build, fill, exit, session by session; write the folder."""
    import warnings
    from datetime import date as _date

    from rich.table import Table

    from wolfkit.backtest import run_backtest
    from wolfkit.config import load_params
    from wolfkit.errors import BadInputError

    def day(flag: str, text: str) -> _date:
        try:
            return _date.fromisoformat(text)
        except ValueError:
            raise BadInputError(f"{flag} {text!r}: write the date as YYYY-MM-DD") from None

    def show(message, category, filename, lineno, file=None, line=None) -> None:
        console.print(f"warning: {message}", style="yellow", markup=False, highlight=False, soft_wrap=True)

    with warnings.catch_warnings():  # one clean line per warning (data quality, …), not Python's source echo
        warnings.showwarning = show
        result = run_backtest(load_params(params), day("--start", start), day("--end", end), out, method=method,
                              layers=layers, equity=equity, progress=True)
    s, eq = result.summary, result.equity
    table = Table(title=f"backtest {s['window']['start']} … {s['window']['end']} ({s['window']['sessions']} sessions)")
    table.add_column("")
    table.add_column("value", justify="right")

    def fmt(key: str, spec: str) -> str:
        v = s.get(key)
        return format(v, spec) if isinstance(v, (int, float)) else "n/a"

    rows = [
        ("final equity", f"${eq['equity'].iloc[-1]:,.0f} (from ${s['equity_start']:,.0f})"),
        ("buy-and-hold / open→close benchmark", f"${eq['bench_buy_hold'].iloc[-1]:,.0f} / ${eq['bench_open_close'].iloc[-1]:,.0f}"),
        ("CAGR", fmt("cagr", ".2%")), ("Sharpe", fmt("sharpe", ".2f")), ("max drawdown", fmt("max_drawdown", ".2%")),
        ("IC mean (t)", f"{fmt('ic_mean', '.4f')} ({fmt('ic_t', '.2f')})"),
        ("fees", f"${eq['fees'].sum():,.2f}"), ("fills", f"{len(result.fills):,}"),
        ("time", f"{result.elapsed_s:.1f} s"),
    ]
    for k, v in rows:
        table.add_row(k, v)
    console.print(table)
    for w in s["warnings"][:10]:
        console.print(f"warning: {w}", style="yellow", markup=False, highlight=False, soft_wrap=True)
    if len(s["warnings"]) > 10:
        console.print(f"… {len(s['warnings']) - 10} more warnings in summary.json", style="yellow")
    console.print(f"wrote {result.out_dir}", highlight=False, markup=False, soft_wrap=True)



@app.command()
def sweep(
    params: Path = ParamsOpt,
    grid: Path = typer.Option(..., "--grid", help="YAML: dotted parameter path -> list of values to try"),
    start: str = typer.Option(..., "--start", help="first session, YYYY-MM-DD"),
    end: str = typer.Option(..., "--end", help="last session, YYYY-MM-DD"),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="output folder (default outputs/sweeps/<run-id>/)"),
    executor: str = typer.Option("local", "--executor", help="local (processes on this machine) | dask"),
    scheduler: Optional[str] = typer.Option(None, "--scheduler", help="Dask scheduler address (default: a local cluster)"),
    train_end: Optional[str] = typer.Option(None, "--train-end", help="choose on start..this session, report on the rest"),
    workers: Optional[int] = typer.Option(None, "--workers", min=1, help="processes (local) or cluster workers (default: cores)"),
) -> None:
    """One backtest per combination of a parameter grid; sweep.csv ranks them, sweep.json says what was chosen."""
    from contextlib import ExitStack

    from rich.progress import Progress

    from wolfkit import calendar
    from wolfkit import sweep as sw
    from wolfkit.config import load_params, project_path
    from wolfkit.runs import new_run_id

    p = load_params(params)
    g = sw.load_grid(grid, p)
    first, last = calendar.resolve_date(start), calendar.resolve_date(end)
    cut = calendar.resolve_date(train_end) if train_end else None
    folder = project_path(out) if out else project_path("outputs") / "sweeps" / new_run_id("sweep", first)
    n = len(g.configurations()) * (2 if cut else 1)
    with ExitStack() as stack, Progress(console=console, transient=True) as bar:
        pool = sw.open_executor(executor, stack, scheduler=scheduler, workers=workers)
        task = bar.add_task(f"{n} backtests on {executor}", total=n)
        result = sw.run_sweep(p, g, first, last, folder, executor=pool, train_end=cut,
                              advance=lambda k: bar.advance(task, k))
    console.print(sw.console_table(result), soft_wrap=True)
    console.print(f"wrote {result.out_dir}", highlight=False, markup=False, soft_wrap=True)



@app.command()
def learn(
    backtest: Optional[Path] = typer.Option(None, "--backtest", help="a backtest folder (wolfkit backtest --out)"),
    ledger: Optional[Path] = typer.Option(None, "--ledger", help="the live ledger (execution.ledger_path)"),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="output folder (default outputs/learn/<run-id>/)"),
    params_file: Optional[Path] = typer.Option(None, "--params", "-p", help="parameters for the ledger's score tiers "
                                               "(default parameters/default.yaml)"),
    window: Optional[int] = typer.Option(None, "--window", help="only the trades opened in the last N sessions "
                                         "(the trailing window the sector tilt judges; default: all)"),
) -> None:
    """Attribution of realised returns by sector, score tier, strategy, layer and signal, with intervals."""
    from datetime import date as _date

    from wolfkit import learn as lr
    from wolfkit.config import load_params, project_path
    from wolfkit.errors import BadInputError
    from wolfkit.runs import new_run_id

    if (backtest is None) == (ledger is None):
        raise BadInputError("learn: pass exactly one of --backtest DIR or --ledger FILE")
    if backtest is not None:
        learned = lr.from_backtest(backtest, window)
    elif ledger is not None:
        learned = lr.from_ledger(ledger, load_params(params_file or project_path("parameters/default.yaml")), window)
    for table in lr.console_tables(learned):
        console.print(table)
    folder = project_path(out) if out else project_path("outputs") / "learn" / new_run_id("learn", _date.today())
    lr.write(learned, folder)
    s = learned.summary()
    lately = f" (the last {window} sessions)" if window else ""
    console.print(f"{s['trades']:,} closed trades over {s['sessions']:,} sessions{lately}; wrote {folder}",
                  highlight=False, markup=False, soft_wrap=True)
