"""The session loop: build each morning's pack with the live builder, fill it from the session's bars.

Only what must be sequential happens here (equity feeds the next day's sizing): the mornings stream
in from `panel.scan_sessions` (from worker processes when `scan.workers` > 0), each with its scan and
its directional target weights (`panel.plan_morning`: fractions of equity, so planned beside the scan).
Each session:

1. positions carried overnight (`intraday.close_directional_eod: false`) are netted against the new
   pack at the open, as the live builder does (`wolfkit.rebalance.rebalance_orders`): what left the
   pack is sold, the rest trimmed or topped up to its new target, new names bought — only these
   deltas trade and pay fees. A carried symbol without a clean open (a quarantined date, no bar) is
   sold at its last clean close first. The kept shares count against the directional room at their
   planned value (the previous close the pack was sized at); the day's take-profit and stop then
   apply to the whole position;
2. symbols with a quarantined date in their lookback window are not candidates (`panel.plan_morning`); the
   targets go through the rest of the live builder's steps (`build_day`: sizing, packing, then the
   order rules of `wolfkit.orders.build_order_plan`) at the previous close's equity; an
   `InfeasibleError` (no targets, or no room for them) makes the session flat with the reason in the
   warnings;
3. directional buys fill at the open (+ slippage), shrunk from the tail when the open's prices would
   exceed the allocation (1 − cash_reserve) or the directional bucket; take-profit, stop (fixed, ATR or
   trailing) and time stop from the plan (`wolfkit.exits`), per `fills.bracket_exit`; at the close they
   are sold or carried per the exit rule;
4. maxdiff orders (the plans listening at the open: the opening time-of-day share of the budget;
   daily bars cannot show when later room frees) fill per `fills.maxdiff_trade` and are flat at
   the close;
5. every day the limits are checked (`check_limits`); a breach is a bug and stops the run.

A quarantined (symbol, date) trades as a flat bar at its open: nothing is booked from the jump.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import date
from typing import TYPE_CHECKING, Callable, Iterable

import numpy as np
import pandas as pd

from wolfkit.backtest.fills import (
    Bar,
    Reason,
    bracket_exit,
    fee,
    market_price,
    maxdiff_trade,
)
from wolfkit.config import Params
from wolfkit.diversify import Targets, tier_labels
from wolfkit.domain import Layer, MaxdiffSide, PlanStatus, Side
from wolfkit.errors import InfeasibleError, WolfkitError
from wolfkit.exits import trail_amount
from wolfkit.packing import Packing, pack_layers
from wolfkit.rebalance import maxdiff_opens, rebalance_orders
from wolfkit.sector_tilt import SectorTilt, directional_trades, sector_tilt

if TYPE_CHECKING:
    from wolfkit.backtest.panel import Market, Morning

FILL_COLUMNS = ["date", "symbol", "side", "qty", "price", "layer", "reason", "fee"]
EQUITY_COLUMNS = ["date", "equity", "cash", "gross_directional", "gross_maxdiff", "pnl_directional",
                  "pnl_maxdiff", "fees"]
TOL = 1e-6


@dataclass
class Walk:
    """What the loop produced: rows of equity.csv and fills.csv, each session's picks (names bought,
    with their target weight) and planned names, the scans, warnings."""

    equity: list[dict] = field(default_factory=list)
    fills: list[tuple] = field(default_factory=list)
    picks: dict[date, dict[str, float]] = field(default_factory=dict)
    planned: dict[date, list[str]] = field(default_factory=dict)  # the pack's names, filled or not
    scans: list[pd.DataFrame] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    tilts: list[SectorTilt] = field(default_factory=list)  # sessions whose sector caps were tilted
    fill_rules: str = "daily"


def tier_of(scores: np.ndarray, params: Params) -> np.ndarray:
    """The score-tier label of each score, "below" under `portfolio.min_score`."""
    labels = tier_labels(params)
    pp = params.portfolio
    conds = [scores >= t.min_score for t in pp.tiers]
    out = np.select(conds, labels, "below").astype(object)
    out[~(scores >= pp.min_score)] = "below"
    return out


@dataclass(frozen=True)
class DayOrder:
    """One order of the morning's plan, in priority order: what `build_order_plan` would write."""

    symbol: str
    layer: Layer
    buy: bool
    qty: int
    weight: float
    take_profit: float | None = None
    stop_loss: float | None = None
    trail: float | None = None
    time_stop_minutes: int | None = None
    limit: float | None = None
    target: float | None = None


def _num(v) -> float | None:
    return None if v is None or pd.isna(v) else float(v)


