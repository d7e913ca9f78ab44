"""Attribution: which sectors, score tiers, strategies, layers and signals earned the realised returns.

The input is a trades table: one closed round trip per row (from flat to flat, `performance.round_trips`)
with what was known when it opened — sector, score tier, strategy, layer, score and its components. A
group's figure is the mean return per trade (P&L ÷ what the trip put at risk) with a 95% interval
clustered by session (`performance.mean_ci`: trades of one day share its market move), beside the number
of trades and sessions, the P&L and the hit rate — so a trader sees whether "tech earned the most" rests
on 400 trades or on 4.

Signals are judged twice: over every scored name (each component's own information coefficient against
the session's open→close) and over the trades taken (trades in the component's upper half against its
lower half). Pure functions over tables; `wolfkit.learn` reads the folders and writes the files.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from wolfkit import performance as perf

DIMENSIONS = ("sector", "tier", "strategy", "layer")
TRADE_COLUMNS = ("date", "symbol", "layer", "sector", "tier", "strategy", "score", "entry_value", "pnl", "ret")
ATTRIBUTION_COLUMNS = ("dimension", "group", "trades", "sessions", "mean_return", "ci_low", "ci_high", "pnl",
                       "hit_rate")
SIGNAL_COLUMNS = ("signal", "ic_mean", "ic_t", "ic_sessions", "upper_trades", "upper_mean", "lower_trades",
                  "lower_mean", "upper_minus_lower")
UNKNOWN = "unknown"


def components(table: pd.DataFrame) -> list[str]:
    """The score-component columns (`score_<signal>`) of a scores or trades table."""
    return [c for c in table.columns if c.startswith("score_")]


def trades(fills: pd.DataFrame, known: pd.DataFrame) -> pd.DataFrame:
    """Closed round trips of `fills` (the folder's fills.csv columns) joined with `known`: one row per
    (date, symbol) holding sector, tier, strategy, score and score components as they stood that
    morning. A trip takes the row of the session it opened; what `known` lacks reads "unknown"."""
    trips = perf.round_trips(fills).rename(columns={"opened": "date"})
    keep = ["date", "symbol", *(c for c in ("sector", "tier", "strategy", "score") if c in known.columns),
            *components(known)]
    meta = known[keep].drop_duplicates(["date", "symbol"])
    out = trips.merge(meta, on=["date", "symbol"], how="left")
    for c in ("sector", "tier", "strategy"):
        out[c] = out[c].fillna(UNKNOWN).astype(str) if c in out.columns else UNKNOWN
    if "score" not in out.columns:
        out["score"] = np.nan
    with np.errstate(invalid="ignore", divide="ignore"):
        out["ret"] = np.where(out["entry_value"] > 0, out["pnl"] / out["entry_value"], np.nan)
    return out[[*TRADE_COLUMNS, *components(out)]].sort_values(["date", "symbol", "layer"], ignore_index=True)


def trailing(trades: pd.DataFrame, sessions: pd.Series | pd.DatetimeIndex, window: int | None) -> pd.DataFrame:
    """The trades opened in the last `window` of `sessions` (all of them when `window` is None): what the
    sector table looks like lately, as the sector tilt judges it."""
    if window is None:
        return trades
    if window < 1:
        from wolfkit.errors import BadInputError

        raise BadInputError(f"--window {window}: use a positive number of sessions")
    days = pd.DatetimeIndex(pd.to_datetime(pd.Series(sessions)).unique()).sort_values()
    if not len(days):
        return trades
    return trades[pd.to_datetime(trades["date"]) >= days[-window:][0]].reset_index(drop=True)


def by_dimension(trades: pd.DataFrame, dimension: str) -> pd.DataFrame:
    """One row per group of `dimension`: trades, sessions, mean return with its clustered 95% interval,
    P&L and hit rate; groups by P&L, largest first (tiers in their own order)."""
    rows = []
    for group, g in trades.groupby(dimension, sort=True):
        ci = perf.mean_ci(g["ret"], g["date"])
        rows.append({"dimension": dimension, "group": str(group), "trades": ci["n"], "sessions": ci["sessions"],
                     "mean_return": ci["mean"], "ci_low": ci["ci_low"], "ci_high": ci["ci_high"],
                     "pnl": float(g["pnl"].sum()), "hit_rate": float((g["pnl"] > 0).mean())})
    out = pd.DataFrame(rows, columns=list(ATTRIBUTION_COLUMNS))
    out[["mean_return", "ci_low", "ci_high"]] = out[["mean_return", "ci_low", "ci_high"]].astype(float)
    if dimension == "tier":  # the tiers' own order, highest first ("90+", "75–89", …), then the rest
        return out.sort_values("group", key=lambda g: g.map(_tier_floor), ascending=False, ignore_index=True)
    return out.sort_values("pnl", ascending=False, ignore_index=True)


def _tier_floor(label: str) -> float:
    digits = "".join(ch for ch in label.split("–")[0] if ch.isdigit() or ch == ".")
    return float(digits) if digits else -1.0


def attribution(trades: pd.DataFrame) -> pd.DataFrame:
    """`by_dimension` for sector, score tier, strategy and layer, stacked."""
    return pd.concat([by_dimension(trades, d) for d in DIMENSIONS], ignore_index=True)


def signals(trades: pd.DataFrame, scores: pd.DataFrame | None) -> pd.DataFrame:
    """Each score component: its information coefficient over every scored name (needs `scores` with
    open_to_close, else NaN) and the mean trade return in its upper half (≥ 50) against its lower half."""
    names = components(trades) or (components(scores) if scores is not None else [])
    rows = []
    for c in names:
        row: dict[str, object] = {"signal": c.removeprefix("score_")}
        if scores is not None and c in scores.columns and "open_to_close" in scores.columns:
            ic = perf.information_coefficient(scores.assign(score=scores[c]))
            row |= perf.ic_stats(ic["ic"])  # ic_mean, ic_t, ic_sessions
        if c in trades.columns:
            upper, lower = trades[trades[c] >= 50], trades[trades[c] < 50]
            um, lm = upper["ret"].mean(), lower["ret"].mean()
            row |= {"upper_trades": len(upper), "upper_mean": um, "lower_trades": len(lower), "lower_mean": lm,
                    "upper_minus_lower": um - lm}
        rows.append(row)
    return pd.DataFrame(rows, columns=list(SIGNAL_COLUMNS))
