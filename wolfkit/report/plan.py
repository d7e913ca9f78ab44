"""The pre-market report's sections on the orders file: the account (what the orders commit against
equity and buying power, said once), every order with its exits, and the maxdiff plans."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pandas as pd

from wolfkit.domain import Layer, PlanStatus, Side
from wolfkit.exits import managed
from wolfkit.orders import PlannedOrder
from wolfkit.report.display import long_table, markdown, record, show, table
from wolfkit.report.figures import fig_orders_budget

if TYPE_CHECKING:
    from wolfkit.orders import BuildResult, OrderPlan
    from wolfkit.runs import RunContext

NONE = "—"  # an exit the order does not carry
BRACKET_EXITS = ("take_profit", "stop_loss")


def other_exits(o: PlannedOrder) -> str:
    """The order's exits beyond take-profit and stop (the trailing and time stops the intraday engine
    manages, `wolfkit.exits.managed`), as text (`—` when none)."""
    return " · ".join(managed(o)) or NONE


def orders_table(plan: OrderPlan) -> pd.DataFrame:
    """The orders file's orders in priority order: the order, its cost and weight after share rounding
    (qty × est_price / equity), and its exits (take-profit, stop, others; `—` when none)."""
    equity = plan.account.equity
    rows = []
    for o in plan.orders:
        rows.append({
            "priority": o.priority, "symbol": o.symbol, "layer": str(o.layer), "side": str(o.side), "qty": o.qty,
            "order": f"limit {o.limit_price:,.2f}" if o.limit_price is not None else str(o.type),
            "tif": str(o.time_in_force), "est_price": o.est_price, "est_cost": o.est_cost,
            "weight": o.qty * o.est_price / equity,
            "take_profit": f"{o.take_profit:,.2f}" if o.take_profit is not None else NONE,
            "stop": f"{o.stop_loss:,.2f}" if o.stop_loss is not None else NONE,
            "other_exits": other_exits(o), "strategy": str(o.strategy), "client_order_id": o.client_order_id,
        })
    cols = ["priority", "symbol", "layer", "side", "qty", "order", "tif", "est_price", "est_cost", "weight",
            "take_profit", "stop", "other_exits", "strategy", "client_order_id"]
    return pd.DataFrame(rows, columns=cols).sort_values("priority", kind="stable").reset_index(drop=True)


def commitments(plan: OrderPlan) -> dict[str, float]:
    """What the plan commits if every order fills (USD): buys by layer and in total, against equity and
    the buying power; `margin` is what goes beyond equity, `room` what is left of the buying power."""
    d = sum(o.est_cost for o in plan.orders if o.side == Side.BUY and o.layer == Layer.DIRECTIONAL)
    m = sum(o.est_cost for o in plan.orders if o.side == Side.BUY and o.layer == Layer.MAXDIFF)
    equity, bp = plan.account.equity, plan.account.buying_power
    total = d + m
    return {"equity": equity, "buying_power": bp, "directional": d, "maxdiff": m, "committed": total,
            "margin": max(0.0, total - equity), "room": bp - total}


def account_summary(build: BuildResult) -> None:
    """Equity, buying power and what the orders commit, stated once, in one basis (USD and × equity)."""
    plan = build.plan
    c = commitments(plan)
    eq = c["equity"]
    kind = "margin" if c["buying_power"] > eq else "cash"
    n_d = sum(o.layer == Layer.DIRECTIONAL for o in plan.orders)
    n_m = len(plan.orders) - n_d
    rows = pd.DataFrame([
        ("equity", eq, 1.0, "the account's value"),
        ("buying power", c["buying_power"], c["buying_power"] / eq, f"{kind} account"),
        ("directional orders", c["directional"], c["directional"] / eq, f"{n_d} orders"),
        ("maxdiff orders (listening at the open)", c["maxdiff"], c["maxdiff"] / eq, f"{n_m} limit orders"),
        ("committed if every order fills", c["committed"], c["committed"] / eq, "directional + maxdiff"),
        ("on margin (committed beyond equity)", c["margin"], c["margin"] / eq, "borrowed if everything fills"),
        ("buying power left", c["room"], c["room"] / eq, "after every order"),
    ], columns=["", "USD", "× equity", "note"])
    markdown(
        f"The orders commit **${c['committed']:,.0f}** ({c['committed'] / eq:.2f}x equity) if every order fills: "
        f"equity ${eq:,.0f}, buying power ${c['buying_power']:,.0f} ({kind} account)."
        + (f" **${c['margin']:,.0f} is on margin.**" if c["margin"] > 0.5 else "")
    )
    table(rows, formats={"USD": "${:,.0f}", "× equity": "{:.2f}x"})
    for k, v in c.items():
        record(f"account_{k}", v)


def orders_preview(build: BuildResult) -> None:
    """Every order with its estimated cost, weight and exits, and the running total against the buying power."""
    plan = build.plan
    df = orders_table(plan)
    total = float(df["est_cost"].sum())
    bp, equity = plan.account.buying_power, plan.account.equity
    with_exits = int(((df["take_profit"] != NONE) | (df["stop"] != NONE) | (df["other_exits"] != NONE)).sum())
    markdown(
        f"**{len(df)} orders**, estimated cost ${total:,.0f} ({total / bp:.1%} of the buying power; the account "
        f"section above has the totals); {with_exits} carry exits (take-profit, stop or others), `—` means none."
        + ("" if total <= bp + 1e-6 else " **The estimate exceeds the buying power.**")
    )
    table(df.drop(columns=["client_order_id"]).rename(columns={
        "priority": "#", "est_price": "est. price", "est_cost": "est. cost", "weight": "% equity",
        "take_profit": "take-profit", "other_exits": "other exits"}),
        formats={"est. price": "${:,.2f}", "est. cost": "${:,.0f}", "% equity": "{:.2%}", "qty": "{:,}"})
    if len(df):
        show(fig_orders_budget(df, bp, equity))
    record("orders", len(df))
    record("orders_est_cost", total)
    record("orders_with_exits", with_exits)
    record("order_weights", dict(zip(df["symbol"] + "/" + df["layer"], df["weight"])))
    record("buying_power", bp)
    record("orders_within_buying_power", total <= bp + 1e-6)


def maxdiff_plans(build: BuildResult, ctx: RunContext) -> None:
    """The maxdiff plans for the day: which listen from the open and which queue for room; a long list
    shows its best-ranked rows and links the full list (a CSV beside the report)."""
    plans = pd.DataFrame([m.model_dump(mode="json") for m in build.plan.maxdiff_plans])
    csv = None
    if plans.empty:
        markdown("No maxdiff plans today (none qualified, or the layer is disabled).")
        counts: dict[str, int] = {}
    else:
        plans = plans.sort_values("rank")
        counts = plans["status"].value_counts().to_dict()
        markdown(", ".join(f"**{v}** {k}" for k, v in counts.items()) + " — ranked by average return.")
        csv = long_table(plans, lambda: ctx.export_path("maxdiff_plans.csv"), ctx.params.report.table_rows, "Maxdiff plans",
                         formats={"high_target": "{:.2f}", "low_target": "{:.2f}", "avg_return": "{:.3%}",
                                  "room_needed": "${:,.0f}", "qty": "{:,}"})
    record("maxdiff_listening", int(counts.get(PlanStatus.LISTENING, 0)))
    record("maxdiff_queued", int(counts.get(PlanStatus.QUEUED, 0)))
    record("maxdiff_csv", str(csv) if csv else None)