def build_day(opps: pd.DataFrame, targets: Targets, params: Params, equity: float,
              buying_power: float, held: Iterable[str] = ()) -> tuple[list[DayOrder], Packing]:
    """The morning's orders from the live builder's own steps (the targets of `diversify.build_targets`,
    then `packing.pack_layers`), ordered and filtered by the rules of `orders.build_order_plan`: directional
    targets (whole positions: the loop nets them against `held`) by weight, score, symbol; then listening
    maxdiff plans by rank, left out on a `held` symbol or against a directional order of the other side
    (`orders.maxdiff_opens`). The scan's table needs no re-validation."""
    packing = pack_layers(targets, opps, params, equity, buying_power, method=targets.method)
    tp = dict(zip(opps["symbol"], opps["take_profit"]))
    sl = dict(zip(opps["symbol"], opps["stop_loss"]))
    d = packing.directional.sort_values(["weight", "score", "symbol"], ascending=[False, False, True])
    price = dict(zip(opps["symbol"], opps["price"]))
    ex = params.exits
    orders = [DayOrder(s, Layer.DIRECTIONAL, True, int(q), float(w), _num(tp[s]), _num(sl[s]),
                       trail_amount(float(price[s]), _num(sl[s]), ex), ex.time_stop_minutes)
              for s, q, w in zip(d["symbol"], d["qty"], d["weight"]) if q > 0]
    sides = {o.symbol: Side.BUY for o in orders}
    carried = {s: 1 for s in held}
    m = packing.maxdiff
    for s, side, q, lim, hi, lo, status in zip(m["symbol"], m["side"], m["qty"], m["limit_price"],
                                                m["high_target"], m["low_target"], m["status"]):
        if status != PlanStatus.LISTENING or not maxdiff_opens(s, MaxdiffSide(side), sides, carried):
            continue
        buy = side != "sell"
        orders.append(DayOrder(s, Layer.MAXDIFF, buy, int(q), float(q * lim) / equity, limit=float(lim),
                               target=float(hi if buy else lo)))
    return orders, packing


def check_limits(orders: list[DayOrder], sector_weights: dict[str, float], params: Params, equity: float,
                 buying_power: float, dir_cost: float, md_cost: float, md_capacity: float) -> list[str]:
    """Breaches of the day's rules (empty when all hold): buckets, reserve, sectors, per-symbol count.

    `sector_weights`: the pack's target weights by sector (whole shares may round a hair above);
    `dir_cost` and `md_cost`: what the open's fills spent on each layer (USD).
    """
    pp, lev = params.portfolio, params.leverage
    account = params.account(equity, buying_power)
    dir_bucket, total_bucket = account.directional_bucket, account.total_bucket
    out = []
    if dir_cost > min(dir_bucket, pp.target_allocation * equity) * (1 + TOL):
        out.append(f"directional {dir_cost:,.2f} > allocation/bucket {min(dir_bucket, pp.target_allocation * equity):,.2f}")
    if md_cost > md_capacity * (1 + TOL) + 0.01:
        out.append(f"maxdiff {md_cost:,.2f} > time-of-day capacity {md_capacity:,.2f}")
    if dir_cost + md_cost > total_bucket * (1 + TOL):
        out.append(f"gross {dir_cost + md_cost:,.2f} > total bucket {total_bucket:,.2f}")
    for sector, w in sector_weights.items():
        if w > pp.cap_for(sector) + TOL:
            out.append(f"sector {sector} {w:.4f} > cap {pp.cap_for(sector)}")
    per_symbol: dict[str, int] = {}
    for o in orders:
        per_symbol[o.symbol] = per_symbol.get(o.symbol, 0) + 1
    out += [f"{s}: {n} positions > {lev.max_positions_per_symbol}" for s, n in per_symbol.items()
            if n > lev.max_positions_per_symbol]
    return out


def _minute_paths(provider, symbols: list[str], session: date) -> dict[str, np.ndarray] | None:
    if not symbols:
        return {}
    try:
        m = provider.minute_bars(symbols, session)
    except (NotImplementedError, WolfkitError):
        return None
    if m is None or len(m) == 0:
        return None
    return {str(s): g[["open", "high", "low", "close"]].to_numpy(float) for s, g in m.groupby("symbol", sort=False)}


