"""The pre-market report's sections: the warnings (banner and section), the session and its data, the
scan, the pack, sectors and market-cap tiers against their caps, and the leverage buckets (the orders,
the account and the maxdiff plans are `wolfkit.report.plan`). Each section displays its tables and
figures and records the values an audit checks. Every weight and chart is a fraction of equity, after
share rounding where shares exist."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from wolfkit.data.quality import quarantine_count
from wolfkit.diversify.bands import band_table
from wolfkit.report.display import BannerStyle, anchor, banner, long_table, markdown, record, show, table
from wolfkit.report.figures import fig_against_caps, fig_components, fig_leverage, fig_weights, leverage_buckets
from wolfkit.report.warnings import PlanWarning, Severity, WarningKind, plan_warnings, warnings_frame

if TYPE_CHECKING:
    from wolfkit.config import Params
    from wolfkit.orders import BuildResult
    from wolfkit.runs import RunContext
    from wolfkit.scan import ScanResult

WARNINGS_ANCHOR = "warnings"  # the warnings section's id: the banner links to it


def premarket_warnings(ctx: RunContext, scan: ScanResult, build: BuildResult) -> list[PlanWarning]:
    """The day's warnings (`report.warnings.plan_warnings`) from the run, its scan and its build."""
    from wolfkit import calendar

    return plan_warnings(build.plan, ctx.params, data_through=pd.Timestamp(scan.data_through).date(),
                         expected_through=calendar.previous_session(ctx.session),
                         opportunities=scan.opportunities, band_misses=build.targets.band_misses)


def warnings_banner(rows: list[PlanWarning]) -> None:
    """The banner at the top: how many warnings, the first few, a link to the section (synthetic prices
    have their own banner in the header)."""
    shown = [w for w in rows if w.severity is Severity.WARNING and w.kind is not WarningKind.SYNTHETIC]
    link = f"<a href='#{WARNINGS_ANCHOR}'>see Warnings</a>"
    if not shown:
        banner(BannerStyle.OK, f"No warnings for this plan ({link}).")
    else:
        lines = [f"{w.kind}{' ' + w.symbol if w.symbol else ''}: {w.message}" for w in shown[:6]]
        more = len(shown) - len(lines)
        banner(BannerStyle.WARNING, f"{len(shown)} warning{'s' if len(shown) != 1 else ''} before the open "
               f"({link}{f'; {more} more there' if more else ''})", lines)
    record("warnings_count", len(shown))


def warnings_section(rows: list[PlanWarning]) -> None:
    """Every warning and notice as a table (severity, kind, symbol, message)."""
    anchor(WARNINGS_ANCHOR)
    if not rows:
        markdown("Nothing to flag: prices above the floor, no margin in use, fresh data, no opposite-side orders, "
                 "every rule met.")
    else:
        table(warnings_frame(rows), caption="Warnings (check before the open) and notices")
    record("warnings", [{"kind": str(w.kind), "severity": str(w.severity), "symbol": w.symbol,
                         "message": w.message} for w in rows])


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
        lines.append("- prices are synthetic (demo market; see the banner above)")
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


def top_opportunities(scan: ScanResult, params: Params, n: int = 15) -> None:
    """The best `n` opportunities with their component scores (percentiles, 0–100)."""
    top = scan.opportunities.head(n)
    cols = [c for c in ("symbol", "sector", "cap_tier", "price", "score", "strategy", "expected_return")
            if c in top.columns] + [c for c in top.columns if c.startswith("score_")]
    shown = top[cols].rename(columns={c: c.removeprefix("score_").replace("_", " ") for c in cols
                                      if c.startswith("score_")} | {"cap_tier": "cap tier",
                                                                    "expected_return": "exp. return"})
    fmt = {"price": "${:,.2f}", "score": "{:.1f}", "exp. return": "{:.2%}"}
    fmt |= {c.removeprefix("score_").replace("_", " "): "{:.0f}" for c in cols if c.startswith("score_")}
    table(shown, caption=f"Top {len(top)} of {len(scan.opportunities)} by score", formats=fmt)
    if any(c.startswith("score_") for c in cols):
        show(fig_components(top, params.scan.signals))
    record("top_symbols", top["symbol"].tolist())
    record("top_scores", top["score"].round(4).tolist())


