"""The trading day's commands: scan, build, premarket, execute, intraday, status, replay, emulator, params."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from wolfkit.cli.app import (
    BUYING_POWER_HELP,
    ORDERS_HELP,
    PLAN_DATE_HELP,
    SESSION_OVERRIDE_HELP,
    DateOpt,
    ForceOpt,
    ParamsOpt,
    app,
    closed_day,
    console,
    params_app,
    plan_file,
    status_console,
)
from wolfkit.errors import BrokerError, WolfkitError

HOLDINGS_HELP = ("sim | paper | live: size the pack against what this account holds (sells what left the pack, "
                 "tops up or trims the rest; recorded in orders.json). Default: none, built as if nothing is held")


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
    out: Optional[Path] = typer.Option(
        None, "--out", "-o", help="opportunities .csv or .parquet (default: the next free "
        "outputs/<date>/opportunities[.N].csv; an existing file in a day folder is refused)"),
    force: bool = ForceOpt,
) -> None:
    """Scan the universe into a ranked opportunities table (+ a companion file of exclusions).

    Never overwrites a file in a day folder: without --out it writes the next free
    `outputs/<date>/opportunities[.N].csv` and names it in the day's `latest.json` as the newest scan."""
    from wolfkit.calendar import resolve_date
    from wolfkit.config import load_params
    from wolfkit.day_folder import OnTaken, claim_file, claimed, day_dir, update_manifest
    from wolfkit.scan import SCAN_COMPANIONS, run_scan, write_scan

    p = load_params(params)
    day = resolve_date(date)
    if closed_day(day, force, "Nothing scanned"):
        return
    folder = day_dir("outputs", day)
    target = out or folder / "opportunities.csv"
    if out is not None:  # a taken name is refused before the work
        claim_file(out, companions=SCAN_COMPANIONS, on_taken=OnTaken.REFUSE, reserve=False)
    result = run_scan(p, day, progress=True)
    with claimed(target, companions=SCAN_COMPANIONS, on_taken=OnTaken.REFUSE if out else OnTaken.NUMBER) as path:
        paths = write_scan(result, path)
    if path.parent.resolve() == folder.resolve():
        update_manifest(folder, day, scan=path)
    console.print(result.summary(), highlight=False, markup=False, soft_wrap=True)
    console.print("wrote " + ", ".join(str(x) for x in paths), highlight=False, markup=False, soft_wrap=True)