class _Tilts:
    """The sector tilt of each session from the fills before it (`portfolio.sector_tilt`): its window's
    fills are read from a pointer that only moves forward, so each session costs its window, not the run."""

    def __init__(self, market: Market, params: Params, method: str | None) -> None:
        self.params, self.method = params, method
        self.sectors = market.universe["sector"].astype(str)
        self.done: list[date] = []
        self.first = 0  # index in the fills of the first one inside the window (with a margin for carries)

    def morning(self, d: date, morning: Morning, fills: list[tuple]) -> tuple[Morning, Params, SectorTilt | None]:
        """The morning re-planned under the tilted caps when a sector is tilted, and the session's parameters."""
        from dataclasses import replace

        from wolfkit.backtest.panel import plan_morning

        st = self.params.portfolio.sector_tilt
        if len(self.done) > st.window:
            cutoff = self.done[-st.window - 1]  # one session more: a trip carried into the window
            while self.first < len(fills) and fills[self.first][0] < cutoff:
                self.first += 1
        window = pd.DataFrame(fills[self.first:], columns=FILL_COLUMNS)
        tilt = sector_tilt(directional_trades(window, self.sectors), d, self.done, self.params)
        self.done.append(d)
        if not tilt.sectors:
            return morning, self.params, None
        tilted = tilt.apply(self.params)
        method = morning.targets.method if morning.targets is not None else self.method
        again = plan_morning(morning.opps, set(), tilted, method, morning.calibration)
        if again.targets is not None:
            again = replace(again, targets=replace(again.targets, notes=(*again.targets.notes, tilt.note())))
        return replace(again, scan=morning.scan), tilted, tilt


