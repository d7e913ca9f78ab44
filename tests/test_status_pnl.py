"""Positions and P&L by layer on the status screen, after execute (sim), replay and intraday; the daily
snapshots and their history; a bad ledger or simulated account is exit 2 naming the file."""

from __future__ import annotations

import json
from datetime import date, datetime
from pathlib import Path

import pytest
from factories import OPEN, REFERENCE_PACK, make_plan
from test_execute import cli_setup
from test_intraday import EQUITY, FLAT, bars, mplan, order, params, plan

from wolfkit.broker.base import Position
from wolfkit.broker.sim import SimBroker
from wolfkit.calendar import NY, today_ny
from wolfkit.cli import main
from wolfkit.config import Params
from wolfkit.domain import Layer, Side
from wolfkit.errors import BadInputError
from wolfkit.execute import execute_plan
from wolfkit.intraday import IntradayEngine
from wolfkit.ledger import Ledger
from wolfkit.orders import write_orders
from wolfkit.pnl import BookedFill, book_fills, layer_of_fill
from wolfkit.replay import drive
from wolfkit.snapshots import DailySnapshot, daily_history, format_history, load_snapshots, record_snapshot
from wolfkit.status import AccountView, OpenOrder, Source, build_status, format_status
from wolfkit.status_sources import collect_status

ROOT = Path(__file__).resolve().parents[1]
D, M = Layer.DIRECTIONAL, Layer.MAXDIFF
NOW = datetime(2026, 1, 20, 15, 0, tzinfo=NY)

# A hand-checked day. Directional AAPL: one buy order filled in two parts (100 @ 10, 50 @ 13: average
# 11), then 60 sold @ 12 (realised 60 × 1 = 60), 90 left. Maxdiff AAPL (same symbol, other layer): a
# short round trip, 40 @ 12.20 then 40 @ 12.00 (realised 8). Maxdiff MSFT: 30 bought @ 100, 50 sold
# @ 101: 30 closed (realised 30), the other 20 open a short at 101.
FILLS = [
    BookedFill("AAPL", D, Side.BUY, 100, 10.0), BookedFill("AAPL", D, Side.BUY, 50, 13.0),
    BookedFill("AAPL", M, Side.SELL, 40, 12.2), BookedFill("AAPL", D, Side.SELL, 60, 12.0),
    BookedFill("AAPL", M, Side.BUY, 40, 12.0),
    BookedFill("MSFT", M, Side.BUY, 30, 100.0), BookedFill("MSFT", M, Side.SELL, 50, 101.0),
]
MARKS = {"AAPL": 12.5, "MSFT": 100.5}
# marked: directional AAPL 90 × (12.5 − 11) = 135; maxdiff MSFT −20 × (100.5 − 101) = +10
# cash moved: −1000 −650 +488 +720 −480 −3000 +5050 = +1128


def test_average_cost_per_symbol_per_layer_by_hand():
    book = book_fills(FILLS)
    aapl_d, aapl_m, msft = book.holdings[(D, "AAPL")], book.holdings[(M, "AAPL")], book.holdings[(M, "MSFT")]
    assert (aapl_d.qty, aapl_d.avg_cost, aapl_d.realized) == (90, pytest.approx(11.0), pytest.approx(60.0))
    assert (aapl_m.qty, aapl_m.realized) == (0, pytest.approx(8.0))
    assert (msft.qty, msft.avg_cost, msft.realized) == (-20, 101.0, pytest.approx(30.0))
    assert book.realized(D) == pytest.approx(60.0) and book.realized(M) == pytest.approx(38.0)
    assert book.cash_flow == pytest.approx(1128.0)
    assert aapl_d.unrealized(12.5) == pytest.approx(135.0) and msft.unrealized(100.5) == pytest.approx(10.0)
    assert book.net_qty("AAPL") == 90 and [h.symbol for h in book.open()] == ["AAPL", "MSFT"]


def test_the_layer_of_a_fill():
    assert layer_of_fill("plan-1", "anything", {"plan-1": M}) == M  # the planned order's layer wins
    assert layer_of_fill("d-AAPL-buy-entry", "x", {}) == D and layer_of_fill("m-s1-exit", "x", {}) == M
    assert layer_of_fill(None, "wk-run-pack-AAPL-max-0123456789-r2", {}) == M
    assert layer_of_fill(None, "someone-elses-order", {}) is None


