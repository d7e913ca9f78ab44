"""Benchmark: the research backtest on the real S&P 500 file, 2014-01-02 -> 2016-12-30, exact pack every
session, with per-stage timings (wall and the process's CPU); a year of backtest against 20 single-day
scan + build runs (in-process with the file already read: the floor; and as the commands run: fresh
`wolfkit scan` / `build` / `backtest` processes); the scan stage alone (every session's scan from one panel against the per-session
scan on a sample of sessions); then the vectorbt cross-check on the same window (both curves' final values, max abs
difference, both times). Targets (issue 12): 3 years x 500 symbols under 60 s on 2 cores; a whole year
no dearer than 20 single-day `scan` + `build` runs.

Run: .venv/bin/python benchmarks/bench_backtest.py [--workers N] [--check REF_DIR] [--no-crosscheck] [--no-year]
     [--no-scan-stage]
     .venv/bin/python benchmarks/bench_backtest.py --split --start 2015-04-01 --end 2015-06-30
`--split`: only the CPU a session costs in each step, in one process (`scan.workers 0`) over the window:
the per-symbol half of the scan (`PanelScan.sessions`), the ranking (`scan.rank`), the directional targets
(`diversify.build_targets`, of which the HiGHS solves: `milp.solve`) and the trading loop's sizing and
packing (`engine.build_day`). CPU time: the machine is shared, wall times are noisy.
`--check REF_DIR`: REF_DIR is a backtest folder of the same window made by an earlier version; equity.csv
and fills.csv must be byte for byte the same (exit 1 otherwise) — a speed-up must not move a cent.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"


def _single_days(p, provider, days: list[date]) -> list[float]:
    """Wall seconds of one `run_scan` + `build_order_plan` (what `wolfkit scan` and `wolfkit build` run)
    per session, in-process with the file already read (the cheapest a single day can be)."""
    from wolfkit.orders import build_order_plan
    from wolfkit.scan import run_scan

    out = []
    for d in days:
        t = time.perf_counter()
        opps = run_scan(p, d, provider=provider).opportunities
        build_order_plan(opps, p, p.backtest.equity, p.account(p.backtest.equity).buying_power, d)
        out.append(time.perf_counter() - t)
    return out


def _as_commands(days: list[date], tmp: Path) -> str:
    """The target as a trader meets it: `wolfkit scan` + `wolfkit build` for one day, and `wolfkit backtest`
    for the year 2015, each a fresh process on `parameters/sp500.yaml` (Python start and file read included)."""
    import subprocess

    cli, params = [str(Path(sys.executable).parent / "wolfkit")], str(ROOT / "parameters" / "sp500.yaml")

    def timed(*args: str) -> float:
        t = time.perf_counter()
        subprocess.run([*cli, *args], cwd=ROOT, check=True, capture_output=True)
        return time.perf_counter() - t

    one = []
    for d in days:
        opps, plan = tmp / f"opportunities-{d}.csv", tmp / f"orders-{d}.json"
        one.append(timed("scan", "-p", params, "-d", str(d), "-o", str(opps))
                   + timed("build", "-p", params, "--opportunities", str(opps), "--equity", "100000", "-d", str(d),
                           "--out", str(plan)))
    day = statistics.median(one)
    year = timed("backtest", "--params", params, "--start", "2015-01-02", "--end", "2015-12-31",
                 "--out", str(tmp / "year"))
    return (f"as the commands run (fresh processes, parameters/sp500.yaml): wolfkit scan + build, median of "
            f"{len(days)} days: {day:.1f} s, x 20 = {20 * day:.1f} s; wolfkit backtest 2015: {year:.1f} s; "
            f"year / (20 single-day runs) = {year / (20 * day):.2f} (target <= 1)")


def _scan_stage(p, provider, start: date, end: date, every: int = 10) -> str:
    """CPU seconds of the scan stage: every session from one `PanelScan` (+ `scan.rank`) against
    `scan.scan_window` per session on every `every`-th session, scaled to all sessions."""
    from wolfkit.backtest.panel import load_market
    from wolfkit.panel_scan import PanelScan
    from wolfkit.scan import rank, resolve_signals, scan_window

    market = load_market(provider, p, start, end)
    signals, weights = resolve_signals(p.scan)
    rows = [int(r) for r in market.sessions]
    c = time.process_time()
    scans = PanelScan(market.panel, market.universe, signals, p).sessions(rows)
    per_symbol = time.process_time() - c
    for sc in scans:
        rank(sc.per_symbol, sc.excluded, market.universe, weights, p)
    panel = time.process_time() - c
    sample = rows[::every]
    c = time.process_time()
    for r in sample:
        scan_window(market.panel.rows(max(0, r - p.scan.lookback_days), r), market.universe, signals, weights, p)
    each = (time.process_time() - c) / len(sample)
    return (f"scan stage, {len(rows)} sessions (CPU): panel form {panel:.1f} s (per-symbol half {per_symbol:.1f} s, "
            f"ranking {panel - per_symbol:.1f} s; {1000 * panel / len(rows):.1f} ms a session); per-session "
            f"scan_window {1000 * each:.1f} ms a session (mean over {len(sample)}), "
            f"x {len(rows)} = {each * len(rows):.1f} s; ratio {each * len(rows) / panel:.1f}")


def _split(p, provider, start: date, end: date) -> str:
    """CPU milliseconds a session costs in each step of the backtest, in-process."""
    from contextlib import ExitStack
    from unittest import mock

    import wolfkit.backtest.engine as engine
    import wolfkit.backtest.panel as panel
    import wolfkit.diversify.exact as exact
    from wolfkit.backtest import run_backtest
    from wolfkit.panel_scan import PanelScan

    cpu: dict[str, float] = {}

    def timed(owner, name: str, label: str) -> mock._patch:
        real = getattr(owner, name)

        def run(*a, **k):
            c = time.process_time()
            try:
                return real(*a, **k)
            finally:
                cpu[label] = cpu.get(label, 0.0) + time.process_time() - c
        return mock.patch.object(owner, name, run)

    steps = ((PanelScan, "sessions", "per-symbol scan"), (panel, "rank", "ranking"), (panel, "build_targets", "targets"),
             (exact, "solve", "of which HiGHS"), (engine, "build_day", "sizing + packing"))
    cpu |= {label: 0.0 for _, _, label in steps}
    with ExitStack() as stack:
        for owner, name, label in steps:
            stack.enter_context(timed(owner, name, label))
        c = time.process_time()
        r = run_backtest(p, start, end, Path(tempfile.mkdtemp()) / "split", provider=provider, progress=False,
                         report=False)
        total = time.process_time() - c
    n = r.summary["window"]["sessions"]
    return (f"CPU per session over {n} sessions ({start} .. {end}, in-process): "
            + ", ".join(f"{k} {1000 * v / n:.1f} ms" for k, v in cpu.items())
            + f"; whole run {1000 * total / n:.1f} ms a session ({total:.1f} s)")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--workers", type=int, default=2, help="scan processes beside the trading loop (scan.workers)")
    ap.add_argument("--start", default="2014-01-02")
    ap.add_argument("--end", default="2016-12-30")
    ap.add_argument("--check", type=Path, default=None, help="reference folder: equity.csv and fills.csv must match")
    ap.add_argument("--out", type=Path, default=None, help="write the run here (default: a temporary folder)")
    ap.add_argument("--no-crosscheck", action="store_true")
    ap.add_argument("--no-year", action="store_true", help="skip the year vs 20 single days comparison")
    ap.add_argument("--no-scan-stage", action="store_true", help="skip the scan stage timing (panel vs per session)")
    ap.add_argument("--split", action="store_true", help="only the CPU per session of each step, in one process")
    a = ap.parse_args()
    bars, uni = DATA / "sp500_ohlcv_2013_2016.csv.gz", DATA / "sp500_universe_2018.csv"
    if not bars.is_file():
        print(f"skipped: {bars} is absent")
        return 0
    import warnings

    warnings.simplefilter("ignore", UserWarning)  # the data-quality notice (22 bad rows), said once per read
    from wolfkit.backtest import crosscheck, run_backtest
    from wolfkit.backtest.panel import load_market, scan_sessions
    from wolfkit.config import params_from_dict
    from wolfkit.data import get_provider

    raw = {"data": {"source": "csv", "bars_path": str(bars), "universe_path": str(uni)},
           "scan": {"workers": a.workers}}
    p = params_from_dict(raw)
    start, end = date.fromisoformat(a.start), date.fromisoformat(a.end)
    if a.split:
        print(_split(params_from_dict({**raw, "scan": {"workers": 0}}), get_provider(p), start, end))
        return 0
    out = a.out or Path(tempfile.mkdtemp()) / "bt"
    t0, c0 = time.perf_counter(), time.process_time()
    r = run_backtest(p, start, end, out, progress=sys.stdout.isatty())
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    s = r.summary
    print(f"backtest {s['window']['start']} .. {s['window']['end']}: {s['window']['sessions']} sessions, "
          f"{len(r.scores['symbol'].unique())} symbols, method {s['method']}, layers {s['layers']}, workers {a.workers}")
    print("stages (s): " + ", ".join(f"{k} {v:.1f}" for k, v in r.timings.items())
          + f"; total {wall:.1f} s wall (provider read included), main process CPU {cpu:.1f} s")
    print(f"final equity {r.equity['equity'].iloc[-1]:,.2f}; buy-and-hold {r.equity['bench_buy_hold'].iloc[-1]:,.0f}; "
          f"open->close {r.equity['bench_open_close'].iloc[-1]:,.0f}; folder {out}")
    status = 0
    if a.check is not None:
        same = {f: (out / f).read_bytes() == (a.check / f).read_bytes() for f in ("equity.csv", "fills.csv")}
        print("check against " + str(a.check) + ": " + ", ".join(f"{f} {'identical' if ok else 'DIFFERENT'}"
                                                                for f, ok in same.items()))
        status = 0 if all(same.values()) else 1

    if not a.no_year:
        provider = get_provider(p)
        solo = params_from_dict({**raw, "scan": {"workers": 0}})
        days = [date(2015, 2, 2), date(2015, 5, 1), date(2015, 8, 3), date(2015, 11, 2), date(2016, 3, 1)]
        one = statistics.median(_single_days(solo, provider, days))
        t = time.perf_counter()
        yr = run_backtest(p, date(2015, 1, 2), date(2015, 12, 31), Path(tempfile.mkdtemp()) / "year", progress=False,
                          provider=provider)
        year = time.perf_counter() - t
        print(f"one year ({yr.summary['window']['sessions']} sessions, provider already read): {year:.1f} s; "
              f"single-day scan + build (in-process, median of {len(days)}): {one:.2f} s, x 20 = {20 * one:.1f} s; "
              f"year / (20 single days) = {year / (20 * one):.2f} (the in-process floor: stricter than the target)")
        print(_as_commands(days[:3], Path(tempfile.mkdtemp())))

    if not a.no_scan_stage:
        print(_scan_stage(params_from_dict({**raw, "scan": {"workers": 0}}), get_provider(p), start, end))

    if not a.no_crosscheck:
        provider = get_provider(p)  # data.bad_rows as configured
        market = load_market(provider, p, start, end)
        scans = [m.scan for m in scan_sessions(market, p)]
        cc = crosscheck.run(market, scans, p, p.backtest.equity, n=10)
        print(f"cross-check (top 10 equal weight, open->close, no costs): engine {cc.engine.iloc[-1]:,.2f} in "
              f"{cc.engine_s:.1f} s, vectorbt {cc.vectorbt.iloc[-1]:,.2f} in {cc.vectorbt_s:.1f} s, "
              f"max abs difference {cc.max_abs_diff:.2e}; sessions whose picks are not the top 10 by score: "
              f"{len(cc.not_top_n)} {cc.not_top_n[:3]}")
    return status


if __name__ == "__main__":
    sys.exit(main())
