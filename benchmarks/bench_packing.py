"""Exact pack (diversify MILP) at 50 / 500 / 2,000 opportunities: median time, how often each method
holds exactly `target_positions`, and the objective gap optimal vs greedy at equal counts.

Random instances: 11 sectors, market caps log-uniform $200M–$2T, scores uniform 0–100 (so about 30 %
are candidates at min_score 70), default parameters. Also the real S&P 500 table (127 GICS
sub-industries as sectors) with generated scores when ../shared/data is present.
Run: .venv/bin/python benchmarks/bench_packing.py
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd

from wolfkit.config import Params
from wolfkit.diversify import build_targets
from wolfkit.errors import InfeasibleError
from wolfkit.opportunities import validate_opportunities

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def instance(n: int, seed: int) -> pd.DataFrame:
    r = np.random.default_rng(seed)
    return pd.DataFrame({
        "symbol": [f"S{i:04d}" for i in range(n)],
        "sector": [f"sec{k}" for k in r.integers(0, 11, n)],
        "market_cap": 10 ** r.uniform(8.3, 12.3, n),
        "price": r.uniform(2, 900, n).round(2),
        "score": r.uniform(0, 100, n).round(1),
    })


def run(label: str, tables: list[pd.DataFrame], p: Params) -> None:
    k = p.portfolio.target_positions
    times, gaps, greedy_fail, infeasible, opt_k, gr_k, same = [], [], 0, 0, 0, 0, 0
    for df in tables:
        opps = validate_opportunities(df, p, label).valid
        t0 = time.perf_counter()
        try:
            opt = build_targets(opps, p, "optimal")
        except InfeasibleError:
            infeasible += 1
            continue
        times.append(time.perf_counter() - t0)
        opt_k += len(opt.weights) == k
        try:
            gr = build_targets(opps, p, "greedy")
        except InfeasibleError:
            greedy_fail += 1
            continue
        gr_k += len(gr.weights) == k
        if len(gr.weights) == len(opt.weights):  # the guarantee holds at equal counts
            same += 1
            assert opt.objective >= gr.objective - 1e-9, "optimal below greedy at the same count"
            gaps.append((opt.objective - gr.objective) / opt.objective)
    t = np.array(times) * 1000
    g = np.array(gaps) * 100
    print(
        f"| {label} | {len(tables)} | {np.median(t):.1f} | {np.percentile(t, 90):.1f} | {t.max():.1f} | "
        f"{opt_k}/{len(tables)} | {gr_k}/{len(tables)} | {same} | {g.mean():.3f} | {g.max():.3f} | "
        f"{greedy_fail} | {infeasible} |"
    )


def main() -> None:
    p = Params()
    build_targets(validate_opportunities(instance(200, 0), p, "warm").valid, p, "optimal")  # imports, caches
    print(
        f"| instance | runs | optimal median ms | p90 ms | max ms | optimal at {p.portfolio.target_positions} | "
        f"greedy at {p.portfolio.target_positions} | same count | mean gap optimal vs greedy % (same count) | "
        "max gap % | greedy infeasible | infeasible |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for n, runs in [(50, 60), (500, 60), (2000, 30)]:
        run(f"random {n}", [instance(n, s) for s in range(runs)], p)
    if (DATA / "sp500_financials.csv").is_file():
        raw = pd.read_csv(DATA / "sp500_financials.csv").rename(
            columns={"Symbol": "symbol", "Sector": "sector", "Price": "price", "Market Cap": "market_cap"}
        )[["symbol", "sector", "market_cap", "price"]].dropna()
        tables = [raw.assign(score=np.random.default_rng(s).uniform(0, 100, len(raw)).round(1)) for s in range(30)]
        run(f"S&P 500 ({len(raw)} rows with figures)", tables, p)
    else:
        print(f"(S&P 500 run skipped: {DATA} absent)")


if __name__ == "__main__":
    main()
