"""Report building blocks for the notebooks: plotly figures, tables, status text, recorded values.

Figures are plain functions from typed tables to `plotly.graph_objects.Figure`; `show` displays one
as a bundle that JupyterLab renders natively *and* that survives into the nbconvert HTML report.
`setup()` embeds plotly.js once per notebook, so both the executed notebook and its HTML report read
offline. `record(name, value)` stores a JSON value in the notebook's outputs (a wolfkit mimetype that
HTML export drops) and `read_records(notebook)` reads them back — how tests and audits check what a
run saw.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from datetime import date, datetime
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import plotly.io as pio

from wolfkit.data.quality import quarantine_count
from wolfkit.diversify.bands import band_table
from wolfkit.domain import PlanStatus

if TYPE_CHECKING:
    from wolfkit.config import Params
    from wolfkit.orders import BuildResult, OrderPlan
    from wolfkit.replay import ReplayResult
    from wolfkit.runs import ExecutionRun, RunContext
    from wolfkit.scan import ScanResult

RECORD_MIMETYPE = "application/vnd.wolfkit.record+json"
PLOTLY_MIMETYPE = "application/vnd.plotly.v1+json"
RENDERER = "wolfkit"


# --------------------------------------------------------------------------------------------------
# Display plumbing.


def _display(bundle: Mapping[str, Any], metadata: Mapping[str, Any] | None = None) -> None:
    from IPython.display import display

    display(dict(bundle), metadata=dict(metadata or {}), raw=True)


class _Renderer(pio.base_renderers.MimetypeRenderer):
    """Plotly mimetype for JupyterLab plus a `text/html` div that needs only a global `Plotly`."""

    def to_mimebundle(self, fig_dict: dict) -> dict:
        return {PLOTLY_MIMETYPE: _jsonable(fig_dict), "text/html": figure_html(fig_dict)}


def figure_html(fig: go.Figure | dict) -> str:
    """A figure as an HTML `<div>` + script that needs only a global `Plotly` (see `plotlyjs_bundle`)."""
    return pio.to_html(fig, include_plotlyjs=False, full_html=False, config={"displaylogo": False}, validate=False)


def plotlyjs_bundle() -> str:
    """plotly.js in a `<script>` that sets `window.Plotly` even where require.js is loaded."""
    from plotly.offline import get_plotlyjs

    return (
        "<script>window.__wkDefine = window.define; window.define = undefined;</script>\n"
        f"<script type=\"text/javascript\">{get_plotlyjs()}</script>\n"
        "<script>window.define = window.__wkDefine;</script>"
    )


def setup() -> None:
    """Register the `wolfkit` plotly renderer as the default and embed plotly.js once (offline reading)."""
    pio.renderers[RENDERER] = _Renderer()
    pio.renderers.default = RENDERER
    _display({"text/html": plotlyjs_bundle() + "\n<span class='wolfkit-plotlyjs'></span>"})


def show(fig: go.Figure) -> None:
    """Display a figure through the wolfkit renderer (whatever the current default is)."""
    if RENDERER not in pio.renderers:
        pio.renderers[RENDERER] = _Renderer()
    _display(pio.renderers[RENDERER].to_mimebundle(fig.to_plotly_json()))


def markdown(text: str) -> None:
    """Display Markdown; `$` is escaped so dollar amounts never turn into LaTeX math."""
    from IPython.display import Markdown, display

    display(Markdown(text.replace("$", r"\$")))


def table_html(df: pd.DataFrame, caption: str | None = None, formats: Mapping[str, str] | None = None) -> str:
    """A table as HTML (no index, text left-aligned) with optional per-column format strings."""
    styler = df.style.hide(axis="index").set_properties(
        subset=[c for c in df.columns if df[c].dtype == object], **{"text-align": "left"})
    if formats:
        styler = styler.format({k: v for k, v in formats.items() if k in df.columns}, na_rep="")
    if caption:
        styler = styler.set_caption(caption)
    return styler.to_html()


def table(df: pd.DataFrame, caption: str | None = None, formats: Mapping[str, str] | None = None) -> None:
    """Display a table (HTML, no index) with optional per-column format strings."""
    _display({"text/html": table_html(df, caption, formats), "text/plain": df.to_string(index=False)})


# --------------------------------------------------------------------------------------------------
# Recorded values.


def _jsonable(value: Any) -> Any:
    """A JSON-safe copy: numpy/pandas scalars, dates, enums, paths, frames; NaN becomes null."""
    if isinstance(value, pd.DataFrame):
        return [_jsonable(r) for r in value.to_dict(orient="records")]
    if isinstance(value, pd.Series):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [_jsonable(v) for v in value]
    if isinstance(value, Enum):
        return _jsonable(value.value)
    if isinstance(value, (datetime, date, pd.Timestamp)):
        return value.isoformat()
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, np.ndarray):
        return [_jsonable(v) for v in value.tolist()]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)


def record(name: str, value: Any) -> None:
    """Store `value` under `name` in this cell's outputs (read back with `read_records`)."""
    _display({RECORD_MIMETYPE: {"name": name, "value": _jsonable(value)}})


