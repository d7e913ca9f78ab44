"""The engine keeps the rules the build keeps: the wash-trade rule on every order it places (new or
replaced), one time-of-day maxdiff budget, maxdiff sizing from the maxdiff trade's own variance, and
expired plans that listen again when room frees."""

from __future__ import annotations

from datetime import time

import numpy as np
import pytest
from test_intraday import EQUITY, FLAT, SESSION, bars, mplan, order, params, plan, plan_status, setup
from test_packing import build, opps_table
from test_scan import PARAMS, FrameProvider, _next_day, market

from wolfkit.broker.base import OrderStatus
from wolfkit.broker.sim import SimBroker
from wolfkit.config import params_from_dict
from wolfkit.diversify import build_targets
from wolfkit.domain import Layer, OrderType, PlanStatus, Side
from wolfkit.errors import BadInputError
from wolfkit.intraday import IllegalTransition, IntradayEngine, Leg, LegState, MaxdiffPlanState, Purpose, Slot
from wolfkit.intraday.tracking import OrderTracker
from wolfkit.ledger import Ledger
from wolfkit.opportunities import validate_opportunities
from wolfkit.packing import pack_layers
from wolfkit.replay import drive
from wolfkit.scan import levels, maxdiff_returns, run_scan, window_panel
from wolfkit.sizing import kelly_fraction


def working_sides(broker: SimBroker, symbol: str) -> set[Side]:
    """Sides of the orders working at the broker on `symbol` (a held bracket leg is not working yet)."""
    return {o.side for o in broker.open_orders() if o.symbol == symbol and o.status != OrderStatus.HELD}


def watch_replacements(broker: SimBroker) -> list[str]:
    """Record every replacement sent while an opposite-side order works on its symbol (a wash-trade risk)."""
    bad: list[str] = []
    replace = broker.replace

    def watched(order_id, **kw):
        old = broker.get(order_id)
        if old.side.opposite() in working_sides(broker, old.symbol):
            bad.append(f"{old.client_order_id} replaced beside an opposite-side order")
        return replace(order_id, **kw)

    broker.replace = watched  # type: ignore[method-assign]
    return bad


# ---- 1. the wash-trade rule on every order -----------------------------------------------------


def test_maxdiff_buy_never_sits_beside_a_bracket_sell(tmp_path):
    """A bracket buy and a maxdiff buy on one symbol: once the entry fills, the bracket's sells work, and the
    maxdiff buy (ramping every 10 minutes) must not stay beside them nor be replaced there."""
    p = params(leverage=FLAT, maxdiff={"expire_minutes": 390})
    op = plan([order("AAPL", 100, 100.0, "takeprofit", tp=110.0, sl=90.0)], [mplan("AAPL", 1, low=98.0, high=104.0)])
    b = bars({"AAPL": 100.0})
    broker = SimBroker(EQUITY, 2.0)
    bad = watch_replacements(broker)
    ledger = Ledger(tmp_path / "l.sqlite")
    eng = IntradayEngine.start(p, op, broker, equity=EQUITY, session=SESSION, ledger=ledger)
    both: list[int] = []

    def check(e, now):
        if working_sides(broker, "AAPL") == {Side.BUY, Side.SELL}:
            both.append(now.minute)

    drive(eng, broker, b, stop=120, check=check)
    assert eng.state.directional[0].qty == 100 and eng.state.directional[0].bracket
    assert both == [] and bad == []
    entry = eng.state.slots[0].entry
    assert entry.state == LegState.IDLE and entry.filled_qty == 0  # it waits, with the reason
    assert entry.waiting is not None and "wash-trade" in entry.waiting and "bracket" in entry.waiting
    skipped = [ev for ev in ledger.events(eng.state.run_id) if ev.kind == "skipped"]
    assert skipped and len(skipped) <= 3  # said once per reason, not every step


