"""Integer shares: wolfkit.sizing.allocate_shares vs PyPortfolioOpt's DiscreteAllocation (greedy and LP).

Same weights, prices and budget for all three, in one process. Objective (what all three aim at):
Σ |shares × price − weight × budget| + leftover cash; also the leftover cash and the time per call.
PyPortfolioOpt is in the `bench` extra (pip install -e .[bench]).
Run: .venv/bin/python benchmarks/bench_allocation.py
"""

from __future__ import annotations

import time
import warnings

import numpy as np
import pandas as pd
from pypfopt.discrete_allocation import DiscreteAllocation

from wolfkit.sizing import allocate_shares, allocation_cost


def instances(kind: str, runs: int) -> list[tuple[dict[str, float], dict[str, float], float]]:
    out = []
    for s in range(runs):
        r = np.random.default_rng(s)
        n = int(r.integers(10, 16))
        w = r.dirichlet(np.ones(n) * 3)
        if kind == "pack $100k":
            prices, budget = r.uniform(5, 900, n), 100_000.0
        else:  # small account, expensive names: rounding matters
            prices, budget = r.uniform(50, 2500, n), 10_000.0
        syms = [f"S{i}" for i in range(n)]
        out.append((dict(zip(syms, w)), dict(zip(syms, prices.round(2))), budget))
    return out


def timed(fn) -> tuple[dict[str, int], float]:
    t0 = time.perf_counter()
    shares = fn()
    return {k: int(v) for k, v in shares.items()}, time.perf_counter() - t0


def main() -> None:
    warnings.filterwarnings("ignore")
    w, p, b = instances("pack $100k", 1)[0]
    allocate_shares(w, p, b)  # warm imports
    DiscreteAllocation(w, pd.Series(p), b).lp_portfolio()
    print("| instances | method | mean objective $ | mean leftover $ | worse than wolfkit | median ms | ratio to wolfkit time |")
    print("|---|---|---|---|---|---|---|")
    for kind in ("pack $100k", "small $10k, $50–2,500 names"):
        rows: dict[str, list[tuple[float, float, float]]] = {"wolfkit allocate_shares": [], "pypfopt greedy_portfolio": [], "pypfopt lp_portfolio": []}
        for w, p, b in instances(kind, 40):
            da = lambda: DiscreteAllocation(w, pd.Series(p), b)  # noqa: E731
            for name, fn in (
                ("wolfkit allocate_shares", lambda: allocate_shares(w, p, b)),
                ("pypfopt greedy_portfolio", lambda: da().greedy_portfolio()[0]),
                ("pypfopt lp_portfolio", lambda: da().lp_portfolio()[0]),
            ):
                shares, dt = timed(fn)
                spent = sum(q * p[s] for s, q in shares.items())
                assert spent <= b + 1e-6 or name != "wolfkit allocate_shares", "wolfkit overspent"
                rows[name].append((allocation_cost(shares, w, p, b), b - spent, dt))
        base = np.array(rows["wolfkit allocate_shares"])
        for name, vals in rows.items():
            v = np.array(vals)
            worse = int((v[:, 0] > base[:, 0] + 1e-6).sum())
            better = int((v[:, 0] < base[:, 0] - 1e-6).sum())
            print(
                f"| {kind} | {name} | {v[:, 0].mean():,.2f} | {v[:, 1].mean():,.2f} | "
                f"{worse} worse, {better} better of {len(v)} | {np.median(v[:, 2]) * 1000:.2f} | "
                f"{np.median(v[:, 2]) / np.median(base[:, 2]):.1f}x |"
            )


if __name__ == "__main__":
    main()