@app.command()
def build(
    opportunities: Path = typer.Option(..., "--opportunities", help="opportunities .csv or .parquet"),
    params: Path = ParamsOpt,
    equity: float = typer.Option(..., "--equity", help="account equity in USD"),
    buying_power: Optional[float] = typer.Option(
        None, "--buying-power", help=BUYING_POWER_HELP
    ),
    method: Optional[str] = typer.Option(None, "--method", help="optimal | greedy (default: parameters)"),
    date: str = DateOpt,
    out: Path = typer.Option(..., "--out", help="orders.json to write (an existing file in a day folder is "
                             "refused; a plan written into outputs/<date>/ becomes the day's current plan)"),
    force: bool = ForceOpt,
    broker: Optional[str] = typer.Option(None, "--broker", help=HOLDINGS_HELP),
) -> None:
    """Build the day's pack and write the orders file.

    Written into the plan's day folder (`outputs/<date>/`), it becomes the current plan that day's
    `latest.json` names, which `execute` and `intraday` send when no --orders is given."""
    from rich.table import Table

    from wolfkit.calendar import check_session, resolve_date
    from wolfkit.calibration import for_build
    from wolfkit.config import load_params
    from wolfkit.day_folder import OnTaken, claim_file, claimed, update_manifest
    from wolfkit.domain import PlanStatus
    from wolfkit.learn import tilt_for_build
    from wolfkit.opportunities import load_opportunities
    from wolfkit.orders import build_order_plan, check_output_path, write_orders

    p = load_params(params)
    check_output_path(out)
    claim_file(out, on_taken=OnTaken.REFUSE, reserve=False)  # a taken name is refused before the work
    day = resolve_date(date)
    if not force:  # a plan for a day without a session is a mistake in a chain of commands: exit 2
        check_session(day, fix="use --force to build for it anyway")
    holdings = None
    if broker:
        from wolfkit.holdings import read_holdings

        holdings = read_holdings(broker, p, out.parent)
    p, tilt = tilt_for_build(p, day)
    result = build_order_plan(
        load_opportunities(opportunities), p, equity, buying_power, day, method=method, source=str(opportunities),
        holdings=holdings, calibration=for_build(p, day), notes=(tilt,) if tilt else (),
    )
    with claimed(out, on_taken=OnTaken.REFUSE) as target:
        write_orders(result.plan, target)
    plan = result.plan
    if out.parent.name == day.isoformat():
        update_manifest(out.parent, day, orders=out, opportunities=opportunities, notebook=None, html=None,
                        run_id=plan.run_id, command="build")
        console.print(f"{out} is now the current plan in {out.parent / 'latest.json'}", highlight=False,
                      soft_wrap=True)
    if plan.synthetic_prices:
        from wolfkit.data.demo import SYNTHETIC_NOTICE

        console.print(SYNTHETIC_NOTICE, markup=False)
    table = Table(title=f"{plan.summary.method} pack, {plan.as_of} ({out})")
    for col in ("#", "symbol", "layer", "side", "qty", "type", "est cost", "weight", "sector", "cap", "why"):
        table.add_column(col, justify="right" if col in ("#", "qty", "est cost", "weight") else "left")
    for o in plan.orders:
        table.add_row(
            str(o.priority), o.symbol, str(o.layer), str(o.side), str(o.qty),
            f"{o.type} {o.limit_price:g}" if o.limit_price else str(o.type), f"${o.est_cost:,.0f}",
            f"{o.weight:.1%}", o.sector, o.cap_tier, o.reason or "",
        )
    console.print(table)
    s = plan.summary
    listening = sum(1 for m in plan.maxdiff_plans if m.status == PlanStatus.LISTENING)
    console.print(
        f"{s.positions} positions, {s.allocation:.1%} of equity allocated, objective {s.objective:.4g}, "
        f"leftover ${s.leftover_cash:,.2f}; sectors: "
        + ", ".join(f"{k} {v:.1%}" for k, v in s.sector_weights.items())
    )
    console.print(f"maxdiff: {listening} listening, {len(plan.maxdiff_plans) - listening} queued")
    for note in s.notes:
        console.print(f"note: {note}", style="yellow", markup=False, highlight=False)
    if len(result.quarantined):
        console.print(f"{len(result.quarantined)} bad row(s) quarantined:", style="yellow")
        for _, r in result.quarantined.iterrows():
            console.print(f"  row {r['row']}: {r['problem']}", markup=False)


@app.command()
def premarket(
    params: Path = ParamsOpt,
    date: str = DateOpt,
    force: bool = ForceOpt,
    equity: float = typer.Option(100_000.0, "--equity", help="account equity in USD (sim/demo)"),
    outputs: Path = typer.Option(Path("outputs"), "--outputs", help="root of the per-day folders"),
    buying_power: Optional[float] = typer.Option(
        None, "--buying-power", help=BUYING_POWER_HELP
    ),
    cell_timeout: float = typer.Option(600.0, "--cell-timeout", help="seconds one notebook cell may run"),
    broker: Optional[str] = typer.Option(None, "--broker", help=HOLDINGS_HELP),
) -> None:
    """Run notebooks/premarket.ipynb via papermill into outputs/<date>/.

    Writes the executed notebook, an HTML report without code (readable offline), opportunities.csv
    and orders.json (numbered on a re-run), and names them in the day's latest.json as the current plan.
    A weekend or NYSE holiday: says so and exits 0 without orders, unless --force.
    A failed or timed-out cell: exit 1, the notebook kept as premarket[.N].failed.ipynb.
    """
    from wolfkit import calendar, notebooks
    from wolfkit.config import load_params
    from wolfkit.data.registry import check_source
    from wolfkit.report import read_records

    p = load_params(params)
    check_source(p)  # bad parameters or data source: exit 2 here, before a kernel starts
    if broker:
        from wolfkit.broker.gate import broker_kind_for

        broker_kind_for(p, broker, live=broker == "live")  # a bad --broker too (the kernel reads the positions)
    session = calendar.resolve_date(date)
    if closed_day(session, force, "No pre-market run, no orders"):
        return
    run = notebooks.run_notebook(
        "premarket", session,
        notebooks.notebook_parameters(
            "premarket", params, session, outputs, equity=equity, buying_power=buying_power, force=force,
            broker=broker),
        outputs, cell_timeout=cell_timeout,
    )
    if run.suffix:
        console.print(f"{session} already had a pre-market report; it is kept, this run is {run.notebook.name}")
    console.print(f"notebook: {run.notebook}\nreport:   {run.html}")
    if run.status is notebooks.RunStatus.OK:
        written = read_records(run.notebook).get("exports", {})
        for name, p in written.items():
            console.print(f"{name + ':':9} {', '.join(p) if isinstance(p, list) else p}", soft_wrap=True)
        console.print(f"run id {run.run_id}, {run.elapsed_s:.1f} s; the current plan is named in "
                      f"{run.notebook.parent / 'latest.json'}", highlight=False, soft_wrap=True)
    run.raise_for_status()


