"""The scanner: no look-ahead (property test), planted patterns, exclusions, close-only real data,
hand-checked strategy/maxdiff backtests, quotes vs closes, executors, output files and the CLI."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import date, datetime, timedelta

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from wolfkit.calendar import NY
from wolfkit.config import Params, params_from_dict
from wolfkit.data.base import BAR_COLUMNS, QUOTE_COLUMNS
from wolfkit.data.files import FileProvider
from wolfkit.domain import Strategy
from wolfkit.errors import BadInputError
from wolfkit.exclusions import find_exclusions
from wolfkit.scan import (
    OPPORTUNITY_COLUMNS,
    composite_scores,
    levels,
    maxdiff_returns,
    percentile_rank,
    run_scan,
    trade_returns,
    window_panel,
    write_scan,
)
from wolfkit.signals import Panel


class FrameProvider:
    """A DataProvider over in-memory frames. It ignores the requested date range on purpose
    (returns every bar it has), so the scanner's own cut-off is what the tests exercise."""

    name = "frames"
    synthetic = True

    def __init__(self, bars: pd.DataFrame, universe: pd.DataFrame, quotes: pd.DataFrame | None = None,
                 has_ohlc: bool = True) -> None:
        self.bars, self.uni, self.quotes, self.has_ohlc = bars, universe, quotes, has_ohlc

    def universe(self) -> pd.DataFrame:
        return self.uni

    def daily_bars(self, symbols, start, end) -> pd.DataFrame:
        return self.bars[self.bars["symbol"].isin(symbols)]

    def minute_bars(self, symbols, session):
        raise NotImplementedError

    def latest_quotes(self, symbols, as_of) -> pd.DataFrame:
        return self.quotes if self.quotes is not None else pd.DataFrame(columns=QUOTE_COLUMNS)


def _bars_from_closes(closes: np.ndarray, symbols: list[str], dates: pd.DatetimeIndex, rng: np.random.Generator) -> pd.DataFrame:
    T, n = closes.shape
    o = np.vstack([closes[:1], closes[:-1]]) * np.exp(rng.normal(0, 0.003, (T, n)))
    h = np.maximum(o, closes) * np.exp(np.abs(rng.normal(0, 0.008, (T, n))))
    lo = np.minimum(o, closes) * np.exp(-np.abs(rng.normal(0, 0.008, (T, n))))
    v = rng.lognormal(13, 0.3, (T, n))
    return pd.DataFrame({
        "symbol": np.tile(symbols, T), "date": np.repeat(dates, n), "open": o.ravel(), "high": h.ravel(),
        "low": lo.ravel(), "close": closes.ravel(), "volume": v.ravel(),
    }).sort_values(["symbol", "date"], ignore_index=True)[BAR_COLUMNS]


def market(n: int = 60, T: int = 260, seed: int = 1, planted: bool = True):
    """n random-walk names (+ UP, CRASH, FLAT when planted); returns bars, universe, dates."""
    rng = np.random.default_rng(seed)
    dates = pd.bdate_range("2024-01-02", periods=T)
    closes = 50 * np.exp(np.cumsum(rng.normal(0, 0.02, (T, n)), axis=0))
    symbols = [f"R{i:03d}" for i in range(n)]
    if planted:
        up = 50 * np.exp(np.cumsum(rng.normal(0.006, 0.01, T)))
        crash = 50 * np.exp(np.cumsum(np.r_[rng.normal(0, 0.01, T - 25), rng.normal(-0.02, 0.01, 25)]))
        flat = 50 * np.exp(rng.normal(0, 0.001, T))
        closes = np.column_stack([closes, up, crash, flat])
        symbols += ["UP", "CRASH", "FLAT"]
    bars = _bars_from_closes(closes, symbols, dates, rng)
    uni = pd.DataFrame({"symbol": symbols, "sector": rng.choice(["Tech", "Energy", "Health"], len(symbols)),
                        "market_cap": rng.lognormal(23, 1.5, len(symbols))})
    return bars, uni, dates


PARAMS = Params()


def _next_day(dates: pd.DatetimeIndex) -> date:
    return (dates[-1] + pd.offsets.BDay(1)).date()


# ------------------------------------------------------------------------------ ranking


