"""The demo market: determinism, OHLC consistency, minute bars that aggregate to the daily bar,
pre-market quotes, the universe's spread over tiers and sectors, and the stylised facts."""

from __future__ import annotations

from datetime import date, datetime

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import kurtosis

from wolfkit import calendar
from wolfkit.config import Params
from wolfkit.data.base import BAR_COLUMNS, MINUTE_COLUMNS, QUOTE_COLUMNS, DataProvider
from wolfkit.data.demo import EPOCH, SYNTHETIC_NOTICE, DemoMarket
from wolfkit.errors import BadInputError

END = date(2026, 11, 20)
SOME = ["AAPL", "NVDA", "IONQ", "QUIK", "XOM", "UROY"]


@pytest.fixture(scope="module")
def demo() -> DemoMarket:
    return DemoMarket(seed=7, end=END)


@pytest.fixture(scope="module")
def bars(demo: DemoMarket) -> pd.DataFrame:
    return demo.daily_bars(list(demo.universe()["symbol"]), date(2023, 1, 1), END)


def test_is_a_synthetic_provider(demo: DemoMarket) -> None:
    assert isinstance(demo, DataProvider)
    assert demo.synthetic and demo.has_ohlc and demo.name == "demo"
    assert DemoMarket(size=300).name == "demo:300"
    assert "synthetic" in SYNTHETIC_NOTICE.lower()


def test_same_seed_same_market_other_seed_other_market() -> None:
    a = DemoMarket(seed=7, end=END).daily_bars(SOME, date(2025, 1, 1), END)
    b = DemoMarket(seed=7, end=END).daily_bars(SOME, date(2025, 1, 1), END)
    c = DemoMarket(seed=8, end=END).daily_bars(SOME, date(2025, 1, 1), END)
    pd.testing.assert_frame_equal(a, b)
    assert not np.allclose(a["close"], c["close"])


def test_a_bar_does_not_depend_on_the_range_asked() -> None:
    short = DemoMarket(seed=7, end=date(2025, 3, 31)).daily_bars(SOME, date(2025, 3, 1), date(2025, 3, 31))
    grown = DemoMarket(seed=7, end=END)
    early = grown.daily_bars(SOME, date(2025, 3, 1), date(2025, 3, 31))  # generated through March only
    late = grown.daily_bars(SOME, date(2021, 1, 1), END)  # then extended to END
    window = late[(late["date"] >= "2025-03-01") & (late["date"] <= "2025-03-31")].reset_index(drop=True)
    pd.testing.assert_frame_equal(short, early)
    pd.testing.assert_frame_equal(short, window)


def test_a_bar_does_not_depend_on_the_universe_size() -> None:
    base = DemoMarket(seed=7, end=END).daily_bars(["AAPL", "XOM"], date(2026, 1, 1), END)
    for size in (30, 700):
        other = DemoMarket(seed=7, size=size, end=END)
        assert {"AAPL", "XOM"} <= set(other.universe()["symbol"])
        pd.testing.assert_frame_equal(base, other.daily_bars(["AAPL", "XOM"], date(2026, 1, 1), END))


def test_daily_bars_layout_and_ohlc_consistency(demo: DemoMarket, bars: pd.DataFrame) -> None:
    assert list(bars.columns) == BAR_COLUMNS
    assert bars["date"].dtype == "datetime64[ns]"
    assert bars.equals(bars.sort_values(["symbol", "date"], ignore_index=True))
    assert not bars.duplicated(["symbol", "date"]).any()
    assert bars["symbol"].nunique() == len(demo.universe())
    sessions = pd.to_datetime(calendar.sessions_between(date(2023, 1, 1), END))
    assert set(bars["date"]) == set(sessions)
    assert (bars[["open", "high", "low", "close", "volume"]] > 0).all().all()
    assert (bars["low"] <= bars[["open", "close"]].min(axis=1)).all()
    assert (bars["high"] >= bars[["open", "close"]].max(axis=1)).all()
    assert (bars["volume"] == bars["volume"].round()).all()
    # prices sit on the tick grid: cents at or above $1
    dollars = bars.loc[bars["close"] >= 1, "close"]
    assert np.allclose(dollars * 100, np.round(dollars * 100))


def test_range_is_clipped_to_epoch_and_end(demo: DemoMarket) -> None:
    b = demo.daily_bars(["AAPL"], date(2015, 1, 1), date(2030, 1, 1))
    assert b["date"].min() == pd.Timestamp(EPOCH) and b["date"].max() == pd.Timestamp(END)
    assert demo.daily_bars(["AAPL"], date(2015, 1, 1), date(2016, 1, 1)).empty


def test_overnight_gaps_and_realistic_levels(bars: pd.DataFrame) -> None:
    prev_close = bars.groupby("symbol")["close"].shift()
    gapped = (bars["open"] != prev_close)[prev_close.notna()]
    assert gapped.mean() > 0.9
    last = bars.groupby("symbol")["close"].last()
    assert last.between(0.05, 20_000).all()
    assert last.median() > 10


