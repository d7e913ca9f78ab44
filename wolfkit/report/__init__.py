"""Report building blocks for the notebooks, by responsibility:

- `display`: showing figures (plotly bundles that JupyterLab renders and that survive into the offline
  HTML report), Markdown and tables; `record`/`read_records` for the values an audit checks;
- `figures`: pure figures, typed tables in and `plotly` figures out;
- `identity`: the run's header at the top of every report;
- `warnings`: pure, the pre-market warnings as typed rows (`plan_warnings`);
- `premarket`, `plan`, `replay`, `execution`: each notebook's sections (display + record); `risk`: the
  pre-market report's risk section (per-position volatility, ATR and liquidity, pack volatility, VaR,
  correlation clusters).

Notebooks call them as `report.<name>`; every public name is re-exported here.
"""

from wolfkit.report.display import (
    PLOTLY_MIMETYPE,
    RECORD_MIMETYPE,
    RENDERER,
    BannerStyle,
    Renderer,
    banner,
    banner_html,
    figure_html,
    jsonable,
    long_table,
    markdown,
    plotlyjs_bundle,
    read_records,
    record,
    setup,
    show,
    table,
    table_html,
)
from wolfkit.report.execution import (
    EXECUTION_RECORD,
    deployment_vs_plan,
    execution_fills,
    execution_orders,
    execution_summary,
    ledger_snapshot,
)
from wolfkit.report.figures import (
    fig_against_caps,
    fig_components,
    fig_leverage,
    fig_orders_budget,
    fig_replay_leverage,
    fig_weights,
    leverage_buckets,
)
from wolfkit.report.identity import header
from wolfkit.report.plan import (
    account_summary,
    commitments,
    maxdiff_plans,
    orders_preview,
    orders_table,
    other_exits,
)
from wolfkit.report.premarket import (
    breakdown,
    exports,
    leverage,
    market_day,
    pack,
    premarket_warnings,
    rounded_weights,
    scan_summary,
    top_opportunities,
    warnings_banner,
    warnings_section,
)
from wolfkit.report.replay import replay_fills, replay_leverage, replay_summary
from wolfkit.report.risk import fig_correlation, premarket_risk, risk_section
from wolfkit.report.warnings import PlanWarning, Severity, WarningKind, plan_warnings, warnings_frame

__all__ = [
    "PLOTLY_MIMETYPE", "RECORD_MIMETYPE", "RENDERER", "BannerStyle", "PlanWarning", "Renderer", "Severity",
    "WarningKind", "account_summary", "banner", "banner_html", "commitments", "long_table",
    "other_exits", "plan_warnings", "premarket_warnings", "rounded_weights", "warnings_banner", "warnings_frame",
    "warnings_section", "breakdown", "deployment_vs_plan",
    "EXECUTION_RECORD", "execution_fills", "execution_orders", "execution_summary", "exports", "fig_against_caps", "fig_components", "fig_leverage",
    "fig_orders_budget", "fig_replay_leverage", "fig_weights", "figure_html", "header", "jsonable",
    "ledger_snapshot", "leverage", "leverage_buckets", "market_day", "markdown", "maxdiff_plans", "orders_preview",
    "orders_table", "pack", "plotlyjs_bundle", "read_records", "record", "replay_fills", "replay_leverage",
    "replay_summary", "risk_section", "premarket_risk", "fig_correlation", "scan_summary", "setup", "show", "table", "table_html", "top_opportunities",
]