def read_records(notebook: str | Path | Any) -> dict[str, Any]:
    """Every value an executed notebook recorded, by name (a later record of a name wins)."""
    import nbformat

    nb = nbformat.read(notebook, as_version=4) if isinstance(notebook, (str, Path)) else notebook
    out: dict[str, Any] = {}
    for cell in nb.cells:
        for o in cell.get("outputs", []):
            data = o.get("data", {}) if o.get("output_type") in ("display_data", "execute_result") else {}
            if RECORD_MIMETYPE in data:
                rec = data[RECORD_MIMETYPE]
                rec = json.loads(rec) if isinstance(rec, str) else rec
                out[rec["name"]] = rec["value"]
    return out


# --------------------------------------------------------------------------------------------------
# Status text.


def header(ctx: RunContext) -> None:
    """The run's identity at the top of every report (version, parameter digest, run id, session)."""
    import wolfkit

    p = ctx.params
    synthetic = p.data.source.partition(":")[0] == "demo"
    lines = [
        f"# wolfkit {ctx.kind} — {ctx.session:%A %d %B %Y}",
        "",
        f"- run id: `{ctx.run_id}`",
        f"- wolfkit {wolfkit.__version__}; parameters `{ctx.params_path.name}` "
        f"(name `{p.name}`, digest `{p.digest()}`)",
        f"- data source: `{p.data.source}`; broker: `{p.execution.broker}`",
        f"- outputs: `{ctx.day_dir}`",
    ]
    if ctx.extra:
        lines.append("- " + "; ".join(f"{k} = {v}" for k, v in ctx.extra.items() if v != ""))
    if ctx.forced:
        lines += ["", f"**Forced run:** {ctx.session} is not a trading day."]
    if synthetic:
        from wolfkit.data.demo import SYNTHETIC_NOTICE

        lines += ["", f"**{SYNTHETIC_NOTICE}**"]
    markdown("\n".join(lines))
    record("wolfkit_version", wolfkit.__version__)
    record("params_digest", p.digest())
    record("params_name", p.name)
    record("run_id", ctx.run_id)
    record("session", ctx.session)
    record("synthetic", synthetic)


# --------------------------------------------------------------------------------------------------
# Figures (pure: tables in, figures out).

_LAYER_COLORS = {"directional": "#1f77b4", "maxdiff": "#ff7f0e", "free": "#d9d9d9"}


def fig_components(top: pd.DataFrame) -> go.Figure:
    """Stacked horizontal bars of each opportunity's `score_<signal>` components (weighted as scanned)."""
    comps = [c for c in top.columns if c.startswith("score_")]
    fig = go.Figure()
    for c in comps:
        fig.add_bar(y=top["symbol"], x=top[c], name=c.removeprefix("score_"), orientation="h")
    fig.update_layout(
        barmode="stack", title="Top opportunities: score components", yaxis={"autorange": "reversed"},
        height=max(300, 24 * len(top) + 120), margin={"l": 80}, legend={"orientation": "h"},
    )
    return fig


def fig_weights(weights: pd.DataFrame) -> go.Figure:
    """The pack's target weights (fractions of equity), coloured by score tier."""
    fig = go.Figure()
    for tier, g in weights.groupby("tier", sort=False):
        fig.add_bar(x=g["symbol"], y=g["weight"], name=f"tier {tier}")
    fig.update_layout(title="The pack: target weight by name", yaxis={"tickformat": ".0%"}, barmode="group")
    return fig


