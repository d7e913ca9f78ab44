"""Performance statistics: the library's numbers against a hand-computed curve, turnover and hit rate
on hand-built fills, the information coefficient on constructed cases (IC = 1, shuffled ≈ 0, a sign flip
between the halves), tier returns with session-clustered intervals, and a JSON-safe summary."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from backtest_folder import tables
from scipy import stats

from wolfkit import performance as perf
from wolfkit.config import Params
from wolfkit.errors import BadInputError

DATES = pd.bdate_range("2016-01-04", periods=5)


def _curve(values) -> pd.Series:
    return pd.Series(values, index=DATES[: len(values)], dtype=float)


def test_curve_stats_match_hand_computed_example():
    # returns +10%, −10%, +10%, +10%: mean 0.05, sample sd 0.1, downside deviation √(0.01/4) = 0.05
    c = _curve([100, 110, 99, 108.9, 119.79])
    s = perf.curve_stats(c)
    assert s["sharpe"] == pytest.approx(0.05 / 0.1 * math.sqrt(252))
    assert s["volatility"] == pytest.approx(0.1 * math.sqrt(252))
    assert s["sortino"] == pytest.approx(0.05 * 252 / (0.05 * math.sqrt(252)))
    assert s["max_drawdown"] == pytest.approx(99 / 110 - 1)
    assert s["cagr"] == pytest.approx(1.1979 ** (252 / 4) - 1)
    assert s["total_return"] == pytest.approx(0.1979)
    assert (s["max_drawdown_peak"], s["max_drawdown_trough"], s["max_drawdown_recovery"]) == (DATES[1], DATES[2], DATES[4])


def test_drawdown_never_recovered_and_flat_curve_gives_none_not_nan():
    s = perf.curve_stats(_curve([100, 120, 90, 95]))
    assert s["max_drawdown"] == pytest.approx(-0.25) and s["max_drawdown_recovery"] is None
    flat = perf.curve_stats(_curve([100, 100, 100, 100]))
    assert flat["sharpe"] is None and flat["max_drawdown_peak"] is None


def test_monthly_returns_compound_within_the_month():
    idx = pd.to_datetime(["2016-01-29", "2016-02-01", "2016-02-02", "2016-03-01"])
    m = perf.monthly_returns(pd.Series([100.0, 110.0, 121.0, 108.9], index=idx))
    assert m.loc[2016, 2] == pytest.approx(0.21) and m.loc[2016, 3] == pytest.approx(-0.1)
    assert list(m.columns) == list(range(1, 13)) and np.isnan(m.loc[2016, 1])


def _fills(rows):
    return pd.DataFrame(rows, columns=["date", "symbol", "side", "qty", "price", "layer", "reason"])


def test_round_trips_and_hit_rate_on_hand_built_fills():
    d1, d2, d3 = DATES[:3]
    f = _fills([
        (d1, "A", "buy", 10, 100.0, "directional", "open"),  # long win: +10 × 5
        (d1, "A", "sell", 10, 105.0, "directional", "take_profit"),
        (d1, "B", "buy", 10, 50.0, "directional", "open"),  # scale in at 50 and 54 → average 52
        (d2, "B", "buy", 10, 54.0, "directional", "open"),
        (d2, "B", "sell", 20, 51.0, "directional", "stop"),  # long loss: 20 × −1
        (d1, "C", "sell", 5, 20.0, "maxdiff", "maxdiff_entry"),  # short covered lower: win 5 × 2
        (d1, "C", "buy", 5, 18.0, "maxdiff", "maxdiff_exit"),
        (d3, "D", "buy", 7, 10.0, "directional", "open"),  # still open: not a closed trip
    ])
    trips = perf.round_trips(f)
    assert dict(zip(trips["symbol"], trips["pnl"])) == pytest.approx({"A": 50.0, "B": -20.0, "C": 10.0})
    assert dict(zip(trips["symbol"], trips["entry_value"])) == pytest.approx({"A": 1000.0, "B": 1040.0, "C": 100.0})
    assert trips.set_index("symbol").loc["B", "opened"] == d1 and trips.set_index("symbol").loc["B", "closed"] == d2
    rate, n = perf.hit_rate(f)
    assert (rate, n) == (pytest.approx(2 / 3), 3)


def test_round_trip_that_flips_through_flat_opens_a_new_one():
    f = _fills([(DATES[0], "A", "buy", 10, 10.0, "directional", "open"),
                (DATES[0], "A", "sell", 15, 12.0, "directional", "close"),  # +20 closes, 5 short opened at 12
                (DATES[1], "A", "buy", 5, 13.0, "directional", "close")])  # −5
    assert perf.round_trips(f)["pnl"].tolist() == pytest.approx([20.0, -5.0])
    assert perf.round_trips(f)["entry_value"].tolist() == pytest.approx([100.0, 60.0])


def test_turnover_is_traded_notional_over_average_equity_per_year():
    # two sessions, equity 100 then 100 then 100; 100 bought and sold each session → 2 × 100 / 100 × 252 / 2
    eq = _curve([100, 100, 100])
    f = _fills([(DATES[1], "A", "buy", 1, 100.0, "directional", "open"),
                (DATES[1], "A", "sell", 1, 100.0, "directional", "close"),
                (DATES[2], "A", "buy", 2, 50.0, "directional", "open"),
                (DATES[2], "A", "sell", 2, 50.0, "directional", "close")])
    assert perf.turnover(f, eq) == pytest.approx(504.0)


def _scores(sessions: int, names: int, edge, seed: int = 1) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for k, d in enumerate(pd.bdate_range("2016-01-04", periods=sessions)):
        ret = rng.normal(0, 0.01, names)
        score = edge(k, ret, rng)
        rows += [{"date": d, "symbol": f"S{i}", "score": score[i], "open_to_close": ret[i]} for i in range(names)]
    return pd.DataFrame(rows)


def test_ic_is_one_when_the_score_is_a_monotone_function_of_the_return():
    sc = _scores(20, 12, lambda k, r, rng: 50 + 1000 * r**3)
    ic = perf.information_coefficient(sc)
    assert len(ic) == 20 and np.allclose(ic["ic"], 1.0) and (ic["n"] == 12).all()
    assert perf.ic_stats(ic["ic"])["ic_mean"] == pytest.approx(1.0)


def test_ic_equals_scipy_spearman_per_session_with_ties():
    sc = _scores(15, 9, lambda k, r, rng: np.round(50 + 500 * r + rng.normal(0, 5, len(r)), -1))  # many ties
    ic = perf.information_coefficient(sc)
    expect = [stats.spearmanr(g["score"], g["open_to_close"]).statistic for _, g in sc.groupby("date")]
    assert ic["ic"].tolist() == pytest.approx(expect) and sc["score"].duplicated().any()


def test_ic_is_near_zero_when_the_score_is_shuffled():
    sc = _scores(200, 30, lambda k, r, rng: rng.permutation(50 + 1000 * r))
    s = perf.ic_stats(perf.information_coefficient(sc)["ic"])
    assert abs(s["ic_mean"]) < 0.03 and abs(s["ic_t"]) < 3 and s["ic_sessions"] == 200


def test_ic_t_is_the_one_sample_t_statistic_and_small_sessions_are_skipped():
    sc = _scores(30, 8, lambda k, r, rng: 50 + 1000 * r + rng.normal(0, 10, len(r)))
    few = sc[sc["date"] == sc["date"].iloc[0]].head(4)  # a session with 4 names: skipped
    sc = pd.concat([sc[sc["date"] != sc["date"].iloc[0]], few])
    ic = perf.information_coefficient(sc)
    assert len(ic) == 29 and sc["date"].iloc[-1] not in set(ic["date"])
    expect = ic["ic"].mean() / (ic["ic"].std(ddof=1) / math.sqrt(len(ic)))
    assert perf.ic_stats(ic["ic"])["ic_t"] == pytest.approx(expect)


def test_ic_by_half_shows_an_edge_that_flips():
    sc = _scores(40, 10, lambda k, r, rng: 50 + (1000 if k < 20 else -1000) * r)
    halves = perf.ic_by_half(perf.information_coefficient(sc))
    assert [h["half"] for h in halves] == ["first", "second"]
    assert halves[0]["ic_mean"] == pytest.approx(1.0) and halves[1]["ic_mean"] == pytest.approx(-1.0)
    assert halves[0]["ic_sessions"] == halves[1]["ic_sessions"] == 20 and halves[0]["end"] < halves[1]["start"]


def test_mean_ci_with_one_name_per_session_is_the_ordinary_t_interval():
    x = pd.Series([0.01, -0.02, 0.03, 0.005, 0.0, 0.012])
    r = perf.mean_ci(x, pd.Series(range(6)))
    lo, hi = stats.t.interval(0.95, 5, loc=x.mean(), scale=stats.sem(x))
    assert (r["ci_low"], r["ci_high"]) == (pytest.approx(lo), pytest.approx(hi)) and r["n"] == 6


def test_mean_ci_widens_when_names_share_the_session_move():
    rng = np.random.default_rng(3)
    days = np.repeat(np.arange(20), 10)
    x = pd.Series(np.repeat(rng.normal(0, 0.01, 20), 10) + rng.normal(0, 0.001, 200))
    clustered = perf.mean_ci(x, pd.Series(days))
    naive = stats.t.interval(0.95, 199, loc=x.mean(), scale=stats.sem(x))
    assert clustered["ci_high"] - clustered["ci_low"] > 2.5 * (naive[1] - naive[0])
    assert clustered["sessions"] == 20 and perf.mean_ci(x.head(3), pd.Series([0, 0, 0]))["ci_low"] is None


def test_tier_returns_list_every_tier_in_order_all_and_picked():
    sc = pd.DataFrame({
        "date": np.repeat(DATES[:2], 4), "symbol": list("ABCD") * 2,
        "score": [95, 80, 72, 50] * 2, "tier": ["90+", "75–89", "70–74", "below"] * 2,
        "picked": [True, True, False, False] * 2, "open_to_close": [0.02, 0.01, 0.0, -0.01, 0.04, 0.01, 0.0, -0.03],
    })
    out = perf.tier_returns(sc, Params())
    assert [r["tier"] for r in out["all"]] == ["90+", "75–89", "70–74", "below"]
    top = out["all"][0]
    assert top["n"] == 2 and top["mean"] == pytest.approx(0.03) and top["ci_low"] < 0.03 < top["ci_high"]
    assert [r["n"] for r in out["picked"]] == [2, 2, 0, 0] and out["picked"][2]["mean"] is None


def test_summarize_is_json_safe_and_consistent_with_its_parts():
    t = tables(sessions=40, names=15)
    s = perf.summarize(t["equity"], t["fills"], t["scores"], Params())
    json.dumps(s, allow_nan=False)
    curve = t["equity"].set_index(pd.to_datetime(t["equity"]["date"]))["equity"]
    assert s["sharpe"] == pytest.approx(perf.curve_stats(curve)["sharpe"])
    assert s["stats_library"].startswith("empyrical-reloaded ")
    assert len(s["ic"]) == s["ic_sessions"] == 40 and s["ic"][0]["date"] == str(t["equity"]["date"].iloc[1])
    assert s["fees"] == pytest.approx(t["equity"]["fees"].sum()) and 0 < s["hit_rate"] < 1
    assert s["exposure"]["total"] == pytest.approx(s["exposure"]["directional"] + s["exposure"]["maxdiff"])
    assert set(s["benchmarks"]) == {"buy_hold", "open_close"} and s["benchmarks"]["buy_hold"]["sharpe"] is not None
    assert sum(r["n"] for r in s["tier_returns"]["all"]) == 40 * 15
    assert sum(r["n"] for r in s["tier_returns"]["picked"]) == 40 * 12


def test_summarize_names_the_missing_column():
    t = tables(sessions=5, names=15)
    with pytest.raises(BadInputError, match=r"scores.parquet: missing column\(s\) \['open_to_close'\]"):
        perf.summarize(t["equity"], t["fills"], t["scores"].drop(columns="open_to_close"), Params())


def test_summarize_a_run_without_trades_or_scores_gives_none_not_errors():
    t = tables(sessions=3, names=15)
    s = perf.summarize(t["equity"].head(1), t["fills"].head(0), t["scores"].head(0), Params())
    json.dumps(s, allow_nan=False)
    assert s["sharpe"] is None and s["cagr"] is None and s["turnover"] is None and s["hit_rate"] is None
    assert s["round_trips"] == 0 and s["ic_mean"] is None and s["ic"] == [] and s["fees_pct"] is None
    assert [h["ic_sessions"] for h in s["ic_by_half"]] == [0, 0]
    assert all(r["n"] == 0 and r["mean"] is None for r in s["tier_returns"]["all"])
