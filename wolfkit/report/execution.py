"""The execution report's sections: how the batch went, every order, deployment against the plan,
and the ledger's view of the run."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import pandas as pd
import plotly.graph_objects as go

from wolfkit.report.display import markdown, record, show, table

if TYPE_CHECKING:
    from wolfkit.runs import ExecutionRun


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
