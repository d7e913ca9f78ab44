"""`wolfkit learn` from a backtest folder (the demo market) and from a ledger with real fills: the same
trades table either way, P&L that adds up to the backtest's own, and the command line's errors."""

from __future__ import annotations

from datetime import date, datetime, timezone
from pathlib import Path

import pandas as pd
import pytest

from wolfkit import learn
from wolfkit.backtest import run_backtest
from wolfkit.broker.base import Fill
from wolfkit.cli import main
from wolfkit.config import load_params
from wolfkit.domain import Layer, OrderType, Side, TimeInForce
from wolfkit.ledger import Ledger
from wolfkit.orders import PlannedOrder

ROOT = Path(__file__).resolve().parents[1]
PARAMS = ROOT / "parameters/demo.yaml"


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    out = tmp_path_factory.mktemp("learn") / "bt"
    run_backtest(load_params(PARAMS), date(2026, 10, 1), date(2026, 10, 20), out, progress=False, report=False)
    return out


def test_backtest_trades_add_up_to_the_equity_curves_pnl(folder):
    learned = learn.from_backtest(folder)
    eq = pd.read_csv(folder / "equity.csv")
    t = learned.trades
    assert len(t) > 50 and t["date"].nunique() == len(eq)
    assert set(t["strategy"]) - {"unknown"}, "the scan's strategy is known for the pack's names"
    for layer in ("directional", "maxdiff"):  # every trip closes the same day with the default exits
        assert t.loc[t["layer"] == layer, "pnl"].sum() == pytest.approx(eq[f"pnl_{layer}"].sum(), abs=0.01)
    a = learned.attribution
    for dim in ("sector", "tier", "strategy", "layer"):
        part = a[a["dimension"] == dim]
        assert part["trades"].sum() == len(t) and part["pnl"].sum() == pytest.approx(t["pnl"].sum())
    assert set(learned.signals["signal"]) == {c.removeprefix("score_") for c in t.columns if c.startswith("score_")}
    assert learned.signals["ic_sessions"].max() == len(eq)


def _order(symbol: str, cid: str, layer: Layer, score: float, sector: str) -> PlannedOrder:
    return PlannedOrder(
        client_order_id=cid, symbol=symbol, side=Side.BUY, qty=10, type=OrderType.MARKET, limit_price=None,
        time_in_force=TimeInForce.DAY, layer=layer, strategy="simple", sector=sector, cap_tier="mega", score=score,
        weight=0.1, est_price=100.0, est_cost=1000.0, priority=0, take_profit=None, stop_loss=None,
    )


def test_ledger_fills_become_trades_with_their_orders_sector_and_tier(tmp_path):
    path = tmp_path / "ledger.sqlite"
    at = datetime(2026, 1, 20, 15, 0, tzinfo=timezone.utc)
    with Ledger(path) as lg:
        lg.start_run("r1", as_of="2026-01-20", broker="sim")
        lg.register_orders("r1", [_order("AAPL", "wk-1", Layer.DIRECTIONAL, 92.0, "Tech"),
                                  _order("XOM", "wk-2", Layer.DIRECTIONAL, 72.0, "Energy")])
        lg.record_fill("r1", "wk-1", Fill("b1", "wk-1", "AAPL", Side.BUY, 10, 100.0, at, 10))
        lg.record_fill("r1", None, Fill("b2", "x-1", "AAPL", Side.SELL, 10, 103.0, at, 10))  # the exit leg
        lg.record_fill("r1", "wk-2", Fill("b3", "wk-2", "XOM", Side.BUY, 5, 80.0, at, 5))
        lg.record_fill("r1", None, Fill("b4", "x-2", "XOM", Side.SELL, 5, 78.0, at, 5))
    learned = learn.from_ledger(path, load_params(ROOT / "parameters/default.yaml"))
    t = learned.trades.set_index("symbol")
    assert t.loc["AAPL", ["layer", "sector", "tier", "strategy"]].tolist() == ["directional", "Tech", "90+", "simple"]
    assert t.loc["AAPL", "pnl"] == pytest.approx(30.0) and t.loc["AAPL", "ret"] == pytest.approx(0.03)
    assert t.loc["XOM", ["sector", "tier"]].tolist() == ["Energy", "70–74"]
    assert t.loc["XOM", "pnl"] == pytest.approx(-10.0)


def test_cli_learn_writes_the_files_and_refuses_bad_input(folder, tmp_path, capsys):
    out = tmp_path / "learned"
    assert main(["learn", "--backtest", str(folder), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "realised return by sector" in printed and "closed trades" in printed
    assert all((out / n).is_file() for n in learn.LEARN_FILES)
    assert pd.read_csv(out / "attribution.csv")["dimension"].unique().tolist() == ["sector", "tier", "strategy", "layer"]
    assert main(["learn", "--backtest", str(folder), "--out", str(out)]) == 2, "never overwrites"
    assert main(["learn"]) == 2 and "exactly one of" in capsys.readouterr().err
    assert main(["learn", "--backtest", str(tmp_path / "nope")]) == 2
    assert "fills.csv: not found" in capsys.readouterr().err
    assert main(["learn", "--ledger", str(tmp_path / "nope.sqlite")]) == 2
