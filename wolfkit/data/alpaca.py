"""Alpaca market data as a `DataProvider`, through alpaca-py's `StockHistoricalDataClient`.

Why: paper and live runs need real bars and real pre-market quotes. Requests are batched (many
symbols per call, pages followed by alpaca-py), daily bars are cached on disk (`BarCache`) so a
second run fetches nothing, and only completed sessions are served as daily bars.

Keys come only from the environment (`APCA_API_KEY_ID`, `APCA_API_SECRET_KEY`) and are never
printed; `APCA_API_DATA_URL` points the client elsewhere (a proxy, a local emulator). Alpaca has no
sectors or market caps, so the universe comes from a universe file (`data.universe_path`).
"""

from __future__ import annotations

import os
import re
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any, Callable, Sequence
from urllib.parse import urlparse

import pandas as pd
import requests
from alpaca.common.exceptions import APIError
from alpaca.data.enums import Adjustment
from alpaca.data.historical.stock import StockHistoricalDataClient
from alpaca.data.requests import StockBarsRequest, StockLatestQuoteRequest
from alpaca.data.timeframe import TimeFrame

from wolfkit import calendar
from wolfkit.data.base import BAR_COLUMNS, MINUTE_COLUMNS, QUOTE_COLUMNS
from wolfkit.data.cache import BarCache
from wolfkit.data.files import read_universe
from wolfkit.errors import BadInputError, WolfkitError

BATCH = 100  # symbols per request: keeps URLs short; alpaca-py follows the pages of each batch