def rounded_weights(build: BuildResult) -> pd.DataFrame:
    """The pack's names with the target weight and the weight after share rounding (qty × price / equity)."""
    w = build.targets.weights
    d = build.packing.directional
    equity = build.plan.account.equity
    held = d.set_index("symbol")[["qty", "price", "cost"]] if len(d) else pd.DataFrame(columns=["qty", "price", "cost"])
    out = w.rename(columns={"weight": "target"}).join(held, on="symbol")
    out["qty"] = out["qty"].fillna(0).astype(int)
    out["weight"] = out["cost"].fillna(0.0) / equity
    return out


def pack(build: BuildResult, ctx: RunContext) -> None:
    """The directional pack: weights after share rounding beside their targets, tiers, and the reason for
    each pick and each exclusion (a long exclusion list goes to a CSV beside the report)."""
    t = build.targets
    w = rounded_weights(build)
    held = float(w["weight"].sum())
    markdown(
        f"**{len(w)} positions** holding {held:.2%} of equity after share rounding (target {t.allocation:.1%}), "
        f"method `{t.method}`, objective {t.objective:.4f} (Σ weight × {t.basis})."
    )
    cols = [c for c in ("symbol", "sector", "cap_tier", "score", "tier", "qty", "weight", "target", "reason")
            if c in w.columns]
    table(w[cols], caption="Picked (weight: qty × price / equity; target: before rounding)",
          formats={"score": "{:.1f}", "weight": "{:.2%}", "target": "{:.2%}", "qty": "{:,}"})
    if len(w):
        show(fig_weights(w))
    below = t.excluded["reason"].astype(str).str.startswith("below min_score")
    rp = ctx.params.report
    if (~below).any():
        long_table(t.excluded[~below], lambda: ctx.export_path("candidates_not_picked.csv"), rp.table_rows,
                   "Candidates not picked, and why")
    if below.any():
        markdown(f"{int(below.sum())} more symbols scored below `min_score` "
                 f"({t.excluded.loc[below, 'reason'].iloc[0].removeprefix('below min_score ')}) and were not candidates.")
    if getattr(build, "quarantined", None) is not None and len(build.quarantined):
        table(build.quarantined, caption="Quarantined opportunity rows (set aside, not used)")
    record("positions", len(w))
    record("allocation", t.allocation)
    record("allocation_after_rounding", held)
    record("method", t.method)
    record("objective", t.objective)
    record("pack_symbols", w["symbol"].tolist())
    record("pack_weights", dict(zip(w["symbol"], w["weight"])))
    record("pack_targets", dict(zip(w["symbol"], w["target"])))


def breakdown(build: BuildResult, params: Params) -> None:
    """Sector and market-cap tier weights after share rounding against their caps and bands, all as
    fractions of equity (a band, set as a share of the allocation, is drawn at band × allocation)."""
    t = build.targets
    port = params.portfolio
    sector_w = build.plan.summary.sector_weights
    cap_w = build.plan.summary.cap_weights
    sectors = {s: (0.0, port.cap_for(s)) for s in sorted(set(t.sector_weights) | set(sector_w))}
    over = {s: v for s, v in t.sector_weights.items() if v > port.cap_for(s) + 1e-9}
    show(fig_against_caps(sector_w, sectors, "Sector weight vs cap (fractions of equity)"))
    alloc = t.allocation or 1.0
    bands = {k: (lo * alloc, hi * alloc) for k, (lo, hi) in port.market_cap.bands.items()}
    show(fig_against_caps(cap_w, bands, f"Market-cap tier weight vs band (fractions of equity; bands × the "
                                        f"{alloc:.0%} allocation)"))
    bt = band_table(params, t.cap_weights, t.allocation, t.band_misses)
    for c in ("min", "max", "share"):
        bt[c] = bt[c] * alloc
    bt["met"] = bt["met"].map({True: "yes", False: "NO"})
    table(bt.rename(columns={"share": "weight"}), caption="Market-cap bands: met, or why not (fractions of equity)",
          formats={"min": "{:.1%}", "max": "{:.1%}", "weight": "{:.1%}"})
    rows = pd.DataFrame(
        [(s, v, port.cap_for(s)) for s, v in sorted(sector_w.items(), key=lambda kv: -kv[1])],
        columns=["sector", "weight", "cap"],
    )
    table(rows, caption="Sectors (fractions of equity, after share rounding)",
          formats={"weight": "{:.2%}", "cap": "{:.0%}"})
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


def exports(paths: Mapping[str, Path | list[Path]]) -> None:
    """List the files this run wrote."""
    lines = [f"- {name}: `{q}`" for name, p in paths.items() for q in (p if isinstance(p, list) else [p])]
    markdown("\n".join(lines))
    record("exports", {k: [str(q) for q in v] if isinstance(v, list) else str(v) for k, v in paths.items()})
