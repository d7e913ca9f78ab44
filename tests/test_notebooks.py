"""The notebook runner and the committed notebooks.

- every notebook: one tagged, typed, commented parameters cell; no outputs or execution counts in git;
  no key or secret as a parameter;
- each notebook executed by papermill on the demo market with canary keys in the environment, and the
  values it recorded checked; no canary anywhere under the outputs folder;
- a failing cell and a timed-out cell: non-zero status, the failed notebook kept;
- re-running a day never overwrites an earlier audit report;
- weekend/holiday: the pre-market job says so and exits 0 without orders;
- `pytest --nbval-lax` over the notebooks (parameterised copies, small parameters) as a smoke check.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import nbformat
import papermill as pm
import pytest

import wolfkit
from wolfkit import calendar
from wolfkit import notebooks as nbr
from wolfkit.cli import main
from wolfkit.config import load_params
from wolfkit.day_folder import claim_file
from wolfkit.report import read_records

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
SESSION = calendar.latest_session(calendar.today_ny())  # fresh enough for the executor's plan-age check
CANARY_KEY = "CANARYKEYID7f3a9c"
CANARY_SECRET = "CANARYSECRETb41e2d"
SECRET_WORDS = ("key", "secret", "token", "password")
ORDER = ["premarket"] + sorted(p.stem for p in NOTEBOOKS if p.stem != "premarket")

pytestmark = pytest.mark.slow


def _tiny(path: Path, body: str) -> Path:
    nb = nbformat.v4.new_notebook()
    p = nbformat.v4.new_code_cell('x: int = 1  # a number\nrun_id: str = ""  # set by the runner\n'
                                  'run_suffix: str = ""  # set by the runner\noutputs_dir: str = ""  # set by the runner')
    p.metadata["tags"] = ["parameters"]
    nb.cells = [p, nbformat.v4.new_code_cell(body)]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)
    return path


# ---------------------------------------------------------------------------------------- structure


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_has_typed_parameters_cell_and_no_outputs(path):
    nb = nbformat.read(path, as_version=4)
    tagged = [c for c in nb.cells if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(tagged) == 1, f"{path.name}: exactly one cell tagged 'parameters'"
    inferred = pm.inspect_notebook(str(path))
    assert {"run_id", "run_suffix", "outputs_dir"} <= set(inferred), "the runner's parameters are declared"
    for name, spec in inferred.items():
        assert spec["inferred_type_name"] not in ("None", ""), f"{path.name}: {name} has no type annotation"
        assert spec["help"].strip(), f"{path.name}: {name} has no comment explaining it"
        assert not any(w in name.lower() for w in SECRET_WORDS), f"{path.name}: {name} looks like a secret"
    for c in nb.cells:
        if c.cell_type == "code":
            assert c.outputs == [] and c.execution_count is None, f"{path.name}: committed outputs"
            lines = [ln for ln in c.source.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
            assert len(lines) <= 12, f"{path.name}: a code cell holds logic; move it into wolfkit"
    assert nb.metadata["kernelspec"]["name"] == "python3"


def test_four_notebooks_exist():
    assert {p.stem for p in NOTEBOOKS} >= {"premarket", "execute", "tune"}


# --------------------------------------------------------------------------------- the runner


def test_failing_cell_gives_nonzero_status_and_keeps_the_notebook(tmp_path):
    src = _tiny(tmp_path / "boom.ipynb", "raise ValueError('boom at cell two')")
    run = nbr.run_notebook("boom", SESSION, {"x": 2}, tmp_path / "out", notebook=src)
    assert run.status is nbr.RunStatus.FAILED and "boom at cell two" in run.error
    assert run.notebook.name == "boom.failed.ipynb" and run.notebook.is_file()
    assert not (run.notebook.parent / "boom.ipynb").exists()
    kept = nbformat.read(run.notebook, as_version=4)
    assert any(o.get("ename") == "ValueError" for c in kept.cells for o in c.get("outputs", []))
    assert kept.metadata["wolfkit"]["status"] == "failed"
    with pytest.raises(nbr.NotebookRunError) as e:
        run.raise_for_status()
    assert e.value.exit_code == 1 and str(run.notebook) in str(e.value)


def test_timeout_gives_nonzero_status_and_keeps_the_notebook(tmp_path):
    src = _tiny(tmp_path / "slow.ipynb", "import time\ntime.sleep(60)")
    run = nbr.run_notebook("slow", SESSION, {}, tmp_path / "out", notebook=src, cell_timeout=2)
    assert run.status is nbr.RunStatus.TIMEOUT and run.elapsed_s < 30
    assert run.notebook.name == "slow.failed.ipynb"
    kept = nbformat.read(run.notebook, as_version=4)
    errs = [o for c in kept.cells for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert errs and errs[-1]["ename"] == "CellTimeoutError" and "2 s" in errs[-1]["evalue"]
    assert run.html is not None and run.html.is_file()
    with pytest.raises(nbr.NotebookRunError):
        run.raise_for_status()


def test_rerun_same_day_never_overwrites_and_kernel_is_this_interpreter(tmp_path):
    src = _tiny(tmp_path / "ok.ipynb",
                "import sys\nfrom wolfkit import report\nreport.record('python', sys.executable)\nreport.record('x', x)")
    out = tmp_path / "out"
    first = nbr.run_notebook("ok", SESSION, {"x": 1}, out, notebook=src)
    digest = hashlib.sha256(first.notebook.read_bytes()).hexdigest()
    nbr.run_notebook("boom", SESSION, {}, out, notebook=_tiny(tmp_path / "boom.ipynb", "1/0"))
    second = nbr.run_notebook("ok", SESSION, {"x": 2}, out, notebook=src)
    assert (first.notebook.name, second.notebook.name) == ("ok.ipynb", "ok.2.ipynb")
    assert (first.html.name, second.html.name) == ("ok.html", "ok.2.html")
    assert hashlib.sha256(first.notebook.read_bytes()).hexdigest() == digest
    assert read_records(first.notebook)["x"] == 1 and read_records(second.notebook)["x"] == 2
    assert Path(read_records(first.notebook)["python"]).resolve() == Path(sys.executable).resolve()
    index = nbr.read_index(out / SESSION.isoformat())
    assert [r["notebook"] for r in index] == ["ok.ipynb", "boom.failed.ipynb", "ok.2.ipynb"]
    assert len({r["run_id"] for r in index}) == 3 and [r["status"] for r in index] == ["ok", "failed", "ok"]
    # a failed run's number is taken too: the next run of boom is boom.2
    assert nbr.claim_suffix(out / SESSION.isoformat(), "boom") == ".2"


def test_claim_file_and_claim_suffix(tmp_path):
    (tmp_path / "orders.json").write_text("{}")
    (tmp_path / "orders.2.json").write_text("{}")
    assert claim_file(tmp_path / "orders.json").name == "orders.3.json"
    assert claim_file(tmp_path / "new.csv").name == "new.csv"
    assert [nbr.claim_suffix(tmp_path, "k") for _ in range(3)] == ["", ".2", ".3"]


def test_missing_notebook_is_bad_input(tmp_path):
    with pytest.raises(wolfkit.errors.BadInputError, match="notebook not found"):
        nbr.run_notebook("x", SESSION, {}, tmp_path, notebook=tmp_path / "nope.ipynb")


def test_secret_as_parameter_is_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("APCA_API_SECRET_KEY", CANARY_SECRET)
    src = _tiny(tmp_path / "ok.ipynb", "x")
    with pytest.raises(wolfkit.errors.BadInputError, match="environment only"):
        nbr.run_notebook("ok", SESSION, {"x": CANARY_SECRET}, tmp_path / "out", notebook=src)


@pytest.mark.parametrize("day,why", [("2026-11-21", "weekend"), ("2026-11-26", "holiday")])
def test_premarket_on_a_closed_day_says_so_and_exits_0(tmp_path, capsys, day, why):
    rc = main(["premarket", "--params", str(ROOT / "parameters/demo.yaml"), "--date", day, "--outputs", str(tmp_path)])
    out = capsys.readouterr().out
    assert rc == 0 and "not a trading day" in out and why in out and "--force" in out
    assert not any(tmp_path.iterdir()), "no notebook, no orders on a closed day"


def test_premarket_bad_data_in_a_cell_exits_2_and_keeps_notebook(tmp_path, capsys):
    # valid parameters whose data files exist (missing ones are exit 2 before a kernel starts) but hold no
    # bars: the scan cell fails with the data's bad input, which keeps its exit code 2 through the notebook
    (tmp_path / "bars.csv").write_text("symbol,date,close\n")
    (tmp_path / "uni.csv").write_text("symbol,sector,market_cap\nAAPL,Information Technology,3e12\n")
    bad = tmp_path / "bad.yaml"
    bad.write_text(f"extends: {ROOT / 'parameters/demo.yaml'}\ndata:\n  source: csv\n"
                   f"  bars_path: {tmp_path / 'bars.csv'}\n  universe_path: {tmp_path / 'uni.csv'}\n")
    rc = main(["premarket", "--params", str(bad), "--date", SESSION.isoformat(), "--outputs", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert rc == 2 and "failed" in err and "BadInputError" in err and "bars.csv" in err, err
    assert (tmp_path / "out" / SESSION.isoformat() / "premarket.failed.ipynb").is_file()


def test_a_failed_cell_keeps_the_exit_code_of_its_error(tmp_path):
    from wolfkit.errors import BadInputError, InfeasibleError

    def run(error_type):
        return nbr.NotebookRun("premarket", SESSION, "r", "", tmp_path / "p.failed.ipynb", None, nbr.RunStatus.FAILED,
                               f"cell 3 raised {error_type}: boom", 1.0, error_type)
    for error_type, cls, code in (("BadInputError", BadInputError, 2), ("InfeasibleError", InfeasibleError, 3),
                                  ("ValueError", nbr.NotebookRunError, 1), (None, nbr.NotebookRunError, 1)):
        with pytest.raises(cls) as e:
            run(error_type).raise_for_status()
        assert type(e.value) is cls and e.value.exit_code == code and "kept for inspection" in str(e.value)


# ----------------------------------------------------------------- every notebook, end to end


def _tiny_grid(out: Path) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    (out / "grid.yaml").write_text("portfolio.sector_cap: [0.25, 0.4]\n")
    return out / "grid.yaml"


def _parameters(kind: str, params: Path, out: Path) -> dict:
    """Small demo parameters: tuning saves into the outputs folder, replay reuses the pre-market plan."""
    extra = {"tune": {"save_dir": str(out / "saved")},
             "replay": {"orders_file": str(out / SESSION.isoformat() / "orders.json")},
             "sweep": {"grid_file": str(_tiny_grid(out)), "start": calendar.sessions_ending(SESSION, 6)[0].isoformat(),
                       "workers": 1},
             # the kernel checks the session rule on the wall clock: the suite runs at any hour, deliberately
             "execute": {"session_override": "test suite: runs at any hour"}}
    return nbr.notebook_parameters(kind, params, SESSION, out, **extra.get(kind, {}))


@pytest.fixture(scope="module")
def executed(tmp_path_factory):
    """Run every notebook once on the demo market with canary keys in the environment; the ledger and
    every output go to a temporary outputs folder."""
    out = tmp_path_factory.mktemp("outputs")
    params = out.parent / "params.yaml"
    params.write_text(f"extends: {ROOT / 'parameters/demo.yaml'}\nexecution:\n  ledger_path: {out / 'ledger.sqlite'}\n")
    saved = {k: os.environ.get(k) for k in ("APCA_API_KEY_ID", "APCA_API_SECRET_KEY")}
    os.environ["APCA_API_KEY_ID"], os.environ["APCA_API_SECRET_KEY"] = CANARY_KEY, CANARY_SECRET
    try:
        runs = {}
        for kind in ORDER:  # premarket first: execute and replay read its orders.json
            runs[kind] = nbr.run_notebook(kind, SESSION, _parameters(kind, params, out), out)
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    return out, runs, params


def test_every_notebook_runs_and_records_identity(executed):
    _, runs, params = executed
    digest = load_params(params).digest()
    for kind, run in runs.items():
        assert run.status is nbr.RunStatus.OK, f"{kind}: {run.error}"
        rec = read_records(run.notebook)
        assert rec["wolfkit_version"] == wolfkit.__version__
        assert rec["params_digest"] == digest
        assert rec["run_id"] == run.run_id == nbformat.read(run.notebook, 4).metadata["wolfkit"]["run_id"]
        assert rec["synthetic"] is True


def test_premarket_records_and_exports(executed):
    from wolfkit.orders import read_orders

    out, runs, _ = executed
    run = runs["premarket"]
    rec = read_records(run.notebook)
    assert rec["session"] == SESSION.isoformat() and rec["data_fresh"]
    assert rec["data_through"] == calendar.previous_session(SESSION).isoformat()
    assert rec["scanned"] == rec["scored"] + rec["excluded"] > 100
    assert rec["top_scores"] == sorted(rec["top_scores"], reverse=True) and len(rec["top_symbols"]) == 15
    p = load_params(ROOT / "parameters/demo.yaml").portfolio
    assert p.min_positions <= rec["positions"] <= p.max_positions
    assert abs(rec["allocation"] - (1 - p.cash_reserve)) < 1e-6
    assert rec["sectors_within_caps"] and rec["orders_within_buying_power"]
    assert rec["leverage"]["directional"] <= 1.3 + 1e-9
    plan = read_orders(rec["exports"]["orders"])
    assert plan.run_id == run.run_id and plan.as_of == SESSION and plan.synthetic_prices
    assert len(plan.orders) == rec["orders"] and {o.symbol for o in plan.orders} >= set(rec["pack_symbols"])
    opp = Path(rec["exports"]["opportunities"][0])
    assert opp.parent == out / SESSION.isoformat() and opp.name == "opportunities.csv"
    assert opp.read_text().splitlines()[0].startswith("symbol,")
    # the risk section: the pack's daily volatility and a 1-day VaR from the lookback's returns
    assert 0 < rec["risk_daily_vol"] < 0.2 and 0 < rec["risk_var_parametric"] < 0.5
    assert rec["risk_var_historical"] > 0


def test_premarket_html_reads_offline_without_code(executed):
    _, runs, _ = executed
    html = runs["premarket"].html.read_text()
    from wolfkit.data.demo import SYNTHETIC_NOTICE

    assert SYNTHETIC_NOTICE in html
    assert "notebooks.start(" not in html and "report.pack(" not in html, "code cells are excluded"
    assert html.count("Plotly.newPlot") >= 5, "the charts are in the report"
    assert "window.__wkDefine" in html and "plotly.js v" in html, "plotly.js is embedded"
    assert 'src="https://cdn.plot.ly' not in html and "plotly_mimetype" not in html, "no CDN plotly"
    assert "application/vnd.wolfkit.record+json" not in html
    assert "estimated cost $" in html, "dollar amounts are text, not LaTeX math"


def test_no_canary_anywhere_under_outputs(executed):
    out, _, _ = executed
    files = [p for p in out.rglob("*") if p.is_file()]
    assert len(files) >= 6
    for p in files:
        data = p.read_bytes()
        for canary in (CANARY_KEY, CANARY_SECRET):
            assert canary.encode() not in data, f"{canary} leaked into {p}"


def test_premarket_cli_rerun_keeps_the_earlier_report(executed, capsys):
    """`wolfkit premarket` a second time the same day: exit 0, a `.2` report and exports, run 1 untouched."""
    out, runs, params = executed
    day = out / SESSION.isoformat()
    before = {p.name: hashlib.sha256(p.read_bytes()).hexdigest()
              for p in (day / "premarket.ipynb", day / "premarket.html", day / "orders.json", day / "opportunities.csv")}
    rc = main(["premarket", "--params", str(params), "--date", SESSION.isoformat(), "--outputs", str(out)])
    printed = capsys.readouterr().out
    assert rc == 0 and "already had a pre-market report" in printed and "premarket.2.ipynb" in printed
    assert {n: hashlib.sha256((day / n).read_bytes()).hexdigest() for n in before} == before
    rec = read_records(day / "premarket.2.ipynb")
    assert rec["exports"]["orders"] == str(day / "orders.2.json") and (day / "opportunities.2.csv").is_file()
    assert rec["run_id"] != runs["premarket"].run_id and str(day / "orders.2.json") in printed
    assert [r["notebook"] for r in nbr.read_index(day) if r["kind"] == "premarket"] == ["premarket.ipynb", "premarket.2.ipynb"]


# ------------------------------------------------------------------------------- nbval smoke


def test_nbval_lax_smoke(tmp_path):
    """`pytest --nbval-lax` over parameterised copies of every notebook (small outputs in tmp)."""
    from papermill.iorw import load_notebook_node
    from papermill.parameterize import parameterize_notebook

    out = tmp_path / "outputs"
    params = tmp_path / "params.yaml"
    params.write_text(f"extends: {ROOT / 'parameters/demo.yaml'}\nexecution:\n  ledger_path: {out / 'ledger.sqlite'}\n")
    for kind in ORDER:
        values = {**_parameters(kind, params, out), "outputs_dir": str(out)}
        nb = parameterize_notebook(load_notebook_node(str(ROOT / "notebooks" / f"{kind}.ipynb")), values)
        nbformat.write(nb, tmp_path / f"{kind}.ipynb")
    res = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--nbval-lax",
         "--nbval-kernel-name", "python3", *[str(tmp_path / f"{k}.ipynb") for k in ORDER]],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
    )
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-2000:]
    assert "passed" in res.stdout and "failed" not in res.stdout.splitlines()[-1]


def test_execute_records(executed):
    from wolfkit.orders import read_orders

    out, runs, _ = executed
    rec = read_records(runs["execute"].notebook)
    plan = read_orders(out / SESSION.isoformat() / "orders.json")
    assert rec["orders_file"] == str(out / SESSION.isoformat() / "orders.json")  # the plan latest.json names
    assert rec["exec_planned"] == len(plan.orders) and rec["exec_execution"] == 1
    assert rec["exec_accepted"] == rec["exec_planned"] and rec["exec_unresolved"] == 0
    assert rec["exec_deployed_pct"] >= 0.9 and rec["ledger_status"] == "done"
    assert (out / "ledger.sqlite").is_file() and (out / SESSION.isoformat() / "execution_log.json").is_file()
    assert rec["ledger_events"].get("intent", 0) >= len(plan.orders)


def test_tune_and_replay_records(executed):
    _, runs, params = executed
    tune = read_records(runs["tune"].notebook)
    p = load_params(params).portfolio
    assert tune["tune_preview"]["error"] is None
    page = runs["tune"].html.read_text(encoding="utf-8")  # no front end under papermill: the static preview
    assert "Static preview" in page and "The packed portfolio" in page
    shown = [k for c in nbformat.read(runs["tune"].notebook, as_version=4).cells for o in c.get("outputs", [])
             for k in o.get("data", {})]
    assert "application/vnd.jupyter.widget-view+json" not in shown, "no widget view waits for a front end"
    assert page.count('class="plotly-graph-div"') == 3 and "Sector weight vs cap" in page
    assert p.min_positions <= tune["tune_preview"]["positions"] <= p.max_positions
    assert {"sector_cap", "method", "directional_max", "time_shares.0"} <= set(tune["tune_controls"])
    rep = read_records(runs["replay"].notebook)
    cmp = rep["replay_comparison"]
    assert set(cmp) == {"directional", "both"}
    assert cmp["both"]["mean leverage (x)"] >= cmp["directional"]["mean leverage (x)"]
    assert rep["replay_fills"] > 0
