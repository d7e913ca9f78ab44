"""The backtest notebook under papermill on the demo market with small parameters (about two months):
it runs, records the tear sheet's numbers as summary.json has them, shows every figure with plotly.js
embedded, writes report.html into the backtest folder, and overlays a directional-only run."""

from __future__ import annotations

import json
import re

import pytest

from wolfkit import backtest, calendar, tearsheet
from wolfkit import notebooks as nbr
from wolfkit.config import load_params
from wolfkit.report import read_records

pytestmark = pytest.mark.slow

SESSION = calendar.latest_session(calendar.today_ny())
END = calendar.previous_session(SESSION)
START = calendar.sessions_ending(END, 40)[0]


@pytest.fixture(scope="module")
def executed(tmp_path_factory):
    """A directional-only run through the engine, then the notebook (both layers) compared with it."""
    from pathlib import Path

    root = tmp_path_factory.mktemp("bt")
    out = root / "outputs"
    params = Path(__file__).resolve().parents[1] / "parameters/demo.yaml"
    directional = backtest.run_backtest(load_params(params), START, END, root / "directional", layers="directional",
                                        equity=100_000.0, progress=False)
    values = nbr.notebook_parameters(
        "backtest", params, SESSION, out, start=START.isoformat(), end=END.isoformat(), layers="both",
        equity=100_000.0, out=str(root / "both"), compare=str(directional.out_dir),
    )
    run = nbr.run_notebook("backtest", SESSION, values, out)
    return run, root / "both", Path(directional.out_dir), params


def test_backtest_notebook_runs_and_records_the_summary(executed):
    run, folder, _, params = executed
    assert run.status is nbr.RunStatus.OK, run.error
    rec = read_records(run.notebook)
    assert rec["params_digest"] == load_params(params).digest() and rec["synthetic"] is True
    summary = json.loads((folder / "summary.json").read_text())
    assert rec["backtest_out_dir"] == str(folder) and rec["backtest_window"] == summary["window"]
    assert summary["window"]["start"] >= START.isoformat() and summary["window"]["end"] <= END.isoformat()
    for key, value in rec["backtest_stats"].items():
        assert value == summary[key], key
    assert rec["backtest_figures"] == list(tearsheet.FIGURE_TITLES)
    assert any("synthetic" in w.lower() for w in rec["backtest_warnings"]), "demo prices are flagged"
    assert rec["backtest_report"] == str(folder / "report.html")
    assert rec["learn_trades"] > 0 and rec["learn_dimensions"] == ["sector", "tier", "strategy", "layer"]
    for name in tearsheet.FOLDER_FILES:
        assert (folder / name).is_file(), name


def test_backtest_notebook_html_and_report_read_offline_with_every_figure(executed):
    run, folder, directional, _ = executed
    nb_html = run.html.read_text(encoding="utf-8")
    assert "plotly.js v" in nb_html and 'src="https://cdn.plot.ly' not in nb_html
    assert nb_html.count('class="plotly-graph-div"') >= len(tearsheet.FIGURE_TITLES)
    assert "notebooks.backtest(" not in nb_html, "code cells are excluded"
    page = (folder / "report.html").read_text(encoding="utf-8")
    head, body = page.split("</head>", 1)
    assert "plotly.js v" in head and not re.search(r"<script[^>]+src=", page)
    assert body.count("Plotly.newPlot") == len(tearsheet.FIGURE_TITLES)
    assert 'class="banner"' in body and "strategy (directional)" in body, "the directional-only run is overlaid"
    assert (directional / "equity.csv").is_file()
