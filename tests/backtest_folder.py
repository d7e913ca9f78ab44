"""A small, deterministic backtest output folder (the contract in DESIGN.md "Research") for the
performance and tear-sheet tests: the files the engine writes, built from a seeded toy market where the
score carries a known, weak edge on the session's open→close return."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from wolfkit.config import Params
from wolfkit.performance import summarize

SECTORS = ["Energy", "Financials", "Health Care", "Industrials", "Information Technology"]
WARNINGS = [
    "survivorship bias: the universe file is dated 2018-02-08, after the window; names that left the index are missing",
    "synthetic prices: a toy market built for this test",
]


def tier_of(score: float) -> str:
    """The default parameters' tier labels."""
    return "90+" if score >= 90 else "75–89" if score >= 75 else "70–74" if score >= 70 else "below"


def tables(sessions: int = 130, names: int = 30, seed: int = 7, equity0: float = 100_000.0) -> dict[str, pd.DataFrame]:
    """equity, fills, scores and data_quality tables of a top-12 open→close book plus a little maxdiff."""
    rng = np.random.default_rng(seed)
    dates = pd.bdate_range("2015-01-02", periods=sessions + 1)
    symbols = [f"S{i:02d}" for i in range(names)]
    sector = {s: SECTORS[i % len(SECTORS)] for i, s in enumerate(symbols)}
    rows, fills, eq_rows = [], [], []
    equity, buy_hold = equity0, equity0
    open_close = equity0
    eq_rows.append((dates[0], equity, equity, 0.0, 0.0, 0.0, 0.0, 0.0, buy_hold, open_close))
    for d in dates[1:]:
        score = rng.uniform(40, 100, names)
        market = rng.normal(0.0003, 0.008)
        oc = market + 0.001 * (score - 70) / 10 + rng.normal(0, 0.012, names)
        overnight = rng.normal(0.0002, 0.004, names)
        order = np.argsort(-score)
        picked = np.zeros(names, bool)
        picked[order[:12]] = True
        weight = np.where(picked, 0.95 / 12, 0.0)
        for i, s in enumerate(symbols):
            rows.append({"date": d.date(), "symbol": s, "score": score[i], "expected_return": 0.001 * score[i] / 100,
                         "score_momentum": 0.6 * score[i], "score_trend": 0.4 * score[i], "tier": tier_of(score[i]),
                         "sector": sector[s], "picked": bool(picked[i]), "weight": weight[i], "open_to_close": oc[i]})
        pnl_dir = 0.0
        fee = 0.0
        for i in order[:12]:
            price = 50.0 + i
            qty = int(equity * weight[i] // price)
            exit_price = round(price * (1 + oc[i]), 4)
            fills.append((d.date(), symbols[i], "buy", qty, price, "directional", "open"))
            fills.append((d.date(), symbols[i], "sell", qty, exit_price, "directional",
                          "take_profit" if oc[i] > 0.02 else "stop" if oc[i] < -0.02 else "close"))
            pnl_dir += qty * (exit_price - price)
            fee += 0.0001 * qty * (price + exit_price)
        j = order[12]  # one maxdiff trade a session: buy at the low, sell at the high
        low, high = 40.0 + j, 40.0 + j + rng.uniform(-0.2, 0.6)
        fills.append((d.date(), symbols[j], "buy", 100, low, "maxdiff", "maxdiff_entry"))
        fills.append((d.date(), symbols[j], "sell", 100, round(high, 4), "maxdiff", "maxdiff_exit"))
        pnl_md = 100 * (round(high, 4) - low)
        gross_dir = float(sum(equity * weight[i] for i in order[:12]))
        equity += pnl_dir + pnl_md - fee
        buy_hold *= 1 + float(np.mean(overnight + oc))
        open_close *= 1 + float(np.mean(oc))
        eq_rows.append((d, equity, equity, gross_dir, 100 * low, pnl_dir, pnl_md, fee, buy_hold, open_close))
    equity_df = pd.DataFrame(eq_rows, columns=["date", "equity", "cash", "gross_directional", "gross_maxdiff",
                                               "pnl_directional", "pnl_maxdiff", "fees", "bench_buy_hold",
                                               "bench_open_close"])
    equity_df["date"] = equity_df["date"].dt.date
    fills_df = pd.DataFrame(fills, columns=["date", "symbol", "side", "qty", "price", "layer", "reason"])
    scores_df = pd.DataFrame(rows)
    dq = pd.DataFrame(
        [("bars.csv.gz", 10 + k, f"S{k % 3:02d}", dates[1 + k % sessions].date(), field, problem, "quarantined")
         for k, (field, problem) in enumerate([("open", "empty price cell")] * 22 + [("close", "close outside high–low")] * 3)],
        columns=["file", "line", "symbol", "date", "field", "problem", "kind"],
    )
    return {"equity": equity_df, "fills": fills_df, "scores": scores_df, "data_quality": dq}


def write(folder: Path, layers: str = "both", **kw) -> Path:
    """Write the folder (equity.csv, fills.csv, scores.parquet, data_quality.csv, summary.json)."""
    folder.mkdir(parents=True, exist_ok=True)
    t = tables(**kw)
    if layers == "directional":  # the same book without its maxdiff layer
        t["fills"] = t["fills"][t["fills"]["layer"] == "directional"]
        e = t["equity"]
        e["equity"] = e["equity"] - e["pnl_maxdiff"].cumsum()
        e["cash"], e["gross_maxdiff"], e["pnl_maxdiff"] = e["equity"], 0.0, 0.0
    t["equity"].to_csv(folder / "equity.csv", index=False)
    t["fills"].to_csv(folder / "fills.csv", index=False)
    t["scores"].to_parquet(folder / "scores.parquet", index=False)
    t["data_quality"].to_csv(folder / "data_quality.csv", index=False)
    params = Params()
    e = t["equity"]
    summary = {
        "schema": "wolfkit.backtest/1", "run_id": f"test-{layers}", "params_digest": params.digest(),
        "window": {"start": str(e["date"].iloc[1]), "end": str(e["date"].iloc[-1]), "sessions": len(e) - 1},
        "method": "optimal", "layers": layers, "equity_start": float(e["equity"].iloc[0]), "elapsed_s": 1.25,
        "data": {"source": "test", "quarantined_rows": len(t["data_quality"])}, "warnings": WARNINGS,
    }
    summary |= summarize(t["equity"], t["fills"], t["scores"], params)
    (folder / "summary.json").write_text(json.dumps(summary, indent=1))
    return folder
