"""An on-disk cache of fetched daily bars: one Parquet table per source plus the range each symbol covers.

Why: a pre-market run, a re-run after a crash and the afternoon replay all ask for the same history;
fetching it once and reading it from disk afterwards keeps runs fast and within API rate limits.
The covered range is kept apart from the bars (`coverage.json`) because a symbol may have no bar
on some sessions (not listed yet, halted): the absence of a row does not mean "not fetched".
Only completed sessions are ever stored, so cached history never changes. One table (rather than a
file per symbol) keeps a 500-symbol read to one file open.
"""

from __future__ import annotations

import json
import os
from datetime import date, timedelta
from pathlib import Path
from typing import Callable, Sequence

import pandas as pd

from wolfkit import calendar
from wolfkit.data.base import BAR_COLUMNS


class BarCache:
    """Daily bars of one source under `root/<source>/`: `daily.parquet` + `coverage.json`."""

    def __init__(self, root: str | Path, source: str) -> None:
        self.dir = Path(root) / source
        self._bars_path = self.dir / "daily.parquet"
        self._index_path = self.dir / "coverage.json"
        self._coverage: dict[str, tuple[date, date]] = {}
        self._bars: pd.DataFrame | None = None  # loaded on first use
        if self._index_path.is_file():
            raw = json.loads(self._index_path.read_text())
            self._coverage = {s: (date.fromisoformat(a), date.fromisoformat(b)) for s, (a, b) in raw.items()}

    def missing(self, symbols: Sequence[str], start: date, end: date) -> list[str]:
        """Symbols whose cached range does not contain [start, end]."""
        return [s for s in symbols if not (s in self._coverage and self._coverage[s][0] <= start
                                           and end <= self._coverage[s][1])]

    def read(self, symbols: Sequence[str], start: date, end: date) -> pd.DataFrame:
        """Cached bars of `symbols` in [start, end] (BAR_COLUMNS, sorted by symbol and date)."""
        bars = self._all()
        keep = bars["symbol"].isin(set(symbols)) & (bars["date"] >= pd.Timestamp(start)) & (
            bars["date"] <= pd.Timestamp(end))
        return bars.loc[keep].reset_index(drop=True)

    def write(self, bars: pd.DataFrame, symbols: Sequence[str], start: date, end: date) -> None:
        """Store freshly fetched `bars` for `symbols`, which were fetched for all of [start, end].

        A range that touches or overlaps the cached one is merged with it (fresh rows win); a
        disjoint one replaces it (the cache keeps one contiguous range per symbol)."""
        old = self._all()
        merged = {s for s in symbols if s in self._coverage and _touch(*self._coverage[s], start, end)}
        replaced = set(symbols) - merged
        in_window = (old["date"] >= pd.Timestamp(start)) & (old["date"] <= pd.Timestamp(end))
        drop = old["symbol"].isin(replaced) | (old["symbol"].isin(merged) & in_window)
        table = pd.concat([old.loc[~drop], bars[BAR_COLUMNS]], ignore_index=True)
        table = table.sort_values(["symbol", "date"], ignore_index=True)
        for s in symbols:
            a, b = self._coverage.get(s, (start, end)) if s in merged else (start, end)
            self._coverage[s] = (min(a, start), max(b, end))
        self.dir.mkdir(parents=True, exist_ok=True)
        _atomic(self._bars_path, lambda p: table.to_parquet(p, index=False))
        index = {s: [a.isoformat(), b.isoformat()] for s, (a, b) in sorted(self._coverage.items())}
        _atomic(self._index_path, lambda p: p.write_text(json.dumps(index, indent=0)))
        self._bars = table

    def _all(self) -> pd.DataFrame:
        if self._bars is None:
            self._bars = pd.read_parquet(self._bars_path) if self._bars_path.is_file() else _empty()
        return self._bars


def _touch(a: date, b: date, start: date, end: date) -> bool:
    """True when [a, b] and [start, end] overlap or no session lies between them."""
    if start <= b and a <= end:
        return True
    first, second = (b, start) if b < start else (end, a)
    lo, hi = first + timedelta(days=1), second - timedelta(days=1)
    return lo > hi or not calendar.sessions_between(lo, hi)


def _atomic(path: Path, write: Callable[[Path], object]) -> None:
    """Write through a temporary file and rename, so a crash never leaves a half-written cache."""
    tmp = path.with_suffix(path.suffix + f".tmp{os.getpid()}")
    write(tmp)
    os.replace(tmp, path)


def _empty() -> pd.DataFrame:
    return pd.DataFrame({
        "symbol": pd.Series(dtype=object), "date": pd.Series(dtype="datetime64[ns]"),
        **{c: pd.Series(dtype=float) for c in BAR_COLUMNS[2:]},
    })
