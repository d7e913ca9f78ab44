"""The pre-market job end to end on the demo market: `wolfkit premarket` as `make demo` runs it.

Measures the wall time of the whole command (a fresh process: imports, calendar, kernel start-up,
scan, build, every report section, exports, HTML export) and, from the run log, the notebook's own
time; checks the HTML report embeds plotly.js (reads offline). Target (DESIGN.md): < 60 s.
Run: .venv/bin/python benchmarks/bench_premarket.py [--repeat 3]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from wolfkit.notebooks import read_index

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--date", default="latest")
    args = ap.parse_args()
    walls, notebook_s = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            subprocess.run(
                [sys.executable, "-m", "wolfkit.cli", "premarket", "--params", str(ROOT / "parameters/demo.yaml"),
                 "--date", args.date, "--outputs", tmp], check=True, capture_output=True, cwd=ROOT,
            )
            walls.append(time.perf_counter() - t0)
        (day,) = [p for p in Path(tmp).iterdir() if p.is_dir()]
        runs = read_index(day)
        notebook_s = [r["elapsed_s"] for r in runs]
        html = day / "premarket.html"
        text = html.read_text()
        offline = "window.__wkDefine" in text and 'src="https://cdn.plot.ly' not in text
        size_mb = html.stat().st_size / 1e6
        nb_mb = (day / "premarket.ipynb").stat().st_size / 1e6
    print(f"wolfkit premarket on the demo market ({day.name}), {args.repeat} runs")
    print(f"  command wall time : median {statistics.median(walls):.1f} s, best {min(walls):.1f} s (target < 60 s)")
    print(f"  notebook (papermill): median {statistics.median(notebook_s):.1f} s, best {min(notebook_s):.1f} s")
    print(f"  report {size_mb:.1f} MB HTML (plotly.js embedded: {offline}), notebook {nb_mb:.1f} MB")


if __name__ == "__main__":
    main()