def test_a_replacement_waits_while_an_opposite_order_is_open():
    """A maxdiff exit whose size changes (the entry filled more) is not replaced while a bracket's opposite
    order is working; it is replaced once that order is gone."""
    p = params(leverage=FLAT)
    op = plan([], [mplan("AAPL", 1, side="sell", low=95.0, high=105.0)])
    b = bars({"AAPL": 100.0})
    eng, broker = setup(p, op, b)
    bad = watch_replacements(broker)
    drive(eng, broker, b, stop=1, end_of_day=False)
    tr: OrderTracker = eng.orders
    # an exit leg working a sell, and an opposite buy working on the symbol
    sell = Leg.new("x-sell", "AAPL", Side.SELL, Layer.MAXDIFF, Purpose.EXIT, OrderType.LIMIT, 10, 120.0)
    buy = Leg.new("x-buy", "AAPL", Side.BUY, Layer.MAXDIFF, Purpose.EXIT, OrderType.LIMIT, 10, 80.0)
    slot = eng.state.slots[0]
    eng.state.slots[0].entry.target_qty = 0
    slot.exit = sell
    assert tr._submit(sell)
    eng.state.slots.append(Slot(id="other", symbol="AAPL", side=Side.SELL, members=[], activated_at=slot.activated_at,
                                entry=Leg.new("x-e", "AAPL", Side.SELL, Layer.MAXDIFF, Purpose.ENTRY, OrderType.LIMIT,
                                              0, None), exit=buy, closed=True))
    broker.wash_trade_check = False  # the state this test needs: both sides working
    assert tr._submit(buy)
    broker.wash_trade_check = True
    sell.target_qty = 12  # wants a replacement
    tr.send()
    assert bad == [] and sell.order_qty == 10 and "replacement waits" in (sell.waiting or "")
    buy.target_qty = 0  # the opposite order goes: the replacement follows
    tr.send()
    assert sell.order_qty == 12 and sell.waiting is None and bad == []


# ---- 2. one time-of-day budget ------------------------------------------------------------------