@pytest.mark.parametrize("seed", [1, 2, 3, 4, 5])
def test_planted_patterns_rank_where_they_should(seed):
    """Among 60 random walks: a steady uptrend in the top decile, a crash in the bottom decile, a
    flat name in the middle half."""
    bars, uni, dates = market(seed=seed)
    res = run_scan(PARAMS, _next_day(dates), FrameProvider(bars, uni))
    score = res.opportunities.set_index("symbol")["score"]
    assert score["UP"] >= 90, score["UP"]
    assert score["CRASH"] <= 10, score["CRASH"]
    assert 25 <= score["FLAT"] <= 75, score["FLAT"]
    opp = res.opportunities
    assert list(opp.columns[: len(OPPORTUNITY_COLUMNS)]) == OPPORTUNITY_COLUMNS
    assert [c for c in opp.columns if c.startswith("score_")] == [f"score_{k}" for k in PARAMS.scan.signals]
    assert opp["score"].is_monotonic_decreasing and opp["score"].between(0, 100).all()
    assert opp["score"].max() == 100 and opp["score"].min() == 0
    assert set(opp["strategy"]) <= {s.value for s in Strategy.directional()} and opp["strategy"].notna().all()
    assert set(opp["maxdiff_side"]) <= {"buy", "sell", "both"}
    assert (opp["pred_low"] < opp["pred_high"]).all()
    assert (opp["price_source"] == "close").all()
    assert res.unavailable == [] and res.excluded.empty
    assert res.data_through == dates[-1].date() and res.synthetic and res.provider == "frames"


def test_percentile_and_composite_scores():
    s = pd.Series([3.0, 1.0, np.nan, 2.0, 2.0])
    np.testing.assert_allclose(percentile_rank(s), [100, 0, np.nan, 50, 50])
    assert percentile_rank(pd.Series([7.0, np.nan])).tolist()[0] == 50
    raw = pd.DataFrame({"a": [1.0, 2.0, 3.0], "b": [3.0, 2.0, np.nan]}, index=["x", "y", "z"])
    sc = composite_scores(raw, {"a": 1.0, "b": 3.0})
    # components: a -> 0, 50, 100; b -> 100, 0, NaN; mix: x 75, y 12.5, z 100 (b missing, a alone)
    assert sc.loc["x", "score_b"] == 100 and np.isnan(sc.loc["z", "score_b"])
    assert sc["score"].tolist() == [50.0, 0.0, 100.0]


# ------------------------------------------------------------------------------ no look-ahead


def _fingerprint(res) -> tuple:
    return (res.opportunities, res.excluded, res.data_through, res.unavailable)


LA_BARS, LA_UNI, LA_DATES = market(n=25, T=200, seed=5)
LA_UNI = pd.concat([LA_UNI, pd.DataFrame({"symbol": ["LATE"], "sector": ["Tech"], "market_cap": [1e9]})], ignore_index=True)
LA_SESSION = LA_DATES[170].date()
LA_PARAMS = params_from_dict({"scan": {"lookback_days": 150, "min_history": 100, "chunk_size": 10}})
LA_BASE = _fingerprint(run_scan(LA_PARAMS, LA_SESSION, FrameProvider(LA_BARS, LA_UNI)))


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_no_lookahead_bars_on_or_after_the_session_do_not_matter(data):
    bars = LA_BARS.copy()
    future = np.flatnonzero(bars["date"] >= pd.Timestamp(LA_SESSION))
    ops = data.draw(st.lists(st.sampled_from(["change", "drop", "add_date", "add_late"]), min_size=1, max_size=4))
    for op in ops:
        future = np.flatnonzero(bars["date"] >= pd.Timestamp(LA_SESSION))
        if op == "change" and len(future):
            rows = data.draw(st.lists(st.sampled_from(list(future)), min_size=1, max_size=20))
            col = data.draw(st.sampled_from(["open", "high", "low", "close", "volume"]))
            val = data.draw(st.one_of(st.floats(-1e6, 1e6), st.just(np.nan), st.just(0.0)))
            bars.loc[rows, col] = val
        elif op == "drop" and len(future):
            rows = data.draw(st.lists(st.sampled_from(list(future)), min_size=1, max_size=len(future)))
            bars = bars.drop(index=rows).reset_index(drop=True)
        elif op == "add_date":
            d = pd.Timestamp(LA_SESSION) + timedelta(days=data.draw(st.integers(0, 400)))
            syms = data.draw(st.lists(st.sampled_from(list(LA_UNI["symbol"])), min_size=1, max_size=5, unique=True))
            px = data.draw(st.floats(0.01, 1e4))
            add = pd.DataFrame({"symbol": syms, "date": d, "open": px, "high": px, "low": px, "close": px, "volume": 1.0})
            bars = pd.concat([bars, add], ignore_index=True).drop_duplicates(["symbol", "date"], keep="last").reset_index(drop=True)
        elif op == "add_late":
            d = pd.bdate_range(LA_SESSION, periods=150)
            add = pd.DataFrame({"symbol": "LATE", "date": d, "open": 10.0, "high": 11.0, "low": 9.0, "close": 10.0, "volume": 1e5})
            bars = pd.concat([bars, add], ignore_index=True).drop_duplicates(["symbol", "date"], keep="last").reset_index(drop=True)
    got = _fingerprint(run_scan(LA_PARAMS, LA_SESSION, FrameProvider(bars, LA_UNI)))
    pd.testing.assert_frame_equal(got[0], LA_BASE[0])
    pd.testing.assert_frame_equal(got[1], LA_BASE[1])
    assert got[2:] == LA_BASE[2:]