@app.command()
def execute(
    orders: Optional[Path] = typer.Option(None, "--orders", help=ORDERS_HELP),
    date: str = typer.Option("today", "--date", "-d", help=PLAN_DATE_HELP),
    broker: Optional[str] = typer.Option(None, "--broker", help="sim | paper | live (default: parameters)"),
    live: bool = typer.Option(False, "--live", help="required, with broker: live in the parameters, to trade live"),
    params: Optional[Path] = typer.Option(None, "--params", "-p", help="parameter file (default: parameters/default.yaml)"),
    notebook: bool = typer.Option(
        False, "--notebook", help="run notebooks/execute.ipynb via papermill: executed notebook + HTML audit report"
    ),
    outputs: Path = typer.Option(Path("outputs"), "--outputs", help="root of the per-day folders"),
    replace: bool = typer.Option(
        False, "--replace", help="replace another live plan of the same session: cancel its open orders and size "
        "this plan against what it filled"),
    session_override: Optional[str] = typer.Option(
        None, "--session-override", metavar="REASON", help=SESSION_OVERRIDE_HELP),
) -> None:
    """Submit the orders file in priority order with a running buying-power budget.

    A plan executes only in its own session: pre-open (from 04:00 ET) and regular hours of its as_of
    day, opening-auction (opg) orders only until 09:28 ET; otherwise exit 2 saying why and what to do,
    unless --session-override "REASON" (printed, and recorded in the ledger).
    Exit 2 (nothing submitted) on a bad or tampered orders file, a plan for another session, a plan not
    built for live sent live, positions the plan does not know about, when live trading lacks
    either switch, when the ledger is unusable (garbage, truncated, read-only, disk full), when
    another executor holds the run lock, or when another plan of the session is live (unless
    --replace). The execution log is written beside the orders file; the ledger is
    `execution.ledger_path` (relative to the project, printed). A re-run of the same file submits nothing
    twice: the broker's own list of the run's orders decides, whatever the ledger says. An order the broker
    refused for good (wash trade, invalid price, …) is final and reported with its reason (exit 0); exit 1
    when an outcome is still unknown (re-run to reconcile). With `--notebook` the
    same run happens inside notebooks/execute.ipynb and its audit report lands in outputs/<as_of>/.
    """
    from wolfkit import market_hours
    from wolfkit.broker.gate import broker_kind_for
    from wolfkit.config import load_params
    from wolfkit.execute import execute_orders_file
    from wolfkit.execution_report import format_execution
    from wolfkit.orders import read_orders

    params_file = params or Path("parameters/default.yaml")
    p = load_params(params_file)
    broker_kind_for(p, broker, live)  # the live gate, before any other check
    if notebook and replace:
        from wolfkit.errors import BadInputError

        raise BadInputError("--replace is not available with --notebook; run `wolfkit execute --replace` directly")
    orders = plan_file(orders, outputs, date)
    plan = read_orders(orders)  # a bad file, or one for another session, fails here with exit 2, before anything
    override = market_hours.clear_to_send(orders, plan, market_hours.wall_clock(), session_override)
    if override is not None:
        console.print(f"warning: {override.message()}", style="yellow", highlight=False, soft_wrap=True)
    if notebook:
        from wolfkit import notebooks
        from wolfkit.report import read_records
        from wolfkit.report.execution import EXECUTION_RECORD

        run = notebooks.run_notebook("execute", plan.as_of, notebooks.notebook_parameters(
            "execute", params_file, plan.as_of, outputs, orders_file=str(orders.resolve()), broker=broker or "",
            live=live, session_override=session_override), outputs)
        if run.status is notebooks.RunStatus.OK:  # the same summary as a plain run, recorded by the notebook
            console.print(read_records(run.notebook).get(EXECUTION_RECORD, ""), highlight=False, markup=False,
                          soft_wrap=True)
        console.print(f"notebook: {run.notebook}\nreport:   {run.html}")
        run.raise_for_status()
        return
    report, log = execute_orders_file(orders, p, broker, live, replace, override)
    console.print(format_execution(report, log), highlight=False, markup=False, soft_wrap=True)
    if report.unresolved:
        raise WolfkitError(f"{report.unresolved} order(s) unresolved (see {log}); re-run to reconcile")


