"""Scan speed: demo:50, demo:500 and demo:5000 x 1 year of daily bars, against the seed and the target.

The seed's scanner took 5-10 minutes for 50 tickers (6-12 s per symbol); the target is 500 symbols
in under 2 s. Data generation (the demo market simulating its panel) is timed separately from the
scan; the scan time is end to end through `run_scan` (reading bars and pre-market quotes from the
provider, exclusions, signals, backtests, ranking, the table), and the share spent inside provider
calls is shown. Median of several runs.

    .venv/bin/python benchmarks/bench_scan.py [--sizes 50 500 5000] [--runs 5] [--workers 2]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from datetime import date

from wolfkit import calendar
from wolfkit.config import params_from_dict
from wolfkit.data.demo import DemoMarket
from wolfkit.scan import run_scan

SESSION = date(2025, 6, 2)
SEED_SECONDS_PER_50 = (5 * 60, 10 * 60)
TARGET_500 = 2.0


class Timed:
    """Wraps a provider and adds up the seconds spent inside its calls."""

    def __init__(self, inner: DemoMarket) -> None:
        self.inner, self.seconds = inner, 0.0
        self.name, self.synthetic, self.has_ohlc = inner.name, inner.synthetic, inner.has_ohlc

    def __getattr__(self, attr: str):
        fn = getattr(self.inner, attr)

        def timed(*a, **k):
            t = time.perf_counter()
            try:
                return fn(*a, **k)
            finally:
                self.seconds += time.perf_counter() - t

        return timed


def bench(size: int, runs: int, workers: int) -> dict:
    t = time.perf_counter()
    market = DemoMarket(seed=7, size=size, end=SESSION)
    market.daily_bars(market.universe()["symbol"].iloc[:1].tolist(), date(2020, 1, 1), SESSION)
    generate = time.perf_counter() - t
    params = params_from_dict({"data": {"source": f"demo:{size}"}, "scan": {"workers": workers}})
    times, provider = [], []
    for _ in range(runs):
        timed = Timed(market)
        t = time.perf_counter()
        res = run_scan(params, SESSION, timed)
        times.append(time.perf_counter() - t)
        provider.append(timed.seconds)
    return {"size": size, "workers": workers, "generate": generate, "scan": statistics.median(times),
            "provider": statistics.median(provider), "ranked": len(res.opportunities),
            "excluded": len(res.excluded), "runs": runs}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[50, 500, 5000])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--workers", type=int, default=2, help="also run the largest size on a process pool of this many")
    a = ap.parse_args()
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, python {platform.python_version()}")
    print(f"session {SESSION}, lookback 252 sessions, median of {a.runs} runs; seed: 5-10 min per 50 symbols; target: 500 in < {TARGET_500} s")
    head = (f"{'symbols':>8} {'workers':>7} {'generate s':>10} {'scan s':>8} {'provider s':>10} "
            f"{'symbols/s':>10} {'vs seed (x faster)':>19} {'vs 2 s target':>13} {'ranked':>7} {'excl':>5}")
    print(head)
    calendar.sessions_between(date(2020, 1, 1), SESSION)  # load the market calendar outside the timings
    rows = [bench(n, a.runs, 0) for n in a.sizes]
    if a.workers:
        rows.append(bench(max(a.sizes), max(2, a.runs // 2), a.workers))
    for r in rows:
        lo, hi = (s * r["size"] / 50 / r["scan"] for s in SEED_SECONDS_PER_50)
        print(f"{r['size']:>8} {r['workers']:>7} {r['generate']:>10.2f} {r['scan']:>8.3f} {r['provider']:>10.3f} "
              f"{r['size'] / r['scan']:>10.0f} {f'{lo:,.0f}-{hi:,.0f}':>19} {r['scan'] / TARGET_500:>12.1%} "
              f"{r['ranked']:>7} {r['excluded']:>5}")


if __name__ == "__main__":
    main()
