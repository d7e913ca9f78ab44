"""The backtest output folder (a contract, DESIGN.md "Research"): tables, benchmarks, summary.

equity.csv, fills.csv, scores.parquet, data_quality.csv, summary.json and report.html; notebooks,
`learn`, `sweep` and tests read them, so columns and types are fixed here and nowhere else.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from wolfkit.backtest.engine import EQUITY_COLUMNS, FILL_COLUMNS, Walk, tier_of
from wolfkit.backtest.panel import Market
from wolfkit.config import Params
from wolfkit.errors import BadInputError

SCHEMA_ID = "wolfkit.backtest/1"
BENCH_COLUMNS = ["bench_buy_hold", "bench_open_close"]
SCORE_COLUMNS = ["date", "symbol", "score", "expected_return"]  # then score_<component>…, below
SCORE_TAIL = ["tier", "sector", "strategy", "picked", "weight", "open_to_close"]


def benchmarks(market: Market, quarantine: np.ndarray, equity0: float) -> pd.DataFrame:
    """Both benchmark curves over the sessions, starting at `equity0`.

    `bench_buy_hold`: equal dollars in every symbol that trades at the first session's open, held;
    `bench_open_close`: the universe's equal-weight open→close return, compounded (flat overnight).
    A quarantined bar's return counts as zero in both: a jump is not booked as profit or loss.
    """
    P, rows = market.panel, market.sessions
    with np.errstate(invalid="ignore", divide="ignore"):
        oc = P.close[rows] / P.open[rows] - 1
        closes = pd.DataFrame(P.close).ffill().to_numpy()
        prev = np.vstack([np.full((1, P.shape[1]), np.nan), closes[:-1]])
        cc = P.close / prev - 1
    q = quarantine[rows]
    oc = np.where(q, 0.0, oc)
    day = np.nanmean(np.where(np.isfinite(oc), oc, np.nan), axis=1) if oc.size else oc
    day = np.where(np.isfinite(day), day, 0.0)
    held = np.isfinite(oc[0]) if len(rows) else np.zeros(0, bool)
    r = np.where(q | ~np.isfinite(cc[rows]), 0.0, cc[rows])
    r[0] = np.where(np.isfinite(oc[0]), oc[0], 0.0)
    growth = np.cumprod(1 + r[:, held], axis=0)
    bh = equity0 * growth.mean(axis=1) if held.any() else np.full(len(rows), equity0)
    return pd.DataFrame({"bench_buy_hold": bh, "bench_open_close": equity0 * np.cumprod(1 + day)})


def equity_frame(w: Walk, bench: pd.DataFrame) -> pd.DataFrame:
    eq = pd.DataFrame(w.equity, columns=EQUITY_COLUMNS)
    eq["date"] = pd.to_datetime(eq["date"])
    return pd.concat([eq, bench.reset_index(drop=True)], axis=1)


def fills_frame(w: Walk) -> pd.DataFrame:
    f = pd.DataFrame(w.fills, columns=FILL_COLUMNS)
    f["date"] = pd.to_datetime(f["date"])
    return f.astype({"qty": float, "price": float, "fee": float})


def scores_frame(market: Market, scans: list[pd.DataFrame], w: Walk, quarantine: np.ndarray,
                 params: Params) -> pd.DataFrame:
    """Every scanned symbol of every session with its tier, whether it was picked and its realised
    open→close return (for measuring the score only; NaN on a quarantined bar)."""
    P = market.panel
    col = pd.Series(np.arange(len(P.symbols)), index=P.symbols)
    parts = []
    for row, d, opps in zip(market.sessions, market.dates(), scans):
        comps = [c for c in opps.columns if c.startswith("score_")]
        s = opps[["symbol", "score", "expected_return", *comps, "sector", "strategy"]].copy()
        s.insert(0, "date", pd.Timestamp(d))
        j = col.reindex(s["symbol"]).to_numpy()
        with np.errstate(invalid="ignore", divide="ignore"):
            oc = P.close[row, j] / P.open[row, j] - 1
        picks = w.picks.get(d, {})
        s["tier"] = tier_of(s["score"].to_numpy(float), params)
        s["picked"] = s["symbol"].isin(list(picks)).to_numpy()
        s["weight"] = s["symbol"].map(picks).fillna(0.0).astype(float)
        s["open_to_close"] = np.where(quarantine[row, j], np.nan, oc)
        parts.append(s)
    out = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=SCORE_COLUMNS + SCORE_TAIL)
    comps = [c for c in out.columns if c.startswith("score_")]
    return out[SCORE_COLUMNS + comps + SCORE_TAIL]


def claim(out_dir: Path) -> Path:
    """Create the run's folder; an existing non-empty folder is refused (a run never overwrites another)."""
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
        raise BadInputError(f"--out {out_dir}: already exists and is not empty; a backtest never overwrites "
                            "an earlier run: pick a new folder or leave --out out for a fresh one")
    out_dir.mkdir(parents=True, exist_ok=True)
    return out_dir


def write_tables(out_dir: Path, equity: pd.DataFrame, fills: pd.DataFrame, scores: pd.DataFrame) -> None:
    fmt = equity.assign(date=equity["date"].dt.date)
    fmt.to_csv(out_dir / "equity.csv", index=False)
    fills.assign(date=fills["date"].dt.date).to_csv(out_dir / "fills.csv", index=False)
    scores.to_parquet(out_dir / "scores.parquet", index=False)


def write_summary(out_dir: Path, summary: dict) -> Path:
    p = out_dir / "summary.json"
    p.write_text(json.dumps(summary, indent=2, default=_jsonable, allow_nan=True) + "\n")
    return p


def _jsonable(x):
    if isinstance(x, (np.integer,)):
        return int(x)
    if isinstance(x, (np.floating,)):
        return float(x)
    if isinstance(x, (np.ndarray, pd.Series)):
        return list(x)
    if hasattr(x, "isoformat"):
        return x.isoformat()
    return str(x)
