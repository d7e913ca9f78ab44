"""The research backtester: the folder contract, fills inside the day's range, the daily rules, no
look-ahead, the quarantine, the independent cross-check, and the demo market end to end."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from wolfkit.backtest import run_backtest
from wolfkit.backtest.folder import BENCH_COLUMNS
from wolfkit.backtest.panel import load_market, scan_sessions
from wolfkit.config import params_from_dict
from wolfkit.data.files import FileProvider
from wolfkit.errors import BadInputError
from wolfkit.scan import run_scan

ROOT = Path(__file__).resolve().parents[1]
REAL = ROOT.parent / "shared" / "data"
REAL_BARS, REAL_UNIVERSE = REAL / "sp500_ohlcv_2013_2016.csv.gz", REAL / "sp500_universe_2018.csv"
BANDS = {t: [0.0, 1.0] for t in ("mega", "large", "mid", "small", "micro")}
SMALL = {  # a small universe: a pack of 5 names, short lookback so the window starts early
    "scan": {"lookback_days": 60, "min_history": 40},
    "portfolio": {"min_score": 50, "target_positions": 5, "min_positions": 4, "max_positions": 6,
                  "position_min": 0.05, "position_max": 0.25, "sector_cap": 0.5,
                  "tiers": [{"min_score": 80, "weight_min": 0.18, "weight_max": 0.25},
                            {"min_score": 50, "weight_min": 0.10, "weight_max": 0.17}],
                  "market_cap": {"bands": BANDS}},
    "backtest": {"slippage_bps": 0.0},
}
START, END, CUT = date(2013, 6, 3), date(2013, 7, 12), date(2013, 6, 21)


def _params(bars: Path, universe: Path, **over):
    raw = {"data": {"source": "csv", "bars_path": str(bars), "universe_path": str(universe)}, **SMALL}
    for k, v in over.items():
        raw[k] = {**raw.get(k, {}), **v}
    return params_from_dict(raw)


@pytest.fixture(scope="module")
def market_files(tmp_path_factory):
    """30 symbols of real bars (2013) as a plain CSV, or the demo market's bars when the real file is absent."""
    d = tmp_path_factory.mktemp("bt")
    if REAL_BARS.is_file():
        bars = pd.read_csv(REAL_BARS, parse_dates=["date"])
        uni = pd.read_csv(REAL_UNIVERSE)
        keep = sorted(bars.loc[bars["date"] == "2013-02-08", "symbol"].unique())[::16][:30]
        bars = bars[bars["symbol"].isin(keep) & (bars["date"] <= "2013-12-31")].dropna()
        bars = bars[(bars["close"] <= bars["high"]) & (bars["close"] >= bars["low"])]
        uni = uni[uni["Symbol"].isin(keep)]
    else:
        from wolfkit.data.demo import DemoMarket

        m = DemoMarket(size=30)
        uni = m.universe()
        bars = m.daily_bars(list(uni["symbol"]), date(2021, 1, 4), date(2021, 12, 31))
    bars_path, uni_path = d / "bars.csv", d / "universe.csv"
    bars.assign(date=pd.to_datetime(bars["date"]).dt.date).to_csv(bars_path, index=False)
    uni.to_csv(uni_path, index=False)
    return bars_path, uni_path, bars.assign(date=pd.to_datetime(bars["date"]))


def _window():
    return (START, END, CUT) if REAL_BARS.is_file() else (date(2021, 6, 1), date(2021, 7, 12), date(2021, 6, 22))


@pytest.fixture(scope="module")
def run(market_files, tmp_path_factory):
    bars, uni, _ = market_files
    start, end, _ = _window()
    return run_backtest(_params(bars, uni), start, end, tmp_path_factory.mktemp("run") / "out", progress=False)


