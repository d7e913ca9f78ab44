"""The command line's shared parts: the typer app, the consoles, the options several commands take.

The commands themselves live in `wolfkit.cli.daily` (the trading day) and `wolfkit.cli.research`
(backtests, sweeps, attribution); `wolfkit.cli` registers them and holds `main`.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

HELP = """`wolfkit …` — every job runnable without Jupyter.

Exit codes: 0 success, 2 bad input or parameters, 3 infeasible constraints, 1 anything else.
Commands are thin: parse, load parameters, call the owning module, print a summary.
"""

app = typer.Typer(add_completion=False, no_args_is_help=True, help=HELP)
params_app = typer.Typer(no_args_is_help=True, help="Validate or print a parameter file.")
app.add_typer(params_app, name="params")

# Piped output (papermill, cron logs) gets a readable width instead of rich's 80-column fallback.
# No console markup: paths, symbols, sectors and messages are the user's text, and `[bold]` or `[/]`
# in them must print as written (rich would strip the one and crash on the other); styles are explicit.
_width = None if sys.stdout.isatty() else 140  # None: rich measures the terminal
console = Console(markup=False, width=_width)
err_console = Console(stderr=True, markup=False, width=None if sys.stderr.isatty() else 140)
status_console = Console(width=_width)  # the status screen styles its headings with markup


@app.callback()
def _keys(env_file: Optional[Path] = typer.Option(
        None, "--env-file", help="keys file to load first (`export APCA_API_KEY_ID=…` lines, chmod 600): the "
        "scheduled jobs' way to get the Alpaca keys; a wrong file exits 2")) -> None:
    """Load the keys file, if given, into the environment before the command runs."""
    import os

    from wolfkit.keys_file import read_keys_file, readable_by_others

    if env_file is None:
        return
    os.environ.update(read_keys_file(env_file))
    if readable_by_others(env_file):
        err_console.print(f"warning: {env_file} is readable by other users; chmod 600 {env_file}",
                          style="yellow", highlight=False, soft_wrap=True)


ParamsOpt = typer.Option(..., "--params", "-p", help="parameter file, e.g. parameters/demo.yaml")
DateOpt = typer.Option("today", "--date", "-d", help="YYYY-MM-DD, 'today' (New York) or 'latest' session")
SESSION_OVERRIDE_HELP = (
    "send even though the plan is outside its own session (another day, after the close, opg after 09:28 ET): "
    "deliberate only; REASON is printed and recorded in the ledger with who and when"
)
BUYING_POWER_HELP = (
    "USD; above equity is a margin account (both leverage buckets apply), at or below equity a cash account "
    "(default: leverage.buying_power_multiple x equity from the parameters, 2x — margin — unless changed)"
)
ForceOpt = typer.Option(False, "--force", help="run even on a weekend or holiday")


def closed_day(day, force: bool, outcome: str, hint: str = "use --force to run anyway") -> bool:
    """On a weekend or holiday without --force: say so (exit 0, nothing done) and return True."""
    from wolfkit.calendar import closed_notice

    notice = None if force else closed_notice(day, outcome, hint)
    if notice:
        console.print(notice, soft_wrap=True, markup=False, highlight=False)
    return notice is not None


ORDERS_HELP = ("orders file from `wolfkit build` or `wolfkit premarket` (default: the current plan named in "
               "outputs/<date>/latest.json)")
PLAN_DATE_HELP = "with no --orders: the day folder whose current plan to send (YYYY-MM-DD, 'today' or 'latest')"


def plan_file(orders: Optional[Path], outputs: Path, date: str) -> Path:
    """The orders file to send: --orders when given, else the current plan the day folder's manifest
    names — said on the console either way, so the log shows which file was used. Without --orders on a
    weekend or holiday: says so and exits 0, so a weekday schedule stays quiet on holidays."""
    from wolfkit.calendar import resolve_date
    from wolfkit.day_folder import current_plan, day_dir

    if orders is not None:
        console.print(f"orders: {orders}", highlight=False, soft_wrap=True)
        return orders
    day = resolve_date(date)
    if closed_day(day, False, "No plan to send", "pass --orders FILE to send one anyway"):  # a schedule fires every weekday: a holiday is not an error
        raise typer.Exit(0)
    folder = day_dir(outputs, day)
    path = current_plan(folder)
    console.print(f"orders: {path} (the current plan in {folder / 'latest.json'})", highlight=False, soft_wrap=True)
    return path
