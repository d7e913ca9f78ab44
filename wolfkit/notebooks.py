"""Notebook runs: papermill into `outputs/<date>/`, an HTML audit report without code, and the
notebook-side run context (`start`) every wolfkit notebook opens with.

Naming (an earlier audit report is never overwritten): the day's first run of a notebook writes
`<kind>.ipynb` and `<kind>.html`; later runs the same day write `<kind>.2.ipynb`, `<kind>.3.ipynb`, …
and their exports carry the same suffix (`orders.2.json`, `opportunities.2.csv`). A run whose cell
fails or times out is kept as `<kind>[.N].failed.ipynb` (+ `.failed.html`) and the call reports a
non-zero status. Every run appends one line to `outputs/<date>/runs.jsonl` (run id, status, files); a
good run that exported an orders file makes it the day's current plan in `latest.json`.

The kernel is always this interpreter (`python3` from the running environment's ipykernel), never a
kernelspec found elsewhere on the machine, so `.venv/bin/wolfkit premarket` works without any global
Jupyter.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from datetime import date, datetime, timezone
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

from wolfkit.config import project_path, project_root
from wolfkit.day_folder import claim_file, current_plan, day_dir, read_manifest, update_manifest
from wolfkit.errors import BadInputError, InfeasibleError, WolfkitError
from wolfkit.runs import ExecutionRun, RunContext, new_run_id

if TYPE_CHECKING:
    from wolfkit.backtest import BacktestResult
    from wolfkit.orders import BuildResult
    from wolfkit.replay import ReplayResult
    from wolfkit.scan import ScanResult
    from wolfkit.widgets import TuningPanel

NOTEBOOKS_DIR = Path(__file__).resolve().parents[1] / "notebooks"
RUN_INDEX = "runs.jsonl"


class RunStatus(StrEnum):
    OK = "ok"
    FAILED = "failed"  # a cell raised
    TIMEOUT = "timeout"  # a cell ran longer than the cell timeout


class NotebookRunError(WolfkitError):
    """A notebook cell failed or timed out; the failed notebook is kept (exit code 1)."""


@dataclass(frozen=True)
class NotebookRun:
    """What one papermill run produced."""

    kind: str
    session: date
    run_id: str
    suffix: str  # "" for the day's first run, ".2" for the second, …
    notebook: Path
    html: Path | None
    status: RunStatus
    error: str | None
    elapsed_s: float
    error_type: str | None = None  # the exception a failed cell raised (its class name)

    def raise_for_status(self) -> NotebookRun:
        """A cell's bad input or infeasible rules keep their exit code (2, 3), as in a plain command; any
        other failure is exit 1."""
        if self.status is not RunStatus.OK:
            raise _CELL_ERRORS.get(self.error_type or "", NotebookRunError)(
                f"{self.kind} notebook {self.status.value}: {self.error}; the executed notebook is kept "
                f"for inspection at {self.notebook}"
                + (f" (report {self.html})" if self.html else "")
            )
        return self


_CELL_ERRORS: dict[str, type[WolfkitError]] = {"BadInputError": BadInputError, "InfeasibleError": InfeasibleError}

NOTEBOOK_COMPANIONS = (".failed.ipynb", ".html", ".failed.html")  # beside `<kind>[.N].ipynb`


def claim_suffix(folder: Path, kind: str) -> str:
    """Reserve the next free run suffix for `kind` in `folder` ("" first, then ".2", ".3", …): the
    day folder's one naming rule (`wolfkit.day_folder.claim_file`), the placeholder notebook its reservation,
    so two runs started at the same moment never share a name."""
    return claim_file(folder / f"{kind}.ipynb", companions=NOTEBOOK_COMPANIONS).name[len(kind):-len(".ipynb")]


# --------------------------------------------------------------------------------------------------
# The runner (papermill).


SHELL_POLL_SECONDS = 0.5


def _kernel_manager_class():
    from queue import Empty

    from jupyter_client.asynchronous import AsyncKernelClient
    from jupyter_client.channels import AsyncZMQSocketChannel
    from jupyter_client.kernelspec import KernelSpecManager
    from jupyter_client.manager import AsyncKernelManager
    from traitlets import Type, default

    class ShortPollChannel(AsyncZMQSocketChannel):
        """Waits for a message in short polls instead of one long one. A cell that builds ipywidgets can
        leave nbclient waiting on the shell channel with kernel and client both idle (jupyter/nbclient
        #312): the reply has arrived but the one long poll never wakes. Polling again sees it."""

        async def get_msg(self, timeout: float | None = None) -> dict[str, Any]:  # type: ignore[override]
            deadline = None if timeout is None else time.monotonic() + timeout
            while True:
                left = SHELL_POLL_SECONDS if deadline is None else max(0.0, deadline - time.monotonic())
                try:
                    return await super().get_msg(timeout=min(SHELL_POLL_SECONDS, left))
                except Empty:
                    if deadline is not None and time.monotonic() >= deadline:
                        raise

    class ShortPollClient(AsyncKernelClient):
        shell_channel_class = Type(ShortPollChannel)

    class ThisPythonKernelManager(AsyncKernelManager):
        """`python3` resolved to this interpreter's ipykernel, ignoring user/system kernelspecs; its
        client polls the shell channel in short steps (see `ShortPollChannel`)."""

        client_factory = Type(ShortPollClient)

        @default("kernel_spec_manager")
        def _default_ksm(self) -> KernelSpecManager:
            return KernelSpecManager(kernel_dirs=[], ensure_native_kernel=True)

    return ThisPythonKernelManager


def export_html(notebook: Path, html: Path) -> Path:
    """Write the audit report: the executed notebook as HTML without code cells or prompts.

    Figures read offline because the notebook itself carries plotly.js (`wolfkit.report.setup`).
    """
    import nbformat
    from nbconvert import HTMLExporter

    from wolfkit.report import RECORD_MIMETYPE

    nb = nbformat.read(notebook, as_version=4)
    for cell in nb.cells:  # recorded values are for machines; the report shows them in prose
        if "outputs" in cell:
            cell.outputs = [o for o in cell.outputs if set(o.get("data", {})) != {RECORD_MIMETYPE}]
    exporter = HTMLExporter(
        template_name="lab", exclude_input=True, exclude_input_prompt=True, exclude_output_prompt=True
    )
    body, _ = exporter.from_notebook_node(nb, resources={"metadata": {"name": notebook.stem}})
    html.write_text(body, encoding="utf-8")
    return html


def _mark_timeout(notebook: Path, message: str) -> None:
    """Papermill saves a timed-out notebook without an error output; add one where it stopped."""
    import nbformat

    nb = nbformat.read(notebook, as_version=4)
    started = [c for c in nb.cells if c.cell_type == "code"
               and c.get("metadata", {}).get("papermill", {}).get("status", "pending") != "pending"]
    if started:  # the cell that was running when the clock ran out is the last one started
        cell = started[-1]
        cell.metadata.papermill["status"] = "failed"
        cell.outputs.append(
            nbformat.v4.new_output("error", ename="CellTimeoutError", evalue=message, traceback=[message])
        )
    nb.metadata.setdefault("papermill", {})["exception"] = True
    nbformat.write(nb, notebook)


def _stamp(notebook: Path, meta: dict[str, Any]) -> None:
    """Record the run's identity in the notebook metadata (`metadata.wolfkit`)."""
    import nbformat

    nb = nbformat.read(notebook, as_version=4)
    nb.metadata["wolfkit"] = meta
    nbformat.write(nb, notebook)


def run_notebook(
    kind: str,
    session: date,
    parameters: dict[str, Any],
    outputs_dir: str | Path,
    *,
    notebook: str | Path | None = None,
    cell_timeout: float | None = 600.0,
) -> NotebookRun:
    """Execute `notebooks/<kind>.ipynb` (or `notebook`) with papermill into `outputs_dir/<session>/`.

    Adds `run_id`, `run_suffix` and `outputs_dir` to `parameters`. Never raises for a failing cell or a
    timeout: the result says so (`raise_for_status()` turns it into exit code 1) and the executed
    notebook is kept as `<kind>[.N].failed.ipynb`. The kernel runs in the project root (the folder
    holding `parameters/`, found from the working directory).
    """
    import papermill as pm
    from nbclient.exceptions import CellTimeoutError, DeadKernelError

    import wolfkit

    source = Path(notebook) if notebook else NOTEBOOKS_DIR / f"{kind}.ipynb"
    if not source.is_file():
        raise BadInputError(f"{source}: notebook not found; pass an existing .ipynb (see notebooks/)")
    outputs_dir = Path(outputs_dir).resolve()
    folder = day_dir(outputs_dir, session)
    sfx = claim_suffix(folder, kind)
    run_id = new_run_id(kind, session)
    out_nb = folder / f"{kind}{sfx}.ipynb"
    params = {**parameters, "run_id": run_id, "run_suffix": sfx, "outputs_dir": str(outputs_dir)}
    _refuse_secret_parameters(params)
    started = datetime.now(timezone.utc)
    t0 = time.perf_counter()
    status, error, error_type = RunStatus.OK, None, None
    from wolfkit.widgets import HEADLESS_ENV

    headless_before = os.environ.get(HEADLESS_ENV)
    os.environ[HEADLESS_ENV] = "1"  # the kernel inherits it: widgets render their static preview (no front end)
    try:
        pm.execute_notebook(
            str(source),
            str(out_nb),
            parameters=params,
            kernel_name="python3",
            kernel_manager_class=_kernel_manager_class(),
            extra_arguments=["--IPKernelApp.log_level=ERROR"],  # no transport chatter in cron mail
            execution_timeout=cell_timeout,
            cwd=str(project_root()),
            progress_bar=False,
            report_mode=False,
        )
    except CellTimeoutError:
        status, error = RunStatus.TIMEOUT, f"a cell ran longer than the cell timeout of {cell_timeout:g} s"
        if out_nb.stat().st_size:
            _mark_timeout(out_nb, error)
    except pm.PapermillExecutionError as e:
        status, error, error_type = RunStatus.FAILED, f"cell {e.exec_count} raised {e.ename}: {e.evalue}", e.ename
    except DeadKernelError:
        status, error = RunStatus.FAILED, "the kernel died (out of memory or killed)"
    except BaseException:
        if not out_nb.stat().st_size:  # nothing ran (e.g. no kernel): give the reserved name back
            out_nb.unlink()
        raise
    finally:
        if headless_before is None:
            os.environ.pop(HEADLESS_ENV, None)
        else:
            os.environ[HEADLESS_ENV] = headless_before
    elapsed = time.perf_counter() - t0
    meta = {
        "kind": kind,
        "run_id": run_id,
        "session": session.isoformat(),
        "suffix": sfx,
        "status": status.value,
        "error": error,
        "wolfkit_version": wolfkit.__version__,
        "started_at": started.isoformat(),
        "elapsed_s": round(elapsed, 3),
    }
    if out_nb.stat().st_size:
        _stamp(out_nb, meta)
    if status is not RunStatus.OK:
        kept = out_nb.with_name(f"{kind}{sfx}.failed.ipynb")
        out_nb.replace(kept)
        out_nb = kept
    out_html = export_html(out_nb, out_nb.with_suffix(".html")) if out_nb.stat().st_size else None
    result = NotebookRun(kind, session, run_id, sfx, out_nb, out_html, status, error, elapsed, error_type)
    _append_index(folder, meta, result)
    if status is RunStatus.OK:
        _record_plan(result, folder)
    return result


def _record_plan(run: NotebookRun, folder: Path) -> None:
    """The plan this run exported (`export_premarket` made it current) gets its audit report in the manifest."""
    m = read_manifest(folder)
    if m is not None and m.run_id == run.run_id:
        update_manifest(folder, run.session, notebook=run.notebook, html=run.html)


def _append_index(folder: Path, meta: dict[str, Any], run: NotebookRun) -> None:
    line = {**meta, "notebook": run.notebook.name, "html": run.html.name if run.html else None}
    with open(folder / RUN_INDEX, "a", encoding="utf-8") as f:
        f.write(json.dumps(line) + "\n")


def read_index(folder: str | Path) -> list[dict[str, Any]]:
    """The day's run log (`runs.jsonl`), oldest first."""
    p = Path(folder) / RUN_INDEX
    if not p.is_file():
        return []
    return [json.loads(line) for line in p.read_text(encoding="utf-8").splitlines() if line.strip()]


# --------------------------------------------------------------------------------------------------
# The notebook side: the first code cell of every wolfkit notebook.


def start(
    kind: str,
    run_date: str = "latest",
    params_file: str = "parameters/demo.yaml",
    outputs_dir: str = "outputs",
    run_id: str = "",
    run_suffix: str = "",
    force: bool = False,
    show: bool = True,
    **shown: Any,
) -> RunContext:
    """Open a notebook run: load and validate the parameters, resolve the session, show the header.

    A date that is not a trading day stops here unless `force` (the runner checks this before it
    starts a kernel; this guards notebooks run by hand or by another scheduler). `shown` are further
    notebook parameters to list in the header (e.g. equity).
    """
    from wolfkit import calendar, report
    from wolfkit.config import load_params

    path = project_path(params_file)
    params = load_params(path)
    session = calendar.resolve_date(run_date)
    if not calendar.is_trading_day(session) and not force:
        raise BadInputError(
            f"{session} is not a trading day (weekend or NYSE holiday); the next session is "
            f"{calendar.next_session(session)}. Use force=True (CLI: --force) to run anyway."
        )
    ctx = RunContext(
        kind=kind,
        session=session,
        params_path=path,
        params=params,
        run_id=run_id or new_run_id(kind, session),
        suffix=run_suffix,
        outputs_dir=project_path(outputs_dir),
        forced=not calendar.is_trading_day(session),
        extra=dict(shown),
    )
    if show:
        report.setup()
        report.header(ctx)
    return ctx


def notebook_parameters(
    kind: str, params_file: str | Path, session: date, outputs_dir: str | Path, **extra: Any
) -> dict[str, Any]:
    """The papermill parameters for `notebooks/<kind>.ipynb` (never secrets: they land in the audit).

    Paths are made absolute so the kernel's working directory does not matter.
    """
    values: dict[str, Any] = {"run_date": session.isoformat(), "params_file": str(Path(params_file).resolve())}
    values.update({k: v for k, v in extra.items() if v is not None})
    return values


def _refuse_secret_parameters(parameters: dict[str, Any]) -> None:
    """Refuse to write a key or secret into an audit notebook as a parameter."""
    values = {str(v) for v in parameters.values()}
    for name in ("APCA_API_KEY_ID", "APCA_API_SECRET_KEY"):
        secret = os.environ.get(name)
        if secret and secret in values:
            raise BadInputError(f"a notebook parameter equals ${name}; keys come from the environment only")


def scan(ctx: RunContext) -> ScanResult:
    """Run the day's scan (`wolfkit.scan.run_scan`) on the provider the parameters name."""
    from wolfkit.scan import run_scan

    return run_scan(ctx.params, ctx.session)


def build(ctx: RunContext, scan_result: ScanResult, equity: float, buying_power: float = 0.0,
          broker: str = "") -> BuildResult:
    """Build the day's pack and order plan (`wolfkit.orders.build_order_plan`) under this run's id.

    `buying_power` 0 means none given: the parameters' account (`leverage.buying_power_multiple` x
    equity, as `wolfkit build` without --buying-power); above equity is a margin account, at or below
    equity a cash account. `broker` (sim | paper | live; empty: none) sizes the pack against what that
    account holds (`wolfkit.holdings.read_holdings`; the simulated account is the day folder's).
    """
    from wolfkit.calibration import for_build
    from wolfkit.learn import tilt_for_build
    from wolfkit.orders import build_order_plan

    holdings = None
    if broker:
        from wolfkit.holdings import read_holdings

        holdings = read_holdings(broker, ctx.params, ctx.day_dir)
    params, tilt = tilt_for_build(ctx.params, ctx.session)  # `portfolio.sector_tilt`: the ledger's record
    return build_order_plan(
        scan_result.opportunities, params, equity=equity, buying_power=buying_power or None,
        as_of=ctx.session, run_id=ctx.run_id, synthetic=bool(scan_result.synthetic), holdings=holdings,
        calibration=for_build(params, ctx.session), notes=(tilt,) if tilt else (),
    )


def export_premarket(ctx: RunContext, scan_result: ScanResult, build_result: BuildResult) -> dict[str, Any]:
    """Write `opportunities<suffix>.csv` (+ excluded) and `orders<suffix>.json` into the day folder, and
    make the plan the day's current one (`latest.json`; the runner adds the notebook and its HTML)."""
    from wolfkit import report
    from wolfkit.orders import write_orders
    from wolfkit.scan import SCAN_COMPANIONS, write_scan

    paths: dict[str, Any] = {
        "opportunities": write_scan(scan_result, ctx.export_path("opportunities.csv", SCAN_COMPANIONS)),
        "orders": write_orders(build_result.plan, ctx.export_path("orders.json")),
    }
    update_manifest(ctx.day_dir, ctx.session, orders=paths["orders"], opportunities=paths["opportunities"][0],
                    notebook=None, html=None, run_id=ctx.run_id, command=ctx.kind)
    report.exports(paths)
    return paths


def tuning_panel(
    ctx: RunContext, scan_result: ScanResult, equity: float, buying_power: float = 0.0, save_dir: str = "parameters"
) -> TuningPanel:
    """The tuning panel over the day's opportunities (`wolfkit.widgets.TuningPanel`), its first preview
    recorded; `buying_power` 0 means none given, as in `build`."""
    from wolfkit import report
    from wolfkit.calibration import for_build
    from wolfkit.widgets import TuningPanel

    panel = TuningPanel(
        ctx.params, scan_result.opportunities, equity, buying_power or None, ctx.session,
        base_path=ctx.params_path, save_dir=project_path(save_dir), synthetic=bool(scan_result.synthetic),
        calibration=for_build(ctx.params, ctx.session),
    )
    report.record("tune_preview", panel.summary())
    report.record("tune_controls", sorted(panel.controls))
    return panel


def replay(ctx: RunContext, equity: float, orders_file: str = "") -> ReplayResult:
    """Replay the session both ways (`wolfkit.replay.replay_session`), from an orders file when given."""
    from wolfkit.replay import replay_session

    plan = None
    if orders_file:
        from wolfkit.orders import read_orders

        plan = read_orders(project_path(orders_file))
    return replay_session(ctx.params, ctx.session, equity, plan=plan)


BACKTEST_DEFAULT_SESSIONS = 42  # about two months: the notebook's window when no start is given


@dataclass(frozen=True)
class BacktestRun:
    """A backtest run from the notebook: the engine's result, its tear sheet, the runs it is compared with."""

    result: BacktestResult
    report: Path
    compare: list[Path]

    @property
    def out_dir(self) -> Path:
        """The backtest folder (the tear sheet is written in it)."""
        return self.report.parent


def backtest(
    ctx: RunContext, start: str = "", end: str = "", method: str = "", layers: str = "both", equity: float = 0.0,
    out: str = "", compare: str = "",
) -> BacktestRun:
    """Run the backtest (`wolfkit.backtest.run_backtest`) and write its tear sheet (`report.html`).

    Empty `end`: the last session before the run date; empty `start`: the 42 sessions (about two months)
    ending at `end`. Empty `out`: `<outputs_dir>/backtests/<run id>/`. `compare`: another backtest folder
    overlaid in the tear sheet (e.g. the same window with `layers="directional"`).
    """
    from wolfkit import calendar, report, tearsheet
    from wolfkit.backtest import run_backtest

    last = calendar.resolve_date(end) if end else calendar.previous_session(ctx.session)
    first = calendar.resolve_date(start) if start else calendar.sessions_ending(last, BACKTEST_DEFAULT_SESSIONS)[0]
    if first > last:
        raise BadInputError(f"backtest window: start {first} is after end {last}; pass start <= end (YYYY-MM-DD)")
    out_dir = project_path(out) if out else ctx.outputs_dir / "backtests" / ctx.run_id
    others = [project_path(compare)] if compare else []
    result = run_backtest(ctx.params, first, last, out_dir, method=method or None, layers=layers,
                          equity=equity or None, progress=True)
    assert result.out_dir is not None  # run_backtest always writes its folder
    page = tearsheet.write_report(result.out_dir, compare=others)
    report.record("backtest_window_asked", {"start": first, "end": last})
    report.record("backtest_report", page)
    return BacktestRun(result, page, others)


def execute(ctx: RunContext, orders_file: str = "", broker: str = "", live: bool = False,
            session_override: str = "") -> ExecutionRun:
    """Execute an orders file (default: the current plan the day folder's `latest.json` names; the
    file used is printed and recorded) exactly as `wolfkit execute` does: the session rule first (`wolfkit.market_hours`; `session_override` is the reason to send
    outside the plan's session anyway, recorded in the ledger), then `wolfkit.execute.execute_orders_file`.
    Live trading needs `live` and `execution.broker: live`."""
    from wolfkit import market_hours
    from wolfkit.execute import execute_orders_file
    from wolfkit.orders import read_orders

    path = project_path(orders_file) if orders_file else current_plan(ctx.day_dir)
    print(f"orders file: {path}" + ("" if orders_file else " (the current plan in the day folder's latest.json)"))
    from wolfkit.report import record

    record("orders_file", str(path))
    plan = read_orders(path)
    override = market_hours.clear_to_send(path, plan, market_hours.wall_clock(), session_override or None)
    if override is not None:
        print(f"warning: {override.message()}")
    report, log = execute_orders_file(path, ctx.params, broker or None, live, override=override)
    return ExecutionRun(plan, report, project_path(ctx.params.execution.ledger_path), log)