@app.command()
def intraday(
    orders: Optional[Path] = typer.Option(None, "--orders", help=ORDERS_HELP),
    date: str = typer.Option("today", "--date", "-d", help=PLAN_DATE_HELP),
    outputs: Path = typer.Option(Path("outputs"), "--outputs", help="root of the per-day folders"),
    params: Optional[Path] = typer.Option(None, "--params", "-p", help="parameter file (default: parameters/default.yaml)"),
    broker: Optional[str] = typer.Option(None, "--broker", help="sim | paper | live (default: parameters)"),
    live: bool = typer.Option(False, "--live", help="required, with broker: live in the parameters, to trade live"),
    mode: str = typer.Option("poll", "--mode", help="poll (REST every step) | stream (alpaca-py TradingStream updates)"),
    poll_seconds: Optional[float] = typer.Option(
        None, "--poll-seconds", min=0, help="seconds between steps (default: intraday.poll_seconds)"),
    until: Optional[str] = typer.Option(None, "--until", help="HH:MM New York time (default: the session close)"),
    status_every: int = typer.Option(12, "--status-every", min=1, help="print a one-line status every N steps"),
    max_steps: Optional[int] = typer.Option(None, "--max-steps", min=1, envvar="WOLFKIT_MAX_STEPS",
                                            help="stop after N steps (dry runs, schedule rehearsals)"),
    session_override: Optional[str] = typer.Option(
        None, "--session-override", metavar="REASON", help=SESSION_OVERRIDE_HELP),
) -> None:
    """Run the two-layer engine on the plan's session: directional pack first, maxdiff plans in the room left.

    The broker is opened exactly as `wolfkit execute` opens it (live needs --live AND
    `execution.broker: live`). A fresh run starts from the plan; when the ledger (`execution.ledger_path`)
    already holds this run's engine state, the engine RESUMES it, reconciling with the broker, so a
    restart mid-day sends nothing twice. State is saved after every step: Ctrl-C stops cleanly and the
    same command resumes. `--mode stream` takes order updates from Alpaca's TradingStream (keys from
    APCA_API_KEY_ID / APCA_API_SECRET_KEY) and reconciles over REST every intraday.reconcile_seconds.
    Exit 2 (nothing sent) on a bad orders file, a plan outside its own session (the same rule as `wolfkit
    execute`, with the same --session-override), or a past --until.
    """
    import time as _time

    from wolfkit import intraday as engine_mod
    from wolfkit import market_hours
    from wolfkit.broker.gate import broker_kind_for
    from wolfkit.config import load_params, project_path
    from wolfkit.execute import broker_account, open_broker
    from wolfkit.ledger import EventKind, Ledger
    from wolfkit.orders import read_orders
    from wolfkit.snapshots import record_snapshot
    from wolfkit.status import render_status
    from wolfkit.status_sources import collect_status

    p = load_params(params or Path("parameters/default.yaml"))
    kind = broker_kind_for(p, broker, live)  # the live gate, before any other check
    feed, keys = engine_mod.feed_for(mode, kind)
    clock = engine_mod.wall_clock
    now = clock()
    orders = plan_file(orders, outputs, date)
    plan = read_orders(orders)
    override = market_hours.clear_to_send(orders, plan, now, session_override)  # the one session rule
    if override is not None:
        console.print(f"warning: {override.message()}", style="yellow", highlight=False, soft_wrap=True)
    stop_at = engine_mod.stop_time(plan.as_of, until, now, source=orders)
    brk = open_broker(kind, plan, p, orders.parent)
    every = p.intraday.poll_seconds if poll_seconds is None else poll_seconds
    with Ledger(project_path(p.execution.ledger_path)) as ledger:
        key, seen = broker_account(kind, brk, orders.parent, p.execution.max_attempts)  # retried like every read
        book = ledger.for_account(key)
        if override is not None:
            book.record_event(plan.run_id, EventKind.SESSION_OVERRIDE, command="intraday", orders=str(orders),
                              **override.detail())
        eng, resumed = engine_mod.open_engine(p, plan, brk, book, equity=seen.equity if seen else None)
        console.print(
            f"{'resumed' if resumed else 'started'} run {plan.run_id} on {getattr(brk, 'name', kind)} ({mode}): "
            f"{len(eng.state.directional)} directional, {len(eng.state.plans)} maxdiff plans; "
            f"stepping every {every:g} s until {stop_at:%H:%M} ET; ledger {book.path} (account {book.account})",
            highlight=False, soft_wrap=True)
        tick = None
        if kind == "sim":  # the simulated market moves with the data provider's quotes, and fills on them
            from wolfkit.data import get_provider

            tick = engine_mod.sim_market_feed(brk, get_provider(p), eng.symbols, clock)  # type: ignore[arg-type]

        def progress(n: int) -> None:
            if tick is not None:
                tick()
            if n % status_every == 0 or n == max_steps:
                console.print(engine_mod.status_line(eng, n), highlight=False, soft_wrap=True)

        ran = engine_mod.run_live(eng, mode=feed, until=stop_at, poll_seconds=every,
                                  reconcile_seconds=p.intraday.reconcile_seconds, clock=clock, sleep=_time.sleep,
                                  keys=keys, paper=kind == "paper", max_steps=max_steps, on_step=progress,
                                  say=lambda m: console.print(m, highlight=False))
        console.print(f"stopped after {ran.steps} step(s): {ran.why}", highlight=False, soft_wrap=True)
        try:  # the run is over and saved: a broker hiccup now must not turn it into a failure
            report = collect_status(book, p, brk, run_id=plan.run_id, now=clock())
        except BrokerError as e:
            console.print(f"warning: no status screen ({e}); the run is saved: `wolfkit status` shows it",
                          style="yellow", highlight=False, soft_wrap=True)
            return
        render_status(report, status_console)
        record_snapshot(book, report.snapshot(plan.as_of))  # the session's end-of-day snapshot, as far as it ran


