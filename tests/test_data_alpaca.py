"""The Alpaca data provider, tested at the HTTP layer with requests-mock (never the network):
batched bar requests, pages, the disk cache (a second run makes no request), quotes, the data-URL
override, and clear errors for missing keys, a missing universe and refused requests."""

from __future__ import annotations

import json
from datetime import date, datetime
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pandas as pd
import pytest

from wolfkit import calendar
from wolfkit.data.alpaca import BATCH, AlpacaProvider
from wolfkit.data.base import BAR_COLUMNS, MINUTE_COLUMNS, QUOTE_COLUMNS, DataProvider
from wolfkit.errors import BadInputError, WolfkitError

DATA = "https://data.alpaca.markets/v2"
SECRET = "s3cr3t-value-never-shown"


@pytest.fixture
def keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("APCA_API_KEY_ID", "key-id")
    monkeypatch.setenv("APCA_API_SECRET_KEY", SECRET)
    monkeypatch.delenv("APCA_API_DATA_URL", raising=False)


@pytest.fixture
def universe(tmp_path: Path) -> Path:
    path = tmp_path / "universe.csv"
    rows = ["symbol,sector,market_cap", "AAPL,Information Technology,3.9e12", "XOM,Energy,4.8e11"]
    rows += [f"S{i:03d},Industrials,{1e9 + i}" for i in range(250)]
    path.write_text("\n".join(rows) + "\n")
    return path


def _bar(day: str, close: float) -> dict:
    return {"t": f"{day}T05:00:00Z", "o": close - 1, "h": close + 1, "l": close - 2, "c": close,
            "v": 1000, "n": 10, "vw": close}


def _bars_reply(request, context) -> dict:
    """Two daily bars per symbol (2024-01-02 and -03) over two pages: first half, then the rest."""
    q = parse_qs(urlparse(request.url).query)
    symbols = q["symbols"][0].split(",")
    assert q["timeframe"] == ["1Day"] and q["adjustment"] == ["all"]
    second = "page_token" in q
    half = len(symbols) // 2
    page = symbols[half:] if second or len(symbols) == 1 else symbols[:half]
    bars = {s: [_bar("2024-01-02", 100 + i), _bar("2024-01-03", 101 + i)] for i, s in enumerate(page)}
    return {"bars": bars, "next_page_token": None if second or len(symbols) == 1 else "p2"}


