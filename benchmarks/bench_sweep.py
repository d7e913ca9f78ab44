"""A sweep of 16 configurations over one year, three ways side by side: one process (one backtest after
another), local processes (`wolfkit sweep --executor local`) and a 2-worker `dask.distributed.LocalCluster`
(`--executor dask`). Prints each wall time, the speed-up over one process, and checks that the three
`sweep.csv` tables are identical (a configuration's figures do not depend on where it ran).

    .venv/bin/python benchmarks/bench_sweep.py                               # demo market, one year
    .venv/bin/python benchmarks/bench_sweep.py --params parameters/sp500.yaml --start 2015-01-02 --end 2015-12-31
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from contextlib import ExitStack
from datetime import date
from pathlib import Path

import pandas as pd

from wolfkit import calendar, sweep
from wolfkit.config import load_params

ROOT = Path(__file__).resolve().parents[1]
GRID = {  # 2 x 2 x 2 x 2 = 16 configurations
    "portfolio.sector_cap": [0.25, 0.35],
    "portfolio.max_positions": [12, 15],
    "leverage.buying_power_multiple": [1.0, 2.0],
    "exits.take_profit_atr": [1.5, 2.5],
}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--params", default=str(ROOT / "parameters/demo.yaml"))
    ap.add_argument("--start", default="")
    ap.add_argument("--end", default="")
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()
    params = load_params(args.params)
    end = date.fromisoformat(args.end) if args.end else calendar.previous_session(calendar.latest_session(calendar.today_ny()))
    start = date.fromisoformat(args.start) if args.start else calendar.sessions_ending(end, 252)[0]
    grid = sweep.Grid({k: list(v) for k, v in GRID.items()})
    n = len(grid.configurations())
    print(f"sweep of {n} configurations, {start} … {end}, {args.params}; {os.cpu_count()} cores, "
          f"load average {os.getloadavg()[0]:.1f} at start")
    tables: dict[str, pd.DataFrame] = {}
    walls: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for mode in ("one process", "local processes", "dask LocalCluster"):
            with ExitStack() as stack:
                t0 = time.perf_counter()
                pool = None
                if mode == "local processes":
                    pool = sweep.open_executor("local", stack, workers=args.workers)
                elif mode == "dask LocalCluster":
                    pool = sweep.open_executor("dask", stack, workers=args.workers)
                started = time.perf_counter() - t0
                result = sweep.run_sweep(params, grid, start, end, Path(tmp) / mode.replace(" ", "-"), executor=pool)
                walls[mode] = time.perf_counter() - t0
            tables[mode] = result.table.drop(columns=["folder"])
            print(f"{mode:>18}: {walls[mode]:7.1f} s wall (executor start {started:.1f} s), "
                  f"load average {os.getloadavg()[0]:.1f}")
    base = walls["one process"]
    for mode in ("local processes", "dask LocalCluster"):
        print(f"speed-up of {mode} with {args.workers} workers over one process: {base / walls[mode]:.2f}x")
    same = all(t.equals(tables["one process"]) for t in tables.values())
    print(f"identical sweep.csv rows in all three: {same}")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