def test_build_and_engine_give_the_maxdiff_layer_the_same_budget():
    """The time-of-day share applies to the room the directional layer leaves, at build time and in the
    engine: with $95k directional of a $150k bucket, 20% of the $55k room at the open, not 20% of $150k."""
    p = params(maxdiff={"ramp_minutes": 1, "ramp_step_minutes": 1, "expire_minutes": 390},
               sizing={"maxdiff_max_active": 1})
    # the engine: one directional position of $95k and one maxdiff plan, sized by the dynamic rule
    op = plan([order("SPY", 950, 100.0)], [mplan("MSFT", 1, low=50.0, high=60.0)])
    b = bars({"SPY": 100.0, "MSFT": 55.0})
    eng, broker = setup(p, op, b)
    drive(eng, broker, b, stop=1, end_of_day=False)
    entry = eng.state.slots[0].entry
    room = 1.5 * EQUITY - 95_000
    assert p.maxdiff_budget(EQUITY, 95_000, time(9, 30)) == pytest.approx(0.2 * room)
    assert entry.target_qty == int(0.2 * room // entry.limit_price)
    # the build, from the same rule: capacity = share x (total bucket - directional cost)
    _, _, pk = build(p, at=time(11, 0))
    dir_cost = float(pk.directional["cost"].sum())
    assert pk.maxdiff_capacity == pytest.approx(0.4 * (1.5 * EQUITY - dir_cost))
    assert pk.maxdiff_capacity == pytest.approx(p.maxdiff_budget(EQUITY, dir_cost, time(11, 0), 2 * EQUITY))


# ---- 4. an expired plan listens again when room frees --------------------------------------------


def test_expired_plan_listens_again_when_an_exit_frees_room():
    p = params(leverage=FLAT, maxdiff={"expire_minutes": 30}, sizing={"maxdiff_max_active": 5})
    op = plan([order("AAPL", 1200, 100.0, "takeprofit", tp=101.0)], [mplan("MSFT", 1, low=95.0, room=25_000)])
    b = bars({"AAPL": 100.0, "MSFT": 100.0}, touch={"AAPL": {60: 101.0}})
    eng, broker = setup(p, op, b)
    drive(eng, broker, b, stop=45, end_of_day=False)
    assert plan_status(eng, 1) == PlanStatus.EXPIRED  # listened 30 minutes, the limit never touched
    assert not [o for o in broker.open_orders() if o.symbol == "MSFT"]
    drive(eng, broker, b, start=45, stop=59, end_of_day=False)
    assert plan_status(eng, 1) == PlanStatus.EXPIRED  # no room freed yet: it stays out (no churn)
    drive(eng, broker, b, start=59, stop=62, end_of_day=False)
    assert eng.state.directional[0].qty == 0  # the take-profit filled at minute 60: room freed
    assert plan_status(eng, 1) == PlanStatus.LISTENING
    [o] = [o for o in broker.open_orders() if o.symbol == "MSFT"]
    msft = [s for s in eng.state.slots if s.symbol == "MSFT"]
    assert len(msft) == 2 and o.client_order_id == msft[1].entry.client_id  # a new slot, a new order id


def test_expired_plan_stays_out_when_its_window_would_end_after_the_flatten_time():
    p = params(leverage=FLAT, maxdiff={"expire_minutes": 120}, sizing={"maxdiff_max_active": 5})
    op = plan([order("AAPL", 1200, 100.0, "takeprofit", tp=101.0)], [mplan("MSFT", 1, low=95.0, room=25_000)])
    b = bars({"AAPL": 100.0, "MSFT": 100.0}, touch={"AAPL": {300: 101.0}})  # 14:30: less than 120 min left
    eng, broker = setup(p, op, b)
    drive(eng, broker, b, stop=310, end_of_day=False)
    assert eng.state.directional[0].qty == 0
    assert plan_status(eng, 1) == PlanStatus.EXPIRED


def test_the_transition_table_allows_expired_to_queued_only():
    mp = MaxdiffPlanState(rank=1, symbol="X", side="buy", high_target=2.0, low_target=1.0, avg_return=0.01,
                          status=PlanStatus.EXPIRED)
    with pytest.raises(IllegalTransition):
        mp.move(PlanStatus.LISTENING)
    mp.move(PlanStatus.QUEUED)
    assert mp.status == PlanStatus.QUEUED


# ---- 3. maxdiff sizing from the maxdiff trade's own variance -------------------------------------


def test_scan_gives_each_maxdiff_side_its_own_return_std():
    """`maxdiff_return_std` is the std of the chosen side's daily maxdiff returns over the lookback window
    (for `both`, of the even mixture of the two sides), independent of the directional `return_std`."""
    bars_, uni, dates = market(n=60, T=200, seed=4, planted=False)  # a seed with a `both` side
    res = run_scan(PARAMS, _next_day(dates), FrameProvider(bars_, uni))
    opp = res.opportunities.set_index("symbol")
    panel = window_panel(bars_, _next_day(dates), PARAMS.scan.lookback_days)
    buy, sell = maxdiff_returns(panel, levels(panel, PARAMS.scan.atr_period))
    seen = set()
    for sym, row in opp.iterrows():
        j = list(panel.symbols).index(sym)
        b, s = buy[:, j][np.isfinite(buy[:, j])], sell[:, j][np.isfinite(sell[:, j])]
        if row["maxdiff_side"] == "buy":
            want = np.std(b, ddof=1)
        elif row["maxdiff_side"] == "sell":
            want = np.std(s, ddof=1)
        else:
            want = np.sqrt((b.var(ddof=1) + s.var(ddof=1)) / 2 + ((b.mean() - s.mean()) / 2) ** 2)
        assert row["maxdiff_return_std"] == pytest.approx(want, rel=1e-9), sym
        seen.add(row["maxdiff_side"])
    assert seen == {"buy", "sell", "both"}
    assert not np.allclose(opp["maxdiff_return_std"], opp["return_std"])


def test_kelly_sizes_maxdiff_plans_from_their_own_variance():
    p = params_from_dict({"sizing": {"maxdiff_rule": "kelly", "maxdiff_max_active": 100}})
    o = opps_table(40, 0)
    o["return_std"] = 5.0  # a directional std that would size every maxdiff plan at almost nothing
    o["maxdiff_return_std"] = np.linspace(0.02, 0.2, len(o))
    v = validate_opportunities(o, p, "t").valid
    t = build_targets(v, p, "greedy")
    pk = pack_layers(t, v, p, 100_000.0, 200_000.0, method="greedy")
    md = pk.maxdiff.set_index("symbol")
    sd = v.set_index("symbol")["maxdiff_return_std"]
    for sym, r in md.iterrows():
        size = min(kelly_fraction(r["avg_return"], sd[sym] ** 2, pk.maxdiff_budget / 100_000.0,
                                  p.sizing.kelly_fraction) * 100_000.0, pk.maxdiff_capacity)
        assert r["room_needed"] == pytest.approx(max(np.floor(size / r["limit_price"] + 1e-9), 1) * r["limit_price"])
    assert md["room_needed"].nunique() > 5  # sized plan by plan, not all at one floor


def test_kelly_without_the_maxdiff_std_is_a_clear_error():
    p = params_from_dict({"sizing": {"maxdiff_rule": "kelly"}})
    o = opps_table(40, 0)
    o["return_std"] = 0.02  # the directional std is no stand-in
    v = validate_opportunities(o, p, "t").valid
    with pytest.raises(BadInputError, match="maxdiff_return_std"):
        pack_layers(build_targets(v, p, "greedy"), v, p, 100_000.0, 200_000.0, method="greedy")
    o["maxdiff_return_std"] = -1.0
    with pytest.raises(BadInputError, match=r"row 2.*maxdiff_return_std"):
        validate_opportunities(o, p, "t")
