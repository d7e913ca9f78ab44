"""Report building blocks for the notebooks, by responsibility:

- `display`: showing figures (plotly bundles that JupyterLab renders and that survive into the offline
  HTML report), Markdown and tables; `record`/`read_records` for the values an audit checks;
- `figures`: pure figures, typed tables in and `plotly` figures out;
- `identity`: the run's header at the top of every report;
- `premarket`, `replay`, `execution`: each notebook's sections (display + record); `risk`: the
  pre-market report's risk section (per-position volatility, ATR and liquidity, pack volatility, VaR,
  correlation clusters).

Notebooks call them as `report.<name>`; every public name is re-exported here.
"""

from wolfkit.report.display import (
    PLOTLY_MIMETYPE,
    RECORD_MIMETYPE,
    RENDERER,
    Renderer,
    figure_html,
    jsonable,
    markdown,
    plotlyjs_bundle,
    read_records,
    record,
    setup,
    show,
    table,
    table_html,
)
from wolfkit.report.execution import deployment_vs_plan, execution_orders, execution_summary, ledger_snapshot
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
from wolfkit.report.premarket import (
    breakdown,
    exports,
    leverage,
    market_day,
    maxdiff_plans,
    orders_preview,
    orders_table,
    pack,
    scan_summary,
    top_opportunities,
)
from wolfkit.report.replay import replay_fills, replay_leverage, replay_summary
from wolfkit.report.risk import fig_correlation, risk_section

__all__ = [
    "PLOTLY_MIMETYPE", "RECORD_MIMETYPE", "RENDERER", "Renderer", "breakdown", "deployment_vs_plan",
    "execution_orders", "execution_summary", "exports", "fig_against_caps", "fig_components", "fig_leverage",
    "fig_orders_budget", "fig_replay_leverage", "fig_weights", "figure_html", "header", "jsonable",
    "ledger_snapshot", "leverage", "leverage_buckets", "market_day", "markdown", "maxdiff_plans", "orders_preview",
    "orders_table", "pack", "plotlyjs_bundle", "read_records", "record", "replay_fills", "replay_leverage",
    "replay_summary", "risk_section", "fig_correlation", "scan_summary", "setup", "show", "table", "table_html", "top_opportunities",
]
