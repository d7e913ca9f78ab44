"""The on-disk bar cache: coverage survives a restart, ranges merge when they touch, a disjoint
range replaces the old one, and sessions without bars still count as fetched."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pandas as pd

from wolfkit.data.base import BAR_COLUMNS
from wolfkit.data.cache import BarCache


def _bars(symbol: str, days: list[str], close: float = 10.0) -> pd.DataFrame:
    n = len(days)
    return pd.DataFrame({"symbol": [symbol] * n, "date": pd.to_datetime(days), "open": [close] * n,
                         "high": [close + 1] * n, "low": [close - 1] * n, "close": [close] * n,
                         "volume": [100.0] * n})[BAR_COLUMNS]


def test_coverage_survives_a_restart_and_reads_filter_the_range(tmp_path: Path) -> None:
    c = BarCache(tmp_path, "src")
    assert c.missing(["AAA"], date(2024, 1, 2), date(2024, 1, 5)) == ["AAA"]
    c.write(_bars("AAA", ["2024-01-02", "2024-01-03", "2024-01-04", "2024-01-05"]), ["AAA", "BBB"],
            date(2024, 1, 2), date(2024, 1, 5))
    again = BarCache(tmp_path, "src")
    assert again.missing(["AAA", "BBB", "CCC"], date(2024, 1, 3), date(2024, 1, 4)) == ["CCC"]
    assert again.missing(["AAA"], date(2024, 1, 2), date(2024, 1, 8)) == ["AAA"]
    got = again.read(["AAA", "BBB"], date(2024, 1, 3), date(2024, 1, 4))
    assert list(got.columns) == BAR_COLUMNS and list(got["date"].dt.day) == [3, 4]
    assert again.read(["BBB"], date(2024, 1, 2), date(2024, 1, 5)).empty  # fetched, no bars
    assert not list((tmp_path / "src").glob("*.tmp*"))


def test_touching_ranges_merge_and_disjoint_ranges_replace(tmp_path: Path) -> None:
    c = BarCache(tmp_path, "src")
    c.write(_bars("AAA", ["2024-01-04", "2024-01-05"]), ["AAA"], date(2024, 1, 4), date(2024, 1, 5))
    # the next session after Friday 5 Jan is Monday 8 Jan: the ranges touch across the weekend
    c.write(_bars("AAA", ["2024-01-08"], close=11), ["AAA"], date(2024, 1, 6), date(2024, 1, 8))
    assert c.missing(["AAA"], date(2024, 1, 4), date(2024, 1, 8)) == []
    assert list(c.read(["AAA"], date(2024, 1, 1), date(2024, 1, 31))["date"].dt.day) == [4, 5, 8]
    # an overlapping refetch replaces the overlapping rows and keeps the rest
    c.write(_bars("AAA", ["2024-01-05"], close=12), ["AAA"], date(2024, 1, 5), date(2024, 1, 5))
    merged = c.read(["AAA"], date(2024, 1, 1), date(2024, 1, 31))
    assert list(merged["close"]) == [10, 12, 11]
    # a range far away replaces the cached one (one contiguous range per symbol)
    c.write(_bars("AAA", ["2024-03-01"]), ["AAA"], date(2024, 3, 1), date(2024, 3, 1))
    assert c.missing(["AAA"], date(2024, 1, 4), date(2024, 1, 8)) == ["AAA"]
    assert list(c.read(["AAA"], date(2024, 1, 1), date(2024, 12, 31))["date"]) == [pd.Timestamp("2024-03-01")]
