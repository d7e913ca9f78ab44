"""The replay report's sections: both replays side by side, leverage through the day, the fills."""

from __future__ import annotations

from typing import TYPE_CHECKING

from wolfkit.report.display import markdown, record, show, table
from wolfkit.report.figures import fig_replay_leverage

if TYPE_CHECKING:
    from wolfkit.config import Params
    from wolfkit.replay import ReplayResult


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