def walk(market: Market, mornings: Iterable[Morning], params: Params, equity0: float, quarantine: np.ndarray,
         *, provider=None, advance: Callable[[int], None] = lambda n: None, method: str | None = None) -> Walk:
    """Trade every session of `market` in order (see the module docstring).

    `mornings`: each session's scan and targets (`panel.plan_morning` with the same `params`), in order
    (consumed as they come; the scans are kept in `Walk.scans`).
    `quarantine`: a dates x symbols boolean mask over `market.panel` of the quarantined bars.
    """
    bt = params.backtest
    P = market.panel
    col = {s: j for j, s in enumerate(P.symbols)}
    prev_close = np.vstack([np.full((1, P.shape[1]), np.nan), P.close[:-1]])
    out = Walk()
    use_minutes = bt.minute_bars and provider is not None
    equity, cash = equity0, equity0
    carried: dict[str, float] = {}
    mark = np.full(P.shape[1], np.nan)  # the last clean close of each symbol
    tilts = _Tilts(market, params, method) if params.portfolio.sector_tilt.enabled else None
    base = params

    for row, morning in zip(market.sessions, mornings):
        d = P.dates[row].date()
        out.scans.append(morning.scan)
        params = base
        if tilts is not None:  # before anything of this session is booked: only earlier fills count
            morning, params, tilt = tilts.morning(d, morning, out.fills)
            if tilt is not None:
                out.tilts.append(tilt)
        q = quarantine[row]
        O = np.where(np.isnan(P.open[row]), prev_close[row], P.open[row])
        C = np.where(q, O, P.close[row])
        H = np.where(q, O, P.high[row])
        L = np.where(q, O, P.low[row])
        fees = flows_d = flows_m = 0.0
        fills = out.fills

        def book(sym: str, buy: bool, qty: float, price: float, layer: Layer, reason: Reason) -> None:
            nonlocal cash, fees, flows_d, flows_m
            f = fee(qty, price, bt)
            signed = -qty * price if buy else qty * price
            cash += signed - f
            fees += f
            if layer is Layer.DIRECTIONAL:
                flows_d += signed
            else:
                flows_m += signed
            fills.append((d, sym, str(Side.BUY if buy else Side.SELL), qty, price, str(layer), str(reason), f))

        mv_start = sum(qty * mark[col[s]] for s, qty in carried.items())
        held: dict[str, int] = {}  # overnight holdings with a clean open: netted against the new pack below
        for s, qty in carried.items():
            j = col[s]
            if q[j] or np.isnan(P.open[row, j]):  # no clean open: out at the last clean close
                book(s, False, qty, float(mark[j]), Layer.DIRECTIONAL, Reason.CLOSE)
            else:
                held[s] = int(qty)
        carried = {}

        buying_power = params.account(equity).buying_power
        orders, targets = None, morning.targets
        try:
            if targets is None:
                raise InfeasibleError(morning.infeasible)
            orders, packing = build_day(morning.opps, targets, params, equity, buying_power, held)
        except InfeasibleError as e:
            out.warnings.append(f"{d}: flat, no pack could be built (infeasible: {e})")

        # the carry netted at the open: exits and trims sell here; top-ups and new names buy in the loop below
        wanted = {o.symbol: o.qty for o in orders or [] if o.layer is Layer.DIRECTIONAL}
        for delta in rebalance_orders(wanted, held, {s: float(O[col[s]]) for s in held}, source="carried positions"):
            if delta.side is Side.SELL:
                book(delta.symbol, False, delta.qty, market_price(float(O[col[delta.symbol]]), False, bt),
                     Layer.DIRECTIONAL, Reason.OPEN)
                held[delta.symbol] = delta.target
        held = {s: qty for s, qty in held.items() if qty > 0}

        dir_cost = sum(qty * float(mark[col[s]]) for s, qty in held.items())  # kept, at the value it was planned at
        md_cost = 0.0
        picks: dict[str, float] = {}
        if orders is not None and targets is not None:  # both, or neither (infeasible: flat)
            out.planned[d] = [o.symbol for o in orders if o.layer is Layer.DIRECTIONAL]
            traded = sorted({o.symbol for o in orders if not q[col[o.symbol]]})
            minutes = _minute_paths(provider, traded, d) if use_minutes else None
            if use_minutes and minutes is None:
                use_minutes = False  # the source has no minute bars: daily rules from here on
            out.fill_rules = "minute" if use_minutes else "daily"
            account = params.account(equity, buying_power)
            room = min(account.directional_bucket, targets.allocation * equity)
            total_room = account.total_bucket

            def bar(j: int, sym: str) -> Bar:
                mins = None if q[j] or minutes is None else minutes.get(sym)
                return Bar(float(O[j]), float(H[j]), float(L[j]), float(C[j]), mins)

            for o in orders:
                j = col[o.symbol]
                if np.isnan(P.open[row, j]) and not q[j]:
                    out.warnings.append(f"{d}: {o.symbol} has no bar; its {o.layer} order is not filled")
                    continue
                if o.layer == Layer.DIRECTIONAL:
                    px = market_price(float(O[j]), True, bt)
                    kept = held.pop(o.symbol, 0)
                    buy = max(0, min(o.qty - kept, math.floor((room - dir_cost) / px + 1e-9)))
                    qty = kept + buy
                    if qty < 1:
                        continue
                    if buy:
                        dir_cost += buy * px
                        book(o.symbol, True, buy, px, Layer.DIRECTIONAL, Reason.OPEN)
                    picks[o.symbol] = o.weight
                    b = bar(j, o.symbol)
                    hit = bracket_exit(b, o.take_profit, o.stop_loss, o.trail, o.time_stop_minutes)
                    if hit is not None:
                        price, why = hit
                        at_market = why in (Reason.STOP, Reason.TIME_STOP)
                        book(o.symbol, False, qty, market_price(price, False, bt) if at_market else price,
                             Layer.DIRECTIONAL, why)
                    elif params.intraday.close_directional_eod or q[j]:
                        book(o.symbol, False, qty, market_price(b.close, False, bt), Layer.DIRECTIONAL, Reason.CLOSE)
                    else:
                        carried[o.symbol] = carried.get(o.symbol, 0) + qty
                else:
                    buy = o.buy
                    assert o.limit is not None and o.target is not None  # build_day sets both on maxdiff orders
                    trade = maxdiff_trade(bar(j, o.symbol), buy, o.limit, o.target)
                    if trade is None:
                        continue
                    entry, exit_, why = trade
                    # what the open's directional fills left of the total bucket: a gap up spends more than
                    # planned, and the broker's buying-power check would shrink the entry the same way
                    qty = min(o.qty, math.floor((total_room - dir_cost - md_cost) / entry + 1e-9))
                    if qty < 1:
                        continue
                    md_cost += qty * entry
                    book(o.symbol, buy, qty, entry, Layer.MAXDIFF, Reason.MAXDIFF_ENTRY)
                    book(o.symbol, not buy, qty, exit_ if why is Reason.MAXDIFF_EXIT else market_price(exit_, not buy, bt),
                         Layer.MAXDIFF, why)
            breaches = check_limits(orders, targets.sector_weights, params, equity, buying_power, dir_cost, md_cost,
                                    packing.maxdiff_capacity)
            if breaches:
                raise WolfkitError(f"internal: {d}: the backtest broke a rule ({'; '.join(breaches)}); please report it")
        out.picks[d] = picks

        clean = ~np.isnan(P.close[row])
        mark = np.where(clean, C, mark)
        mv_end = sum(qty * mark[col[s]] for s, qty in carried.items())
        pnl_d = flows_d + mv_end - mv_start
        new_equity = cash + mv_end
        if not math.isclose(new_equity, equity + pnl_d + flows_m - fees, rel_tol=1e-9, abs_tol=1e-6):
            raise WolfkitError(f"internal: {d}: equity does not add up; please report it")
        out.equity.append({
            "date": d, "equity": new_equity, "cash": cash,
            "gross_directional": dir_cost, "gross_maxdiff": md_cost,
            "pnl_directional": pnl_d, "pnl_maxdiff": flows_m, "fees": fees,
        })
        equity = new_equity
        if equity <= 0:
            raise InfeasibleError(f"{d}: the account's equity fell to {equity:,.2f}; the backtest cannot go on")
        advance(1)
    return out
