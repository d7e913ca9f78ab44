"""Risk figures of a pack, for the pre-market report: per-position volatility, ATR and liquidity, the
pack's estimated daily volatility, a 1-day value at risk, and correlation clusters of the picked names.

Pure: tables in, figures out. Returns are daily close-to-close returns of the lookback before the
session (`daily_returns` from a long bars frame); only dates on which every picked name has a return
enter the covariance, so every figure is computed on one and the same sample.

- pack volatility: sqrt(wᵀ Σ w), Σ the sample covariance (ddof 1) of the picked names' returns, w
  their weights (fractions of equity) — a daily standard deviation as a share of equity;
- parametric VaR at `level`: z·σ − μ of the pack's daily return (z the normal quantile), a loss as a
  share of equity;
- historical VaR at `level`: minus the (1 − level) quantile of the pack's daily returns over the same
  dates (linear interpolation, numpy's default);
- clusters: average-linkage hierarchical clustering on the distance 1 − correlation, cut where the
  average correlation falls under `risk.cluster_min_correlation`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import numpy as np
import pandas as pd
from scipy.cluster.hierarchy import fcluster, leaves_list, linkage
from scipy.spatial.distance import squareform
from scipy.stats import norm

from wolfkit.config import Params

POSITION_COLUMNS = ["symbol", "layer", "qty", "price", "usd", "weight", "volatility", "atr", "atr_pct", "risk",
                    "adv_usd", "adv_share"]


@dataclass(frozen=True)
class PackRisk:
    """The risk figures of a pack.

    `positions`: one row per order (POSITION_COLUMNS): its USD and weight (share of equity), daily
    volatility, ATR (USD and as a share of the price), risk = weight x volatility (share of equity),
    average daily dollar volume and the order's share of it. `daily_vol`, `var_parametric`,
    `var_historical`: shares of equity for the directional pack, over `observations` dates at `level`.
    `correlation`: the picked names' correlation, in cluster order; `clusters`: symbol, cluster (1…).
    """

    positions: pd.DataFrame
    daily_vol: float
    var_parametric: float
    var_historical: float
    level: float
    observations: int
    correlation: pd.DataFrame
    clusters: pd.DataFrame


def daily_returns(bars: pd.DataFrame, symbols: list[str], session: date, days: int) -> pd.DataFrame:
    """Dates x symbols close-to-close returns of the last `days` bar dates strictly before `session`.

    `bars`: a long frame with symbol, date, close. A symbol without bars is a column of NaN.
    """
    b = bars.loc[bars["symbol"].isin(symbols), ["symbol", "date", "close"]]
    b = b.assign(date=pd.to_datetime(b["date"]))
    b = b.loc[b["date"] < pd.Timestamp(session)]
    close = b.pivot_table(index="date", columns="symbol", values="close", aggfunc="last").sort_index()
    close = close.reindex(columns=list(symbols))
    return close.pct_change(fill_method=None).iloc[1:].tail(days)


def position_table(orders: pd.DataFrame, opps: pd.DataFrame, equity: float) -> pd.DataFrame:
    """Per order (`orders`: symbol, layer, qty, price) its size, volatility, ATR, risk and liquidity."""
    o = opps.set_index("symbol")

    def col(name: str) -> np.ndarray:
        return o[name].reindex(orders["symbol"]).to_numpy(float) if name in o else np.full(len(orders), np.nan)

    qty, price = orders["qty"].to_numpy(float), orders["price"].to_numpy(float)
    usd = qty * price
    vol, atr, adv = col("volatility"), col("atr"), col("adv_usd")
    with np.errstate(divide="ignore", invalid="ignore"):
        out = pd.DataFrame({
            "symbol": orders["symbol"].to_numpy(), "layer": orders["layer"].astype(str).to_numpy(),
            "qty": qty.astype(int), "price": price, "usd": usd, "weight": usd / equity, "volatility": vol,
            "atr": atr, "atr_pct": atr / price, "risk": usd / equity * vol, "adv_usd": adv, "adv_share": usd / adv,
        })
    return out[POSITION_COLUMNS]


def aligned(weights: pd.Series, returns: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """The weights and the return rows (dates on which every weighted name has a return), aligned."""
    r = returns.reindex(columns=weights.index).dropna(how="any")
    return weights.to_numpy(float), r.to_numpy(float)


def pack_volatility(weights: pd.Series, returns: pd.DataFrame) -> float:
    """sqrt(wᵀ Σ w): the pack's daily standard deviation as a share of equity (NaN under 2 dates)."""
    w, r = aligned(weights, returns)
    if len(r) < 2 or not len(w):
        return float("nan")
    cov = np.atleast_2d(np.cov(r, rowvar=False, ddof=1))
    return float(np.sqrt(w @ cov @ w))


