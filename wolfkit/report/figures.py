"""The report's figures: pure functions from typed tables to `plotly.graph_objects.Figure` (no display)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

import pandas as pd
import plotly.graph_objects as go

from wolfkit.domain import PlanStatus

if TYPE_CHECKING:
    from wolfkit.config import Params
    from wolfkit.orders import BuildResult

_LAYER_COLORS = {"directional": "#1f77b4", "maxdiff": "#ff7f0e", "free": "#d9d9d9"}


EQUITY_AXIS = "fraction of equity"


def fig_components(top: pd.DataFrame, signals: Mapping[str, float] | None = None) -> go.Figure:
    """Each opportunity's composite as stacked contributions on the 0–100 score scale: a signal's
    `score_<signal>` percentile times its weight in `signals` over the weights' sum (equal weights when
    none are given), so the bar is the weighted mean the composite ranks; the composite is a marker."""
    comps = [c for c in top.columns if c.startswith("score_")]
    w = {c: float((signals or {}).get(c.removeprefix("score_"), 1.0)) for c in comps}
    total = sum(w.values()) or 1.0
    fig = go.Figure()
    for c in comps:
        fig.add_bar(y=top["symbol"], x=top[c] * w[c] / total, name=c.removeprefix("score_"), orientation="h")
    if "score" in top.columns:
        fig.add_scatter(y=top["symbol"], x=top["score"], mode="markers", name="composite score",
                        marker={"symbol": "diamond", "color": "black", "size": 9})
    fig.update_layout(
        barmode="stack", title="Top opportunities: score components (weighted, 0–100)",
        yaxis={"autorange": "reversed"}, xaxis={"range": [0, 100], "title": "score (0–100)"},
        height=max(300, 24 * len(top) + 140), margin={"l": 80}, legend={"orientation": "h"},
    )
    return fig


def fig_weights(weights: pd.DataFrame) -> go.Figure:
    """The pack's weights (fractions of equity) coloured by score tier: `weight` as bars (after share
    rounding when the table has it), `target` as markers when present."""
    fig = go.Figure()
    for tier, g in weights.groupby("tier", sort=False):
        fig.add_bar(x=g["symbol"], y=g["weight"], name=f"tier {tier}")
    if "target" in weights.columns:
        fig.add_scatter(x=weights["symbol"], y=weights["target"], mode="markers", name="target",
                        marker={"symbol": "line-ew-open", "size": 22, "color": "black"})
    title = "The pack: weight by name after share rounding" if "target" in weights.columns else \
        "The pack: target weight by name"
    fig.update_layout(title=title, barmode="group",
                      yaxis={"tickformat": ".1%", "title": EQUITY_AXIS})
    return fig


def fig_against_caps(used: Mapping[str, float], caps: Mapping[str, tuple[float, float]], title: str) -> go.Figure:
    """Bars of what each group uses, with its [min, max] band drawn as markers (all fractions of equity)."""
    names = list(caps)
    lo = [caps[n][0] for n in names]
    hi = [caps[n][1] for n in names]
    fig = go.Figure()
    fig.add_bar(x=names, y=[used.get(n, 0.0) for n in names], name="used")
    fig.add_scatter(x=names, y=hi, mode="markers", marker={"symbol": "line-ew-open", "size": 26}, name="max")
    if any(lo):
        fig.add_scatter(x=names, y=lo, mode="markers", marker={"symbol": "line-ew-open", "size": 26}, name="min")
    fig.update_layout(title=title, yaxis={"tickformat": ".0%", "title": EQUITY_AXIS})
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
    fig.update_layout(barmode="stack", title="Leverage buckets (× equity)", height=260,
                      xaxis={"ticksuffix": "x", "title": "multiple of equity"})
    return fig


def fig_orders_budget(orders: pd.DataFrame, buying_power: float, equity: float) -> go.Figure:
    """Cumulative estimated cost in priority order against the buying power, both as fractions of
    equity: where a batch sized from one starting buying power would run out."""
    fig = go.Figure()
    fig.add_scatter(x=orders["priority"], y=orders["est_cost"].cumsum() / equity, mode="lines+markers",
                    text=orders["symbol"], name="cumulative est. cost")
    fig.add_hline(y=buying_power / equity, line_dash="dash",
                  annotation_text=f"buying power {buying_power / equity:.2f}x (${buying_power:,.0f})")
    fig.add_hline(y=1.0, line_dash="dot", annotation_text="equity (above it: margin)",
                  annotation_position="bottom right")
    fig.update_layout(title="Orders in priority order vs buying power", xaxis_title="priority",
                      yaxis={"tickformat": ".0%", "title": EQUITY_AXIS})
    return fig


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
