"""Benchmark: a replayed session of 390 minutes x 500 symbols with both layers (target < 5 s).

Builds the day's pack from the demo market (500 symbols), loads the session's minute bars for all
500 symbols, and replays the session through the simulated broker directional-only and with both
layers, `--repeat` times each. Prints the replay times (median, best) against the target and the
leverage use of the two variants side by side (time-averaged leverage, idle leverage-hours, fills).

    .venv/bin/python benchmarks/bench_replay.py [--symbols 500] [--date 2026-11-13] [--repeat 3]
"""

from __future__ import annotations

import argparse
import statistics
import time
from datetime import date

from wolfkit.config import load_params
from wolfkit.data.demo import DemoMarket
from wolfkit.replay import SessionBars, metrics, replay_session, run_session

TARGET_S = 5.0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--symbols", type=int, default=500)
    ap.add_argument("--date", type=date.fromisoformat, default=date(2026, 11, 13))
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--seed", type=int, default=7)
    a = ap.parse_args()

    params = load_params("parameters/demo.yaml")
    market = DemoMarket(a.seed, a.symbols)
    t0 = time.perf_counter()
    bars = SessionBars.from_frame(market.minute_bars(market.universe()["symbol"].tolist(), a.date))
    t_bars = time.perf_counter() - t0
    t0 = time.perf_counter()
    plan = replay_session(params, a.date, 100_000.0, provider=market, bars=bars, variants=()).plan
    t_plan = time.perf_counter() - t0
    print(f"session {a.date}: {len(bars.times)} minutes x {len(bars.symbols)} symbols (demo seed {a.seed}, synthetic)")
    print(f"plan: {sum(o.layer == 'directional' for o in plan.orders)} directional orders, "
          f"{len(plan.maxdiff_plans)} maxdiff plans (scan + build {t_plan:.2f}s; minute bars {t_bars:.2f}s, not timed below)")

    times: dict[str, list[float]] = {"directional": [], "both": []}
    runs = {}
    for _ in range(a.repeat):
        for variant in times:
            t0 = time.perf_counter()
            runs[variant] = run_session(params, plan, bars, 100_000.0, maxdiff=(variant == "both"))
            times[variant].append(time.perf_counter() - t0)
    print()
    print(f"{'replay (390 min)':24}{'median s':>10}{'best s':>10}{'target':>10}{'vs target':>11}")
    for variant, ts in times.items():
        med = statistics.median(ts)
        print(f"{variant:24}{med:10.2f}{min(ts):10.2f}{TARGET_S:10.1f}{med / TARGET_S:10.2f}x")
    both_med = statistics.median(times["both"])
    print(f"both layers: {'MEETS' if both_med < TARGET_S else 'MISSES'} the < {TARGET_S:.0f} s target "
          f"({len(bars.times) * len(bars.symbols) / both_med:,.0f} symbol-minutes/s)")
    print()
    table = {v: metrics(r, params.leverage.total_max) for v, r in runs.items()}
    keys = ["mean leverage (x)", "mean directional (x)", "mean maxdiff (x)", "peak leverage (x)",
            "idle leverage-hours", "directional fills", "maxdiff fills", "maxdiff fill rate"]
    print(f"{'leverage use':28}{'directional':>14}{'both':>14}")
    for k in keys:
        d, b = table["directional"][k], table["both"][k]
        print(f"{k:28}{d:14.2f}{b:14.2f}")
    ratio = table["both"]["mean leverage (x)"] / table["directional"]["mean leverage (x)"]
    print(f"time-averaged leverage with the maxdiff layer: {ratio:.2f}x the directional-only figure")


if __name__ == "__main__":
    main()