def fig_against_caps(used: Mapping[str, float], caps: Mapping[str, tuple[float, float]], title: str) -> go.Figure:
    """Bars of what each group uses, with its [min, max] band drawn as a marker range."""
    names = list(caps)
    lo = [caps[n][0] for n in names]
    hi = [caps[n][1] for n in names]
    fig = go.Figure()
    fig.add_bar(x=names, y=[used.get(n, 0.0) for n in names], name="used")
    fig.add_scatter(x=names, y=hi, mode="markers", marker={"symbol": "line-ew-open", "size": 26}, name="max")
    if any(lo):
        fig.add_scatter(x=names, y=lo, mode="markers", marker={"symbol": "line-ew-open", "size": 26}, name="min")
    fig.update_layout(title=title, yaxis={"tickformat": ".0%"})
    return fig


def leverage_buckets(build: BuildResult) -> pd.DataFrame:
    """Planned exposure by layer as multiples of equity, from the packing.

    Rows: directional (sized orders), maxdiff (listening plans), free (room left in the total bucket).
    Columns: bucket, exposure (USD), leverage (× equity), limit (× equity the row may reach: the
    directional bucket, the room between the buckets, the total bucket).
    """
    pk = build.packing
    equity = build.plan.account.equity
    directional = float(pk.directional["cost"].sum()) if len(pk.directional) else 0.0
    md = pk.maxdiff
    maxdiff = float(md.loc[md["status"] == PlanStatus.LISTENING, "cost"].sum()) if len(md) else 0.0
    rows = [
        ("directional", directional, pk.directional_bucket),
        ("maxdiff", maxdiff, pk.total_bucket - directional),
        ("free", max(pk.total_bucket - directional - maxdiff, 0.0), pk.total_bucket),
    ]
    df = pd.DataFrame(rows, columns=["bucket", "exposure", "limit"])
    df["limit"] = df["limit"] / equity
    df.insert(2, "leverage", df["exposure"] / equity)
    return df


def fig_leverage(buckets: pd.DataFrame, params: Params) -> go.Figure:
    """One stacked bar: directional, maxdiff and free room up to `total_max`, with both bucket lines."""
    fig = go.Figure()
    for _, r in buckets.iterrows():
        fig.add_bar(
            x=[r["leverage"]], y=["leverage"], orientation="h", name=f"{r['bucket']} {r['leverage']:.2f}x",
            marker={"color": _LAYER_COLORS[r["bucket"]]},
        )
    for x, label in ((params.leverage.directional_max, "directional max"), (params.leverage.total_max, "total max")):
        fig.add_vline(x=x, line_dash="dash", annotation_text=f"{label} {x:g}x")
    fig.update_layout(barmode="stack", title="Leverage buckets (× equity)", height=260, xaxis={"ticksuffix": "x"})
    return fig


def fig_orders_budget(orders: pd.DataFrame, buying_power: float) -> go.Figure:
    """Cumulative estimated cost in priority order against the buying power: where a batch sized from one
    starting buying power would run out."""
    fig = go.Figure()
    fig.add_scatter(x=orders["priority"], y=orders["est_cost"].cumsum(), mode="lines+markers",
                    text=orders["symbol"], name="cumulative est. cost")
    fig.add_hline(y=buying_power, line_dash="dash", annotation_text=f"buying power ${buying_power:,.0f}")
    fig.update_layout(title="Orders in priority order vs buying power", xaxis_title="priority",
                      yaxis={"tickprefix": "$"})
    return fig


# --------------------------------------------------------------------------------------------------
# Pre-market sections: display + record.


