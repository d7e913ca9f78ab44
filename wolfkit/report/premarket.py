"""The pre-market report's sections: the session and its data, the scan, the pack, sectors and
market-cap tiers against their caps, the leverage buckets, the orders and the maxdiff plans. Each
section displays its tables and figures and records the values an audit checks."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from wolfkit.data.quality import quarantine_count
from wolfkit.diversify.bands import band_table
from wolfkit.domain import PlanStatus
from wolfkit.report.display import markdown, record, show, table
from wolfkit.report.figures import (
    fig_against_caps,
    fig_components,
    fig_leverage,
    fig_orders_budget,
    fig_weights,
    leverage_buckets,
)

if TYPE_CHECKING:
    from wolfkit.config import Params
    from wolfkit.orders import BuildResult, OrderPlan
    from wolfkit.runs import RunContext
    from wolfkit.scan import ScanResult


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