def test_folder_contract(run) -> None:
    files = {p.name for p in run.out_dir.iterdir()}
    assert {"equity.csv", "fills.csv", "scores.parquet", "data_quality.csv", "summary.json", "report.html"} <= files
    eq = pd.read_csv(run.out_dir / "equity.csv", parse_dates=["date"])
    assert list(eq.columns)[:8] == ["date", "equity", "cash", "gross_directional", "gross_maxdiff",
                                    "pnl_directional", "pnl_maxdiff", "fees"]
    assert set(BENCH_COLUMNS) <= set(eq.columns)
    assert (eq[BENCH_COLUMNS].iloc[0] > 0).all() and eq["date"].is_monotonic_increasing
    start = run.summary["equity_start"]
    np.testing.assert_allclose(eq["equity"], start + (eq["pnl_directional"] + eq["pnl_maxdiff"] - eq["fees"]).cumsum())
    fills = pd.read_csv(run.out_dir / "fills.csv")
    assert list(fills.columns)[:7] == ["date", "symbol", "side", "qty", "price", "layer", "reason"]
    assert set(fills["reason"]) <= {"open", "take_profit", "stop", "close", "maxdiff_entry", "maxdiff_exit"}
    assert set(fills["side"]) <= {"buy", "sell"} and (fills["qty"] > 0).all() and len(fills)
    sc = pd.read_parquet(run.out_dir / "scores.parquet")
    for c in ("date", "symbol", "score", "expected_return", "tier", "sector", "picked", "weight", "open_to_close"):
        assert c in sc.columns
    assert any(c.startswith("score_") for c in sc.columns)
    assert sc["picked"].dtype == bool and sc["picked"].any()
    assert set(sc["tier"]) <= {"80+", "50–79", "below"}
    s = json.loads((run.out_dir / "summary.json").read_text())
    assert s["schema"] == "wolfkit.backtest/1" and s["window"]["sessions"] == len(eq)
    assert {"source", "provider", "synthetic", "quarantined_rows", "quarantined_jumps"} <= set(s["data"])
    assert isinstance(s["warnings"], list) and s["params_digest"]


def test_fills_lie_inside_each_days_range(run, market_files) -> None:
    _, _, bars = market_files
    f = run.fills.merge(bars, on=["date", "symbol"], how="left", validate="many_to_one")
    assert f["high"].notna().all()
    assert ((f["price"] >= f["low"] - 1e-9) & (f["price"] <= f["high"] + 1e-9)).all()
    opens = f[f["reason"] == "open"]
    np.testing.assert_allclose(opens["price"], opens["open"])  # slippage 0 in this run


def test_rules_hold_every_day(run) -> None:
    p = _params(Path("x"), Path("y"))
    sc, eq = run.scores, run.equity
    picked = sc[sc["picked"]]
    assert (picked.groupby("date")["weight"].sum() <= 1 - p.portfolio.cash_reserve + 1e-9).all()
    assert (picked.groupby(["date", "sector"])["weight"].sum() <= p.portfolio.sector_cap + 1e-9).all()
    n = picked.groupby("date").size()
    assert n.between(p.portfolio.min_positions, p.portfolio.max_positions).all()
    morning = eq["equity"].shift(1).fillna(run.summary["equity_start"])  # sizing equity of each session
    gd, gm = eq["gross_directional"] / morning, eq["gross_maxdiff"] / morning
    assert (gd <= 1 - p.portfolio.cash_reserve + 1e-9).all() and (gd > 0.5).any()
    lev = p.leverage
    assert (gd + gm <= lev.total_max + 1e-9).all()
    assert (gm <= lev.maxdiff_time_shares[0].share * lev.total_max + 1e-9).all()
    entries = run.fills[run.fills["reason"].isin(["open", "maxdiff_entry"])]
    assert (entries.groupby(["date", "symbol"]).size() <= lev.max_positions_per_symbol).all()


def test_scan_of_a_session_is_the_live_scan(market_files) -> None:
    bars, uni, _ = market_files
    p = _params(bars, uni)
    provider = FileProvider(bars, uni)
    start, _, cut = _window()
    market = load_market(provider, p, start, cut)
    scans = [m.scan for m in scan_sessions(market, p)]
    for k in (0, len(scans) - 1):
        live = run_scan(p, market.dates()[k], provider=provider).opportunities
        pd.testing.assert_frame_equal(scans[k], live)
    pooled = list(scan_sessions(market, _params(bars, uni, scan={"workers": 1})))  # blocks in a worker process
    assert len(pooled) == len(scans)
    for a, b in zip(scans, pooled):
        pd.testing.assert_frame_equal(a, b.scan)
        assert b.targets is not None  # planned in the worker too