def test_batched_bars_are_fetched_once_then_read_from_the_disk_cache(keys, universe, tmp_path, requests_mock) -> None:
    route = requests_mock.get(f"{DATA}/stocks/bars", json=_bars_reply)
    p = AlpacaProvider(universe, cache_dir=tmp_path / "cache")
    assert isinstance(p, DataProvider) and p.has_ohlc and not p.synthetic
    symbols = list(p.universe()["symbol"])  # 252 symbols -> 3 batches of two pages each
    bars = p.daily_bars(symbols, date(2024, 1, 2), date(2024, 1, 3))
    assert list(bars.columns) == BAR_COLUMNS and len(bars) == 2 * len(symbols)
    batches = {tuple(parse_qs(urlparse(r.url).query)["symbols"][0].split(",")) for r in route.request_history}
    assert len(batches) == -(-len(symbols) // BATCH) and all(len(b) <= BATCH for b in batches)
    assert route.call_count == 2 * len(batches)  # alpaca-py followed every next_page_token
    assert route.request_history[0].headers["APCA-API-KEY-ID"] == "key-id"
    aapl = bars[bars["symbol"] == "AAPL"]
    assert list(aapl["date"]) == [pd.Timestamp("2024-01-02"), pd.Timestamp("2024-01-03")]
    assert bars["date"].dtype == "datetime64[ns]"
    assert bars.equals(bars.sort_values(["symbol", "date"], ignore_index=True))

    fetched = route.call_count
    again = AlpacaProvider(universe, cache_dir=tmp_path / "cache")  # a second run
    pd.testing.assert_frame_equal(again.daily_bars(symbols, date(2024, 1, 2), date(2024, 1, 3)), bars)
    pd.testing.assert_frame_equal(again.daily_bars(["XOM"], date(2024, 1, 3), date(2024, 1, 3)),
                                  bars[(bars["symbol"] == "XOM") & (bars["date"] == "2024-01-03")].reset_index(drop=True))
    assert route.call_count == fetched  # zero HTTP requests the second time
    assert (tmp_path / "cache" / "alpaca" / "daily.parquet").is_file()


def test_a_wider_range_fetches_only_what_is_not_cached(keys, universe, tmp_path, requests_mock) -> None:
    route = requests_mock.get(f"{DATA}/stocks/bars", json=_bars_reply)
    p = AlpacaProvider(universe, cache_dir=tmp_path)
    p.daily_bars(["AAPL"], date(2024, 1, 2), date(2024, 1, 3))
    n = route.call_count
    p.daily_bars(["AAPL", "XOM"], date(2024, 1, 2), date(2024, 1, 3))
    asked = parse_qs(urlparse(route.last_request.url).query)["symbols"][0]
    assert route.call_count == n + 1 and asked == "XOM"  # AAPL came from the cache
    # a symbol with no bars in a fetched range is remembered as fetched, not asked again
    requests_mock.get(f"{DATA}/stocks/bars", json={"bars": {}, "next_page_token": None})
    assert p.daily_bars(["S001"], date(2024, 2, 1), date(2024, 2, 2)).empty
    calls = requests_mock.call_count
    assert p.daily_bars(["S001"], date(2024, 2, 1), date(2024, 2, 2)).empty
    assert requests_mock.call_count == calls


def test_todays_unfinished_bar_is_not_served(keys, universe, tmp_path, requests_mock) -> None:
    requests_mock.get(f"{DATA}/stocks/bars", json={"bars": {}, "next_page_token": None})
    p = AlpacaProvider(universe, cache_dir=tmp_path)
    today = calendar.today_ny()
    p.daily_bars(["AAPL"], date(2024, 1, 2), today)
    end = parse_qs(urlparse(requests_mock.last_request.url).query)["end"][0]
    # the request's end is in UTC; what matters is the New York date it falls on (an evening in New York
    # is already the next day in UTC)
    assert pd.Timestamp(end).tz_convert(calendar.NY).date() <= today


def test_latest_quotes_for_the_premarket(keys, universe, tmp_path, requests_mock) -> None:
    requests_mock.get(f"{DATA}/stocks/quotes/latest", json={"quotes": {
        "AAPL": {"t": "2026-11-20T13:29:58.1Z", "bp": 231.5, "bs": 3, "ap": 231.6, "as": 2, "bx": "V", "ax": "V",
                 "c": ["R"], "z": "C"},
        "XOM": {"t": "2026-11-20T13:29:57Z", "bp": 110.1, "bs": 1, "ap": 110.2, "as": 4, "bx": "V", "ax": "V",
                "c": ["R"], "z": "A"},
    }})
    p = AlpacaProvider(universe, cache_dir=tmp_path)
    q = p.latest_quotes(["XOM", "AAPL"], datetime(2026, 11, 20, 8, 30))
    assert list(q.columns) == QUOTE_COLUMNS and list(q["symbol"]) == ["AAPL", "XOM"]
    assert q.loc[0, "bid"] == 231.5 and q.loc[0, "ask"] == 231.6
    assert q.loc[0, "timestamp"] == pd.Timestamp("2026-11-20 08:29:58.1", tz="America/New_York")
    assert parse_qs(urlparse(requests_mock.last_request.url).query)["symbols"] == ["AAPL,XOM"]


def test_minute_bars_of_a_session(keys, universe, tmp_path, requests_mock) -> None:
    def reply(request, context):
        q = parse_qs(urlparse(request.url).query)
        assert q["timeframe"] == ["1Min"]
        return {"bars": {"AAPL": [
            {"t": "2025-11-28T14:30:00Z", "o": 1, "h": 2, "l": 0.5, "c": 1.5, "v": 10},
            {"t": "2025-11-28T17:59:00Z", "o": 1.5, "h": 2, "l": 1, "c": 1.8, "v": 20},
            {"t": "2025-11-28T18:05:00Z", "o": 1.8, "h": 2, "l": 1, "c": 1.9, "v": 5},  # after the early close
        ]}, "next_page_token": None}

    requests_mock.get(f"{DATA}/stocks/bars", json=reply)
    m = AlpacaProvider(universe, cache_dir=tmp_path).minute_bars(["AAPL"], date(2025, 11, 28))
    assert list(m.columns) == MINUTE_COLUMNS and len(m) == 2
    assert m["timestamp"].iloc[0] == pd.Timestamp("2025-11-28 09:30", tz="America/New_York")


def test_data_url_override_from_the_environment(keys, universe, tmp_path, requests_mock, monkeypatch) -> None:
    monkeypatch.setenv("APCA_API_DATA_URL", "http://127.0.0.1:8765")
    route = requests_mock.get("http://127.0.0.1:8765/v2/stocks/bars", json=_bars_reply)
    p = AlpacaProvider(universe, cache_dir=tmp_path)
    assert len(p.daily_bars(["AAPL"], date(2024, 1, 2), date(2024, 1, 3))) == 2
    assert route.call_count == 1
    assert (tmp_path / "alpaca-127.0.0.1_8765" / "daily.parquet").is_file()  # kept apart


def test_missing_keys_or_universe_are_clear(universe, tmp_path, monkeypatch) -> None:
    monkeypatch.delenv("APCA_API_KEY_ID", raising=False)
    monkeypatch.delenv("APCA_API_SECRET_KEY", raising=False)
    with pytest.raises(BadInputError, match="APCA_API_KEY_ID and APCA_API_SECRET_KEY"):
        AlpacaProvider(universe, cache_dir=tmp_path)
    monkeypatch.setenv("APCA_API_KEY_ID", "k")
    monkeypatch.setenv("APCA_API_SECRET_KEY", "s")
    with pytest.raises(BadInputError, match="data.universe_path"):
        AlpacaProvider(None, cache_dir=tmp_path)


def test_refused_requests_name_the_fix_and_hide_the_secret(keys, universe, tmp_path, requests_mock) -> None:
    requests_mock.get(f"{DATA}/stocks/bars", status_code=403, text=json.dumps({"code": 40310000, "message": "forbidden"}))
    p = AlpacaProvider(universe, cache_dir=tmp_path)
    with pytest.raises(BadInputError) as e:
        p.daily_bars(["AAPL"], date(2024, 1, 2), date(2024, 1, 3))
    assert "HTTP 403" in str(e.value) and "APCA_API_KEY_ID" in str(e.value) and SECRET not in str(e.value)
    requests_mock.get(f"{DATA}/stocks/bars", status_code=500, text="<html>oops</html>")
    with pytest.raises(WolfkitError, match="HTTP 500"):
        p.daily_bars(["AAPL"], date(2024, 1, 2), date(2024, 1, 3))
    assert not (tmp_path / "alpaca" / "daily.parquet").exists()  # nothing cached on failure
