"""The execution report's sections: how the batch went (deployed = filled + open orders, said
separately), every order, the fills as they happened, deployment against the plan, and the ledger's
view of the run."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import pandas as pd
import plotly.graph_objects as go

from wolfkit.execution_report import NO_FILLS_YET, deployed_text, format_execution
from wolfkit.report.display import markdown, record, show, table

if TYPE_CHECKING:
    from wolfkit.runs import ExecutionRun

EXECUTION_RECORD = "exec_console"  # the plain-text summary `wolfkit execute --notebook` prints


def execution_summary(result: ExecutionRun) -> None:
    """How the batch went: planned, accepted, filled, resized, rejected; deployed money as filled plus open
    orders; buying-power rejections. Records the plain-text summary `wolfkit execute` prints.

    `result`: a `wolfkit.runs.ExecutionRun` (`.plan`, `.report`, `.ledger_path`, `.log_path`).
    """
    r = result.report
    s = r.summary()
    states = dict(sorted(s["states"].items(), key=lambda kv: -kv[1]))
    notes = "".join(f"\n- note: {n}" for n in r.notes)
    markdown(
        f"Broker `{s['broker']}`, execution #{s['execution']} of run `{s['run_id']}`: **{s['accepted']} of "
        f"{s['planned']}** planned orders accepted, {s['rejected']} rejected, {s['unresolved']} unresolved.\n\n"
        f"- **filled** ${r.filled_value:,.0f} ({r.filled_value / r.equity:.1%} of equity): {r.fills} fills, "
        f"{r.filled_shares:,} shares\n"
        f"- **open orders** ${r.open_value:,.0f} ({r.open_value / r.equity:.1%}): committed at their limit (or the "
        "ask for a market order), not filled yet\n"
        f"- deployed = filled + open orders = ${r.deployed:,.0f} = **{r.deployed_pct:.1%}** of equity "
        f"${r.equity:,.0f}\n\n"
        f"Insufficient-buying-power rejections met: {s['insufficient_bp_rejections']}; rate limited: "
        f"{s['rate_limited']}; unknown outcomes looked up: {s['unknown_outcomes']}." + notes
    )
    table(pd.DataFrame({"state": list(states), "orders": list(states.values())}), caption="Orders by final state")
    for k in ("planned", "accepted", "unresolved", "deployed", "deployed_pct", "filled_value", "open_value",
              "fills", "insufficient_bp_rejections", "execution", "states"):
        record(f"exec_{k}", s[k])
    record("exec_deployed_text", deployed_text(r))
    record(EXECUTION_RECORD, format_execution(r, result.log_path))


def execution_fills(result: ExecutionRun) -> None:
    """The run's fills in the order they happened (from the ledger), with the running filled value."""
    log = result.report.fill_log
    if not log:
        markdown(f"No fills yet: {NO_FILLS_YET}.")
        record("exec_fill_log", [])
        return
    df = pd.DataFrame([(f.at, f.symbol, f.side, f.qty, f.price, f.qty * f.price) for f in log],
                      columns=["at", "symbol", "side", "qty", "price", "value"])
    df["running value"] = df["value"].cumsum()
    table(df, caption=f"{len(df)} fills, in the order they happened",
          formats={"price": "{:,.2f}", "value": "${:,.0f}", "running value": "${:,.0f}", "qty": "{:,}"})
    record("exec_fill_log", df.to_dict(orient="records"))


def execution_orders(result: ExecutionRun) -> None:
    """Every planned order: what was submitted and filled, how it was sized, and why."""
    df = result.report.table()
    cols = ["priority", "symbol", "side", "layer", "state", "planned_qty", "submitted_qty", "filled_qty",
            "avg_price", "attempts", "sizing", "filled_value", "open_value", "reason"]
    df = df[cols].astype({"side": str, "state": str, "sizing": str})
    table(df.rename(columns={"filled_value": "filled $", "open_value": "open orders $"}),
          formats={"avg_price": "{:.2f}", "filled $": "${:,.0f}", "open orders $": "${:,.0f}"})
    record("exec_sizing", df["sizing"].value_counts().to_dict())
    record("exec_rejected_reasons", df.loc[df["state"] == "rejected", "reason"].tolist())


def deployment_vs_plan(result: ExecutionRun) -> None:
    """Planned cost against what was deployed, per order and by layer (leverage × equity)."""
    rep, plan = result.report, result.plan
    planned = {o.client_order_id: o for o in plan.orders}
    rows = [(o.symbol, str(o.layer), planned[o.plan_client_id].est_cost if o.plan_client_id in planned else 0.0,
             o.filled_value, o.open_value) for o in rep.orders]
    df = pd.DataFrame(rows, columns=["symbol", "layer", "planned", "filled", "open"])
    df["deployed"] = df["filled"] + df["open"]
    eq = rep.equity
    fig = go.Figure()
    x = df["symbol"] + "/" + df["layer"]  # a symbol may trade in both layers
    fig.add_bar(x=x, y=df["planned"] / eq, name="planned (est. cost)", offsetgroup="plan")
    fig.add_bar(x=x, y=df["filled"] / eq, name="filled", offsetgroup="done")
    fig.add_bar(x=x, y=df["open"] / eq, name="open orders", offsetgroup="done", base=df["filled"] / eq)
    fig.update_layout(barmode="group", title="Deployment against the plan: filled + open orders",
                      yaxis={"tickformat": ".1%", "title": "fraction of equity"})
    show(fig)
    by_layer = df.groupby("layer")[["planned", "filled", "open", "deployed"]].sum() / eq
    table(by_layer.rename_axis("layer").reset_index(), caption="Leverage by layer (× equity)",
          formats={c: "{:.2f}x" for c in ("planned", "filled", "open", "deployed")})
    record("exec_planned_pct", float(df["planned"].sum() / rep.equity))
    record("exec_leverage_by_layer", by_layer["deployed"].to_dict())


def ledger_snapshot(result: ExecutionRun, last: int = 30) -> None:
    """The ledger's view of the run: its row, event counts by kind, the last events (the fills are
    `execution_fills`)."""
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
    record("ledger_status", run.get("status"))
    record("ledger_events", kinds.to_dict())
    record("ledger_fills", len(fills))
