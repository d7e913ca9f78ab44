"""Parameter sweeps on the demo market: the grid file's checks, one row per configuration that equals the
backtest of that configuration, the same rows in this process, in local processes and on a
`dask.distributed.LocalCluster`, the train/test choice, and the command line."""

from __future__ import annotations

import json
from concurrent.futures import ProcessPoolExecutor
from contextlib import ExitStack
from pathlib import Path

import pandas as pd
import pytest

from wolfkit import calendar, sweep
from wolfkit.backtest import run_backtest
from wolfkit.cli import main
from wolfkit.config import load_params
from wolfkit.errors import BadInputError

ROOT = Path(__file__).resolve().parents[1]
PARAMS = ROOT / "parameters/demo.yaml"
END = calendar.previous_session(calendar.latest_session(calendar.today_ny()))
START = calendar.sessions_ending(END, 8)[0]
GRID = "portfolio.sector_cap: [0.25, 0.4]\nleverage.buying_power_multiple: [1.0, 2.0]\n"


def grid_file(tmp_path: Path, text: str = GRID) -> Path:
    p = tmp_path / "grid.yaml"
    p.write_text(text)
    return p


@pytest.fixture(scope="module")
def params():
    return load_params(PARAMS)


@pytest.fixture(scope="module")
def in_process(params, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("sweep")
    grid = sweep.load_grid(grid_file(tmp), params)
    return grid, sweep.run_sweep(params, grid, START, END, tmp / "one")


def comparable(table: pd.DataFrame) -> pd.DataFrame:
    return table.drop(columns=["folder"])


@pytest.mark.parametrize("text, needle", [
    ("portfolio.sektor_cap: [0.2]\n", "'sektor_cap' is unknown"),
    ("portfolio: [0.2]\n", "names a whole section"),
    ("portfolio.sector_cap: 0.2\n", "non-empty list"),
    ("portfolio.sector_cap: []\n", "non-empty list"),
    ("portfolio.sector_cap: [0.2, 1.5]\n", "value 1.5 gives invalid parameters"),
    ("portfolio.sector_cap: [0.2, 0.2]\n", "listed twice"),
    ("portfolio.sector_cap: [0.2]\nportfolio.sector_cap: [0.3]\n", "duplicate key"),
    ("", "expected a mapping"),
])
def test_grid_file_errors_name_the_file_key_and_fix(tmp_path, params, text, needle):
    path = grid_file(tmp_path, text)
    with pytest.raises(BadInputError) as e:
        sweep.load_grid(path, params)
    assert str(path) in str(e.value) and needle in str(e.value)


def test_configurations_are_the_product_in_file_order(tmp_path, params):
    grid = sweep.load_grid(grid_file(tmp_path), params)
    assert grid.configurations() == [
        {"portfolio.sector_cap": 0.25, "leverage.buying_power_multiple": 1.0},
        {"portfolio.sector_cap": 0.25, "leverage.buying_power_multiple": 2.0},
        {"portfolio.sector_cap": 0.4, "leverage.buying_power_multiple": 1.0},
        {"portfolio.sector_cap": 0.4, "leverage.buying_power_multiple": 2.0},
    ]
    assert sweep.nested({"a.b": 1, "a.c.d": 2}) == {"a": {"b": 1, "c": {"d": 2}}}


def test_each_row_is_the_backtest_of_its_configuration(in_process, params, tmp_path):
    grid, result = in_process
    table = result.table
    assert list(table.columns[:6]) == ["config", "window", "start", "end", "sessions", *grid.axes][:6]
    assert len(table) == 4 and set(table["window"]) == {"full"}
    tasks = sweep.plan_tasks(params, grid, START, END, tmp_path / "plan")
    for cfg in (0, 3):
        changes = grid.configurations()[cfg]
        assert tasks[cfg].changes == changes
        alone = run_backtest(params.with_changes(sweep.nested(changes)), START, END, tmp_path / f"alone{cfg}",
                             progress=False, report=False)
        row = table[table["config"] == cfg].iloc[0]
        for k, v in sweep.figures(alone.summary).items():
            assert row[k] == pytest.approx(v, rel=1e-12, nan_ok=True), k
        assert row["params_digest"] == tasks[cfg].resolved_params().digest()
    # the settings matter: a 1x account cannot carry what a 2x one does
    assert table.loc[0, "exposure_total"] < table.loc[1, "exposure_total"]
    saved = json.loads((result.out_dir / "sweep.json").read_text())
    assert saved["configurations_tried"] == 4 and saved["chosen"]["selected_by"] == "sharpe on the full window"
    best = table.loc[table["sharpe"].idxmax()]
    assert saved["chosen"]["config"] == best["config"]
    pd.testing.assert_frame_equal(pd.read_csv(result.out_dir / "sweep.csv"), table, check_dtype=False)


def test_same_rows_in_local_processes(in_process, params, tmp_path):
    grid, one = in_process
    with ProcessPoolExecutor(max_workers=2) as pool:
        many = sweep.run_sweep(params, grid, START, END, tmp_path / "pool", executor=pool)
    pd.testing.assert_frame_equal(comparable(many.table), comparable(one.table))


@pytest.mark.slow
def test_same_rows_on_a_dask_local_cluster(in_process, params, tmp_path):
    pytest.importorskip("dask.distributed", reason="the dask extra is not installed")
    grid, one = in_process
    with ExitStack() as stack:
        pool = sweep.open_executor("dask", stack, workers=2)
        on_dask = sweep.run_sweep(params, grid, START, END, tmp_path / "dask", executor=pool)
    pd.testing.assert_frame_equal(comparable(on_dask.table), comparable(one.table))


def test_train_end_chooses_on_train_and_reports_the_test_window(params, tmp_path):
    grid = sweep.load_grid(grid_file(tmp_path, "portfolio.sector_cap: [0.25, 0.4]\n"), params)
    cut = calendar.sessions_ending(END, 4)[0]
    result = sweep.run_sweep(params, grid, START, END, tmp_path / "split", train_end=cut)
    t = result.table
    assert list(t["window"]) == ["train", "test"] * 2
    assert (t.loc[t["window"] == "train", "end"] == cut.isoformat()).all()
    assert (t.loc[t["window"] == "test", "start"] == calendar.next_session(cut).isoformat()).all()
    chosen = result.summary["chosen"]
    train = t[t["window"] == "train"]
    assert chosen["config"] == int(train.loc[train["sharpe"].idxmax(), "config"])
    test_row = t[(t["window"] == "test") & (t["config"] == chosen["config"])].iloc[0]
    assert chosen["test"]["sharpe"] == pytest.approx(test_row["sharpe"], nan_ok=True)
    assert result.summary["configurations_tried"] == 2
    with pytest.raises(BadInputError, match="--train-end"):
        sweep.plan_tasks(params, grid, START, END, tmp_path / "x", train_end=END)


def test_executor_choice_errors(tmp_path):
    with ExitStack() as stack:
        with pytest.raises(BadInputError, match="use local or dask"):
            sweep.open_executor("threads", stack)
        with pytest.raises(BadInputError, match="--scheduler needs --executor dask"):
            sweep.open_executor("local", stack, scheduler="tcp://127.0.0.1:8786")


def test_cli_sweep_writes_the_folder_and_bad_grid_exits_2(tmp_path, capsys):
    grid = grid_file(tmp_path, "portfolio.sector_cap: [0.25, 0.4]\n")
    out = tmp_path / "cli"
    code = main(["sweep", "-p", str(PARAMS), "--grid", str(grid), "--start", START.isoformat(),
                 "--end", END.isoformat(), "--out", str(out), "--workers", "2"])
    printed = capsys.readouterr().out
    assert code == 0, printed
    assert "2 configurations tried" in printed and "chosen in sample" in printed
    assert len(pd.read_csv(out / "sweep.csv")) == 2
    bad = grid_file(tmp_path, "portfolio.nope: [1]\n")
    assert main(["sweep", "-p", str(PARAMS), "--grid", str(bad), "--start", START.isoformat(),
                 "--end", END.isoformat(), "--out", str(tmp_path / "bad")]) == 2
    assert "'nope' is unknown" in capsys.readouterr().err


@pytest.mark.slow
def test_sweep_notebook_runs_under_papermill_and_records_the_choice(tmp_path):
    from wolfkit import notebooks as nbr
    from wolfkit.report import read_records

    session = calendar.next_session(END)
    grid = grid_file(tmp_path, "portfolio.sector_cap: [0.25, 0.4]\nportfolio.max_positions: [12, 15]\n")
    folder = tmp_path / "sweep"
    values = nbr.notebook_parameters("sweep", PARAMS, session, tmp_path / "outputs", grid_file=str(grid),
                                     start=START.isoformat(), end=END.isoformat(),
                                     train_end=calendar.sessions_ending(END, 4)[0].isoformat(), workers=2,
                                     out=str(folder))
    run = nbr.run_notebook("sweep", session, values, tmp_path / "outputs")
    assert run.status is nbr.RunStatus.OK, run.error
    rec = read_records(run.notebook)
    saved = json.loads((folder / "sweep.json").read_text())
    assert rec["sweep_configurations_tried"] == 4 == saved["configurations_tried"]
    assert rec["sweep_chosen"] == json.loads(json.dumps(saved["chosen"]))
    assert rec["sweep_figures"] == [f"{f}_{w}" for w in ("train", "test") for f in ("sharpe", "max_drawdown", "turnover")]
    html = run.html.read_text(encoding="utf-8")
    assert "plotly.js v" in html and html.count('class="plotly-graph-div"') == 6
    assert "4 configurations tried" in html
