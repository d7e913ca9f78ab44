"""Two parameter sets backtested over one window: what a change of setting does to Sharpe, drawdown and turnover.

Why: the tuning panel previews one morning's pack; an analyst also needs to see what the setting would
have done over history before saving it. `compare_settings` runs the research backtest
(`wolfkit.backtest.run_backtest`, the same code as `wolfkit backtest`) for the current parameters and
for the proposed ones over the same window and returns a small typed table: current / this setting /
change.

A second comparison with another setting is fast: the market (bars of the window and its lookback as
one panel, `panel.load_market`) is loaded once per data section and window and kept, and so is the
current parameters' run (keyed by the parameters' digest), so only the new setting is walked again.
"""

from __future__ import annotations

import tempfile
import time
from collections import OrderedDict
from dataclasses import dataclass
from datetime import date
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from wolfkit.backtest.panel import Market, load_market

if TYPE_CHECKING:
    from wolfkit.config import Params
    from wolfkit.data.base import DataProvider

__all__ = ["Comparison", "Metric", "MetricChange", "clear_cache", "compare_settings"]


class Metric(StrEnum):
    """The figures a comparison reports, named as in the backtest's `summary.json`."""

    SHARPE = "sharpe"
    MAX_DRAWDOWN = "max_drawdown"
    TURNOVER = "turnover"


@dataclass(frozen=True)
class MetricChange:
    """One figure for both settings and the change (this setting minus current; None when either is missing)."""

    metric: Metric
    current: float | None
    setting: float | None

    @property
    def change(self) -> float | None:
        if self.current is None or self.setting is None:
            return None
        return self.setting - self.current


@dataclass(frozen=True)
class Comparison:
    """The window, each run's summary (the backtest's `summary.json` content) and the figures side by side.

    `reused_current`: the current parameters' run came from the cache (not walked again).
    """

    start: date
    end: date
    sessions: int
    rows: tuple[MetricChange, ...]
    current: dict[str, Any]
    setting: dict[str, Any]
    seconds: float
    reused_current: bool

    def table(self) -> pd.DataFrame:
        """metric, current, setting, change: the table the panel shows."""
        return pd.DataFrame({
            "metric": [str(r.metric) for r in self.rows],
            "current": [r.current for r in self.rows],
            "setting": [r.setting for r in self.rows],
            "change": [r.change for r in self.rows],
        })


_MARKETS: OrderedDict[str, tuple[DataProvider, Market]] = OrderedDict()
_SUMMARIES: OrderedDict[str, dict[str, Any]] = OrderedDict()
_KEEP = 4  # markets (and summaries x 8) kept: a few windows of one notebook session


def clear_cache() -> None:
    """Forget the kept markets and runs (e.g. after the data files changed)."""
    _MARKETS.clear()
    _SUMMARIES.clear()


def _market_key(params: Params, start: date, end: date) -> str:
    """What the loaded market depends on: the data section, the scan's lookback and minimum history, the window."""
    return "|".join([params.data.model_dump_json(), str(params.scan.lookback_days), str(params.scan.min_history),
                     start.isoformat(), end.isoformat()])


def _market(params: Params, start: date, end: date, provider: DataProvider | None) -> tuple[DataProvider, Market]:
    key = _market_key(params, start, end)
    if provider is None and key in _MARKETS:
        _MARKETS.move_to_end(key)
        return _MARKETS[key]
    if provider is None:
        from wolfkit.data import get_provider

        provider = get_provider(params)
    found = (provider, load_market(provider, params, start, end))
    _MARKETS[key] = found
    while len(_MARKETS) > _KEEP:
        _MARKETS.popitem(last=False)
    return found


def _summary(params: Params, start: date, end: date, provider: DataProvider, market: Market,
             equity: float | None) -> tuple[dict[str, Any], bool]:
    """The backtest summary of `params` over the window (from the cache when this set already ran)."""
    from wolfkit.backtest import run_backtest

    key = "|".join([params.digest(), _market_key(params, start, end), repr(equity)])
    if key in _SUMMARIES:
        _SUMMARIES.move_to_end(key)
        return _SUMMARIES[key], True
    with tempfile.TemporaryDirectory(prefix="wolfkit-compare-") as tmp:
        r = run_backtest(params, start, end, Path(tmp) / "bt", equity=equity, provider=provider, market=market,
                         progress=False, report=False)
    _SUMMARIES[key] = r.summary
    while len(_SUMMARIES) > 8 * _KEEP:
        _SUMMARIES.popitem(last=False)
    return r.summary, False


def _figure(summary: dict[str, Any], metric: Metric) -> float | None:
    v = summary.get(str(metric))
    return None if v is None else float(v)


def compare_settings(current: Params, setting: Params, start: date, end: date, *,
                     provider: DataProvider | None = None, equity: float | None = None) -> Comparison:
    """Backtest `current` and `setting` over [start, end] on the same market; Sharpe, max drawdown and
    turnover of each and the change.

    The two sets must read the same data (the panel compares portfolio rules, not data sources): the
    market is loaded from `setting`'s data section. `provider`: the data to use (None: the parameters'
    own, kept between calls). Raises `BadInputError` for a bad window, as `wolfkit backtest` does.
    """
    from wolfkit.errors import BadInputError

    if current.data != setting.data:
        raise BadInputError("compare settings: the two parameter sets read different data (data section); "
                            "compare portfolio rules on one data source")
    t0 = time.perf_counter()
    provider, market = _market(setting, start, end, provider)
    base, reused = _summary(current, start, end, provider, market, equity)
    new, _ = _summary(setting, start, end, provider, market, equity)
    rows = tuple(MetricChange(m, _figure(base, m), _figure(new, m)) for m in Metric)
    return Comparison(start=start, end=end, sessions=int(new["window"]["sessions"]), rows=rows, current=base,
                      setting=new, seconds=time.perf_counter() - t0, reused_current=reused)