def market_day(ctx: RunContext, scan: ScanResult) -> None:
    """The session, its hours (early close flagged) and how fresh the data is."""
    from wolfkit import calendar

    s = ctx.session
    trading = calendar.is_trading_day(s)
    lines = [f"**Session {s:%A %Y-%m-%d}** — " + ("a trading day" if trading else "NOT a trading day")]
    if trading:
        o, c = calendar.session_open(s), calendar.session_close(s)
        lines.append(f"- hours {o:%H:%M}–{c:%H:%M} ET" + (" (**early close**)" if calendar.is_early_close(s) else ""))
        record("early_close", calendar.is_early_close(s))
    prev = calendar.previous_session(s)
    lines.append(f"- previous session {prev}; next session {calendar.next_session(s)}")
    through = pd.Timestamp(scan.data_through).date()
    fresh = through >= prev
    lines.append(
        f"- data through {through} from `{scan.provider}` — "
        + ("fresh (the previous session is in)" if fresh else f"**STALE**: expected {prev}")
    )
    if scan.synthetic:
        lines.append("- prices are **synthetic** (demo market)")
    markdown("\n".join(lines))
    record("data_through", through)
    record("data_fresh", fresh)


def scan_summary(scan: ScanResult) -> None:
    """How many symbols were scanned, how many qualify, which were excluded and why."""
    opps, excl = scan.opportunities, scan.excluded
    scanned = len(opps) + len(excl)
    reasons = excl["reason"].value_counts() if len(excl) else pd.Series(dtype=int)
    markdown(
        f"Scanned **{scanned}** symbols in {scan.elapsed_s:.2f} s: **{len(opps)}** scored, "
        f"**{len(excl)}** excluded."
        + (f" Signals unavailable on this data: {', '.join(scan.unavailable)}." if scan.unavailable else "")
    )
    if len(excl):
        table(reasons.rename_axis("reason").reset_index(name="symbols"), caption="Excluded, by reason")
        table(excl[["symbol", "reason"]], caption="Excluded symbols")
    record("scanned", scanned)
    record("scored", len(opps))
    record("excluded", len(excl))
    record("excluded_by_reason", reasons.to_dict())
    record("scan_elapsed_s", scan.elapsed_s)
    if len(scan.quarantined):
        markdown(f"**Data quality**: {scan.quarantine_note()}.")
        table(scan.quarantined, caption="Bad rows left out of the data files")
    record("quarantined_rows", quarantine_count(scan.quarantined))


def top_opportunities(scan: ScanResult, n: int = 15) -> None:
    """The best `n` opportunities with their component scores."""
    top = scan.opportunities.head(n)
    cols = [c for c in ("symbol", "sector", "market_cap", "price", "score", "strategy", "expected_return")
            if c in top.columns] + [c for c in top.columns if c.startswith("score_")]
    fmt = {"market_cap": "${:,.0f}", "price": "${:,.2f}", "score": "{:.1f}", "expected_return": "{:.2%}"}
    fmt |= {c: "{:.1f}" for c in cols if c.startswith("score_")}
    table(top[cols], caption=f"Top {len(top)} of {len(scan.opportunities)} by score", formats=fmt)
    if any(c.startswith("score_") for c in cols):
        show(fig_components(top))
    record("top_symbols", top["symbol"].tolist())
    record("top_scores", top["score"].round(4).tolist())


def pack(build: BuildResult) -> None:
    """The directional pack: weights, tiers and the reason for each pick and each exclusion."""
    t = build.targets
    w = t.weights
    markdown(
        f"**{len(w)} positions**, {t.allocation:.1%} of equity allocated, method `{t.method}`, "
        f"objective {t.objective:.4f} (Σ weight × {t.basis})."
    )
    cols = [c for c in ("symbol", "sector", "cap_tier", "score", "tier", "weight", "reason") if c in w.columns]
    table(w[cols], caption="Picked", formats={"score": "{:.1f}", "weight": "{:.2%}"})
    if len(w):
        show(fig_weights(w))
    below = t.excluded["reason"].astype(str).str.startswith("below min_score")
    if (~below).any():
        table(t.excluded[~below], caption="Candidates not picked, and why")
    if below.any():
        markdown(f"{int(below.sum())} more symbols scored below `min_score` "
                 f"({t.excluded.loc[below, 'reason'].iloc[0].removeprefix('below min_score ')}) and were not candidates.")
    if getattr(build, "quarantined", None) is not None and len(build.quarantined):
        table(build.quarantined, caption="Quarantined opportunity rows (set aside, not used)")
    record("positions", len(w))
    record("allocation", t.allocation)
    record("method", t.method)
    record("objective", t.objective)
    record("pack_symbols", w["symbol"].tolist())
    record("pack_weights", dict(zip(w["symbol"], w["weight"])))


