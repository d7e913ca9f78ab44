"""The `DataProvider` protocol and the frame layouts every provider returns.

Frames, not objects: the scanner works on a symbols x dates panel, so providers hand back long
tables with fixed columns and dtypes.

- daily bars: columns BAR_COLUMNS; `date` is a tz-naive datetime64 session date; sorted by
  (symbol, date); open/high/low/volume are NaN when the source is close-only (`has_ohlc` False).
- minute bars: `symbol`, `timestamp` (tz-aware America/New_York, bar start), open, high, low, close,
  volume; sorted by (symbol, timestamp).
- quotes: QUOTE_COLUMNS, one row per symbol: the latest bid/ask at or before `as_of`.
- universe: UNIVERSE_COLUMNS (+ optional `name`, `theme`), one row per symbol.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Protocol, Sequence, runtime_checkable

import pandas as pd

BAR_COLUMNS = ["symbol", "date", "open", "high", "low", "close", "volume"]
MINUTE_COLUMNS = ["symbol", "timestamp", "open", "high", "low", "close", "volume"]
QUOTE_COLUMNS = ["symbol", "bid", "ask", "bid_size", "ask_size", "timestamp"]
UNIVERSE_COLUMNS = ["symbol", "sector", "market_cap"]


@runtime_checkable
class DataProvider(Protocol):
    name: str
    synthetic: bool  # True: prices are made up (demo); every output must say so
    has_ohlc: bool  # False: close-only source; high/low-based signals are unavailable

    def universe(self) -> pd.DataFrame:
        """Universe metadata: symbol, sector, market_cap (USD), optional name and theme."""
        ...

    def daily_bars(self, symbols: Sequence[str], start: date, end: date) -> pd.DataFrame:
        """Daily bars for sessions in [start, end] (both inclusive), long format."""
        ...

    def minute_bars(self, symbols: Sequence[str], session: date) -> pd.DataFrame:
        """One-minute bars of one session, long format."""
        ...

    def latest_quotes(self, symbols: Sequence[str], as_of: datetime) -> pd.DataFrame:
        """The latest bid/ask per symbol at or before `as_of` (pre-market quotes in the morning)."""
        ...
