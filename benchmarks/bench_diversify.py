"""Diversify on real sessions: `build_targets` per session, the exact path against the reference formulation.

The real S&P 500 files (`parameters/sp500.yaml`): every 8th session of a year is scanned with
`wolfkit.scan.run_scan` (the file read once), and each session's opportunities go through
`diversify.build_targets` twice: as it runs (cheap relaxation, dominance pruning, MILP) and with the
reference formulation (the unpruned MILP over every candidate, `exact.solve_milp`). Prints the median
wall and CPU milliseconds per session of both, their ratio, and whether the two agree on every
session (names, weights to 1e-9, reasons). CPU time is the fairer figure on a shared machine.

Run: .venv/bin/python benchmarks/bench_diversify.py [--sessions 30] [--year 2015] [--repeat 3]
(with PYTHONPATH pointing at another checkout's sources it times that checkout instead).
"""

from __future__ import annotations

import argparse
import warnings
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
from _timing import measure

import wolfkit
from wolfkit.config import Params, load_params
from wolfkit.data import get_provider
from wolfkit.diversify import Targets, build_targets, exact
from wolfkit.opportunities import validate_opportunities
from wolfkit.scan import run_scan

ROOT = Path(__file__).resolve().parents[1]


def real_sessions(params: Params, year: int, n: int) -> list[pd.DataFrame]:
    """Validated opportunities of `n` sessions of `year` (every 8th), scanned from the real file."""
    import exchange_calendars as xc

    provider = get_provider(params)
    days = xc.get_calendar("XNYS").sessions_in_range(f"{year}-01-01", f"{year}-12-31")[::8][:n]
    return [validate_opportunities(run_scan(params, d.date(), provider).opportunities, params, "scan").valid
            for d in days]


def with_reference(run: Callable[[], list[Targets]]) -> list[Targets]:
    """`run` with the exact step swapped for the reference formulation (the unpruned MILP)."""
    fast = exact.solve_exact
    exact.solve_exact = lambda c, p, count, prune=True: exact.solve_milp(c, p, count)  # type: ignore[assignment]
    try:
        return run()
    finally:
        exact.solve_exact = fast  # type: ignore[assignment]


def same(a: Targets, b: Targets) -> bool:
    """Same names in the same order, weights to 1e-9, the same reasons and notes."""
    return (a.weights["symbol"].tolist() == b.weights["symbol"].tolist()
            and bool(np.allclose(a.weights["weight"], b.weights["weight"], rtol=0, atol=1e-9))
            and a.weights["reason"].tolist() == b.weights["reason"].tolist()
            and a.excluded.equals(b.excluded) and a.notes == b.notes)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sessions", type=int, default=30)
    ap.add_argument("--year", type=int, default=2015)
    ap.add_argument("--repeat", type=int, default=3)
    a = ap.parse_args()
    warnings.simplefilter("ignore", UserWarning)  # the quarantine notice of the real file
    p = load_params(ROOT / "parameters" / "sp500.yaml").with_changes({"scan": {"workers": 0}})
    sessions = real_sessions(p, a.year, a.sessions)
    print(f"wolfkit from {Path(wolfkit.__file__).parent}; {len(sessions)} sessions of {a.year}, "
          f"{np.mean([int((s['score'] >= p.portfolio.min_score).sum()) for s in sessions]):.0f} candidates on average")

    def run() -> list[Targets]:
        return [build_targets(s, p) for s in sessions]

    fast, ref = run(), with_reference(run)
    agree = sum(same(x, y) for x, y in zip(fast, ref))
    wall_f, cpu_f = measure(run, a.repeat)
    wall_r, cpu_r = measure(lambda: with_reference(run), a.repeat)
    n = len(sessions)
    print(f"{'':>22} {'wall ms/session':>16} {'CPU ms/session':>15}")
    print(f"{'exact path':>22} {1000 * wall_f / n:16.1f} {1000 * cpu_f / n:15.1f}")
    print(f"{'reference (unpruned)':>22} {1000 * wall_r / n:16.1f} {1000 * cpu_r / n:15.1f}")
    print(f"ratio reference / exact path: wall {wall_r / wall_f:.2f}, CPU {cpu_r / cpu_f:.2f}")
    print(f"same targets on {agree}/{n} sessions")


if __name__ == "__main__":
    main()
