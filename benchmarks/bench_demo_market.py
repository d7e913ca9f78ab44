"""Measure the data layer: demo-market generation (demo, demo:500, demo:5000), minute bars and
pre-market quotes for 500 symbols, and reading 500 symbols x 1 year of long bars from CSV and Parquet.

Run: .venv/bin/python benchmarks/bench_demo_market.py [--repeat 3]
Prints the median wall time (and CPU time) of each step; the machine may be shared, so CPU time is
the steadier figure.
"""

from __future__ import annotations

import argparse
import tempfile
from datetime import date, datetime, timedelta
from pathlib import Path

from _timing import measure

from wolfkit.data.demo import EPOCH, DemoMarket
from wolfkit.data.files import FileProvider

END = date(2026, 11, 20)
YEAR_AGO = END - timedelta(days=365)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    rows: list[tuple[str, float, float]] = []

    for size in (None, 500, 5000):
        def generate(size: int | None = size) -> None:
            m = DemoMarket(seed=7, size=size, end=END)  # fresh instance: nothing cached
            m.daily_bars(list(m.universe()["symbol"]), YEAR_AGO, END)

        label = f"demo{'' if size is None else f':{size}'}: generate {EPOCH}..{END}, return 1 year"
        rows.append((label, *measure(generate, args.repeat)))

    m = DemoMarket(seed=7, size=500, end=END)
    symbols = list(m.universe()["symbol"])
    bars = m.daily_bars(symbols, YEAR_AGO, END)
    rows.append(("demo:500: daily_bars 1 year, panel cached", *measure(
        lambda: m.daily_bars(symbols, YEAR_AGO, END), args.repeat)))
    rows.append(("demo:500: minute_bars, one session (500 x 390)", *measure(
        lambda: m.minute_bars(symbols, END), args.repeat)))
    rows.append(("demo:500: latest_quotes pre-market", *measure(
        lambda: m.latest_quotes(symbols, datetime(2026, 11, 20, 8, 30)), args.repeat)))

    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        bars.assign(date=bars["date"].dt.strftime("%Y-%m-%d")).to_csv(d / "bars.csv", index=False)
        bars.to_parquet(d / "bars.parquet")
        m.universe().to_csv(d / "universe.csv", index=False)
        for fmt in ("csv", "parquet"):
            rows.append((f"files: read + validate 500 x 1 year long {fmt} ({len(bars):,} rows)", *measure(
                lambda fmt=fmt: FileProvider(d / f"bars.{fmt}", d / "universe.csv", fmt=fmt), args.repeat)))

    width = max(len(r[0]) for r in rows)
    print(f"{'step':<{width}}  {'wall s':>8}  {'cpu s':>8}   (median of {args.repeat})")
    for label, wall, cpu in rows:
        print(f"{label:<{width}}  {wall:8.3f}  {cpu:8.3f}")


if __name__ == "__main__":
    main()
