"""`wolfkit …` — every job runnable without Jupyter.

Exit codes: 0 success, 2 bad input or parameters, 3 infeasible constraints, 1 anything else.
Commands are thin: parse, load parameters, call the owning module, print a summary.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

from wolfkit.errors import WolfkitError

app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__)
params_app = typer.Typer(no_args_is_help=True, help="Validate or print a parameter file.")
app.add_typer(params_app, name="params")
console = Console()
err_console = Console(stderr=True)

ParamsOpt = typer.Option(..., "--params", "-p", help="parameter file, e.g. parameters/demo.yaml")
DateOpt = typer.Option("today", "--date", "-d", help="YYYY-MM-DD, 'today' (New York) or 'latest' session")


@params_app.command("check")
def params_check(file: Path = typer.Argument(..., help="parameter YAML file")) -> None:
    """Validate FILE; exit 2 with every problem listed when it is wrong."""
    from wolfkit.config import load_params

    p = load_params(file)
    console.print(f"{file}: valid (name={p.name}, digest={p.digest()})")


@params_app.command("show")
def params_show(file: Path = typer.Argument(..., help="parameter YAML file")) -> None:
    """Print the resolved parameter set (after `extends:` and defaults)."""
    from wolfkit.config import load_params

    print(load_params(file).to_yaml(), end="")


@app.command()
def scan(
    params: Path = ParamsOpt,
    date: str = DateOpt,
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="opportunities .csv or .parquet"),
) -> None:
    """Scan the universe into a ranked opportunities table (+ a companion file of exclusions)."""
    raise WolfkitError("scan: not built yet (issue 3)")


@app.command()
def build(
    opportunities: Path = typer.Option(..., "--opportunities", help="opportunities .csv or .parquet"),
    params: Path = ParamsOpt,
    equity: float = typer.Option(..., "--equity", help="account equity in USD"),
    buying_power: Optional[float] = typer.Option(
        None, "--buying-power", help="USD; above equity means a margin account (both buckets apply)"
    ),
    method: Optional[str] = typer.Option(None, "--method", help="optimal | greedy (default: parameters)"),
    date: str = DateOpt,
    out: Path = typer.Option(..., "--out", help="orders.json to write"),
) -> None:
    """Build the day's pack and write the orders file."""
    raise WolfkitError("build: not built yet (issue 4)")


@app.command()
def premarket(
    params: Path = ParamsOpt,
    date: str = DateOpt,
    force: bool = typer.Option(False, "--force", help="run even on a weekend or holiday"),
    equity: float = typer.Option(100_000.0, "--equity", help="account equity in USD (sim/demo)"),
    outputs: Path = typer.Option(Path("outputs"), "--outputs", help="root of the per-day folders"),
) -> None:
    """Run notebooks/premarket.ipynb via papermill into outputs/<date>/."""
    raise WolfkitError("premarket: not built yet (issue 6)")


@app.command()
def execute(
    orders: Path = typer.Option(..., "--orders", help="orders.json from `wolfkit build`"),
    broker: Optional[str] = typer.Option(None, "--broker", help="sim | paper | live (default: parameters)"),
    live: bool = typer.Option(False, "--live", help="required, with broker: live in the parameters, to trade live"),
    params: Optional[Path] = typer.Option(None, "--params", "-p", help="parameter file (default: parameters/default.yaml)"),
) -> None:
    """Submit the orders file in priority order with a running buying-power budget."""
    raise WolfkitError("execute: not built yet (issue 5)")


@app.command()
def status(ledger: Optional[Path] = typer.Option(None, "--ledger", help="ledger SQLite file")) -> None:
    """Both layers and leverage usage, as in seed 000."""
    raise WolfkitError("status: not built yet (issue 7)")


@app.command()
def replay(params: Path = ParamsOpt, date: str = DateOpt) -> None:
    """Replay a full intraday session of both layers through the simulated broker."""
    raise WolfkitError("replay: not built yet (issue 7)")


@app.command()
def emulator(port: int = typer.Option(8765, "--port", help="port on 127.0.0.1")) -> None:
    """Serve an Alpaca-compatible paper broker on 127.0.0.1 (backed by the simulated broker)."""
    raise WolfkitError("emulator: not built yet (issue 5)")


def main(argv: list[str] | None = None) -> int:
    """Entry point: run the app, turning WolfkitError into its exit code and a one-screen message.

    Usage errors (unknown option, missing argument) are typer's own: message and exit 2.
    """
    try:
        app(args=argv, prog_name="wolfkit")
    except SystemExit as e:
        return e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    except WolfkitError as e:
        err_console.print(f"[bold red]error:[/] {e}", markup=True, highlight=False, soft_wrap=True)
        return e.exit_code
    except KeyboardInterrupt:
        err_console.print("aborted")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