def test_no_lookahead_base_case_is_meaningful():
    """The property above compares against a scan that really uses the bars just before the session."""
    assert LA_BASE[2] == LA_DATES[169].date()
    assert "LATE" in set(LA_BASE[1]["symbol"])
    changed = LA_BARS.copy()
    changed.loc[changed["date"] == LA_DATES[169], "close"] *= 1.5
    other = run_scan(LA_PARAMS, LA_SESSION, FrameProvider(changed, LA_UNI))
    assert not other.opportunities.equals(LA_BASE[0])


# ------------------------------------------------------------------------------ exclusions


def test_exclusions_are_listed_with_reasons():
    bars, uni, dates = market(n=30, planted=False, seed=2)
    T = len(dates)
    drop = (
        ((bars["symbol"] == "R000") & (bars["date"] < dates[T - 50]))  # too little history
        | ((bars["symbol"] == "R001") & (bars["date"] > dates[T - 12]))  # halted: last bar 11 sessions ago
        | ((bars["symbol"] == "R002") & bars["date"].between(dates[100], dates[107]))  # 8-session gap
        | ((bars["symbol"] == "R004") & bars["date"].between(dates[150], dates[153]))  # 4-session gap: fine
        | (bars["symbol"] == "R005")  # no bars at all
    )
    bars = bars[~drop].copy()
    bars.loc[(bars["symbol"] == "R003") & (bars["date"] == dates[200]), "close"] = -1.0
    uni.loc[uni["symbol"] == "R006", "sector"] = None
    res = run_scan(PARAMS, _next_day(dates), FrameProvider(bars, uni))
    why = res.excluded.set_index("symbol")["reason"]
    assert sorted(why.index) == ["R000", "R001", "R002", "R003", "R005", "R006"]
    assert "too little history: 50 bars < min_history 120" in why["R000"]
    assert why["R001"].startswith("halted: last bar") and "11 sessions" in why["R001"]
    assert f"gap: 8 sessions without bars (ending {dates[108].date()})" in why["R002"]
    assert f"non-positive price: on {dates[200].date()}" in why["R003"]
    assert why["R005"].startswith("no bars: none in the 252 sessions")
    assert why["R006"].startswith("no metadata: no sector")
    assert "R004" in set(res.opportunities["symbol"])
    assert set(res.opportunities["symbol"]).isdisjoint(why.index)
    assert len(res.opportunities) + len(why) == len(uni)


def test_find_exclusions_counts_sessions_in_the_window():
    bars, _, dates = market(n=3, T=40, planted=False)
    panel = window_panel(bars, dates[-1].date(), 30)  # 30 dates strictly before the last one
    assert panel.shape == (30, 3) and panel.dates[-1] == dates[-2]
    scan = params_from_dict({"scan": {"min_history": 30, "lookback_days": 30}}).scan
    assert find_exclusions(panel, ["R000", "R001", "R002"], scan).empty
    scan = params_from_dict({"scan": {"min_history": 31, "lookback_days": 40}}).scan
    assert len(find_exclusions(panel, ["R000", "R001", "R002", "ZZZ"], scan)) == 4


def test_everything_excluded_gives_an_empty_table_not_a_crash():
    bars, uni, dates = market(n=5, T=100, planted=False)
    res = run_scan(params_from_dict({"scan": {"min_history": 120}}), _next_day(dates), FrameProvider(bars, uni))
    assert res.opportunities.empty and list(res.opportunities.columns[:3]) == ["symbol", "sector", "market_cap"]
    assert len(res.excluded) == 5 and res.excluded["reason"].str.contains("too little history").all()


