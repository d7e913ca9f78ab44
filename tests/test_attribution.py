"""Attribution on hand-built fills: trips joined with what the morning knew, groups with their intervals,
tiers in their own order, signals judged over every name and over the trades."""

from __future__ import annotations

import pandas as pd
import pytest

from wolfkit import attribution

D = pd.to_datetime(["2024-01-02", "2024-01-03", "2024-01-04"])


def fills(rows):
    return pd.DataFrame(rows, columns=["date", "symbol", "side", "qty", "price", "layer", "reason"])


FILLS = fills([
    (D[0], "A", "buy", 10, 100.0, "directional", "open"), (D[0], "A", "sell", 10, 102.0, "directional", "close"),
    (D[0], "B", "buy", 20, 50.0, "directional", "open"), (D[0], "B", "sell", 20, 49.0, "directional", "stop"),
    (D[1], "A", "buy", 10, 100.0, "directional", "open"), (D[1], "A", "sell", 10, 101.0, "directional", "close"),
    (D[1], "C", "sell", 5, 20.0, "maxdiff", "maxdiff_entry"), (D[1], "C", "buy", 5, 19.0, "maxdiff", "maxdiff_exit"),
    (D[2], "B", "buy", 10, 50.0, "directional", "open"),  # still open: not a trade
])
KNOWN = pd.DataFrame({
    "date": [D[0], D[0], D[1], D[1]], "symbol": ["A", "B", "A", "C"],
    "sector": ["Tech", "Energy", "Tech", "Energy"], "tier": ["90+", "70–74", "75–89", "below"],
    "strategy": ["simple", "takeprofit", "simple", "highlow"], "score": [95.0, 71.0, 80.0, 40.0],
    "score_momentum": [90.0, 20.0, 60.0, 10.0], "open_to_close": [0.02, -0.02, 0.01, -0.05],
})


def test_trades_join_what_the_morning_knew_and_measure_return_on_what_was_at_risk():
    t = attribution.trades(FILLS, KNOWN)
    assert list(t.columns) == [*attribution.TRADE_COLUMNS, "score_momentum"]
    assert list(zip(t["symbol"], t["layer"])) == [("A", "directional"), ("B", "directional"),
                                                   ("A", "directional"), ("C", "maxdiff")]
    assert t["pnl"].tolist() == pytest.approx([20.0, -20.0, 10.0, 5.0])
    assert t["ret"].tolist() == pytest.approx([0.02, -0.02, 0.01, 0.05])
    assert t["tier"].tolist() == ["90+", "70–74", "75–89", "below"]
    unknown = attribution.trades(FILLS, KNOWN[["date", "symbol", "sector"]])
    assert set(unknown["strategy"]) == {"unknown"} and unknown["score"].isna().all()


def test_groups_carry_counts_intervals_pnl_and_hit_rate():
    t = attribution.trades(FILLS, KNOWN)
    a = attribution.attribution(t)
    assert list(a.columns) == list(attribution.ATTRIBUTION_COLUMNS)
    sector = a[a["dimension"] == "sector"].set_index("group")
    assert sector.loc["Tech", ["trades", "sessions"]].tolist() == [2, 2]
    assert sector.loc["Tech", "mean_return"] == pytest.approx(0.015)
    assert sector.loc["Tech", "pnl"] == pytest.approx(30.0) and sector.loc["Tech", "hit_rate"] == 1.0
    assert sector.loc["Tech", "ci_low"] < 0.015 < sector.loc["Tech", "ci_high"]
    assert sector.loc["Energy", "pnl"] == pytest.approx(-15.0)
    assert list(sector.index) == ["Tech", "Energy"], "by P&L, largest first"
    assert a.loc[a["dimension"] == "tier", "group"].tolist() == ["90+", "75–89", "70–74", "below"]
    layer = a[a["dimension"] == "layer"].set_index("group")
    assert layer["pnl"].sum() == pytest.approx(t["pnl"].sum())
    assert layer.loc["maxdiff", "sessions"] == 1 and pd.isna(layer.loc["maxdiff", "ci_low"]), "one session: no interval"


def test_signals_over_names_and_over_trades():
    t = attribution.trades(FILLS, KNOWN)
    s = attribution.signals(t, KNOWN).set_index("signal")
    row = s.loc["momentum"]
    assert row["upper_trades"] == 2 and row["lower_trades"] == 2
    assert row["upper_mean"] == pytest.approx((0.02 + 0.01) / 2)
    assert row["lower_mean"] == pytest.approx((-0.02 + 0.05) / 2)
    assert row["upper_minus_lower"] == pytest.approx(0.015 - 0.015)
    assert row["ic_sessions"] == 0, "fewer than 5 names a session: no IC"
    assert pd.isna(attribution.signals(t, None).set_index("signal").loc["momentum", "ic_mean"])
