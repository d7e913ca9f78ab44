"""The pre-market report's risk section: what the pack risks before it is sent — each position's
volatility, ATR and liquidity against the risk rules, the pack's estimated daily volatility and 1-day
value at risk, and the names that move together (correlation clusters, one heatmap)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pandas as pd
import plotly.graph_objects as go

from wolfkit.report.display import markdown, record, show, table
from wolfkit.risk import PackRisk, pack_risk

if TYPE_CHECKING:
    from wolfkit.config import Params
    from wolfkit.orders import BuildResult, OrderPlan
    from wolfkit.runs import RunContext
    from wolfkit.scan import ScanResult


def plan_orders(plan: OrderPlan) -> pd.DataFrame:
    """The plan's orders as the risk figures read them: symbol, layer, qty, price (the estimated price)."""
    return pd.DataFrame(
        [(o.symbol, str(o.layer), o.qty, o.est_price) for o in plan.orders],
        columns=["symbol", "layer", "qty", "price"],
    )


def fig_correlation(r: PackRisk) -> go.Figure:
    """The picked names' correlation heatmap, in cluster order (names that move together sit together)."""
    c = r.correlation
    fig = go.Figure(go.Heatmap(z=c.to_numpy(), x=list(c.columns), y=list(c.index), zmin=-1, zmax=1,
                               colorscale="RdBu_r", colorbar={"title": "ρ"}))
    fig.update_layout(title=f"Correlation of daily returns ({r.observations} sessions), by cluster",
                      yaxis={"autorange": "reversed"}, height=420 + 8 * len(c))
    return fig


def risk_section(plan: OrderPlan, opps: pd.DataFrame, returns: pd.DataFrame, params: Params) -> PackRisk:
    """Display the risk section for `plan` (built from `opps`); `returns`: the lookback's daily returns
    of at least the plan's symbols (`risk.daily_returns`). Returns the figures it shows."""
    equity = plan.account.equity
    r = pack_risk(plan_orders(plan), opps, returns, equity, params)
    rp = params.risk
    pct = f"{100 * rp.var_level:g}%"
    markdown(
        "## Risk\n"
        f"- estimated daily volatility of the directional pack: **{r.daily_vol:.2%}** of equity "
        f"(${r.daily_vol * equity:,.0f}), from {r.observations} sessions of returns\n"
        f"- 1-day VaR {pct}: parametric **{r.var_parametric:.2%}** (${r.var_parametric * equity:,.0f}), "
        f"historical **{r.var_historical:.2%}** (${r.var_historical * equity:,.0f})\n"
        f"- rules: price ≥ ${rp.min_price:g}, average daily dollar volume ≥ ${rp.min_adv_usd:,.0f}, "
        f"an order ≤ {'off' if rp.max_adv_share is None else f'{rp.max_adv_share:.1%}'} of it, "
        f"weight × volatility ≤ {'off' if rp.max_position_risk is None else f'{rp.max_position_risk:.2%}'} of equity"
    )
    skipped = [n for n in plan.summary.notes if n.startswith("risk.")]
    if skipped:
        markdown("**Risk rules not applied:**\n" + "\n".join(f"- {n}" for n in skipped))
    table(r.positions, caption="Positions: volatility, ATR, risk (weight × volatility) and liquidity (order / ADV)",
          formats={"price": "{:,.2f}", "usd": "${:,.0f}", "weight": "{:.2%}", "volatility": "{:.2%}",
                   "atr": "{:,.2f}", "atr_pct": "{:.2%}", "risk": "{:.3%}", "adv_usd": "${:,.0f}",
                   "adv_share": "{:.3%}"})
    groups = r.clusters.groupby("cluster")["symbol"].apply(", ".join).reset_index()
    groups.columns = ["cluster", "symbols"]
    table(groups, caption=f"Correlation clusters (average correlation ≥ {rp.cluster_min_correlation:g})")
    show(fig_correlation(r))
    record("risk_daily_vol", r.daily_vol)
    record("risk_var_parametric", r.var_parametric)
    record("risk_var_historical", r.var_historical)
    record("risk_clusters", int(r.clusters["cluster"].nunique()) if len(r.clusters) else 0)
    return r


def premarket_risk(build: BuildResult, scan: ScanResult, ctx: RunContext) -> PackRisk:
    """The pre-market notebook's risk section: the plan's names' daily returns over the last
    `risk.volatility_days` sessions before the run's session, read once from the run's data provider
    (the window the volatility rule measures), then `risk_section`."""
    from wolfkit import calendar
    from wolfkit.data.registry import provider_for
    from wolfkit.risk import daily_returns

    params = ctx.params
    symbols = sorted({o.symbol for o in build.plan.orders})
    days = params.risk.volatility_days
    window = calendar.sessions_ending(calendar.previous_session(ctx.session), days + 1)
    bars = provider_for(params).daily_bars(symbols, window[0], window[-1]) if symbols else pd.DataFrame(
        columns=["symbol", "date", "close"])
    return risk_section(build.plan, scan.opportunities, daily_returns(bars, symbols, ctx.session, days), params)