def test_bad_inputs_are_clear():
    bars, uni, dates = market(n=5, T=150, planted=False)
    with pytest.raises(BadInputError, match="no daily bars before"):
        run_scan(PARAMS, dates[0].date(), FrameProvider(bars, uni))
    with pytest.raises(BadInputError, match="min_history 300 > scan.lookback_days 252"):
        run_scan(params_from_dict({"scan": {"min_history": 300}}), _next_day(dates), FrameProvider(bars, uni))
    with pytest.raises(BadInputError, match=r"the bars end on .*, 11 weekdays before .*prices would be stale"):
        run_scan(PARAMS, (dates[-1] + pd.offsets.BDay(12)).date(), FrameProvider(bars, uni))
    with pytest.raises(BadInputError, match="unknown signal 'nope'"):
        run_scan(params_from_dict({"scan": {"signals": {"nope": 1}}}), _next_day(dates), FrameProvider(bars, uni))


# ------------------------------------------------------------------------------ backtests by hand


def _hand_panel(rows: list[tuple[float, float, float, float]], n_flat: int = 20) -> Panel:
    """n_flat sessions of O=100 H=101 L=99 C=100, then the given (O, H, L, C) sessions."""
    ohlc = [(100.0, 101.0, 99.0, 100.0)] * n_flat + rows
    dates = pd.bdate_range("2024-01-02", periods=len(ohlc))
    df = pd.DataFrame(ohlc, columns=["open", "high", "low", "close"])
    df["symbol"], df["date"], df["volume"] = "X", dates, 1e6
    return Panel.from_bars(df[BAR_COLUMNS])


def _day(row: tuple[float, float, float, float]) -> dict:
    """Every strategy's return on one session after 20 flat ones (ATR 2, predicted range 99..101)."""
    p = _hand_panel([row])
    lv = levels(p, PARAMS.scan.atr_period)
    r = {s.value: v[-1, 0] for s, v in trade_returns(p, lv, PARAMS.exits).items()}
    buy, sell = maxdiff_returns(p, lv)
    return r | {"buy": buy[-1, 0], "sell": sell[-1, 0]}


def test_directional_strategies_by_hand():
    # take profit at open + 2 ATR = 104, stop at open - 1 ATR = 98; highlow: 101 / 99
    up = _day((100, 105, 99.5, 101))
    assert up["takeprofit"] == pytest.approx(0.04) and up["highlow"] == pytest.approx(0.01)
    assert up["simple"] == pytest.approx(0.04)  # simple has a target too (open + 2 ATR), no stop
    assert _day((100, 101, 96, 98.5))["simple"] == pytest.approx(-0.015)
    down = _day((100, 100.5, 97, 98.5))
    assert down["takeprofit"] == pytest.approx(-0.02) and down["highlow"] == pytest.approx(-0.01)
    quiet = _day((100, 100.8, 99.2, 100.4))
    assert quiet["takeprofit"] == quiet["highlow"] == pytest.approx(0.004)
    # both levels touched: the extreme nearer the open comes first
    assert _day((100, 104.5, 97.5, 100))["takeprofit"] == pytest.approx(-0.02)  # low 2.5 away, high 4.5
    assert _day((100, 104.5, 95.0, 100))["takeprofit"] == pytest.approx(0.04)  # high 4.5 away, low 5
    # opened above the predicted high: highlow does not trade
    assert np.isnan(_day((102, 103, 101, 101.5))["highlow"])
    p = _hand_panel([])
    assert np.isnan(trade_returns(p, levels(p, PARAMS.scan.atr_period), PARAMS.exits)[Strategy.TAKEPROFIT][:7, 0]).all()  # ATR needs 7 bars (half the period)