def _report(positions=None, account=None):
    working = [OpenOrder("AAPL", Side.BUY, D, 200, 150, 11.5, "partially_filled", "wk-a"),
               OpenOrder("MSFT", Side.SELL, M, 10, 0, 101.5, "accepted", "wk-b")]
    return build_status(params(leverage=FLAT), fills=FILLS, open_orders=working, positions=positions, marks=MARKS,
                        account=account or AccountView("sim", 10_000.0, 10_000.0, Source.LEDGER), now=NOW,
                        marks_from=Source.FILLS, strategies={"AAPL": "takeprofit"})


def test_status_report_by_layer_from_the_ledger():
    r = _report()
    d, m = r.layers[D], r.layers[M]
    assert (d.realized, d.unrealized, d.positions) == (pytest.approx(60.0), pytest.approx(135.0), 1)
    assert (m.realized, m.unrealized, m.positions) == (pytest.approx(38.0), pytest.approx(10.0), 1)
    assert (d.gross, m.gross) == (pytest.approx(90 * 12.5), pytest.approx(20 * 100.5))
    # the ledger's account: start + P&L; cash: start + what the fills moved
    assert r.account.equity == pytest.approx(10_243.0) and r.account.cash == pytest.approx(11_128.0)
    assert r.positions_from == Source.LEDGER
    rows = {(x.symbol, x.layer): x for x in r.positions.itertuples()}
    assert rows[("AAPL", "directional")].qty == 90 and rows[("AAPL", "directional")].strategy == "takeprofit"
    assert rows[("MSFT", "maxdiff")].qty == -20 and ("AAPL", "maxdiff") not in rows  # flat: no row
    # the partial fill: 150 of 200 done; committed = open position at cost + the rest of the working entry
    assert list(r.open_orders[["symbol", "filled_qty", "qty"]].itertuples(index=False, name=None))[0] == (
        "AAPL", 150, 200)
    assert r.leverage.directional == pytest.approx(90 * 11.0 + 50 * 11.5)
    assert r.leverage.maxdiff == pytest.approx(20 * 101.0 + 10 * 101.5)  # the sell grows the short
    text = format_status(r)
    assert "AAPL [directional]: +90 shares @ $11.00, last $12.50 (+$135.00 unrealized, takeprofit)" in text
    assert "AAPL buy [directional]: filled 150/200 @ $11.50 (partially_filled)" in text
    assert "Directional: realized +$60.00, unrealized +$135.00, total +$195.00" in text
    assert "Maxdiff: realized +$38.00, unrealized +$10.00, total +$48.00" in text
    snap = r.snapshot(NOW.date())
    assert (snap.realized_maxdiff, snap.unrealized_directional, snap.positions, snap.pnl) == (38.0, 135.0, 2, 243.0)


def test_broker_positions_win_and_a_gap_is_unattributed():
    held = [Position("AAPL", 100, 11.2, 1250.0, 130.0), Position("MSFT", -20, 101.0, -2010.0, 10.0)]
    r = _report(positions=held, account=AccountView("sim", 10_250.0, 11_128.0, Source.BROKER))
    assert r.positions_from == Source.BROKER and r.account.equity == 10_250.0  # the broker's, as it is
    gap = r.positions[r.positions["layer"] == "unattributed"]
    assert list(gap.symbol) == ["AAPL"] and list(gap.qty) == [10]
    assert any("AAPL: the broker holds +100 shares, the ledger's fills +90" in n for n in r.notes)
    assert r.layers[D].unrealized == pytest.approx(135.0)  # the gap counts in neither layer
    # the broker holds no MSFT: the ledger's short is offset by an unattributed +20 with nothing unrealised
    r = _report(positions=held[:1], account=AccountView("sim", 10_250.0, 11_128.0, Source.BROKER))
    gap = r.positions[(r.positions["layer"] == "unattributed") & (r.positions["symbol"] == "MSFT")].iloc[0]
    assert (gap.qty, gap.unrealized_pl) == (20, 0.0)
    assert any("MSFT: the broker holds +0 shares, the ledger's fills -20" in n for n in r.notes)


# ---- from the ledger and the broker -------------------------------------------------------------


