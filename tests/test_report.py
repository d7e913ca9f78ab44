"""Report building blocks: JSON-safe records read back from a notebook, the offline plotly renderer,
the HTML export (no code, no record outputs), and the figures and tables built from typed inputs."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from types import SimpleNamespace

import nbformat
import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pytest
from factories import make_plan

from wolfkit import report
from wolfkit.config import Params
from wolfkit.notebooks import export_html
from wolfkit.orders import OrderPlan, PlannedOrder


def _record_output(name, value):
    return nbformat.v4.new_output("display_data", data={report.RECORD_MIMETYPE: {"name": name, "value": value}})


def test_jsonable_handles_numpy_pandas_dates_enums_and_nan():
    from wolfkit.domain import Layer

    v = report.jsonable({
        "i": np.int64(3), "f": np.float32(0.5), "nan": float("nan"), "d": date(2026, 11, 20),
        "ts": pd.Timestamp("2026-11-20 09:30"), "e": Layer.MAXDIFF, "p": Path("/x/y"), "arr": np.array([1, 2]),
        "df": pd.DataFrame({"a": [1, 2]}), "s": pd.Series({"x": 1.5}), "t": (1, "a"),
    })
    assert v == {"i": 3, "f": 0.5, "nan": None, "d": "2026-11-20", "ts": "2026-11-20T09:30:00", "e": "maxdiff",
                 "p": "/x/y", "arr": [1, 2], "df": [{"a": 1}, {"a": 2}], "s": {"x": 1.5}, "t": [1, "a"]}
    json.dumps(v)


def test_read_records_last_value_wins_and_ignores_other_outputs(tmp_path):
    nb = nbformat.v4.new_notebook()
    a = nbformat.v4.new_code_cell("x")
    a.outputs = [_record_output("n", 1), nbformat.v4.new_output("stream", name="stdout", text="hi")]
    b = nbformat.v4.new_code_cell("y")
    b.outputs = [_record_output("n", 2), _record_output("m", {"k": [1]})]
    nb.cells = [a, b, nbformat.v4.new_markdown_cell("text")]
    p = tmp_path / "r.ipynb"
    nbformat.write(nb, p)
    assert report.read_records(p) == {"n": 2, "m": {"k": [1]}}
    assert report.read_records(nbformat.read(p, 4)) == {"n": 2, "m": {"k": [1]}}


def test_renderer_bundle_has_plotly_mimetype_and_offline_html():
    fig = go.Figure(go.Bar(x=["a", "b"], y=[1, 2]))
    bundle = report.Renderer().to_mimebundle(fig.to_plotly_json())
    assert set(bundle) == {report.PLOTLY_MIMETYPE, "text/html"}
    html = bundle["text/html"]
    assert "Plotly.newPlot" in html and "<script src=" not in html and "cdn.plot.ly" not in html
    json.dumps(bundle[report.PLOTLY_MIMETYPE])


def test_plotlyjs_bundle_embeds_the_library_behind_a_define_guard():
    js = report.plotlyjs_bundle()
    assert len(js) > 1_000_000 and "plotly.js v" in js
    assert js.index("window.define = undefined") < js.index("plotly.js v") < js.index("window.define = window.__wkDefine")


def test_export_html_has_no_code_and_no_records(tmp_path):
    nb = nbformat.v4.new_notebook()
    c = nbformat.v4.new_code_cell("secret_code_line = 42")
    c.outputs = [_record_output("hidden", 1),
                 nbformat.v4.new_output("display_data", data={"text/html": "<b>visible output</b>"})]
    nb.cells = [nbformat.v4.new_markdown_cell("# Title here"), c]
    p = tmp_path / "x.ipynb"
    nbformat.write(nb, p)
    html = export_html(p, tmp_path / "x.html").read_text()
    assert "Title here" in html and "<b>visible output</b>" in html
    assert "secret_code_line" not in html and report.RECORD_MIMETYPE not in html


# ------------------------------------------------------------------------------- figures


def _plan(orders, plans=(), equity=100_000.0, bp=200_000.0) -> OrderPlan:
    return make_plan(pack=(), extra=[PlannedOrder.model_validate(o) for o in orders], maxdiff_plans=plans,
                     run_id="r1", as_of=date(2026, 11, 20), equity=equity, buying_power=bp)


def _order(sym, cost, layer="directional", priority=0):
    return {"client_order_id": f"id-{sym}-{layer}", "symbol": sym, "side": "buy", "qty": 10, "type": "market",
            "limit_price": None, "time_in_force": "day", "layer": layer, "strategy": "simple", "sector": "Tech",
            "cap_tier": "large", "score": 90.0, "weight": cost / 100_000, "est_price": cost / 10, "est_cost": cost,
            "priority": priority}


def test_leverage_buckets_from_the_packing():
    build = SimpleNamespace(
        plan=_plan([_order("A", 60_000), _order("B", 35_000, priority=1)]),
        packing=SimpleNamespace(
            directional=pd.DataFrame({"cost": [60_000.0, 35_000.0]}),
            maxdiff=pd.DataFrame({"status": ["listening", "queued"], "cost": [20_000.0, 0.0]}),
            directional_bucket=130_000.0, total_bucket=150_000.0,
        ),
    )
    b = report.leverage_buckets(build).set_index("bucket")
    assert b.loc["directional", "leverage"] == pytest.approx(0.95)
    assert b.loc["maxdiff", "leverage"] == pytest.approx(0.20)
    assert b.loc["free", "leverage"] == pytest.approx(0.35)
    assert b.loc["directional", "limit"] == pytest.approx(1.3) and b.loc["free", "limit"] == pytest.approx(1.5)
    fig = report.fig_leverage(b.reset_index(), Params())
    assert [round(t.x[0], 2) for t in fig.data] == [0.95, 0.20, 0.35]


def test_orders_table_is_in_priority_order():
    plan = _plan([_order("B", 1000, priority=2), _order("A", 2000, priority=0), _order("C", 500, "maxdiff", 5)])
    df = report.orders_table(plan)
    assert df["symbol"].tolist() == ["A", "B", "C"] and df["est_cost"].sum() == 3500
    fig = report.fig_orders_budget(df, 200_000.0, 100_000.0)
    assert list(fig.data[0].y) == pytest.approx([0.02, 0.03, 0.035])  # fractions of equity


def test_fig_against_caps_and_components():
    fig = report.fig_against_caps({"Tech": 0.3, "Energy": 0.1}, {"Tech": (0.0, 0.3), "Energy": (0.0, 0.25)}, "t")
    assert list(fig.data[0].y) == [0.3, 0.1] and list(fig.data[1].y) == [0.3, 0.25] and len(fig.data) == 2
    top = pd.DataFrame({"symbol": ["A", "B"], "score": [95, 90], "score_momentum": [50, 40], "score_trend": [45, 50]})
    comps = report.fig_components(top, {"momentum": 1.0, "trend": 3.0})
    assert [t.name for t in comps.data] == ["momentum", "trend", "composite score"]
    # weighted contributions on the 0-100 scale: the stack is the weighted mean of the percentiles
    stack = [m + t for m, t in zip(comps.data[0].x, comps.data[1].x)]
    assert stack == pytest.approx([(50 + 3 * 45) / 4, (40 + 3 * 50) / 4]) and comps.layout.xaxis.range == (0, 100)
    w = pd.DataFrame({"symbol": ["A", "B", "C"], "tier": ["90+", "90+", "75–89"], "weight": [0.12, 0.1, 0.08]})
    assert sorted(t.name for t in report.fig_weights(w).data) == ["tier 75–89", "tier 90+"]


def test_replay_leverage_figure():
    idx = pd.date_range("2026-11-20 09:30", periods=3, freq="min", tz="America/New_York")
    lev = pd.concat({
        "directional": pd.DataFrame({"directional": [1.0, 0.5, 0.2], "maxdiff": 0.0, "total": [1.0, 0.5, 0.2]}, index=idx),
        "both": pd.DataFrame({"directional": [1.0, 0.5, 0.2], "maxdiff": [0.0, 0.3, 0.4], "total": [1.0, 0.8, 0.6]}, index=idx),
    }, axis=1)
    fig = report.fig_replay_leverage(lev, Params())
    assert [t.name for t in fig.data] == ["both layers: directional", "both layers: maxdiff", "directional only: total"]
    assert list(fig.data[1].y) == [0.0, 0.3, 0.4]