def test_maxdiff_returns_by_hand():
    # low first (1.5 away vs 1.5: tie -> low first): bought at 99, sold at 101; short sold at 101 after the low -> close
    d = _day((100, 101.5, 98.5, 100.5))
    assert d["buy"] == pytest.approx(101 / 99 - 1) and d["sell"] == pytest.approx(1 - 100.5 / 101)
    # high first: short at 101 then covered at 99; the buy at 99 came after the high -> out at the close
    d = _day((100, 101.2, 98.0, 99.5))
    assert d["sell"] == pytest.approx(1 - 99 / 101) and d["buy"] == pytest.approx(99.5 / 99 - 1)
    # buy limit not touched -> 0; short at 101, low not reached -> covered at the close
    d = _day((100, 101.5, 99.5, 100.0))
    assert d["buy"] == 0.0 and d["sell"] == pytest.approx(1 - 100 / 101)
    # opens below the predicted low: bought at the open
    d = _day((98, 100.0, 97.5, 99.0))
    assert d["buy"] == pytest.approx(99 / 98 - 1) and d["sell"] == 0.0


# ------------------------------------------------------------------------------ prices and levels


def test_price_is_the_pre_market_quote_mid_else_the_last_close():
    bars, uni, dates = market(n=10, T=200, planted=False)
    session = _next_day(dates)
    open_ = datetime.combine(session, datetime.min.time(), tzinfo=NY).replace(hour=9, minute=0)
    quotes = pd.DataFrame({
        "symbol": ["R000", "R001", "R002", "R003", "R004"],
        "bid": [10.0, 20.0, 30.0, 0.0, 40.0], "ask": [10.2, 20.2, 30.2, 5.0, 40.2], "bid_size": 1, "ask_size": 1,
        # R002 stale (the day before), R003 no bid, R004 stamped after the open (not pre-market)
        "timestamp": [open_, open_, open_ - timedelta(days=1), open_, open_ + timedelta(hours=1)],
    })
    res = run_scan(PARAMS, session, FrameProvider(bars, uni, quotes))
    o = res.opportunities.set_index("symbol")
    assert o.loc["R000", "price"] == pytest.approx(10.1) and o.loc["R000", "price_source"] == "quote"
    assert o.loc["R001", "price"] == pytest.approx(20.1)
    last = bars[bars["date"] == dates[-1]].set_index("symbol")["close"]
    for s in ("R002", "R003", "R004"):
        assert o.loc[s, "price_source"] == "close" and o.loc[s, "price"] == pytest.approx(last[s])
    tp = o[o["strategy"] == "takeprofit"]
    hl = o[o["strategy"] == "highlow"]
    assert (tp["take_profit"] > tp["price"]).all() and (tp["stop_loss"] < tp["price"]).all()
    np.testing.assert_allclose(hl["take_profit"], hl["pred_high"])
    simple = o[o["strategy"] == "simple"]
    assert (simple["take_profit"] > simple["price"]).all() and simple["stop_loss"].isna().all()  # a target, no stop


# ------------------------------------------------------------------------------ close-only real data


def test_close_only_real_data_marks_high_low_parts_unavailable(shared_data, tmp_path):
    prices = shared_data / "daily_prices_20_us_stocks_1990_2018.csv"
    syms = pd.read_csv(prices, nrows=0).columns[1:]
    pd.DataFrame({"symbol": syms, "sector": "Unknown", "market_cap": 50e9}).to_csv(tmp_path / "u.csv", index=False)
    provider = FileProvider(prices, tmp_path / "u.csv")
    assert not provider.has_ohlc
    res = run_scan(PARAMS, date(2018, 4, 12), provider)
    opp = res.opportunities
    assert res.data_through == date(2018, 4, 11)
    assert len(opp) + len(res.excluded) == len(syms) and len(opp) >= 15
    for c in ("take_profit", "stop_loss", "pred_high", "pred_low", "maxdiff_avg_return", "maxdiff_side", "score_relative_volume"):
        assert c in res.unavailable and opp[c].isna().all()
    assert "strategy:takeprofit" in res.unavailable and (opp["strategy"] == "simple").all()
    assert opp[["score", "expected_return", "return_std", "price"]].notna().all().all()
    assert opp["score"].max() == 100
    # 2005: names not yet listed have no bars, GOOG (listed 2004-08-19) too little history
    early = run_scan(PARAMS, date(2005, 2, 1), provider)
    why = early.excluded.set_index("symbol")["reason"]
    assert sorted(why.index) == ["BABA", "FB", "GM", "GOOG", "MA", "UAA"]
    assert why["FB"].startswith("no bars") and why["GOOG"] == "too little history: 114 bars < min_history 120"
    assert len(early.opportunities) == 14


# ------------------------------------------------------------------------------ executors, files


