"""Timing for the benchmark scripts: median wall and CPU time of a step over repeats."""

from __future__ import annotations

import statistics
import time
from typing import Callable


def measure(step: Callable[[], object], repeat: int) -> tuple[float, float]:
    """(median wall seconds, median CPU seconds of this process) of `repeat` calls of `step`."""
    walls, cpus = [], []
    for _ in range(repeat):
        w, c = time.perf_counter(), time.process_time()
        step()
        walls.append(time.perf_counter() - w)
        cpus.append(time.process_time() - c)
    return statistics.median(walls), statistics.median(cpus)
