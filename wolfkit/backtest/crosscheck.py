"""The cross-check: the engine's equity curve against vectorbt's on the same orders (needs the `dev` extra).

Why: an equity curve is only believable when an independent, well-kept engine books the same trades
to the same result. The simple configuration — the top N by score at equal weight, bought at the
open, sold at the close, no maxdiff, no fees or slippage — is run through `engine.walk`; vectorbt
(`Portfolio.from_orders`, one order per open and per close on a two-rows-per-session price path)
replays its share counts, and the two curves must agree to rounding. Which names the engine picks is
checked separately against the top N by score (`not_top_n`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import pandas as pd

from wolfkit.backtest.engine import walk
from wolfkit.backtest.panel import Market, plan_morning
from wolfkit.config import Params, TierBand
from wolfkit.domain import Strategy


def simple_params(params: Params, n: int) -> Params:
    """`params` reduced to: top `n` by score, equal weight 1/n of equity, no maxdiff, no costs, no risk rules."""
    w = 1.0 / n
    raw = params.model_dump(mode="json")
    raw["portfolio"].update(
        min_score=0, target_positions=n, min_positions=n, max_positions=n, position_min=w, position_max=w,
        cash_reserve=0.0, sector_cap=1.0, sector_caps={}, method="greedy",
        tiers=[TierBand(min_score=0, weight_min=w, weight_max=w).model_dump()],
    )
    raw["portfolio"]["market_cap"]["bands"] = {t: [0.0, 1.0] for t in raw["portfolio"]["market_cap"]["bands"]}
    raw["maxdiff"]["enabled"] = False
    raw["risk"].update(min_price=0.0, min_adv_usd=0.0, max_adv_share=None, max_position_risk=None)
    raw["intraday"]["close_directional_eod"] = True
    raw["backtest"].update(slippage_bps=0.0, fee_per_share=0.0, fee_bps=0.0, min_fee=0.0)
    raw["leverage"]["buying_power_multiple"] = 1.0
    return Params.model_validate(raw)


def open_to_close_scans(scans: list[pd.DataFrame]) -> list[pd.DataFrame]:
    """The scans with every name on the `simple` strategy: no take-profit or stop, out at the close."""
    return [s.assign(strategy=Strategy.SIMPLE.value, take_profit=np.nan, stop_loss=np.nan) for s in scans]


def not_top_n(scans: dict, planned: dict, n: int) -> list[str]:
    """Sessions whose planned picks are not the n best scores (ties: higher expected_return, then symbol, as the
    builder), each as "date: missing … extra …"; empty when every session picked the top n."""
    out = []
    for d, p in planned.items():
        s = scans[d]
        top = set(s.sort_values(["score", "expected_return", "symbol"], ascending=[False, False, True])["symbol"].head(n))
        if top != set(p):
            out.append(f"{d}: missing {sorted(top - set(p))}, extra {sorted(set(p) - top)}")
    return out


@dataclass(frozen=True)
class CrossCheck:
    engine: pd.Series
    vectorbt: pd.Series
    engine_s: float
    vectorbt_s: float
    not_top_n: list[str]

    @property
    def max_abs_diff(self) -> float:
        return float(np.max(np.abs(self.engine.to_numpy() - self.vectorbt.to_numpy())))


def run(market: Market, scans: list[pd.DataFrame], params: Params, equity0: float, n: int = 10) -> CrossCheck:
    """Both curves (indexed by session date) for the simple configuration on `market`."""
    import vectorbt as vbt

    p = simple_params(params, n)
    simple = open_to_close_scans(list(scans))
    t0 = time.perf_counter()
    w = walk(market, (plan_morning(s, set(), p, "greedy") for s in simple), p, equity0,
             np.zeros(market.panel.shape, bool))
    engine_s = time.perf_counter() - t0
    dates = pd.DatetimeIndex([pd.Timestamp(d) for d in market.dates()])
    ours = pd.Series([r["equity"] for r in w.equity], index=dates)

    t0 = time.perf_counter()
    P, rows = market.panel, market.sessions
    f = pd.DataFrame(w.fills, columns=["date", "symbol", "side", "qty", "price", "layer", "reason", "fee"])
    symbols = sorted(f["symbol"].unique()) if len(f) else list(P.symbols[:1])
    cols = P.symbols.get_indexer(symbols)
    stamps = np.empty(2 * len(rows), dtype="datetime64[ns]")
    stamps[0::2] = dates.to_numpy() + np.timedelta64(570, "m")
    stamps[1::2] = dates.to_numpy() + np.timedelta64(960, "m")
    price = np.empty((2 * len(rows), len(cols)))
    price[0::2], price[1::2] = P.open[rows][:, cols], P.close[rows][:, cols]
    price = pd.DataFrame(price, index=stamps, columns=symbols).ffill().bfill()
    size = pd.DataFrame(np.nan, index=stamps, columns=symbols)
    pos = {d: i for i, d in enumerate(dates)}
    for d, sym, side, qty in zip(f["date"], f["symbol"], f["side"], f["qty"]):
        i = 2 * pos[pd.Timestamp(d)] + (0 if side == "buy" else 1)
        size.iloc[i, size.columns.get_loc(sym)] = qty if side == "buy" else -qty
    pf = vbt.Portfolio.from_orders(price, size, size_type="amount", init_cash=equity0, cash_sharing=True,
                                   group_by=True, fees=0.0, slippage=0.0, freq="1D")
    theirs = pd.Series(pf.value().to_numpy()[1::2], index=dates)
    return CrossCheck(ours, theirs, engine_s, time.perf_counter() - t0, not_top_n(dict(zip(market.dates(), simple)), w.planned, n))