def test_status_after_execute_on_the_simulated_broker_sees_partial_fills_and_exits(tmp_path):
    plan_ = make_plan(pack=REFERENCE_PACK[:3], brackets=True)
    broker = SimBroker(100_000.0, clock=lambda: OPEN, partial_fill_prob=1.0, seed=3)
    for sym, _, _, close in REFERENCE_PACK[:3]:
        broker.market.set(sym, close, close)
    with Ledger(tmp_path / "ledger.sqlite", durable=False) as ledger:
        execute_plan(plan_, broker, ledger, Params(), now=lambda: OPEN)
        broker.step()  # every order fills only in part
        r = collect_status(ledger, Params(), broker, now=OPEN)
        assert len(r.open_orders) == 3 and (r.open_orders.filled_qty < r.open_orders.qty).all()
        assert (r.open_orders.filled_qty > 0).all() and set(r.open_orders.layer) == {"directional"}
        assert r.positions_from == Source.BROKER and set(r.positions.layer) == {"directional"}  # no gap
        held = {p.symbol: p for p in broker.positions()}
        assert dict(zip(r.positions.symbol, r.positions.qty)) == {s: p.qty for s, p in held.items()}
        assert r.layers[D].unrealized == pytest.approx(sum(p.unrealized_pl for p in held.values()), abs=0.05)
        for _ in range(30):  # the rest fills
            broker.step()
        for sym, _, _, close in REFERENCE_PACK[:3]:  # the market reaches every take-profit (close × 1.1)
            broker.market.set(sym, round(close * 1.12, 2), round(close * 1.12, 2))
        for _ in range(30):
            broker.step()
        assert not broker.positions()
        r = collect_status(ledger, Params(), broker, now=OPEN)
        # every position is closed: realised = what the sells brought in − what the buys cost
        want = sum(f.qty * f.price * (1 if f.side == Side.SELL else -1) for f in broker.fills())
        assert want > 0 and all(f.price >= round(c * 1.1, 2) for f in broker.fills() if f.side == Side.SELL
                                for s, _, _, c in REFERENCE_PACK[:3] if s == f.symbol)
        assert r.layers[D].realized == pytest.approx(want, abs=0.05) and r.layers[D].unrealized == 0
        assert r.layers[M].realized == 0 and r.positions.empty and r.open_orders.empty
        # the broker's shares are in the ledger once (executions between two looks arrive as one fill),
        # however often status runs
        def shares() -> tuple[int, int]:
            rows = ledger.fills_for_run(plan_.run_id)
            return len(rows), sum(f["qty"] for f in rows)

        before = shares()
        collect_status(ledger, Params(), broker, now=OPEN)
        assert shares() == before and before[1] == sum(f.qty for f in broker.fills())
        with pytest.raises(BadInputError, match="holds runs on sim"):  # another account: says which it has
            collect_status(ledger, Params(), account="alpaca-paper")


def _engine_day(ledger):
    """A full simulated session: a directional take-profit and a maxdiff round trip."""
    p = params(leverage=FLAT, maxdiff={"ramp_minutes": 1, "ramp_step_minutes": 1})
    op = plan([order("MSFT", 100, 200.0, "takeprofit", tp=204.0)], [mplan("AAPL", 1, low=100.0, high=102.0)])
    b = bars({"AAPL": 101.0, "MSFT": 200.0}, touch={"AAPL": {10: 99.9, 50: 102.5}, "MSFT": {120: 204.5}})
    broker = SimBroker(EQUITY, 2.0)
    eng = IntradayEngine.start(p, op, broker, equity=EQUITY, session=b.times[0].date(), ledger=ledger)
    drive(eng, broker, b)
    return p, eng


def test_status_after_a_replayed_session_agrees_with_the_engine(tmp_path):
    with Ledger(tmp_path / "replay.sqlite", durable=False) as ledger:
        p, eng = _engine_day(ledger)
        r = collect_status(ledger, p, account="replay", now=eng.state.now)
    assert eng.state.realized["maxdiff"] > 0 and eng.state.realized["directional"] > 0
    # the ledger's average-cost P&L is the engine's own booking, layer by layer
    assert r.layers[M].realized == pytest.approx(eng.state.realized["maxdiff"], abs=0.01)
    assert r.layers[D].realized == pytest.approx(eng.state.realized["directional"], abs=0.01)
    assert r.positions.empty and r.positions_from == Source.LEDGER and r.marks_from == Source.ENGINE
    assert r.account.equity == pytest.approx(EQUITY + sum(eng.state.realized.values()), abs=0.01)
    assert r.run_id == "t"