def breakdown(build: BuildResult, params: Params) -> None:
    """Sector weights against the sector caps, market-cap tiers against their bands."""
    t = build.targets
    port = params.portfolio
    sectors = {s: (0.0, port.cap_for(s)) for s in sorted(t.sector_weights)}
    over = {s: v for s, v in t.sector_weights.items() if v > port.cap_for(s) + 1e-9}
    show(fig_against_caps(t.sector_weights, sectors, "Sector weight vs cap (fractions of equity)"))
    alloc = t.allocation or 1.0
    shares = {k: v / alloc for k, v in t.cap_weights.items()}
    show(fig_against_caps(shares, dict(port.market_cap.bands), "Market-cap tier share of the allocation vs band"))
    table(band_table(params, t.cap_weights, t.allocation, t.band_misses), caption="Market-cap bands: met, or why not",
          formats={"min": "{:.0%}", "max": "{:.0%}", "share": "{:.1%}"})
    rows = pd.DataFrame(
        [(s, v, port.cap_for(s)) for s, v in sorted(t.sector_weights.items(), key=lambda kv: -kv[1])],
        columns=["sector", "weight", "cap"],
    )
    table(rows, caption="Sectors", formats={"weight": "{:.2%}", "cap": "{:.0%}"})
    markdown("Every sector is within its cap." if not over else f"**Over the cap:** {over}")
    record("sector_weights", t.sector_weights)
    record("cap_weights", t.cap_weights)
    record("band_misses", [{"tier": b.tier, "share": b.share, "miss": str(b.miss), "why": b.why} for b in t.band_misses])
    record("sectors_within_caps", not over)


def leverage(build: BuildResult, params: Params) -> None:
    """The leverage buckets (directional, maxdiff, free) as a chart."""
    b = leverage_buckets(build)
    show(fig_leverage(b, params))
    table(b, formats={"exposure": "${:,.0f}", "leverage": "{:.2f}x", "limit": "{:.2f}x"})
    record("leverage", dict(zip(b["bucket"], b["leverage"].round(6))))


def orders_table(plan: OrderPlan) -> pd.DataFrame:
    """The orders file's orders as a table, in priority order."""
    cols = ["priority", "symbol", "side", "qty", "type", "limit_price", "time_in_force", "layer", "strategy",
            "est_price", "est_cost", "weight", "client_order_id"]
    rows = [o.model_dump(mode="json") for o in plan.orders]
    return pd.DataFrame(rows, columns=cols).sort_values("priority", kind="stable").reset_index(drop=True)


def orders_preview(build: BuildResult) -> None:
    """Every order with its estimated cost, the running total against the buying power."""
    plan = build.plan
    df = orders_table(plan)
    total = float(df["est_cost"].sum())
    bp = plan.account.buying_power
    markdown(
        f"**{len(df)} orders**, estimated cost ${total:,.0f} against buying power ${bp:,.0f} "
        f"({total / bp:.1%}); equity ${plan.account.equity:,.0f}, leftover cash "
        f"${plan.summary.leftover_cash:,.0f}."
        + ("" if total <= bp + 1e-6 else " **The estimate exceeds the buying power.**")
    )
    table(df.drop(columns=["client_order_id"]),
          formats={"limit_price": "{:.2f}", "est_price": "${:,.2f}", "est_cost": "${:,.0f}", "weight": "{:.2%}"})
    if len(df):
        show(fig_orders_budget(df, bp))
    record("orders", len(df))
    record("orders_est_cost", total)
    record("buying_power", bp)
    record("orders_within_buying_power", total <= bp + 1e-6)


def maxdiff_plans(build: BuildResult) -> None:
    """The maxdiff plans for the day: which listen from the open and which queue for room."""
    plans = pd.DataFrame([m.model_dump(mode="json") for m in build.plan.maxdiff_plans])
    if plans.empty:
        markdown("No maxdiff plans today (none qualified, or the layer is disabled).")
        counts: dict[str, int] = {}
    else:
        plans = plans.sort_values("rank")
        counts = plans["status"].value_counts().to_dict()
        markdown(", ".join(f"**{v}** {k}" for k, v in counts.items()) + " — ranked by average return.")
        table(plans, formats={"high_target": "{:.2f}", "low_target": "{:.2f}", "avg_return": "{:.3%}",
                              "room_needed": "${:,.0f}"})
    record("maxdiff_listening", int(counts.get(PlanStatus.LISTENING, 0)))
    record("maxdiff_queued", int(counts.get(PlanStatus.QUEUED, 0)))