@app.command()
def status(
    ledger: Optional[Path] = typer.Option(None, "--ledger", help="ledger SQLite file (default: execution.ledger_path)"),
    params_file: Optional[Path] = typer.Option(
        None, "--params", "-p", help="parameter file for the leverage buckets (default: parameters/default.yaml "
        "when it exists, else the built-in defaults)"),
    live: bool = typer.Option(False, "--live", help="read the live account (with execution.broker: live)"),
    sim_state: Optional[Path] = typer.Option(
        None, "--sim-state", help="the simulated account file (default: sim_broker.json beside the latest sim "
        "run's orders file)"),
    run: Optional[str] = typer.Option(None, "--run", help="the intraday engine run whose plans to show (default: "
                                      "the latest)"),
    snapshot: bool = typer.Option(False, "--snapshot", help="record today's end-of-day snapshot in the ledger "
                                  "(the after-the-close job)"),
    history: bool = typer.Option(False, "--history", help="print the daily P&L history from the snapshots"),
    days: int = typer.Option(20, "--days", min=1, help="sessions of history to print (with --history)"),
) -> None:
    """Positions, open orders (with partial fills), realised and unrealised P&L and leverage by layer,
    the maxdiff plans and the daily P&L history — after `execute`, `intraday` or `replay`.

    Positions come from the broker when one is reachable (Alpaca paper/live with keys in the environment,
    or the simulated account `execute --broker sim` keeps), else from the ledger's fills; the screen says which.
    """
    import os

    from wolfkit import market_hours
    from wolfkit.broker.account import sim_account
    from wolfkit.broker.base import Broker
    from wolfkit.broker.gate import BrokerKind, broker_kind_for
    from wolfkit.config import Params, load_params, project_path
    from wolfkit.errors import BadInputError
    from wolfkit.ledger import Ledger
    from wolfkit.snapshots import daily_history, format_history, load_snapshots, record_snapshot
    from wolfkit.status import render_status
    from wolfkit.status_sources import collect_status, open_sim_account, sim_account_path

    default = Path("parameters/default.yaml")
    params = load_params(params_file) if params_file else (load_params(default) if default.is_file() else Params())
    alpaca = bool(os.environ.get("APCA_API_KEY_ID"))  # marks and equity from the account the engine trades
    kind = broker_kind_for(params, BrokerKind.LIVE if live else BrokerKind.PAPER, live) if alpaca else None
    now = market_hours.wall_clock()
    if snapshot and closed_day(now.date(), False, "No snapshot recorded", "the last session's stands"):
        return
    path = ledger.resolve() if ledger else project_path(params.execution.ledger_path)
    if not path.is_file():
        raise BadInputError(f"{path}: ledger not found; pass --ledger with the file `wolfkit execute`, "
                            "`wolfkit intraday` or `wolfkit replay` wrote")
    console.print(f"ledger: {path}", highlight=False, soft_wrap=True)
    with Ledger(path) as book:
        if history:
            print(format_history(daily_history(load_snapshots(book, days=days))), end="")
            return
        broker: Broker | None = None
        key = None
        if kind is not None:
            from wolfkit.broker.alpaca import AlpacaBroker

            broker = AlpacaBroker(paper=kind is BrokerKind.PAPER, timeout=params.execution.request_timeout)
        else:
            sim_path = sim_state or sim_account_path(book)
            if sim_path is not None:
                broker, said = open_sim_account(sim_path, params, now)
                key = sim_account(sim_path)  # the account `execute --broker sim` keyed its rows by
                console.print(said, highlight=False, soft_wrap=True)
        report = collect_status(book, params, broker, run_id=run, now=now, broker_key=key)
        render_status(report, status_console)
        if snapshot:
            snap = report.snapshot(now.date())
            record_snapshot(book, snap)
            console.print(f"snapshot recorded for {snap.session} ({snap.account}): equity ${snap.equity:,.2f}, "
                          f"P&L {'-' if snap.pnl < 0 else '+'}${abs(snap.pnl):,.2f} since the ledger's first fill",
                          highlight=False, soft_wrap=True)