def test_stylised_facts(bars: pd.DataFrame) -> None:
    close = bars.pivot(index="date", columns="symbol", values="close")
    r = np.log(close).diff().dropna()
    assert np.median(kurtosis(r, fisher=False)) > 3  # fat tails
    abs_acf = [r[c].abs().autocorr(1) for c in r]
    assert np.median(abs_acf) > 0.05  # volatility clustering
    acf = np.array([r[c].autocorr(1) for c in r])
    assert (acf < -0.05).sum() >= 10 and (acf > 0.02).sum() >= 10  # mean-reverting and trending names
    vol = r.std() * np.sqrt(252)
    assert vol.between(0.08, 2.0).all()
    # sector co-movement: names in one sector correlate more than across sectors
    u = DemoMarket(seed=7, end=END).universe().set_index("symbol")["sector"]
    corr = r.corr().to_numpy()
    same = (u[r.columns].to_numpy()[:, None] == u[r.columns].to_numpy()[None, :]) & ~np.eye(len(u), dtype=bool)
    assert corr[same].mean() > corr[~same & ~np.eye(len(u), dtype=bool)].mean()
    # volume is persistent and rises with the size of the move
    vol_ = bars.pivot(index="date", columns="symbol", values="volume")
    lv = np.log(vol_).iloc[1:]
    assert np.median([lv[c].autocorr(1) for c in lv]) > 0.3
    assert np.median([np.corrcoef(lv[c], r[c].abs())[0, 1] for c in r]) > 0.1


def test_universe_spans_every_tier_and_many_sectors(demo: DemoMarket) -> None:
    u = demo.universe()
    assert {"symbol", "sector", "market_cap", "name", "theme"} <= set(u.columns)
    assert len(u) >= 120 and u["symbol"].is_unique
    tiers = u["market_cap"].map(Params().portfolio.market_cap.tier_of).value_counts()
    assert all(tiers.get(t, 0) >= 5 for t in ("mega", "large", "mid", "small", "micro")), tiers
    sectors = u["sector"].value_counts()
    assert (sectors >= 5).sum() >= 10, sectors
    assert {"AI/Semiconductors", "Quantum", "Biotech", "Space", "Uranium", "Cybersecurity", "Crypto",
            "Cloud"} <= set(u["theme"])


@pytest.mark.parametrize("size", [20, 207, 1200])
def test_demo_n_scales_the_universe(size: int) -> None:
    m = DemoMarket(seed=7, size=size, end=END)
    u = m.universe()
    assert len(u) == size and u["symbol"].is_unique
    assert u["sector"].nunique() >= (10 if size >= 20 else 1)
    if size > 207:
        assert u["symbol"].iloc[-1] == f"SYN{size - 207:04d}"
        tiers = set(u["market_cap"].map(Params().portfolio.market_cap.tier_of))
        assert tiers == {"mega", "large", "mid", "small", "micro"}
    b = m.daily_bars(list(u["symbol"][-5:]), date(2026, 1, 1), END)
    assert b["symbol"].nunique() == 5 and (b["close"] > 0).all()