def test_the_days_orders_are_the_order_plans(market_files) -> None:
    from wolfkit.backtest.engine import build_day
    from wolfkit.orders import build_order_plan

    bars, uni, _ = market_files
    p = _params(bars, uni)
    start, _, _ = _window()
    market = load_market(FileProvider(bars, uni), p, start, start)
    morning = next(scan_sessions(market, p))
    opps = morning.scan
    orders, _ = build_day(morning.opps, morning.targets, p, 100_000.0, 200_000.0)
    plan = build_order_plan(opps, p, 100_000.0, 200_000.0, start).plan
    ours = [(o.symbol, str(o.layer), "buy" if o.buy else "sell", o.qty, o.limit, o.take_profit, o.stop_loss)
            for o in orders]
    theirs = [(o.symbol, str(o.layer), str(o.side), o.qty, o.limit_price, o.take_profit, o.stop_loss)
              for o in sorted(plan.orders, key=lambda o: o.priority)]
    assert ours == theirs and any(o[1] == "maxdiff" for o in ours)


def test_no_look_ahead_when_the_data_ends_after_the_cut(market_files, tmp_path) -> None:
    bars_path, uni, bars = market_files
    start, end, cut = _window()
    short = tmp_path / "cut.csv"
    bars[bars["date"] <= pd.Timestamp(cut)].assign(date=lambda b: b["date"].dt.date).to_csv(short, index=False)
    full = run_backtest(_params(bars_path, uni), start, end, tmp_path / "full", progress=False)
    part = run_backtest(_params(short, uni), start, cut, tmp_path / "part", progress=False)
    upto = pd.Timestamp(cut)
    pd.testing.assert_frame_equal(full.equity[full.equity["date"] <= upto].drop(columns=BENCH_COLUMNS),
                                  part.equity.drop(columns=BENCH_COLUMNS))
    pd.testing.assert_frame_equal(full.fills[full.fills["date"] <= upto].reset_index(drop=True), part.fills)
    pd.testing.assert_frame_equal(full.scores[full.scores["date"] <= upto].reset_index(drop=True), part.scores)


def test_a_quarantined_jump_is_neither_a_signal_nor_profit(market_files, tmp_path) -> None:
    _, uni, bars = market_files
    start, end, _ = _window()
    sessions = sorted(bars["date"].unique())
    jump = sessions[sessions.index(pd.Timestamp(start)) + 10]
    sym = bars["symbol"].iloc[0]
    spun = bars.copy()
    after = (spun["symbol"] == sym) & (spun["date"] >= jump)
    spun.loc[after, ["open", "high", "low", "close"]] *= 0.5  # a spin-off: half the price, for good
    path = tmp_path / "spun.csv"
    spun.assign(date=spun["date"].dt.date).to_csv(path, index=False)
    r = run_backtest(_params(path, uni), start, end, tmp_path / "out", progress=False)
    assert r.summary["data"]["quarantined_jumps"] >= 1
    assert any(sym in w and "jump" in w for w in r.summary["warnings"])
    lookback = 60
    blocked = [d for d in sessions if jump < d <= sessions[min(sessions.index(jump) + lookback, len(sessions) - 1)]]
    sc = r.scores[(r.scores["symbol"] == sym) & r.scores["date"].isin(blocked)]
    assert not sc["picked"].any()
    day = r.fills[(r.fills["symbol"] == sym) & (r.fills["date"] == jump)]
    if len(day):  # traded on the jump day: a flat bar, nothing booked
        assert day["price"].nunique() == 1
    dq = pd.read_csv(r.out_dir / "data_quality.csv")
    assert ((dq["symbol"] == sym) & (pd.to_datetime(dq["date"]) == jump)).any()


@pytest.mark.slow  # vectorbt's numba compile on a cold cache
def test_equity_matches_vectorbt_on_the_simple_configuration(market_files) -> None:
    pytest.importorskip("vectorbt", reason="the cross-check needs vectorbt (pip install -e '.[dev]')")
    from wolfkit.backtest import crosscheck

    bars, uni, _ = market_files
    p = _params(bars, uni)
    start, _, cut = _window()
    market = load_market(FileProvider(bars, uni), p, start, cut)
    r = crosscheck.run(market, [m.scan for m in scan_sessions(market, p)], p, 100_000.0, n=5)
    assert r.not_top_n == []
    assert r.max_abs_diff < 0.01
    assert abs(r.engine.iloc[-1] - 100_000.0) > 1  # it traded


def test_infeasible_days_are_flat_with_the_reason(market_files, tmp_path) -> None:
    bars, uni, _ = market_files
    start, _, _ = _window()
    p = _params(bars, uni, portfolio={"sector_cap": 0.05})
    r = run_backtest(p, start, start, tmp_path / "out", progress=False)
    assert (r.equity["equity"] == 100_000.0).all() and r.fills.empty
    assert any("infeasible" in w for w in r.summary["warnings"])