def exports(paths: Mapping[str, Path | list[Path]]) -> None:
    """List the files this run wrote."""
    lines = [f"- {name}: `{q}`" for name, p in paths.items() for q in (p if isinstance(p, list) else [p])]
    markdown("\n".join(lines))
    record("exports", {k: [str(q) for q in v] if isinstance(v, list) else str(v) for k, v in paths.items()})


# --------------------------------------------------------------------------------------------------
# Replay sections.


def fig_replay_leverage(leverage: pd.DataFrame, params: Params) -> go.Figure:
    """Committed leverage per minute: both layers stacked (directional, maxdiff) against the
    directional-only replay's total, with the two bucket lines."""
    fig = go.Figure()
    if "both" in leverage.columns.get_level_values(0):
        for layer in ("directional", "maxdiff"):
            fig.add_scatter(x=leverage.index, y=leverage[("both", layer)], stackgroup="both", mode="lines",
                            name=f"both layers: {layer}", line={"color": _LAYER_COLORS[layer]})
    if "directional" in leverage.columns.get_level_values(0):
        fig.add_scatter(x=leverage.index, y=leverage[("directional", "total")], mode="lines",
                        name="directional only: total", line={"color": "black", "dash": "dot"})
    for y, label in ((params.leverage.directional_max, "directional max"), (params.leverage.total_max, "total max")):
        fig.add_hline(y=y, line_dash="dash", annotation_text=f"{label} {y:g}x")
    fig.update_layout(title="Committed leverage through the session (× equity)", yaxis={"ticksuffix": "x"},
                      xaxis_title="time (ET)")
    return fig


def replay_summary(result: ReplayResult) -> None:
    """Both replays side by side: leverage use, idle leverage-hours, fills, P/L."""
    cmp = result.comparison()
    markdown(
        f"Replayed {result.session}: {len(result.plan.orders)} planned orders, {len(result.plan.maxdiff_plans)} "
        f"maxdiff plans, equity ${result.equity:,.0f}; "
        + ", ".join(f"{v} {s:.2f} s" for v, s in result.elapsed_s.items()) + "."
        + ("\n\n**Synthetic prices (demo market): the numbers show mechanics, not real performance.**"
           if result.synthetic else "")
    )
    table(cmp.rename_axis("metric").reset_index(), formats={c: "{:,.3f}" for c in cmp.columns})
    record("replay_comparison", cmp.to_dict())
    record("replay_elapsed_s", result.elapsed_s)


def replay_leverage(result: ReplayResult, params: Params) -> None:
    """The leverage-through-the-day chart."""
    show(fig_replay_leverage(result.leverage, params))


def replay_fills(result: ReplayResult, limit: int = 200) -> None:
    """Fill counts by variant and layer, then the fills themselves (first `limit`)."""
    f = result.fills
    if f.empty:
        markdown("No fills in this replay.")
    else:
        counts = f.groupby(["variant", "layer"]).size().rename("fills").reset_index()
        table(counts.astype({"layer": str}), caption="Fills by variant and layer")
        table(f.head(limit).astype({c: str for c in ("layer", "purpose", "side") if c in f.columns}),
              caption=f"Fills (first {min(limit, len(f))} of {len(f)})", formats={"price": "{:.2f}"})
    record("replay_fills", len(f))


# --------------------------------------------------------------------------------------------------
# Execution sections.


