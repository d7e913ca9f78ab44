"""Benchmark: the research backtest on the real S&P 500 file, 2014-01-02 -> 2016-12-30, exact pack every
session, with per-stage timings; then the vectorbt cross-check on the same window (both curves' final
values, max abs difference, both times). Target (DESIGN.md): 3 years x 500 symbols under 60 s on 2 cores.

Run: .venv/bin/python benchmarks/bench_backtest.py [--workers N]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--workers", type=int, default=1, help="scan processes beside the trading loop (scan.workers); 1 uses both cores")
    ap.add_argument("--start", default="2014-01-02")
    ap.add_argument("--end", default="2016-12-30")
    a = ap.parse_args()
    bars, uni = DATA / "sp500_ohlcv_2013_2016.csv.gz", DATA / "sp500_universe_2018.csv"
    if not bars.is_file():
        print(f"skipped: {bars} is absent")
        return 0
    from wolfkit.backtest import crosscheck, run_backtest
    from wolfkit.backtest.panel import load_market, scan_sessions
    from wolfkit.config import params_from_dict
    from wolfkit.data import get_provider

    raw = {"data": {"source": "csv", "bars_path": str(bars), "universe_path": str(uni)},
           "scan": {"workers": a.workers}}
    p = params_from_dict(raw)
    start, end = date.fromisoformat(a.start), date.fromisoformat(a.end)
    out = Path(tempfile.mkdtemp()) / "bt"
    t0 = time.perf_counter()
    r = run_backtest(p, start, end, out, progress=sys.stdout.isatty())
    s = r.summary
    print(f"backtest {s['window']['start']} .. {s['window']['end']}: {s['window']['sessions']} sessions, "
          f"{len(r.scores['symbol'].unique())} symbols, method {s['method']}, layers {s['layers']}")
    print("stages (s): " + ", ".join(f"{k} {v:.1f}" for k, v in r.timings.items()) + f"; total {time.perf_counter() - t0:.1f} s")
    print(f"final equity {r.equity['equity'].iloc[-1]:,.0f}; buy-and-hold {r.equity['bench_buy_hold'].iloc[-1]:,.0f}; "
          f"open->close {r.equity['bench_open_close'].iloc[-1]:,.0f}; folder {out}")

    provider = get_provider(p)  # data.bad_rows as configured
    market = load_market(provider, p, start, end)
    scans = [m.scan for m in scan_sessions(market, p)]
    cc = crosscheck.run(market, scans, p, p.backtest.equity, n=10)
    print(f"cross-check (top 10 equal weight, open->close, no costs): engine {cc.engine.iloc[-1]:,.2f} in "
          f"{cc.engine_s:.1f} s, vectorbt {cc.vectorbt.iloc[-1]:,.2f} in {cc.vectorbt_s:.1f} s, "
          f"max abs difference {cc.max_abs_diff:.2e}; sessions whose picks are not the top 10 by score: "
          f"{len(cc.not_top_n)} {cc.not_top_n[:3]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