def test_executor_paths_match_in_process():
    bars, uni, dates = market(n=45, T=200)
    params = params_from_dict({"scan": {"chunk_size": 10}})
    base = run_scan(params, _next_day(dates), FrameProvider(bars, uni))
    with ThreadPoolExecutor(3) as ex:
        threaded = run_scan(params, _next_day(dates), FrameProvider(bars, uni), executor=ex, progress=True)
    pd.testing.assert_frame_equal(base.opportunities, threaded.opportunities)
    pooled = run_scan(params_from_dict({"scan": {"chunk_size": 20, "workers": 2}}), _next_day(dates), FrameProvider(bars, uni))
    pd.testing.assert_frame_equal(base.opportunities, pooled.opportunities)
    single = run_scan(params_from_dict({"scan": {"chunk_size": 1000}}), _next_day(dates), FrameProvider(bars, uni))
    pd.testing.assert_frame_equal(base.opportunities, single.opportunities)


def test_write_scan_csv_and_parquet(tmp_path):
    bars, uni, dates = market(n=10, T=200)
    bars = bars[~((bars["symbol"] == "R000") & (bars["date"] < dates[150]))]
    res = run_scan(PARAMS, _next_day(dates), FrameProvider(bars, uni))
    paths = write_scan(res, tmp_path / "d" / "opps.csv")
    assert [p.name for p in paths] == ["opps.csv", "opps.excluded.csv"]
    back = pd.read_csv(paths[0])
    assert list(back["symbol"]) == list(res.opportunities["symbol"])
    assert back["synthetic_prices"].all()  # FrameProvider says its prices are synthetic
    assert list(pd.read_csv(paths[1])["symbol"]) == ["R000"]
    pq = write_scan(res, tmp_path / "opps.parquet")
    pd.testing.assert_frame_equal(pd.read_parquet(pq[0]), res.opportunities.assign(synthetic_prices=True))
    res.synthetic = False  # real data: no flag column
    assert "synthetic_prices" not in pd.read_csv(write_scan(res, tmp_path / "real.csv")[0]).columns
    with pytest.raises(BadInputError, match="use a .csv or .parquet"):
        write_scan(res, tmp_path / "opps.xlsx")


# ------------------------------------------------------------------------------ command line


def test_cli_scan_on_the_demo_market_writes_the_default_files(tmp_path, monkeypatch, capsys, root):
    from wolfkit.cli import main
    from wolfkit.data.demo import SYNTHETIC_NOTICE

    monkeypatch.chdir(tmp_path)
    assert main(["scan", "--params", str(root / "parameters/demo.yaml"), "--date", "2025-06-02"]) == 0
    text = capsys.readouterr().out
    assert "scan for 2025-06-02 from bars through 2025-05-30 (demo)" in text and SYNTHETIC_NOTICE in text
    opp = pd.read_csv(tmp_path / "outputs/2025-06-02/opportunities.csv")
    assert len(opp) > 100 and (opp["price_source"] == "quote").all()
    assert opp["score"].is_monotonic_decreasing
    assert opp["synthetic_prices"].all()  # the file itself says its prices are made up
    assert (tmp_path / "outputs/2025-06-02/opportunities.excluded.csv").exists()


def test_user_signal_from_the_parameters(tmp_path, monkeypatch):
    (tmp_path / "desk_signals.py").write_text(
        "import pandas as pd\n"
        "class Cheap:\n"
        "    name = 'cheap'\n"
        "    needs_ohlc = False\n"
        "    def compute(self, panel):\n"
        "        return pd.Series(-panel.close[-1], index=panel.symbols)\n"
        "class Wide(Cheap):\n"
        "    name = 'wide'\n"
        "    def compute(self, panel):\n"
        "        return pd.DataFrame(panel.close, columns=panel.symbols)\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    bars, uni, dates = market(n=20, T=200, planted=False)
    params = params_from_dict({"scan": {"signals": {"momentum": 1.0, "desk_signals:Cheap": 2.0}}})
    opp = run_scan(params, _next_day(dates), FrameProvider(bars, uni)).opportunities
    assert [c for c in opp.columns if c.startswith("score_")] == ["score_momentum", "score_cheap"]
    assert opp.loc[opp["price"].idxmin(), "score_cheap"] == 100
    with pytest.raises(BadInputError, match="signal 'wide': compute\\(\\) must return a pd.Series"):
        run_scan(params_from_dict({"scan": {"signals": {"desk_signals:Wide": 1.0}}}), _next_day(dates),
                 FrameProvider(bars, uni))