@pytest.mark.parametrize("session, minutes", [(date(2026, 11, 19), 390), (date(2025, 11, 28), 210)])
def test_minute_bars_aggregate_exactly_to_the_daily_bar(demo: DemoMarket, session: date, minutes: int) -> None:
    m = demo.minute_bars(SOME, session)
    d = demo.daily_bars(SOME, session, session).set_index("symbol")
    assert list(m.columns) == MINUTE_COLUMNS
    assert m.groupby("symbol").size().eq(minutes).all()
    assert m["timestamp"].iloc[0] == pd.Timestamp(calendar.session_open(session))
    assert m["timestamp"].iloc[minutes - 1] == pd.Timestamp(calendar.session_close(session)) - pd.Timedelta("1min")
    agg = m.groupby("symbol").agg(open=("open", "first"), high=("high", "max"), low=("low", "min"),
                                  close=("close", "last"), volume=("volume", "sum"))
    for col in ["open", "high", "low", "close", "volume"]:
        assert (agg[col] == d.loc[agg.index, col]).all(), col  # exact, not approximate
    assert (m["low"] <= m[["open", "close"]].min(axis=1)).all()
    assert (m["high"] >= m[["open", "close"]].max(axis=1)).all()
    assert (m["volume"] >= 0).all()
    # U-shaped volume: the first and last half hours trade more than the middle of the day
    share = m.groupby(m.groupby("symbol").cumcount())["volume"].sum()
    assert share.iloc[:30].mean() > share.iloc[minutes // 2 - 30: minutes // 2 + 30].mean()
    assert share.iloc[-30:].mean() > share.iloc[minutes // 2 - 30: minutes // 2 + 30].mean()


_SESSIONS = calendar.sessions_between(date(2021, 1, 4), END)


@settings(max_examples=12, deadline=None)
@given(seed=st.integers(0, 2**32), day=st.sampled_from(_SESSIONS), size=st.sampled_from([None, 400]))
def test_minute_bars_aggregate_exactly_for_any_seed_and_session(seed: int, day: date, size: int | None) -> None:
    m = DemoMarket(seed=seed, size=size, end=END)
    symbols = list(m.universe()["symbol"].iloc[::7])  # real and generated names, sub-dollar ones too
    mins = m.minute_bars(symbols, day)
    agg = mins.groupby("symbol").agg(open=("open", "first"), high=("high", "max"), low=("low", "min"),
                                     close=("close", "last"), volume=("volume", "sum"))
    daily = m.daily_bars(symbols, day, day).set_index("symbol").loc[agg.index]
    assert (agg == daily[agg.columns]).all().all()
    assert (mins["low"] <= mins[["open", "close"]].min(axis=1)).all()
    assert (mins["high"] >= mins[["open", "close"]].max(axis=1)).all()


def test_minute_bars_do_not_depend_on_the_other_symbols(demo: DemoMarket) -> None:
    alone = demo.minute_bars(["AAPL"], date(2026, 11, 19))
    many = demo.minute_bars(SOME, date(2026, 11, 19))
    pd.testing.assert_frame_equal(alone, many[many["symbol"] == "AAPL"].reset_index(drop=True))


def test_minute_bars_for_many_symbols_are_vectorised() -> None:
    m = DemoMarket(seed=7, size=500, end=END)
    bars = m.minute_bars(list(m.universe()["symbol"]), date(2026, 11, 19))
    assert len(bars) == 500 * 390


def test_premarket_quotes_show_the_gap(demo: DemoMarket) -> None:
    day = date(2026, 11, 20)
    symbols = list(demo.universe()["symbol"])
    q = demo.latest_quotes(symbols, datetime(2026, 11, 20, 8, 30)).set_index("symbol")
    assert list(q.reset_index().columns) == QUOTE_COLUMNS and len(q) == len(symbols)
    d = demo.daily_bars(symbols, day, day).set_index("symbol")
    prev = demo.daily_bars(symbols, date(2026, 11, 19), date(2026, 11, 19)).set_index("symbol")
    mid = (q["bid"] + q["ask"]) / 2
    assert ((q["ask"] > q["bid"]) & (q["bid"] > 0)).all()
    assert (abs(mid / d["open"] - 1) < 0.02).all()  # near today's open, not yesterday's close
    gap = d["open"] / prev["close"] - 1
    big = gap.abs() > 0.015
    assert big.sum() >= 5
    assert (np.sign(mid / prev["close"] - 1)[big] == np.sign(gap)[big]).all()
    spread = ((q["ask"] - q["bid"]) / mid).groupby(demo.universe().set_index("symbol")["market_cap"].map(
        Params().portfolio.market_cap.tier_of)).median()
    assert spread["mega"] < spread["large"] < spread["mid"] < spread["small"] < spread["micro"]
    assert q["timestamp"].iloc[0] == pd.Timestamp("2026-11-20 08:30", tz="America/New_York")


def test_quotes_during_the_session_and_after(demo: DemoMarket) -> None:
    bars = demo.minute_bars(["AAPL"], date(2026, 11, 19)).set_index("timestamp")
    q = demo.latest_quotes(["AAPL"], datetime(2026, 11, 19, 11, 0, 30)).iloc[0]
    at = bars.loc[pd.Timestamp("2026-11-19 11:00", tz="America/New_York"), "open"]
    assert abs((q["bid"] + q["ask"]) / 2 / at - 1) < 0.002
    sat = demo.latest_quotes(["AAPL"], datetime(2026, 11, 21, 10, 0)).iloc[0]  # a Saturday
    close = demo.daily_bars(["AAPL"], END, END)["close"].iloc[0]
    assert abs((sat["bid"] + sat["ask"]) / 2 / close - 1) < 0.002


def test_quotes_and_minutes_on_a_fresh_market_extend_the_panel() -> None:
    ref = DemoMarket(seed=7, end=END)
    for ask in (lambda m: m.latest_quotes(["AAPL"], datetime(2026, 11, 20, 8, 30)),
                lambda m: m.latest_quotes(["AAPL"], datetime(2026, 11, 21, 10, 0)),
                lambda m: m.minute_bars(["AAPL"], END)):
        fresh = DemoMarket(seed=7, end=END)
        fresh.daily_bars(["AAPL"], date(2021, 1, 4), date(2021, 2, 1))  # panel only through Feb 2021
        pd.testing.assert_frame_equal(ask(fresh), ask(ref))


def test_bad_requests_are_clear(demo: DemoMarket) -> None:
    with pytest.raises(BadInputError, match="unknown symbol"):
        demo.daily_bars(["AAPL", "NOPE"], date(2026, 1, 1), END)
    with pytest.raises(BadInputError, match="not an NYSE session"):
        demo.minute_bars(["AAPL"], date(2026, 11, 21))
    with pytest.raises(BadInputError, match="positive"):
        DemoMarket(size=0)