def test_a_cash_account_keeps_its_total_bucket_when_the_open_gaps_up(tmp_path) -> None:
    """With 1x buying power the directional fills at the open can cost more than planned (a gap up,
    slippage); the maxdiff entries then get what is left of the total bucket, as the broker's buying-power
    check would leave them, instead of breaking the bucket (the engine raises on any breach)."""
    from wolfkit.config import load_params

    start, end = date(2026, 11, 19), date(2026, 11, 30)  # the demo market opens 2026-11-24 above the plan
    p = load_params(ROOT / "parameters/demo.yaml").with_changes(  # risk rules off, the raw objective: the pack
        {"leverage": {"buying_power_multiple": 1.0},               # this scenario was built on (it gaps up here)
         "portfolio": {"sector_cap": 0.25, "objective": "raw"},
         "risk": {"max_adv_share": None, "max_position_risk": None, "min_price": 0, "min_adv_usd": 0}})
    r = run_backtest(p, start, end, tmp_path / "out", progress=False, report=False)
    morning = r.equity["equity"].shift(1).fillna(r.summary["equity_start"])
    gross = (r.equity["gross_directional"] + r.equity["gross_maxdiff"]) / morning
    assert (gross <= 1.0 + 1e-9).all() and (r.equity["gross_maxdiff"] > 0).any()
    assert not (tmp_path / "out" / "report.html").exists()


def test_an_existing_folder_is_never_overwritten(market_files, tmp_path) -> None:
    bars, uni, _ = market_files
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "keep.txt").write_text("x")
    start, _, _ = _window()
    with pytest.raises(BadInputError, match="never overwrites"):
        run_backtest(_params(bars, uni), start, start, tmp_path / "out", progress=False)


@pytest.mark.slow  # three fresh processes
def test_demo_market_end_to_end_through_the_cli(tmp_path) -> None:
    yaml = tmp_path / "demo.yaml"
    yaml.write_text(f"extends: {ROOT / 'parameters' / 'default.yaml'}\ndata:\n  source: demo:60\n"
                    "portfolio:\n  market_cap:\n    bands: {mega: [0, 1], large: [0, 1], mid: [0, 1], small: [0, 1], micro: [0, 1]}\n")
    out = tmp_path / "bt"
    cmd = [sys.executable, "-m", "wolfkit.cli", "backtest", "--params", str(yaml), "--start", "2022-01-03",
           "--end", "2022-01-31", "--out", str(out)]
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "synthetic" in done.stdout and "final equity" in done.stdout
    s = json.loads((out / "summary.json").read_text())
    assert s["data"]["synthetic"] and s["fill_rules"] == "minute"
    assert any("synthetic" in w.lower() for w in s["warnings"])
    again = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert again.returncode == 2 and "never overwrites" in again.stderr
    bad = subprocess.run(cmd[:-4] + ["--end", "2022-13-01", "--out", str(tmp_path / "x")], capture_output=True,
                         text=True, cwd=ROOT, timeout=300)
    assert bad.returncode == 2 and "YYYY-MM-DD" in bad.stderr


def test_cli_prints_warnings_as_clean_lines(market_files, tmp_path) -> None:
    """The data-quality notice reaches the console as one `warning: …` line, not Python's source echo
    (a fresh process: pytest would capture the warning itself)."""
    _, uni, bars = market_files
    dirty = bars.assign(date=bars["date"].dt.date).astype({"open": object})
    dirty.loc[dirty.index[5], "open"] = ""  # one empty price cell: quarantined and said
    path = tmp_path / "dirty.csv"
    dirty.to_csv(path, index=False)
    start, _, _ = _window()
    yaml = tmp_path / "p.yaml"
    yaml.write_text(json.dumps(_params(path, uni, data={"bad_rows": "quarantine"}).model_dump(mode="json")))
    cmd = [sys.executable, "-m", "wolfkit.cli", "backtest", "--params", str(yaml), "--start", start.isoformat(),
           "--end", start.isoformat(), "--out", str(tmp_path / "out")]
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert done.returncode == 0, done.stderr
    text = done.stdout + done.stderr
    lines = [ln for ln in text.splitlines() if "bad row" in ln and "quarantined" in ln]
    assert lines and all(ln.startswith("warning: ") for ln in lines)
    assert "UserWarning" not in text and "registry.py" not in text
