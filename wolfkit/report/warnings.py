"""What a trader must see before the open, as typed rows: the pre-market report's banner and its
warnings section read them, and tests check them on plans built by hand.

`plan_warnings(...)` is a pure function of the orders file, the parameters and what the scan knew
(how fresh its data is, the opportunities' liquidity columns): penny stocks and thin names, margin in
use, stale data, opposite-side orders on one symbol, rules met only partly (market-cap bands missed,
position-count notes), an estimate above the buying power, synthetic prices.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from enum import StrEnum
from typing import TYPE_CHECKING

import pandas as pd

from wolfkit.domain import Layer, Side

if TYPE_CHECKING:
    from wolfkit.config import Params
    from wolfkit.diversify.bands import BandMiss
    from wolfkit.orders import OrderPlan, PlannedOrder

ADV_COLUMN = "adv_usd"  # average daily dollar volume, when the scan provides it


class Severity(StrEnum):
    """A warning asks for a look before the open; a notice is context."""

    WARNING = "warning"
    NOTICE = "notice"


class WarningKind(StrEnum):
    SYNTHETIC = "synthetic prices"
    STALE_DATA = "stale data"
    PRICE_FLOOR = "price floor"
    LIQUIDITY = "liquidity"
    MARGIN = "margin in use"
    BUYING_POWER = "over buying power"
    OPPOSITE_SIDES = "opposite-side orders"
    PARTLY_MET = "rule met only partly"


@dataclass(frozen=True)
class PlanWarning:
    """One row of the warnings section: what, on which symbol (None: the whole plan), and why it matters."""

    kind: WarningKind
    severity: Severity
    symbol: str | None
    message: str


def warnings_frame(rows: Sequence[PlanWarning]) -> pd.DataFrame:
    """The rows as a table (severity, kind, symbol, message), warnings first."""
    df = pd.DataFrame([(str(w.severity), str(w.kind), w.symbol or "", w.message) for w in rows],
                      columns=["severity", "kind", "symbol", "message"])
    return df.sort_values("severity", key=lambda s: s != str(Severity.WARNING), kind="stable").reset_index(drop=True)


def plan_warnings(plan: OrderPlan, params: Params, *, data_through: date | None = None,
                  expected_through: date | None = None, opportunities: pd.DataFrame | None = None,
                  band_misses: Sequence[BandMiss] = ()) -> list[PlanWarning]:
    """Every warning for `plan`. `data_through` / `expected_through`: the last bar the scan used and the
    session it should have reached (the previous session); `opportunities`: the scan's table, read for
    `adv_usd` when it has it; `band_misses`: `Targets.band_misses` (the plan's notes are used for
    every other partly met rule)."""
    out: list[PlanWarning] = []
    if plan.synthetic_prices:
        out.append(PlanWarning(WarningKind.SYNTHETIC, Severity.WARNING, None,
                               "prices come from the synthetic demo market: not real market data; do not trade "
                               "this plan"))
    if data_through is not None and expected_through is not None and data_through < expected_through:
        out.append(PlanWarning(WarningKind.STALE_DATA, Severity.WARNING, None,
                               f"data runs through {data_through}, the previous session is {expected_through}: "
                               "prices and signals are stale; refresh the data before trading"))
    out += _floors(plan, params, opportunities)
    out += _account(plan)
    out += _opposite_sides(plan.orders)
    out += _partly_met(plan, band_misses)
    return out


def _floors(plan: OrderPlan, params: Params, opps: pd.DataFrame | None) -> list[PlanWarning]:
    """Penny stocks (order price below the floor) and thin names (ADV below the floor, or an order too
    large a share of it), one row per symbol and rule."""
    rp = params.report
    out: list[PlanWarning] = []
    by_symbol: dict[str, list[PlannedOrder]] = {}
    for o in plan.orders:
        by_symbol.setdefault(o.symbol, []).append(o)
    for sym, orders in by_symbol.items():
        price = min(o.est_price for o in orders)
        if price < rp.warn_price_below:
            layers = ", ".join(sorted({str(o.layer) for o in orders}))
            shares = sum(o.qty for o in orders)
            out.append(PlanWarning(
                WarningKind.PRICE_FLOOR, Severity.WARNING, sym,
                f"${price:,.2f} a share, below the ${rp.warn_price_below:,.2f} floor ({shares:,} shares, {layers}): "
                "wide spreads and large moves are common in penny stocks"))
    if opps is None or ADV_COLUMN not in opps.columns:
        if opps is not None:
            out.append(PlanWarning(WarningKind.LIQUIDITY, Severity.NOTICE, None,
                                   f"liquidity not checked: the opportunities have no `{ADV_COLUMN}` column "
                                   "(average daily dollar volume)"))
        return out
    adv = dict(zip(opps["symbol"], pd.to_numeric(opps[ADV_COLUMN], errors="coerce")))
    for sym, orders in by_symbol.items():
        a = adv.get(sym)
        if a is None or pd.isna(a):
            continue
        cost = sum(o.est_cost for o in orders)
        if a < rp.warn_dollar_volume_below:
            out.append(PlanWarning(WarningKind.LIQUIDITY, Severity.WARNING, sym,
                                   f"average daily dollar volume ${a:,.0f}, below the ${rp.warn_dollar_volume_below:,.0f} "
                                   "floor"))
        if a > 0 and cost / a > rp.warn_volume_share_above:
            out.append(PlanWarning(WarningKind.LIQUIDITY, Severity.WARNING, sym,
                                   f"orders worth ${cost:,.0f} are {cost / a:.1%} of its average daily dollar volume "
                                   f"(flagged above {rp.warn_volume_share_above:.1%}): expect to move the price"))
    return out


def _account(plan: OrderPlan) -> list[PlanWarning]:
    """Gross committed above equity (margin in use) and above the buying power."""
    equity, bp = plan.account.equity, plan.account.buying_power
    committed = sum(o.est_cost for o in plan.orders if o.side == Side.BUY)
    out = []
    if committed > equity + 0.5:
        out.append(PlanWarning(WarningKind.MARGIN, Severity.WARNING, None,
                               f"orders commit ${committed:,.0f} = {committed / equity:.2f}x equity ${equity:,.0f}: "
                               f"${committed - equity:,.0f} is borrowed on margin if every order fills"))
    if committed > bp + 0.5:
        out.append(PlanWarning(WarningKind.BUYING_POWER, Severity.WARNING, None,
                               f"orders commit ${committed:,.0f}, above the buying power ${bp:,.0f}: the last "
                               "orders in priority order will be shrunk or refused"))
    return out


def _legs(o: PlannedOrder) -> list[tuple[Side, str]]:
    """The order and the exit legs it carries, as (side, description)."""
    price = f"limit {o.limit_price:,.2f}" if o.limit_price is not None else "market"
    legs = [(o.side, f"{o.layer} {o.side} {price}")]
    exit_side = Side.SELL if o.side == Side.BUY else Side.BUY
    if o.take_profit is not None:
        legs.append((exit_side, f"{o.layer} take-profit {exit_side} {o.take_profit:,.2f}"))
    if o.stop_loss is not None:
        legs.append((exit_side, f"{o.layer} stop {exit_side} {o.stop_loss:,.2f}"))
    return legs


def _opposite_sides(orders: Sequence[PlannedOrder]) -> list[PlanWarning]:
    """A symbol with a buy and a sell working at once (orders or their bracket legs), e.g. a maxdiff buy
    limit beside a directional bracket's stop: a broker may refuse one as a potential wash trade, and
    the two layers trade against each other."""
    out = []
    by_symbol: dict[str, list[PlannedOrder]] = {}
    for o in orders:
        by_symbol.setdefault(o.symbol, []).append(o)
    for sym, group in by_symbol.items():
        if len(group) < 2:
            continue
        legs = [(i, side, text) for i, o in enumerate(group) for side, text in _legs(o)]
        buys = [t for _, side, t in legs if side == Side.BUY]
        sells = [t for _, side, t in legs if side == Side.SELL]
        if _different_orders(legs):
            close = _closest(group)
            out.append(PlanWarning(WarningKind.OPPOSITE_SIDES, Severity.WARNING, sym,
                                   f"{'; '.join(buys)} beside {'; '.join(sells)}{close}: a broker may refuse one "
                                   "as a potential wash trade, and the layers trade against each other"))
    return out


def _different_orders(legs: Sequence[tuple[int, Side, str]]) -> bool:
    """A buy leg of one order and a sell leg of another (an order's own bracket is no clash)."""
    buyers = {i for i, side, _ in legs if side == Side.BUY}
    sellers = {i for i, side, _ in legs if side == Side.SELL}
    return any(b != s for b in buyers for s in sellers)


def _closest(group: Sequence[PlannedOrder]) -> str:
    """How far a maxdiff buy limit sits from a directional stop on the same symbol (the usual clash)."""
    stops = [o.stop_loss for o in group if o.layer == Layer.DIRECTIONAL and o.stop_loss is not None]
    limits = [o.limit_price for o in group if o.layer == Layer.MAXDIFF and o.side == Side.BUY
              and o.limit_price is not None]
    if not stops or not limits:
        return ""
    gap = min((abs(lim - s) / s, lim, s) for lim in limits for s in stops)
    return f" (the maxdiff buy {gap[1]:,.2f} is {gap[0]:.1%} from the stop {gap[2]:,.2f})"


def _partly_met(plan: OrderPlan, band_misses: Sequence[BandMiss]) -> list[PlanWarning]:
    """Market-cap bands missed (from `Targets.band_misses`) and the plan's other notes (why it does not
    hold the target number of positions)."""
    out = [PlanWarning(WarningKind.PARTLY_MET, Severity.WARNING, None, b.note()) for b in band_misses]
    shown = {b.note() for b in band_misses}
    out += [PlanWarning(WarningKind.PARTLY_MET, Severity.NOTICE, None, n) for n in plan.summary.notes
            if n not in shown and not n.startswith("market-cap band ")]
    if not band_misses:  # a plan read back from its file carries the band lines only as notes
        out += [PlanWarning(WarningKind.PARTLY_MET, Severity.WARNING, None, n) for n in plan.summary.notes
                if n.startswith("market-cap band ")]
    return out