def var_parametric(weights: pd.Series, returns: pd.DataFrame, level: float) -> float:
    """Normal 1-day VaR at `level`: z·σ − μ of the pack's daily return, a loss as a share of equity."""
    w, r = aligned(weights, returns)
    if len(r) < 2 or not len(w):
        return float("nan")
    p = r @ w
    return float(norm.ppf(level) * pack_volatility(weights, returns) - p.mean())


def var_historical(weights: pd.Series, returns: pd.DataFrame, level: float) -> float:
    """Historical 1-day VaR at `level`: minus the (1 − level) quantile of the pack's daily returns."""
    w, r = aligned(weights, returns)
    if not len(r) or not len(w):
        return float("nan")
    return float(-np.quantile(r @ w, 1 - level))


def correlation_clusters(returns: pd.DataFrame, min_correlation: float) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(correlation in cluster order, symbol → cluster): average linkage on 1 − ρ, cut at 1 − `min_correlation`.

    A name whose correlation cannot be measured (constant or missing returns) is its own cluster.
    """
    r = returns.dropna(how="any")
    names = list(r.columns)
    if len(names) < 2 or len(r) < 3:
        return r.corr(), pd.DataFrame({"symbol": names, "cluster": np.arange(1, len(names) + 1)})
    corr = np.nan_to_num(np.corrcoef(r.to_numpy(float), rowvar=False), nan=0.0)
    np.fill_diagonal(corr, 1.0)
    dist = np.clip(1.0 - corr, 0.0, 2.0)
    np.fill_diagonal(dist, 0.0)
    tree = linkage(squareform((dist + dist.T) / 2, checks=False), method="average")
    labels = fcluster(tree, t=1.0 - min_correlation, criterion="distance")
    order = leaves_list(tree)
    ordered = [names[i] for i in order]
    c = pd.DataFrame(corr, index=names, columns=names).loc[ordered, ordered]
    # clusters numbered by first appearance in leaf order, so the table reads top to bottom
    first: dict[int, int] = {}
    for i in order:
        first.setdefault(int(labels[i]), len(first) + 1)
    clusters = pd.DataFrame({"symbol": ordered, "cluster": [first[int(labels[i])] for i in order]})
    return c, clusters


def pack_risk(orders: pd.DataFrame, opps: pd.DataFrame, returns: pd.DataFrame, equity: float,
              params: Params) -> PackRisk:
    """Every risk figure of a pack: `orders` (symbol, layer, qty, price), the opportunities it came from,
    the lookback's daily returns (`daily_returns`) and the equity it was sized for."""
    positions = position_table(orders, opps, equity)
    d = positions.loc[positions["layer"] == "directional"].groupby("symbol", sort=False)["weight"].sum()
    level = params.risk.var_level
    _, rows = aligned(d, returns)
    corr, clusters = correlation_clusters(returns.reindex(columns=d.index), params.risk.cluster_min_correlation)
    return PackRisk(
        positions=positions,
        daily_vol=pack_volatility(d, returns),
        var_parametric=var_parametric(d, returns, level),
        var_historical=var_historical(d, returns, level),
        level=level,
        observations=len(rows),
        correlation=corr,
        clusters=clusters,
    )

