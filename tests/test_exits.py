"""Exits: a target for every strategy, the ATR and trailing stops, the time stop — as levels, on a minute
path and on a daily bar, in the plan, on the simulated broker with the intraday engine, and through
alpaca-py against the emulator (the trailing stop moves a bracket's stop leg by a replace)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from test_emulator import make_sim
from test_intraday import EQUITY, SESSION, bars, order, params, plan, setup

from wolfkit.backtest.fills import Bar, Reason, bracket_exit
from wolfkit.broker.alpaca import AlpacaBroker
from wolfkit.broker.base import OrderRejected, OrderRequest, OrderStatus
from wolfkit.broker.sim import SimBroker
from wolfkit.calendar import NY
from wolfkit.config import ExitParams, StopRule, params_from_dict
from wolfkit.domain import OrderType, Side, Strategy, TimeInForce
from wolfkit.exits import ExitReason, describe, levels, ratchet, trail_amount, walk_path
from wolfkit.intraday import IntradayEngine
from wolfkit.ledger import Ledger
from wolfkit.orders import PlannedOrder, read_orders
from wolfkit.replay import drive

PRICE, ATR = np.array([100.0]), np.array([2.0])
PH, PL = np.array([103.0]), np.array([98.5])


def _levels(strategy: Strategy, **exits) -> tuple[float, float]:
    tp, sl = levels(strategy, PRICE, ATR, PH, PL, ExitParams(**exits))
    return float(tp[0]), float(sl[0])


# ---- levels ----------------------------------------------------------------------------------------


def test_every_strategy_has_a_target():
    assert _levels(Strategy.TAKEPROFIT)[0] == _levels(Strategy.SIMPLE)[0] == pytest.approx(104.0)  # + 2 ATR
    assert _levels(Strategy.HIGHLOW)[0] == pytest.approx(103.0)  # its predicted high
    assert _levels(Strategy.SIMPLE, take_profit_atr=3.0)[0] == pytest.approx(106.0)


def test_stop_rules():
    # fixed: each strategy's own stop (simple has none)
    assert _levels(Strategy.TAKEPROFIT)[1] == pytest.approx(98.0)
    assert _levels(Strategy.HIGHLOW)[1] == pytest.approx(98.5)
    assert np.isnan(_levels(Strategy.SIMPLE)[1])
    # atr: k x ATR below the entry for every strategy
    for s in Strategy.directional():
        assert _levels(s, stop_rule=StopRule.ATR, stop_loss_atr=1.5)[1] == pytest.approx(97.0)
        assert _levels(s, stop_rule=StopRule.TRAILING, trail_atr=0.5)[1] == pytest.approx(99.0)
    ex = ExitParams(stop_rule=StopRule.TRAILING, trail_atr=0.5)
    assert trail_amount(100.0, 99.0, ex) == pytest.approx(1.0)
    assert trail_amount(100.0, 99.0, ExitParams()) is None and trail_amount(100.0, None, ex) is None
    assert trail_amount(0.5, 0.49999, ex) is None  # rounds to nothing: no trail rather than a bad plan


def test_scan_gives_every_candidate_a_target():
    from factories import SESSION as DAY

    from wolfkit.scan import run_scan

    p = params_from_dict({"data": {"source": "demo:30"}})
    opps = run_scan(p, DAY).opportunities
    assert set(opps["strategy"].dropna()) <= {s.value for s in Strategy.directional()}
    assert (opps["take_profit"] > opps["price"]).all()
    trailing = run_scan(p.with_changes({"exits": {"stop_rule": "trailing", "trail_atr": 0.5}}),
                        DAY).opportunities
    assert (trailing["stop_loss"] < trailing["price"]).all()  # every strategy has the trailing stop


# ---- paths -----------------------------------------------------------------------------------------


def _path(highs: list[float], lows: list[float]) -> np.ndarray:
    o = [100.0, *[(h + lo) / 2 for h, lo in zip(highs[:-1], lows[:-1])]]
    return np.column_stack([o, highs, lows, [(h + lo) / 2 for h, lo in zip(highs, lows)]])


def test_trailing_stop_ratchets_on_a_minute_path_and_never_loosens():
    highs = [100.5, 101.0, 102.0, 103.5, 103.0, 102.8, 102.6]
    lows = [99.8, 100.2, 101.2, 102.6, 102.55, 102.52, 101.0]
    m = _path(highs, lows)
    hit = walk_path(m, None, 98.0, trail=1.0)
    # the high of 103.5 (minute 3) puts the stop at 102.5; minute 6 trades through it
    assert hit is not None and hit.reason == ExitReason.STOP and hit.minute == 6
    assert hit.price == pytest.approx(102.5)
    stops, s = [], 98.0
    for h in [*highs, 99.0, 101.0, 95.0]:  # falling highs never lower it
        s = ratchet(s, h, 1.0)
        stops.append(s)
    assert stops == sorted(stops) and stops[-1] == pytest.approx(102.5)
    # a minute's own high does not raise the stop it is checked against (inside a minute the order is unknown)
    assert walk_path(_path([102.0], [100.9]), None, 98.0, trail=1.0) is None


def test_time_stop_on_minute_bars_exits_at_the_open_of_its_minute():
    m = _path([100.5] * 10, [99.5] * 10)
    m[5, 0] = 100.2
    hit = walk_path(m, 110.0, 90.0, time_stop_minutes=5)
    assert hit is not None and (hit.reason, hit.minute, hit.price) == (ExitReason.TIME_STOP, 5, 100.2)
    got = bracket_exit(Bar(100.0, 100.5, 99.5, 100.0, m), 110.0, 90.0, None, 5)
    assert got == (100.2, Reason.TIME_STOP)


def test_daily_bar_rules():
    # trailing: ratchets from the open only (the low is assumed first): open 103, trail 1 -> stop 102
    assert bracket_exit(Bar(103.0, 106.0, 101.5, 105.0), 110.0, 98.0, trail=1.0) == (102.0, Reason.STOP)
    assert bracket_exit(Bar(103.0, 106.0, 102.5, 105.0), 110.0, 98.0, trail=1.0) is None  # the high never raises it
    # stop and target both inside the day's range: the stop first
    assert bracket_exit(Bar(100.0, 105.0, 97.0, 104.0), 104.0, 98.0) == (98.0, Reason.STOP)
    # a time stop cannot be placed inside a daily bar: held to the close (brackets still apply)
    assert bracket_exit(Bar(100.0, 101.0, 99.5, 100.5), 104.0, 98.0, None, 30) is None
    assert bracket_exit(Bar(100.0, 104.5, 99.5, 100.5), 104.0, 98.0, None, 30) == (104.0, Reason.TAKE_PROFIT)


# ---- the plan ----------------------------------------------------------------------------------------


def test_plan_carries_exits_and_old_files_still_read(tmp_path):
    po = order("AAPL", 10, 100.0, "simple", tp=104.0, sl=98.0)
    po = po.model_copy(update={"trail_amount": 2.0, "time_stop_minutes": 120})
    assert describe(po) == "TP 104.00 · stop 98.00 trailing 2.00 · time 120 min"
    assert describe(order("AAPL", 10, 100.0)) == "no target · no stop"
    assert describe(order("AAPL", 10, 100.0, tp=104.0, sl=98.0)) == "TP 104.00 · stop 98.00"
    op = plan([po], [])
    raw = json.loads(op.model_dump_json())
    f = tmp_path / "orders.json"
    f.write_text(json.dumps(raw))
    assert read_orders(f).orders[0].trail_amount == 2.0
    for o in raw["orders"]:  # written before these fields existed
        del o["trail_amount"], o["time_stop_minutes"]
    f.write_text(json.dumps(raw))
    got = read_orders(f).orders[0]
    assert got.trail_amount is None and got.time_stop_minutes is None
    with pytest.raises(ValueError):
        PlannedOrder.model_validate(po.model_dump() | {"trail_amount": -1.0})


# ---- the engine on the simulated broker ------------------------------------------------------------


def _trailing_plan(time_stop: int | None = None, trail: float | None = 1.0):
    po = order("AAPL", 100, 100.0, "takeprofit", tp=110.0, sl=98.0)
    return plan([po.model_copy(update={"trail_amount": trail, "time_stop_minutes": time_stop})], [])


def test_engine_raises_the_bracket_stop_leg_and_the_raised_stop_closes(tmp_path):
    closes = np.concatenate([np.linspace(100.0, 104.0, 60), np.full(330, 104.0)])
    closes[120:] = 102.5  # falls through the trailed stop (104 x 1.0002 - 1 = 103.02) at minute 120
    b = bars({"AAPL": closes})
    broker = SimBroker(EQUITY, 2.0)
    ledger = Ledger(tmp_path / "l.sqlite")
    eng = IntradayEngine.start(params(), _trailing_plan(), broker, equity=EQUITY, session=SESSION, ledger=ledger)
    drive(eng, broker, b, stop=119)
    d = eng.state.directional[0]
    assert d.bracket and d.qty == 100
    stop_leg = next(x for x in d.exits if x.purpose == "stop")
    live = broker.get(stop_leg.order_id)
    assert live.stop_price == stop_leg.stop_price == d.stop_loss == pytest.approx(103.02, abs=0.011)
    assert live.replaces is not None and live.status.is_open  # moved by a replace, not a new order
    replaced = [o for o in broker.orders() if o.symbol == "AAPL"][0].legs
    assert [leg.stop_price for leg in replaced if leg.stop_price is not None] == [live.stop_price]  # one stop leg
    intents = [ev for ev in ledger.events(eng.state.run_id)
               if ev.kind == "intent" and ev.detail.get("action") == "replace" and ev.detail.get("stop_price")]
    assert intents and len({ev.client_order_id for ev in intents}) == len(intents)  # each replace once, own id
    assert intents[-1].detail["stop_price"] == live.stop_price
    drive(eng, broker, b, start=119, stop=125)
    assert d.qty == 0 and stop_leg.filled_qty == 100
    assert stop_leg.avg_price == pytest.approx(live.stop_price, abs=0.06)  # at the raised stop, not 98
    assert not broker.positions() and not broker.open_orders()


@pytest.mark.parametrize("kill_at", [30, 70])
def test_a_restart_keeps_the_raised_stop_and_sends_nothing_twice(tmp_path, kill_at):
    """Killed while the stop trails (30) or after it settled (70): the resumed engine ends as an engine that
    never stopped, with the same orders at the broker (every replace once, under its own client id)."""
    closes = np.concatenate([np.linspace(100.0, 104.0, 60), np.full(60, 104.0), np.full(270, 102.5)])
    b = bars({"AAPL": closes})

    def all_orders(broker: SimBroker) -> list[tuple[str, float | None, str]]:
        return sorted((o.client_order_id, o.stop_price, o.status.value) for o in broker.book.orders.values())

    ref_broker = SimBroker(EQUITY, 2.0)
    ref = IntradayEngine.start(params(), _trailing_plan(), ref_broker, equity=EQUITY, session=SESSION)
    drive(ref, ref_broker, b)
    broker = SimBroker(EQUITY, 2.0)
    with Ledger(tmp_path / "l.sqlite", durable=False) as ledger:
        first = IntradayEngine.start(params(), _trailing_plan(), broker, equity=EQUITY, session=SESSION,
                                     ledger=ledger)
        drive(first, broker, b, stop=kill_at)
        raised = first.state.directional[0].stop_loss
        del first
        again = IntradayEngine.resume(params(), broker, ledger, _trailing_plan().run_id)
        assert again.state.directional[0].stop_loss == raised and raised is not None and raised > 98.0
        drive(again, broker, b, start=kill_at)
    d, r = again.state.directional[0], ref.state.directional[0]
    assert (d.stop_loss, d.high_water, d.qty) == (r.stop_loss, r.high_water, 0)
    assert all_orders(broker) == all_orders(ref_broker)
    assert sum(o.replaces is not None for o in broker.book.orders.values()) > 1  # the stop did trail


def test_time_stop_closes_on_the_sim():
    b = bars({"AAPL": 100.0})
    eng, broker = setup(params(), _trailing_plan(time_stop=60, trail=None), b)
    drive(eng, broker, b, stop=59)
    d = eng.state.directional[0]
    assert d.qty == 100 and broker.positions()
    drive(eng, broker, b, start=59, stop=62)
    assert d.qty == 0 and not broker.positions() and not broker.open_orders()
    closer = next(x for x in d.exits if x.filled_qty)
    assert closer.purpose == "time" and closer.type == OrderType.MARKET
    first = next(f for f in broker.fills() if f.side == Side.SELL)
    assert first.timestamp.astimezone(NY).strftime("%H:%M") in ("10:30", "10:31")  # sent 60 minutes after the open


def test_time_stop_cancels_an_entry_still_working():
    po = order("AAPL", 100, 100.0, "takeprofit", tp=110.0, sl=90.0)
    po = po.model_copy(update={"type": OrderType.LIMIT, "limit_price": 95.0, "time_stop_minutes": 30})
    b = bars({"AAPL": 100.0})
    eng, broker = setup(params(), plan([po], []), b)
    drive(eng, broker, b, stop=29)
    assert [o.limit_price for o in broker.open_orders()] == [95.0]  # the entry works below the market
    drive(eng, broker, b, start=29, stop=32)
    assert not broker.open_orders() and not broker.positions()
    assert eng.state.directional[0].entry.state == "done" and eng.state.directional[0].qty == 0


# ---- the emulator ------------------------------------------------------------------------------------


def test_replace_of_a_bracket_stop_leg_reaches_the_emulator(emulator_server, env):
    sim = make_sim(50_000, partial_fill_prob=0.0, fill_on_submit=True)
    srv = emulator_server(sim)
    env(srv.url)
    b = AlpacaBroker(timeout=5)
    parent = b.submit(OrderRequest("AAPL", 10, Side.BUY, OrderType.MARKET, TimeInForce.DAY, "ex-1",
                                   take_profit=210.0, stop_loss=180.0))
    got = b.get(parent.id)
    assert got.status == OrderStatus.FILLED
    stop = next(x for x in got.legs if x.stop_price is not None)
    new = b.replace(stop.id, stop_price=185.5, client_order_id="ex-1-sl-r1")
    assert new.stop_price == 185.5 and new.replaces == stop.id and new.id != stop.id
    assert sim.get(stop.id).status == OrderStatus.REPLACED
    legs = sim.get(parent.id).legs
    assert sorted(x.stop_price or 0 for x in legs) == [0, 185.5]  # still one take-profit and one stop
    with pytest.raises(OrderRejected, match="qty"):
        b.replace(new.id, qty=5, stop_price=186.0)


def test_exit_params_in_the_default_file():
    from factories import ROOT

    from wolfkit.config import load_params

    p = load_params(ROOT / "parameters/default.yaml")
    assert p.exits == ExitParams() and p.exits.time_stop_minutes is None and p.exits.stop_rule == StopRule.FIXED


# ---- the backtest on the demo market's minute bars ----------------------------------------------------


@pytest.mark.slow  # a three-session backtest on the demo market (minute bars)
def test_demo_backtest_works_trailing_and_time_stops_on_minute_bars(tmp_path):
    from datetime import date

    from factories import ROOT

    from wolfkit.backtest import run_backtest
    from wolfkit.config import load_params

    p = load_params(ROOT / "parameters/demo.yaml").with_changes(
        {"exits": {"stop_rule": "trailing", "trail_atr": 0.5, "time_stop_minutes": 45}})
    r = run_backtest(p, date(2026, 11, 23), date(2026, 11, 25), tmp_path / "out", progress=False, report=False)
    assert r.summary["fill_rules"] == "minute"
    d = r.fills[r.fills["layer"] == "directional"]
    sells = d[d["side"] == "sell"]
    assert not sells.empty and set(sells["reason"]) <= {"stop", "take_profit", "time_stop"}  # none lasts to the close
    assert "time_stop" in set(sells["reason"])
    buys = d[d["side"] == "buy"].set_index(["date", "symbol"])["qty"]
    assert sells.groupby(["date", "symbol"])["qty"].sum().equals(buys.sort_index())  # every position closed once


def test_the_report_shows_the_managed_exits_of_an_order() -> None:
    from wolfkit.report.plan import NONE, other_exits

    po = order("AAPL", 10, 100.0, tp=104.0, sl=98.0).model_copy(update={"trail_amount": 2.0, "time_stop_minutes": 90})
    assert other_exits(po) == "trailing 2.00 · time 90 min"
    assert other_exits(order("AAPL", 10, 100.0, tp=104.0, sl=98.0)) == NONE