def test_snapshots_and_the_daily_history(tmp_path):
    def snap(day, real_d, real_m, unreal_d=0.0, account="sim"):
        return DailySnapshot(account=account, session=day, taken_at=datetime.combine(day, datetime.min.time(), NY),
                             source="ledger", equity=100_000 + real_d + real_m + unreal_d, cash=1.0,
                             realized_directional=real_d, realized_maxdiff=real_m, unrealized_directional=unreal_d,
                             unrealized_maxdiff=0.0, gross_directional=50_000, gross_maxdiff=10_000, positions=3)

    days = [date(2026, 1, 20), date(2026, 1, 21), date(2026, 1, 22)]
    with Ledger(tmp_path / "ledger.sqlite") as ledger:
        assert load_snapshots(ledger) == []
        record_snapshot(ledger, snap(days[0], 100.0, 10.0, 50.0))
        record_snapshot(ledger, snap(days[1], 0.0, 0.0))  # replaced below: the last snapshot of a day wins
        record_snapshot(ledger, snap(days[1], 250.0, 40.0, -20.0))
        record_snapshot(ledger, snap(days[2], 260.0, 45.0))
        record_snapshot(ledger, snap(days[2], 5.0, 0.0, account="replay"))
        assert len(load_snapshots(ledger)) == 4 and len(load_snapshots(ledger, "sim")) == 3
        assert [s.session for s in load_snapshots(ledger, "sim", days=2)] == days[1:]
        h = daily_history(load_snapshots(ledger, "sim"))
    # day P&L = the change in cumulative P&L: 160, then 270 − 160 = 110, then 305 − 270 = 35
    assert list(h.day_pnl) == pytest.approx([160.0, 110.0, 35.0])
    assert list(h.day_directional) == pytest.approx([150.0, 80.0, 30.0])
    assert list(h.day_maxdiff) == pytest.approx([10.0, 30.0, 5.0])
    assert list(h["first"]) == [True, False, False] and list(h.gross_directional) == pytest.approx([0.5] * 3, rel=1e-2)
    text = format_history(h)
    assert "2026-01-21" in text and "+110.00" in text and "first snapshot" in text
    assert "no daily snapshots yet" in format_history(daily_history([]))


# ---- the command line ---------------------------------------------------------------------------


def test_cli_status_after_execute_sim_snapshot_and_history(tmp_path, capsys, monkeypatch):
    from wolfkit import market_hours

    pfile, ledger, folder, _ = cli_setup(tmp_path)
    day = date(2024, 6, 3)  # a Monday session; the commands' clock reads 10:00 on it (the simulator fills then)
    folder = tmp_path / "outputs" / str(day)
    monkeypatch.setattr(market_hours, "wall_clock", lambda: datetime(2024, 6, 3, 10, 0, tzinfo=NY))
    orders = write_orders(make_plan(pack=REFERENCE_PACK[:4], as_of=day), folder / "orders.json")
    assert main(["execute", "--orders", str(orders), "--params", str(pfile)]) == 0, capsys.readouterr().err
    capsys.readouterr()
    assert main(["status", "--params", str(pfile), "--snapshot"]) == 0, capsys.readouterr().err
    out = " ".join(capsys.readouterr().out.split())
    # the simulated account `execute` kept is found beside the orders file and brought up to the market
    assert f"simulated account {folder / 'sim_broker.json'}" in out and "POSITIONS (from the broker)" in out
    b = SimBroker.load(folder / "sim_broker.json")
    held = {p.symbol: p.qty for p in b.positions()}
    assert held and all(f"{s} │ directional │ {q} │" in out for s, q in held.items())
    assert "P&L BY LAYER" in out and "Directional: realized +$0.00" in out and "LEVERAGE USAGE" in out
    assert f"snapshot recorded for {day} (sim)" in out
    with Ledger(ledger) as book:
        [snap] = load_snapshots(book)
        assert snap.positions == len(held) and snap.source == "broker"
        assert sum(f["qty"] for rid in book.run_ids() for f in book.fills_for_run(rid)) == sum(held.values())
    assert main(["status", "--params", str(pfile), "--history", "--days", "5"]) == 0
    out = capsys.readouterr().out
    assert str(day) in out and "first snapshot" in out