def execution_summary(result: ExecutionRun) -> None:
    """How the batch went: planned, accepted, filled, resized, rejected — and buying-power rejections.

    `result`: a `wolfkit.runs.ExecutionRun` (`.plan`, `.report`, `.ledger_path`).
    """
    s = result.report.summary()
    states = dict(sorted(s["states"].items(), key=lambda kv: -kv[1]))
    markdown(
        f"Broker `{s['broker']}`, execution #{s['execution']} of run `{s['run_id']}`: **{s['accepted']} of "
        f"{s['planned']}** planned orders accepted, {s['unresolved']} unresolved; deployed "
        f"${s['deployed']:,.0f} = **{s['deployed_pct']:.1%}** of equity ${s['equity']:,.0f}. "
        f"Insufficient-buying-power rejections met: {s['insufficient_bp_rejections']}; rate limited: "
        f"{s['rate_limited']}; unknown outcomes looked up: {s['unknown_outcomes']}."
    )
    table(pd.DataFrame({"state": list(states), "orders": list(states.values())}), caption="Orders by final state")
    for k in ("planned", "accepted", "unresolved", "deployed", "deployed_pct", "insufficient_bp_rejections",
              "execution", "states"):
        record(f"exec_{k}", s[k])


def execution_orders(result: ExecutionRun) -> None:
    """Every planned order: what was submitted and filled, how it was sized, and why."""
    df = result.report.table()
    cols = ["priority", "symbol", "side", "layer", "state", "planned_qty", "submitted_qty", "filled_qty",
            "avg_price", "attempts", "sizing", "deployed", "reason"]
    df = df[cols].astype({"side": str, "state": str, "sizing": str})
    table(df, formats={"avg_price": "{:.2f}", "deployed": "${:,.0f}"})
    record("exec_sizing", df["sizing"].value_counts().to_dict())
    record("exec_rejected_reasons", df.loc[df["state"] == "rejected", "reason"].tolist())


def deployment_vs_plan(result: ExecutionRun) -> None:
    """Planned cost against what was deployed, per order and by layer (leverage × equity)."""
    rep, plan = result.report, result.plan
    planned = {o.client_order_id: o for o in plan.orders}
    rows = [(o.symbol, str(o.layer), planned[o.plan_client_id].est_cost if o.plan_client_id in planned else 0.0,
             o.deployed) for o in rep.orders]
    df = pd.DataFrame(rows, columns=["symbol", "layer", "planned", "deployed"])
    fig = go.Figure()
    fig.add_bar(x=df["symbol"], y=df["planned"], name="planned (est. cost)")
    fig.add_bar(x=df["symbol"], y=df["deployed"], name="deployed")
    fig.update_layout(barmode="group", title="Deployment against the plan", yaxis={"tickprefix": "$"})
    show(fig)
    by_layer = df.groupby("layer")[["planned", "deployed"]].sum() / rep.equity
    table(by_layer.rename_axis("layer").reset_index(), caption="Leverage by layer (× equity)",
          formats={"planned": "{:.2f}x", "deployed": "{:.2f}x"})
    record("exec_planned_pct", float(df["planned"].sum() / rep.equity))
    record("exec_leverage_by_layer", by_layer["deployed"].to_dict())


def ledger_snapshot(result: ExecutionRun, last: int = 30) -> None:
    """The ledger's view of the run: its row, event counts by kind, the last events, the fills."""
    from wolfkit.ledger import Ledger

    run_id = result.report.run_id
    with Ledger(result.ledger_path) as ledger:
        run = ledger.run(run_id) or {}
        events = ledger.events(run_id)
        fills = ledger.fills_for_run(run_id)
    kinds = pd.Series([str(e.kind) for e in events]).value_counts()
    markdown(f"Ledger `{result.ledger_path}`: run status **{run.get('status', '?')}**, {len(events)} events, "
             f"{len(fills)} fills.")
    if len(kinds):
        table(kinds.rename_axis("event").reset_index(name="count"), caption="Events by kind")
        tail = pd.DataFrame([{"at": e.at, "kind": str(e.kind), "client_order_id": e.client_order_id,
                              "detail": json.dumps(e.detail, default=str)[:160]} for e in events[-last:]])
        table(tail, caption=f"Last {len(tail)} events")
    if fills:
        table(pd.DataFrame(fills)[["symbol", "side", "qty", "price", "at", "client_order_id"]], caption="Fills",
              formats={"price": "{:.2f}"})
    record("ledger_status", run.get("status"))
    record("ledger_events", kinds.to_dict())
    record("ledger_fills", len(fills))