@app.command()
def replay(
    params: Path = ParamsOpt,
    date: str = DateOpt,
    equity: float = typer.Option(100_000.0, "--equity", help="account equity in USD"),
    outputs: Path = typer.Option(Path("outputs"), "--outputs", help="root of the per-day folders"),
) -> None:
    """Replay a full intraday session of both layers through the simulated broker."""
    from wolfkit import calendar
    from wolfkit.config import load_params
    from wolfkit.day_folder import claim_file, day_dir
    from wolfkit.ledger import Ledger
    from wolfkit.replay import replay_session
    from wolfkit.snapshots import record_snapshot
    from wolfkit.status_sources import REPLAY_ACCOUNT, collect_status

    p = load_params(params)
    day = calendar.check_session(calendar.resolve_date(date))
    path = claim_file(day_dir(outputs, day) / "replay.sqlite")  # replay[.N].sqlite: an earlier one is kept
    path.unlink()  # the reservation: SQLite creates its own file in the name
    with Ledger(path, durable=False) as book:
        result = replay_session(p, day, equity, ledger=book)
        end = result.runs["both"].engine.state.now if "both" in result.runs else None
        snap = collect_status(book, p, account=REPLAY_ACCOUNT, now=end).snapshot(day)
        record_snapshot(book, snap)
    print(result.text())
    console.print(f"end-of-day snapshot ({snap.account}, {day}): equity ${snap.equity:,.2f}, P&L directional "
                  f"{snap.pnl_directional:+,.2f}, maxdiff {snap.pnl_maxdiff:+,.2f} USD", highlight=False)
    console.print(f"both-layers state saved: wolfkit status --ledger {path}", highlight=False)


@app.command()
def emulator(port: int = typer.Option(8765, "--port", help="port on 127.0.0.1")) -> None:
    """Serve an Alpaca-compatible paper broker on 127.0.0.1 (backed by the simulated broker)."""
    import errno

    from wolfkit.broker.emulator import run_demo
    from wolfkit.config import Params
    from wolfkit.data import get_provider
    from wolfkit.errors import BadInputError

    if not 0 < port < 65536:
        raise BadInputError(f"--port {port}: use a TCP port between 1 and 65535")
    state = Path("outputs") / "emulator_state.json"
    state.parent.mkdir(parents=True, exist_ok=True)

    def ready(server) -> None:
        console.print(
            f"wolfkit emulator: Alpaca-compatible paper broker on {server.url} (demo market, synthetic prices; "
            f"state in {state}). Point alpaca-py or `wolfkit execute --broker paper` at it with\n"
            f"  export APCA_API_BASE_URL={server.url} APCA_API_DATA_URL={server.url}\n"
            "  export APCA_API_KEY_ID=any APCA_API_SECRET_KEY=any\nCtrl-C stops it.",
            highlight=False, soft_wrap=True,
        )

    try:
        run_demo(port, provider=get_provider(Params()), state_path=state, on_ready=ready)
    except OSError as e:
        if e.errno not in (errno.EADDRINUSE, errno.EACCES):
            raise
        raise BadInputError(f"--port {port}: cannot listen on 127.0.0.1:{port} ({e.strerror}); pick another port") from None
