"""Measure reading the real S&P 500 bars (480,000 rows, ../shared/data) with every bad-row check, and
the jump detector over the whole file, beside a bare `pandas.read_csv` of the same file (the floor:
parsing alone, no checks).

Run: .venv/bin/python benchmarks/bench_data_quality.py [--repeat 5]
Prints the median wall time (and CPU time) of each step; the machine may be shared, so CPU time is
the steadier figure. Exits 0 with a note when ../shared/data is absent.
"""

from __future__ import annotations

import argparse
import tempfile
import warnings
from pathlib import Path

import pandas as pd
from _timing import measure

from wolfkit.config import BadRows
from wolfkit.data.files import read_bars, read_universe
from wolfkit.data.quality import find_jumps

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
BARS, UNIVERSE = DATA / "sp500_ohlcv_2013_2016.csv.gz", DATA / "sp500_universe_2018.csv"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    if not BARS.is_file():
        print(f"{BARS} is absent: nothing to measure")
        return
    warnings.simplefilter("ignore")  # the quarantine warning, once per read
    read = read_bars(BARS, "csv", BadRows.QUARANTINE)
    sectors = read_universe(UNIVERSE)[0].set_index("symbol")["sector"]
    with tempfile.TemporaryDirectory() as tmp:
        plain = Path(tmp) / "bars.csv"
        pd.read_csv(BARS, dtype=str, keep_default_na=False).to_csv(plain, index=False)
        steps = {
            "pandas.read_csv, .csv.gz (parse only, the floor)": lambda: pd.read_csv(BARS),
            "read_bars, .csv.gz, quarantine (all checks)": lambda: read_bars(BARS, "csv", BadRows.QUARANTINE),
            "read_bars, same file uncompressed": lambda: read_bars(plain, "csv", BadRows.QUARANTINE),
            "find_jumps, whole file": lambda: find_jumps(read.bars, sectors, 0.35),
        }
        print(f"{len(read.bars):,} bars kept, {read.quarantined[['file', 'line']].drop_duplicates().shape[0]} rows "
              f"quarantined; median of {args.repeat}")
        for name, step in steps.items():
            wall, cpu = measure(step, args.repeat)
            print(f"  {name:52s} {wall:6.2f} s wall  {cpu:6.2f} s CPU")


if __name__ == "__main__":
    main()
