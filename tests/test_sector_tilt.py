"""The sector tilt (`portfolio.sector_tilt`): only a sector with a confidently negative record over the
trailing window is lowered, only fills before the session count (truncation), the builder holds the
lowered cap, off by default changes nothing, and `learn --window` gives the trailing sector table."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from wolfkit.backtest import run_backtest
from wolfkit.config import load_params, params_from_dict
from wolfkit.data.demo import DemoMarket
from wolfkit.learn import from_backtest
from wolfkit.sector_tilt import directional_trades, sector_tilt

SECTORS = {"L1": "Energy", "L2": "Energy", "N1": "Utilities", "N2": "Utilities", "W1": "Materials", "F1": "Health Care"}
SESSIONS = [d.date() for d in pd.bdate_range("2024-01-02", periods=30)]


def _fills(seed: int = 1) -> pd.DataFrame:
    """Each session, one directional round trip per symbol: the Energy names (L*) lose about 1% every day,
    the Utilities names (N*) win or lose at random, Materials (W1) loses hugely on a few days only and the
    Health Care name (F1) loses steadily but trades on 3 sessions only."""
    rng = np.random.default_rng(seed)
    rows = []
    for i, d in enumerate(SESSIONS):
        for s in SECTORS:
            if s == "F1" and i % 10:
                continue
            move = {"L": -0.01 + 0.002 * rng.normal(), "N": 0.01 * rng.normal(),
                    "W": -0.2 if i % 9 == 0 else 0.02, "F": -0.02}[s[0]]
            rows.append((d, s, "buy", 100.0, 10.0, "directional", "open", 0.0))
            rows.append((d, s, "sell", 100.0, 10.0 * (1 + move), "directional", "close", 0.0))
            rows.append((d, s, "buy", 10.0, 10.0, "maxdiff", "maxdiff_entry", 0.0))  # another layer: not judged
            rows.append((d, s, "sell", 10.0, 12.0, "maxdiff", "maxdiff_exit", 0.0))
    return pd.DataFrame(rows, columns=["date", "symbol", "side", "qty", "price", "layer", "reason", "fee"]) \
        .assign(date=lambda f: pd.to_datetime(f["date"]))


def _params(**tilt):
    return params_from_dict({"portfolio": {"sector_tilt": {"enabled": True, "window": 20, "min_sessions": 5, **tilt}}})


def test_only_a_sector_with_a_confidently_negative_record_is_lowered() -> None:
    p = _params()
    trades = directional_trades(_fills(), SECTORS)
    assert set(trades["layer"]) == {"directional"}
    tilt = sector_tilt(trades, SESSIONS[-1], SESSIONS, p)
    assert [t.sector for t in tilt.sectors] == ["Energy"]  # Materials' interval spans 0; Health Care: 3 sessions
    energy = tilt.sectors[0]
    assert energy.ci_high < 0 and energy.base_cap == p.portfolio.sector_cap
    assert energy.cap == pytest.approx(p.portfolio.sector_cap * p.portfolio.sector_tilt.scale)
    assert tilt.since == SESSIONS[-21] and energy.sessions == 20  # the trailing window only
    tilted = tilt.apply(p)
    assert tilted.portfolio.cap_for("Energy") == energy.cap
    assert tilted.portfolio.cap_for("Utilities") == p.portfolio.cap_for("Utilities")
    assert "Energy cap 30% → 15%" in tilt.note()
    loose = sector_tilt(trades, SESSIONS[-1], SESSIONS, _params(min_sessions=2))
    assert {t.sector for t in loose.sectors} == {"Energy", "Health Care"}


def test_no_future_data_the_tilt_up_to_a_day_reads_only_fills_before_it() -> None:
    p = _params(window=10, min_sessions=3)
    fills = _fills()
    full = directional_trades(fills, SECTORS)
    for d in SESSIONS[1:]:
        before = directional_trades(fills[fills["date"] < pd.Timestamp(d)], SECTORS)
        assert sector_tilt(full, d, SESSIONS, p) == sector_tilt(before, d, SESSIONS, p)
    assert sector_tilt(full, SESSIONS[0], SESSIONS, p).sectors == ()  # nothing before the first session
    # a trade opened the day before and closed on the session is not yet known that morning
    carried = fills[fills["date"] < pd.Timestamp(SESSIONS[5])].copy()
    sells = (carried["date"] == pd.Timestamp(SESSIONS[4])) & (carried["side"] == "sell")
    carried.loc[sells, "date"] = pd.Timestamp(SESSIONS[5])
    assert sector_tilt(directional_trades(carried, SECTORS), SESSIONS[5], SESSIONS, p) == \
        sector_tilt(directional_trades(carried[carried["date"] < pd.Timestamp(SESSIONS[5])], SECTORS),
                    SESSIONS[5], SESSIONS, p)


def test_off_by_default() -> None:
    p = load_params(__import__("pathlib").Path(__file__).resolve().parents[1] / "parameters" / "default.yaml")
    assert p.portfolio.sector_tilt.enabled is False
    assert p.digest() == params_from_dict({}).digest()  # the YAML says what the model defaults to


BANDS = {t: [0.0, 1.0] for t in ("mega", "large", "mid", "small", "micro")}
SMALL = {"data": {"source": "demo:40"}, "scan": {"lookback_days": 60, "min_history": 40},
         "portfolio": {"min_score": 50, "target_positions": 5, "min_positions": 4, "max_positions": 6,
                       "position_min": 0.05, "position_max": 0.25, "sector_cap": 0.5,
                       "tiers": [{"min_score": 80, "weight_min": 0.18, "weight_max": 0.25},
                                 {"min_score": 50, "weight_min": 0.10, "weight_max": 0.17}],
                       "market_cap": {"bands": BANDS}}}


@pytest.mark.slow
def test_the_backtest_tilts_walk_forward_and_reports_it(tmp_path) -> None:
    provider = DemoMarket(size=40)
    start, end = date(2024, 1, 2), date(2024, 2, 9)
    off = run_backtest(params_from_dict(SMALL), start, end, tmp_path / "off", provider=provider, progress=False,
                       report=False)
    tilt = {"sector_tilt": {"enabled": True, "window": 15, "min_sessions": 3}}
    on = run_backtest(params_from_dict({**SMALL, "portfolio": {**SMALL["portfolio"], **tilt}}), start, end,
                      tmp_path / "on", provider=provider, progress=False, report=False)
    assert "sector_tilt" not in off.summary and not any("sector tilt" in w for w in off.summary["warnings"])
    record = on.summary["sector_tilt"]
    assert record["sessions_tilted"] > 0, "the demo window was chosen to have a tilted sector"
    assert any(w.startswith("sector tilt lowered caps") and "Real Estate 50% → 25%" in w for w in on.summary["warnings"])
    first = pd.Timestamp(record["sessions"][0]["date"])
    same = off.equity["date"] < first
    assert same.sum() > 10
    pd.testing.assert_frame_equal(off.equity[same], on.equity[same])  # nothing changes before the first tilt
    for s in record["sessions"]:  # the builder held every lowered cap
        day = on.scores[(on.scores["date"] == pd.Timestamp(s["date"])) & on.scores["picked"]]
        for t in s["sectors"]:
            assert day.loc[day["sector"] == t["sector"], "weight"].sum() <= t["cap"] + 1e-9
    # the trailing sector table the tilt judges: learn --window
    learned = from_backtest(tmp_path / "on", window=15)
    assert learned.summary()["window"] == 15
    assert learned.trades["date"].min() >= sorted(on.scores["date"].unique())[-15]
    assert set(learned.attribution["dimension"]) >= {"sector"}
    assert len(learned.trades) < len(from_backtest(tmp_path / "on").trades)


def test_a_live_build_is_tilted_by_the_ledgers_real_trades(tmp_path, monkeypatch) -> None:
    """`portfolio.sector_tilt` in the daily run: the ledger's real fills before the session judge each sector
    by the backtest's rule, the build uses the lowered caps and its plan says so; off, nothing is read."""
    from wolfkit import learn
    from wolfkit.orders import build_order_plan
    from wolfkit.scan import run_scan

    ledger = tmp_path / "ledger.sqlite"
    ledger.write_bytes(b"")  # exists: its rows come from the stub below
    fills = _fills().drop(columns="fee")
    known = pd.DataFrame({"date": fills["date"], "symbol": fills["symbol"], "layer": fills["layer"],
                          "sector": fills["symbol"].map(SECTORS), "strategy": "simple", "score": 80.0})
    seen: list[str] = []
    monkeypatch.setattr(learn, "ledger_fills", lambda path: seen.append(str(path)) or (fills, known))
    session = date(2024, 2, 13)  # the session after the last fills
    base = load_params(Path(__file__).resolve().parents[1] / "parameters/demo.yaml").with_changes({"execution": {"ledger_path": str(ledger)}})

    same, note = learn.tilt_for_build(base, session)  # off by default: the ledger is not even read
    assert same is base and note == "" and seen == []

    on = base.with_changes({"portfolio": {"sector_tilt": {"enabled": True, "window": 20, "min_sessions": 5}}})
    tilted, note = learn.tilt_for_build(on, session)
    assert seen == [str(ledger)]
    assert tilted.portfolio.cap_for("Energy") == pytest.approx(on.portfolio.cap_for("Energy") * 0.5)
    assert tilted.portfolio.cap_for("Utilities") == on.portfolio.cap_for("Utilities")
    assert note.startswith("sector tilt since") and "Energy cap" in note
    scan = run_scan(tilted, date(2026, 11, 20))
    plan = build_order_plan(scan.opportunities, tilted, equity=100_000.0, buying_power=None,
                            as_of=date(2026, 11, 20), synthetic=True, notes=(note,)).plan
    assert plan.summary.notes[0] == note
    energy = sum(o.weight for o in plan.orders if o.layer == "directional" and o.sector == "Energy")
    assert energy <= tilted.portfolio.cap_for("Energy") + 1e-6