def test_cli_status_bad_ledger_or_sim_account_is_exit_2_naming_the_file(tmp_path, capsys):
    bad = tmp_path / "ledger.sqlite"
    bad.write_bytes(b"this is not a database" * 10)
    assert main(["status", "--ledger", str(bad)]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert str(bad) in err and "not a SQLite database" in err
    assert main(["status", "--ledger", str(bad), "--history"]) == 2
    (tmp_path / "run").mkdir()
    pfile, ledger, folder, day = cli_setup(tmp_path / "run")
    orders = write_orders(make_plan(pack=REFERENCE_PACK[:2], as_of=day), folder / "orders.json")
    assert main(["execute", "--orders", str(orders), "--params", str(pfile)]) == 0
    capsys.readouterr()
    state = folder / "sim_broker.json"
    state.write_text(json.dumps({"schema": "something else"}))
    assert main(["status", "--params", str(pfile)]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert str(state) in err and "not a simulated account" in err and "--sim-state" in err
    empty = tmp_path / "empty.sqlite"
    with Ledger(empty):
        pass
    assert main(["status", "--ledger", str(empty)]) == 2
    assert "wolfkit execute" in capsys.readouterr().err


def test_cli_replay_records_its_snapshot(tmp_path, capsys):
    out = tmp_path / "out"
    day = "2025-06-02"
    assert main(["replay", "--params", str(ROOT / "parameters/demo.yaml"), "--date", day, "--equity", "50000",
                 "--outputs", str(out)]) == 0, capsys.readouterr().err
    text = " ".join(capsys.readouterr().out.split())
    assert f"end-of-day snapshot (replay, {day})" in text
    path = out / day / "replay.sqlite"
    with Ledger(path) as book:
        [snap] = load_snapshots(book)
        r = collect_status(book, Params(), account="replay")
    assert snap.session == date(2025, 6, 2) and snap.pnl == pytest.approx(r.realized + r.unrealized, abs=0.01)
    assert main(["status", "--ledger", str(path)]) == 0
    shown = " ".join(capsys.readouterr().out.split())
    assert "account replay" in shown and "DAILY P&L" in shown and "P&L BY LAYER" in shown


def test_cli_status_after_intraday_on_the_simulated_broker(tmp_path, monkeypatch, capsys):
    from test_intraday_cli import session_clock

    from wolfkit import intraday

    pfile, ledger, folder, day = cli_setup(tmp_path)
    orders = write_orders(make_plan(pack=REFERENCE_PACK[:3], as_of=day), folder / "orders.json")
    monkeypatch.setattr(intraday, "wall_clock", session_clock(day).now)
    assert main(["intraday", "--orders", str(orders), "--params", str(pfile), "--poll-seconds", "0",
                 "--max-steps", "3"]) == 0, capsys.readouterr().err
    capsys.readouterr()
    with Ledger(ledger) as book:
        [snap] = load_snapshots(book)  # the end of the run recorded the session's snapshot
        assert snap.session == day and snap.account == "sim"
    # the engine alone wrote no executed run: without the account file, positions come from the ledger
    assert main(["status", "--params", str(pfile)]) == 0, capsys.readouterr().err
    out = " ".join(capsys.readouterr().out.split())
    assert "account sim" in out and "engine run ref" in out and "POSITIONS (from the ledger)" in out
    assert "DAILY P&L" in out
    assert main(["status", "--params", str(pfile), "--sim-state", str(folder / "sim_broker.json")]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "POSITIONS (from the broker)" in out and "P&L BY LAYER" in out


@pytest.mark.slow
def test_premarket_then_execute_sim_then_status_as_a_new_user(tmp_path, monkeypatch, capsys):
    """From a fresh project folder: the demo pre-market run, its orders executed on the simulated broker,
    then `wolfkit status` shows the positions and the P&L by layer. The commands' clock reads 10:00 on
    the last complete session (the simulator fills only while its market is open)."""
    from wolfkit import calendar, market_hours

    day = calendar.previous_session(today_ny())
    monkeypatch.setattr(market_hours, "wall_clock", lambda: datetime.combine(day, datetime.min.time().replace(hour=10),
                                                                             NY))
    outputs = tmp_path / "outputs"
    pfile = tmp_path / "params.yaml"
    pfile.write_text(f"extends: {ROOT / 'parameters/demo.yaml'}\nexecution:\n  broker: sim\n"
                     f"  ledger_path: {tmp_path / 'ledger.sqlite'}\n")
    for k in ("APCA_API_KEY_ID", "APCA_API_SECRET_KEY"):
        monkeypatch.delenv(k, raising=False)
    assert main(["premarket", "--params", str(pfile), "--date", str(day), "--force",
                 "--outputs", str(outputs)]) == 0, capsys.readouterr().err
    orders = outputs / str(day) / "orders.json"
    assert orders.is_file()
    assert main(["execute", "--orders", str(orders), "--broker", "sim", "--params", str(pfile)]) == 0, \
        capsys.readouterr().err
    capsys.readouterr()
    assert main(["status", "--params", str(pfile)]) == 0, capsys.readouterr().err
    out = " ".join(capsys.readouterr().out.split())
    b = SimBroker.load(orders.parent / "sim_broker.json")
    held = [p for p in b.positions() if p.qty]
    assert held, "the simulated account filled the pack's market orders"
    assert "POSITIONS (from the broker)" in out and all(f"{p.symbol} │ " in out for p in held)
    assert "unattributed" not in out  # every share the broker holds is explained by the ledger's fills, by layer
    assert "P&L BY LAYER" in out and "Directional: realized" in out and "Maxdiff: realized" in out