class AlpacaProvider:
    """Bars and quotes from Alpaca's market data API; universe metadata from a universe file."""

    synthetic = False
    has_ohlc = True

    def __init__(self, universe_path: str | Path | None, cache_dir: str | Path = ".cache/wolfkit") -> None:
        key, secret = os.environ.get("APCA_API_KEY_ID"), os.environ.get("APCA_API_SECRET_KEY")
        if not key or not secret:
            raise BadInputError(
                "data.source alpaca needs the environment variables APCA_API_KEY_ID and APCA_API_SECRET_KEY "
                "(your Alpaca API keys; never put them in parameter files)"
            )
        if universe_path is None:
            raise BadInputError(
                "data.source alpaca has no sectors or market caps: set data.universe_path to a universe "
                "file with symbol, GICS sector, market_cap (e.g. ../shared/data/sp500_universe_2018.csv)"
            )
        self._universe, self.excluded = read_universe(Path(universe_path))
        url = os.environ.get("APCA_API_DATA_URL") or None
        self.name = "alpaca"
        self._client = StockHistoricalDataClient(key, secret, raw_data=True, url_override=url)
        # bars from another endpoint (an emulator, a proxy) must not mix with real ones
        host = re.sub(r"[^0-9A-Za-z.-]+", "_", urlparse(url).netloc) if url else ""
        self._cache = BarCache(cache_dir, f"alpaca-{host}" if host else "alpaca")

    def universe(self) -> pd.DataFrame:
        """The universe file's rows (symbol, sector, market_cap, + name/theme when given)."""
        return self._universe.copy()

    def daily_bars(self, symbols: Sequence[str], start: date, end: date) -> pd.DataFrame:
        """Split- and dividend-adjusted daily bars of completed sessions in [start, end], from the
        disk cache when it covers the range, else fetched in batches and cached."""
        symbols = sorted(set(symbols))
        end = min(pd.Timestamp(end).date(), _last_completed_session())
        start = pd.Timestamp(start).date()
        if start > end or not symbols:
            return self._cache.read([], start, end)
        need = self._cache.missing(symbols, start, end)
        if need:
            fetched = self._fetch_bars(need, TimeFrame.Day, _ny(start, time(0)), _settled(_ny(end, time(23, 59))))
            fetched["date"] = fetched.pop("timestamp").dt.tz_localize(None).dt.normalize()
            self._cache.write(fetched[BAR_COLUMNS], need, start, end)
        return self._cache.read(symbols, start, end)

    def minute_bars(self, symbols: Sequence[str], session: date) -> pd.DataFrame:
        """Regular-hours one-minute bars of `session` (not cached: replays ask for one day)."""
        session = pd.Timestamp(session).date()
        if not calendar.is_trading_day(session):
            raise BadInputError(f"{session} is not an NYSE session; pick a trading day")
        opens, closes = calendar.session_open(session), calendar.session_close(session)
        bars = self._fetch_bars(sorted(set(symbols)), TimeFrame.Minute, opens, _settled(closes - timedelta(minutes=1)))
        regular = (bars["timestamp"] >= pd.Timestamp(opens)) & (bars["timestamp"] < pd.Timestamp(closes))
        return bars.loc[regular, MINUTE_COLUMNS].reset_index(drop=True)

    def latest_quotes(self, symbols: Sequence[str], as_of: datetime) -> pd.DataFrame:
        """Alpaca's latest bid/ask per symbol (pre-market included). Alpaca answers with the quote
        of the moment of the call; `timestamp` says when each quote was made."""
        rows = []
        for chunk in _chunks(sorted(set(symbols))):
            raw = self._call(self._client.get_stock_latest_quote, StockLatestQuoteRequest(symbol_or_symbols=chunk))
            for sym, q in raw.items():
                rows.append({"symbol": sym, "bid": float(q["bp"]), "ask": float(q["ap"]),
                             "bid_size": float(q["bs"]), "ask_size": float(q["as"]), "timestamp": q["t"]})
        quotes = pd.DataFrame(rows, columns=QUOTE_COLUMNS)
        quotes["timestamp"] = pd.to_datetime(quotes["timestamp"], utc=True, format="ISO8601").dt.tz_convert(calendar.NY)
        return quotes.sort_values("symbol", ignore_index=True)

    # -- internals ------------------------------------------------------------------------------

    def _fetch_bars(self, symbols: list[str], timeframe: TimeFrame, start: datetime, end: datetime) -> pd.DataFrame:
        """Bars in long form with a tz-aware New York `timestamp`, fetched in batches."""
        rows: list[dict[str, Any]] = []
        for chunk in _chunks(symbols):
            request = StockBarsRequest(symbol_or_symbols=chunk, timeframe=timeframe, start=start, end=end,
                                       adjustment=Adjustment.ALL)
            for sym, bars in self._call(self._client.get_stock_bars, request).items():
                rows.extend({"symbol": sym, "timestamp": b["t"], "open": b["o"], "high": b["h"], "low": b["l"],
                             "close": b["c"], "volume": b["v"]} for b in bars)
        frame = pd.DataFrame(rows, columns=["symbol", "timestamp", "open", "high", "low", "close", "volume"])
        frame["timestamp"] = pd.to_datetime(frame["timestamp"], utc=True, format="ISO8601").dt.tz_convert(calendar.NY)
        frame[["open", "high", "low", "close", "volume"]] = frame[["open", "high", "low", "close", "volume"]].astype(float)
        return frame.sort_values(["symbol", "timestamp"], ignore_index=True)

    def _call(self, method: Callable[[Any], Any], request: Any) -> Any:
        """One alpaca-py call; API and network failures become errors a user can act on."""
        try:
            return method(request)
        except APIError as e:
            try:
                detail = e.message
            except (ValueError, KeyError, TypeError):  # not a JSON error body
                detail = str(e)[:200]
            if e.status_code in (401, 403):
                raise BadInputError(
                    f"Alpaca data API refused the request (HTTP {e.status_code}: {detail}); check "
                    "APCA_API_KEY_ID / APCA_API_SECRET_KEY and that your plan covers this data"
                ) from None
            raise WolfkitError(f"Alpaca data API error (HTTP {e.status_code}: {detail})") from None
        except requests.RequestException as e:
            raise WolfkitError(
                f"Alpaca data API unreachable ({type(e).__name__}); check the network or APCA_API_DATA_URL"
            ) from None


def _chunks(symbols: list[str]) -> list[list[str]]:
    return [symbols[i:i + BATCH] for i in range(0, len(symbols), BATCH)]


def _ny(d: date, t: time) -> datetime:
    return datetime.combine(d, t, tzinfo=calendar.NY)


def _settled(end: datetime) -> datetime:
    """`end`, but not within the last 16 minutes: free plans may not query recent SIP data."""
    return min(end, calendar.now_ny() - timedelta(minutes=16))


def _last_completed_session(now: datetime | None = None) -> date:
    """The latest session whose daily bar is final (today's only after the close)."""
    now = now or calendar.now_ny()
    today = now.date()
    if calendar.is_trading_day(today) and now >= calendar.session_close(today):
        return today
    return calendar.previous_session(today)
