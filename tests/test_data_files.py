"""The files provider on the real data in ../shared/data, long OHLCV round trips, and every kind of
bad input (each a BadInputError naming the file, the line/column and the fix, exit code 2)."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from wolfkit.data.base import BAR_COLUMNS, QUOTE_COLUMNS, DataProvider
from wolfkit.data.demo import DemoMarket
from wolfkit.data.files import FileProvider
from wolfkit.errors import BadInputError

WIDE = "daily_prices_20_us_stocks_1990_2018.csv"
UNIVERSE_CSV = "symbol,sector,market_cap\nAAA,Energy,5e9\nBBB,Utilities,3e8\n"
LONG_CSV = (
    "symbol,date,open,high,low,close,volume\n"
    "AAA,2024-01-02,10,11,9.5,10.5,1000\n"
    "AAA,2024-01-03,10.5,11.2,10.1,11,1200\n"
    "BBB,2024-01-02,20,21,19,20.5,500\n"
    "BBB,2024-01-03,20.5,21.5,20,21,700\n"
)


def _files(tmp_path: Path, bars: str = LONG_CSV, universe: str = UNIVERSE_CSV) -> tuple[Path, Path]:
    b, u = tmp_path / "bars.csv", tmp_path / "universe.csv"
    b.write_text(bars)
    u.write_text(universe)
    return b, u


def _bad(tmp_path: Path, *, bars: str = LONG_CSV, universe: str = UNIVERSE_CSV) -> str:
    b, u = _files(tmp_path, bars, universe)
    with pytest.raises(BadInputError) as e:
        FileProvider(b, u)
    assert e.value.exit_code == 2
    return str(e.value)


# -- real files -----------------------------------------------------------------------------------


def test_wide_close_only_file_keeps_gaps_before_listing(shared_data: Path) -> None:
    with pytest.warns(UserWarning) as caught:
        p = FileProvider(shared_data / WIDE, shared_data / "sp500_financials.csv")
    said = " ".join(str(w.message) for w in caught)
    assert "set aside for an empty 'Market Cap'" in said and "have no row in" in said and "'FB'" in said
    assert isinstance(p, DataProvider) and not p.has_ohlc and not p.synthetic
    raw = pd.read_csv(shared_data / WIDE, parse_dates=["date"])
    symbols = list(raw.columns[1:])
    bars = p.daily_bars(symbols, date(1989, 1, 1), date(2018, 12, 31))
    assert list(bars.columns) == BAR_COLUMNS and bars["symbol"].nunique() == 20
    assert bars[["open", "high", "low", "volume"]].isna().all().all()
    assert bars["close"].notna().all() and (bars["close"] > 0).all()
    assert len(bars) == int(raw[symbols].notna().sum().sum())  # nothing filled, nothing lost
    goog = bars[bars["symbol"] == "GOOG"]
    first = raw.loc[raw["GOOG"].notna(), "date"].min()
    assert goog["date"].min() == first and first > pd.Timestamp("2004-01-01")  # no rows before listing
    check = raw.set_index("date").loc["2010-06-01", "AAPL"]
    assert bars.loc[(bars["symbol"] == "AAPL") & (bars["date"] == "2010-06-01"), "close"].item() == check
    assert bars.equals(bars.sort_values(["symbol", "date"], ignore_index=True))
    # universe: symbols with both bars and metadata; the rest reported, not silently lost
    u = p.universe()
    assert set(u["symbol"]) <= set(symbols) and {"AAPL", "GOOG", "XOM", "JPM"} <= set(u["symbol"])
    assert set(p.no_metadata) == set(symbols) - set(u["symbol"])  # e.g. FB, BABA: not S&P 500 members
    assert (u["market_cap"] > 0).all() and u["sector"].notna().all()


def test_sp500_financials_is_a_universe_and_empty_caps_are_reported(shared_data: Path, tmp_path: Path) -> None:
    from wolfkit.data.files import read_universe

    with pytest.warns(UserWarning, match="34 symbol"):
        u, excluded = read_universe(shared_data / "sp500_financials.csv")
    raw = pd.read_csv(shared_data / "sp500_financials.csv")
    assert len(u) + len(excluded) == len(raw) == 503
    assert set(excluded["symbol"]) == set(raw.loc[raw["Market Cap"].isna(), "Symbol"])
    assert {"symbol", "sector", "market_cap", "name"} <= set(u.columns)
    assert u.set_index("symbol").loc["AAPL", "market_cap"] == raw.set_index("Symbol").loc["AAPL", "Market Cap"]


def test_sp500_constituents_lacks_market_cap_and_says_how_to_fix(shared_data: Path) -> None:
    with pytest.raises(BadInputError) as e:
        FileProvider(shared_data / WIDE, shared_data / "sp500_constituents.csv")
    msg = str(e.value)
    assert "sp500_constituents.csv" in msg and "market_cap" in msg and "sp500_financials.csv" in msg


def test_constituents_joined_with_financials_use_gics_sectors(shared_data: Path, tmp_path: Path) -> None:
    c = pd.read_csv(shared_data / "sp500_constituents.csv")
    f = pd.read_csv(shared_data / "sp500_financials.csv")[["Symbol", "Sector", "Market Cap"]]
    joined = c.merge(f.dropna(subset=["Market Cap"]), on="Symbol")  # has both 'Sector' and 'GICS Sector'
    joined.to_csv(tmp_path / "universe.csv", index=False)
    with pytest.warns(UserWarning, match="6 symbol"):  # FB, BABA, …: not S&P 500 members
        p = FileProvider(shared_data / WIDE, tmp_path / "universe.csv")
    u = p.universe().set_index("symbol")
    assert u.loc["AAPL", "sector"] == "Information Technology"
    assert u["sector"].nunique() <= 11


# -- long layout ----------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_long_ohlcv_round_trip(tmp_path: Path, fmt: str) -> None:
    demo = DemoMarket(seed=3, end=date(2026, 6, 30))
    symbols = ["AAPL", "IONQ", "XOM"]
    bars = demo.daily_bars(symbols, date(2026, 1, 1), date(2026, 6, 30))
    universe = demo.universe()
    path, upath = tmp_path / f"bars.{fmt}", tmp_path / f"universe.{fmt}"
    if fmt == "csv":
        bars.assign(date=bars["date"].dt.strftime("%Y-%m-%d")).to_csv(path, index=False)
        universe.to_csv(upath, index=False)
    else:
        bars.to_parquet(path)
        universe.to_parquet(upath)
    p = FileProvider(path, upath, fmt=fmt)
    assert p.has_ohlc and p.name == fmt
    got = p.daily_bars(symbols, date(2026, 1, 1), date(2026, 6, 30))
    pd.testing.assert_frame_equal(got, bars)
    assert set(p.universe()["symbol"]) == set(symbols)
    window = p.daily_bars(["XOM"], date(2026, 3, 2), date(2026, 3, 6))
    assert list(window["date"].dt.day) == [2, 3, 4, 5, 6]


def test_wide_table_saved_by_pandas_with_an_unnamed_date_index(tmp_path: Path) -> None:
    wide = pd.DataFrame({"AAA": [1.0, None, 1.2], "BBB": [None, 2.0, 2.1]},
                        index=pd.to_datetime(["2024-01-02", "2024-01-03", "2024-01-04"]))
    wide.to_csv(tmp_path / "wide.csv")  # header: ",AAA,BBB"
    (tmp_path / "u.csv").write_text(UNIVERSE_CSV)
    p = FileProvider(tmp_path / "wide.csv", tmp_path / "u.csv")
    bars = p.daily_bars(["AAA", "BBB"], date(2024, 1, 1), date(2024, 1, 31))
    assert list(zip(bars["symbol"], bars["date"].dt.day)) == [("AAA", 2), ("AAA", 4), ("BBB", 3), ("BBB", 4)]


def test_files_have_no_quotes_and_no_minutes(tmp_path: Path) -> None:
    p = FileProvider(*_files(tmp_path))
    q = p.latest_quotes(["AAA"], datetime(2024, 1, 3, 8, 30))
    assert q.empty and list(q.columns) == QUOTE_COLUMNS
    with pytest.raises(BadInputError, match="daily bars only"):
        p.minute_bars(["AAA"], date(2024, 1, 3))
    with pytest.raises(BadInputError, match="no bars for symbol"):
        p.daily_bars(["ZZZ"], date(2024, 1, 1), date(2024, 1, 3))


# -- bad input: one test each ---------------------------------------------------------------------


def test_missing_bars_file(tmp_path: Path) -> None:
    _, u = _files(tmp_path)
    with pytest.raises(BadInputError, match=r"nope\.csv: bars file not found.*data\.bars_path"):
        FileProvider(tmp_path / "nope.csv", u)


def test_missing_universe_file(tmp_path: Path) -> None:
    b, _ = _files(tmp_path)
    with pytest.raises(BadInputError, match=r"gone\.csv: universe file not found.*data\.universe_path"):
        FileProvider(b, tmp_path / "gone.csv")


def test_missing_bar_columns(tmp_path: Path) -> None:
    msg = _bad(tmp_path, bars="symbol,date,open,low,close,volume\nAAA,2024-01-02,10,9.5,10.5,1000\n")
    assert "bars.csv" in msg and "missing column(s) ['high']" in msg and "wide" in msg


def test_missing_universe_columns(tmp_path: Path) -> None:
    msg = _bad(tmp_path, universe="symbol,market_cap\nAAA,5e9\n")
    assert "universe.csv" in msg and "['sector']" in msg


def test_duplicate_symbols_in_universe(tmp_path: Path) -> None:
    msg = _bad(tmp_path, universe=UNIVERSE_CSV + "AAA,Energy,6e9\n")
    assert "universe.csv" in msg and "duplicate symbol" in msg and "line 4" in msg and "'AAA'" in msg


def test_duplicate_symbol_date_in_bars(tmp_path: Path) -> None:
    msg = _bad(tmp_path, bars=LONG_CSV + "AAA,2024-01-03,10.5,11.2,10.1,11,1200\n")
    assert "duplicate (symbol, date)" in msg and "line 6" in msg and "AAA on 2024-01-03" in msg


def test_duplicate_symbol_columns_in_wide_bars(tmp_path: Path) -> None:
    msg = _bad(tmp_path, bars="date,AAA,BBB,AAA\n2024-01-02,1,2,3\n")
    assert "line 1" in msg and "['AAA']" in msg


def test_non_numeric_price(tmp_path: Path) -> None:
    msg = _bad(tmp_path, bars=LONG_CSV.replace("20.5,21.5,20,21,700", "20.5,21.5,20,$21,700"))
    assert "column 'close'" in msg and "line 5" in msg and "'$21'" in msg and "plain numbers" in msg


def test_non_positive_price(tmp_path: Path) -> None:
    msg = _bad(tmp_path, bars=LONG_CSV.replace("AAA,2024-01-02,10,", "AAA,2024-01-02,0,"))
    assert "column 'open'" in msg and "non-positive" in msg and "line 2" in msg and "> 0" in msg
    wide = _bad(tmp_path, bars="date,AAA,BBB\n2024-01-02,1,2\n2024-01-03,-1,2\n")
    assert "column 'AAA'" in wide and "line 3" in wide


def test_missing_price_in_long_bars(tmp_path: Path) -> None:
    msg = _bad(tmp_path, bars=LONG_CSV.replace("AAA,2024-01-03,10.5,11.2,10.1,11,", "AAA,2024-01-03,10.5,11.2,10.1,,"))
    assert "column 'close' is empty" in msg and "line 3" in msg


def test_dates_out_of_order(tmp_path: Path) -> None:
    swapped = LONG_CSV.replace("AAA,2024-01-02,10,11,9.5,10.5,1000\nAAA,2024-01-03,10.5,11.2,10.1,11,1200",
                               "AAA,2024-01-03,10.5,11.2,10.1,11,1200\nAAA,2024-01-02,10,11,9.5,10.5,1000")
    msg = _bad(tmp_path, bars=swapped)
    assert "out of order" in msg and "line 3" in msg and "sort the file" in msg
    wide = _bad(tmp_path, bars="date,AAA\n2024-01-03,1\n2024-01-02,2\n")
    assert "out of order" in wide and "line 3" in wide


def test_unparseable_date(tmp_path: Path) -> None:
    msg = _bad(tmp_path, bars=LONG_CSV.replace("BBB,2024-01-03", "BBB,2024-13-45"))
    assert "column 'date'" in msg and "line 5" in msg and "'2024-13-45'" in msg and "YYYY-MM-DD" in msg


def test_high_below_low(tmp_path: Path) -> None:
    msg = _bad(tmp_path, bars=LONG_CSV.replace("BBB,2024-01-02,20,21,19,", "BBB,2024-01-02,20,18,19,"))
    assert "high < low" in msg and "line 4" in msg


def test_non_positive_market_cap(tmp_path: Path) -> None:
    msg = _bad(tmp_path, universe=UNIVERSE_CSV.replace("3e8", "-3e8"))
    assert "market cap" in msg and "line 3" in msg and "'BBB'" in msg


def test_unrecognised_layout(tmp_path: Path) -> None:
    msg = _bad(tmp_path, bars="when,price\n2024-01-02,1\n")
    assert "missing column(s)" in msg and "long layout" in msg and "wide" in msg


def test_no_shared_symbols(tmp_path: Path) -> None:
    msg = _bad(tmp_path, universe="symbol,sector,market_cap\nZZZ,Energy,1e9\n")
    assert "none of its 1 symbols appear" in msg


def test_parquet_rows_are_numbered(tmp_path: Path) -> None:
    df = pd.read_csv(pd.io.common.StringIO(LONG_CSV))
    df.loc[2, "high"] = 1.0
    df.to_parquet(tmp_path / "bars.parquet")
    (tmp_path / "u.csv").write_text(UNIVERSE_CSV)
    with pytest.raises(BadInputError, match=r"bars\.parquet: high < low at row 3"):
        FileProvider(tmp_path / "bars.parquet", tmp_path / "u.csv", fmt="parquet")
    assert np.isfinite(df["close"]).all()
