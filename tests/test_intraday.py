"""The intraday engine on crafted minute bars: rotation, time budgets, partial fills, ramps,
consolidation, wash-trade avoidance; invariants over many seeded days; restart equals no restart."""

from __future__ import annotations

from datetime import date, datetime

import numpy as np
import pandas as pd
import pytest
from factories import make_plan, planned_order

from wolfkit.broker.base import (
    InsufficientBuyingPower,
    OrderRequest,
    OrderStatus,
    WashTradeRejected,
)
from wolfkit.broker.sim import SimBroker
from wolfkit.config import params_from_dict
from wolfkit.domain import (
    Layer,
    MaxdiffSide,
    OrderType,
    PlanStatus,
    Side,
    Strategy,
    TimeInForce,
)
from wolfkit.intraday import (
    IntradayEngine,
    LegState,
    ramp_price,
)
from wolfkit.ledger import Ledger
from wolfkit.orders import MaxdiffPlan, OrderPlan, PlannedOrder
from wolfkit.replay import SessionBars, drive

SESSION = date(2025, 6, 2)  # a Monday, full session
EQUITY = 100_000.0


def params(**over):
    base = {"leverage": {"directional_max": 1.3, "total_max": 1.5}}
    for k, v in over.items():
        base.setdefault(k, {}).update(v)
    return params_from_dict(base)


FLAT = {"maxdiff_time_shares": [{"start": "09:30", "share": 1.0}]}


def bars(close: dict[str, np.ndarray | float], touch: dict[str, dict[int, float]] | None = None,
         minutes: int = 390) -> SessionBars:
    """Bars at `close` (constant or per minute) with a ±0.02% range; `touch[sym][t] = price` extends
    minute t's range to reach that price."""
    times = pd.date_range(pd.Timestamp(f"{SESSION} 09:30", tz="America/New_York"), periods=minutes, freq="1min")
    syms = sorted(close)
    c = np.column_stack([np.broadcast_to(np.asarray(close[s], dtype=float), (minutes,)) for s in syms])
    hi, lo = c * 1.0002, c * 0.9998
    for s, marks in (touch or {}).items():
        j = syms.index(s)
        for t, px in marks.items():
            hi[t, j] = max(hi[t, j], px)
            lo[t, j] = min(lo[t, j], px)
    return SessionBars(syms, times, c.copy(), hi, lo, c)


def order(sym: str, qty: int, price: float, strategy: Strategy | str = Strategy.SIMPLE, tp: float | None = None,
          sl: float | None = None, side: Side = Side.BUY) -> PlannedOrder:
    return planned_order(sym, qty, price, run_id="t", side=side, equity=EQUITY, strategy=Strategy(strategy),
                         cap_tier="mega", take_profit=tp, stop_loss=sl)


def mplan(sym: str, rank: int, side: MaxdiffSide | str = MaxdiffSide.BUY, low: float = 95.0, high: float = 105.0,
          room: float = 0.0) -> MaxdiffPlan:
    return MaxdiffPlan(symbol=sym, high_target=high, low_target=low, side=MaxdiffSide(side), avg_return=0.01 / rank,
                       status=PlanStatus.QUEUED, rank=rank, room_needed=room, qty=0)


def plan(orders: list[PlannedOrder], plans: list[MaxdiffPlan], run_id: str = "t") -> OrderPlan:
    """The given orders and maxdiff plans on this file's session and 2x margin account."""
    return make_plan(pack=(), extra=orders, maxdiff_plans=plans, run_id=run_id, as_of=SESSION, equity=EQUITY,
                     buying_power=2 * EQUITY)


def setup(p, op, b, **kw):
    broker = SimBroker(EQUITY, 2.0, **kw)
    eng = IntradayEngine.start(p, op, broker, equity=EQUITY, session=SESSION)
    return eng, broker


def open_orders(broker: SimBroker, sym: str) -> list:
    return [o for o in broker.open_orders() if o.symbol == sym]


def plan_status(eng: IntradayEngine, rank: int) -> PlanStatus:
    return next(p.status for p in eng.state.plans if p.rank == rank)


# ---- pure pieces ---------------------------------------------------------------------------------


def test_ramp_steps_and_bound():
    p = params()
    got = [ramp_price(p, Side.BUY, 100.0, m) for m in (0, 9.9, 10, 20, 59, 60, 61, 300)]
    assert got == [100.10, 100.10, 100.16, 100.23, 100.43, 100.50, 100.50, 100.50]
    assert ramp_price(p, Side.SELL, 200.0, 0) == 199.80 and ramp_price(p, Side.SELL, 200.0, 90) == 199.00


# ---- scenarios -----------------------------------------------------------------------------------


def test_directional_exit_frees_room_and_queued_plan_rotates_in():
    p = params(leverage=FLAT, sizing={"maxdiff_max_active": 5})
    op = plan([order("AAPL", 1200, 100.0, "takeprofit", tp=101.0)],
              [mplan("MSFT", 1, room=25_000), mplan("NVDA", 2, room=25_000)])
    b = bars({"AAPL": 100.0, "MSFT": 100.0, "NVDA": 100.0}, touch={"AAPL": {60: 101.0}})
    eng, broker = setup(p, op, b)
    drive(eng, broker, b, stop=30)
    # 1.2x directional leaves 0.3x = $30k: room for one $25k plan
    assert plan_status(eng, 1) == PlanStatus.LISTENING and plan_status(eng, 2) == PlanStatus.QUEUED
    assert not open_orders(broker, "NVDA")
    drive(eng, broker, b, start=30, stop=62)
    assert eng.state.directional[0].qty == 0  # the take-profit filled at minute 60
    assert plan_status(eng, 2) == PlanStatus.LISTENING
    [o] = open_orders(broker, "NVDA")
    assert o.side == Side.BUY and o.qty * o.limit_price <= 75_000 + 1e-6


def test_time_of_day_boundary_changes_the_budget():
    p = params(maxdiff={"ramp_minutes": 1, "ramp_step_minutes": 1, "expire_minutes": 390})
    op = plan([], [mplan("MSFT", 1)])
    b = bars({"MSFT": 100.0})
    eng, broker = setup(p, op, b)
    drive(eng, broker, b, stop=90)  # up to 10:59
    [before] = open_orders(broker, "MSFT")
    lim = before.limit_price
    assert before.qty == int(0.2 * 1.5 * EQUITY // lim)
    drive(eng, broker, b, start=90, stop=91)  # the 11:00 bar
    [after] = open_orders(broker, "MSFT")
    assert after.qty == int(0.4 * 1.5 * EQUITY // lim)
    assert after.client_order_id != before.client_order_id and after.replaces == before.id


def test_partial_fill_then_leverage_change_resizes_the_remainder():
    p = params(maxdiff={"ramp_minutes": 1, "ramp_step_minutes": 1, "expire_minutes": 390})
    op = plan([], [mplan("MSFT", 1, low=100.0, high=110.0)])
    # price sits at 101 and dips to the limit once, at 10:30
    b = bars({"MSFT": 101.0}, touch={"MSFT": {60: 100.0}})
    eng, broker = setup(p, op, b, partial_fill_prob=1.0, seed=3)
    drive(eng, broker, b, stop=61)
    slot = eng.state.slots[0]
    filled = slot.entry.filled_qty
    lim = slot.entry.limit_price
    assert 0 < filled < int(30_000 // lim)
    [o] = open_orders(broker, "MSFT")
    # already resized in the same event: the room left after the fill, at the limit
    assert o.qty - o.filled_qty == int((30_000 - filled * slot.entry.avg_price) // lim)
    drive(eng, broker, b, start=61, stop=91)  # 11:00: the budget doubles
    [o2] = open_orders(broker, "MSFT")
    assert slot.entry.filled_qty == filled  # fills kept; only the remainder changes
    free = 0.4 * 1.5 * EQUITY - filled * slot.entry.avg_price
    assert o2.qty - o2.filled_qty == int(free // lim)
    assert eng.exposure().maxdiff <= 0.4 * 1.5 * EQUITY + 1e-6


def test_ramp_replaces_the_order_on_schedule_and_stops_at_its_bound():
    p = params(maxdiff={"expire_minutes": 390})
    op = plan([], [mplan("MSFT", 1, low=100.0, high=110.0)])
    b = bars({"MSFT": 102.0})
    eng, broker = setup(p, op, b)
    seen: list[tuple[int, float, str]] = []
    for t in range(0, 85):  # before 11:00, when the budget (and so the qty) changes
        drive(eng, broker, b, start=t, stop=t + 1)
        [o] = open_orders(broker, "MSFT")
        seen.append((t, o.limit_price, o.client_order_id))
    changes = [(t, px) for (t, px, _), (_, prev, _) in zip(seen[1:], seen[:-1]) if px != prev]
    # activated on the first bar (minute 0): steps every 10 minutes, at the bound after 60
    assert seen[0][1] == 100.10
    assert changes == [(10, 100.16), (20, 100.23), (30, 100.30), (40, 100.36), (50, 100.43), (60, 100.50)]
    assert len({cid for _, _, cid in seen}) == 7  # a new client id per replacement, none reused


def test_two_same_side_plans_on_one_symbol_consolidate():
    p = params(leverage=FLAT)
    op = plan([], [mplan("AAPL", 1, low=100.0), mplan("AAPL", 2, low=99.5), mplan("MSFT", 3, low=50.0)])
    b = bars({"AAPL": 103.0, "MSFT": 60.0})
    eng, broker = setup(p, op, b)
    drive(eng, broker, b, stop=5)
    [o] = open_orders(broker, "AAPL")
    assert o.side == Side.BUY and o.limit_price == ramp_price(p, Side.BUY, 99.5, 4)  # the more conservative
    share = 1.5 * EQUITY / 3  # three listening plans share the bucket equally
    assert o.qty == int(2 * share // o.limit_price)
    assert plan_status(eng, 1) == plan_status(eng, 2) == PlanStatus.LISTENING


def test_opposite_side_plan_waits_instead_of_a_wash_trade():
    p = params(leverage=FLAT, maxdiff={"expire_minutes": 30})
    op = plan([], [mplan("AAPL", 1, side="buy", low=95.0), mplan("AAPL", 2, side="sell", high=110.0)])
    b = bars({"AAPL": 100.0})
    eng, broker = setup(p, op, b)  # the sim refuses wash trades: a submission would raise
    drive(eng, broker, b, stop=20)
    [o] = open_orders(broker, "AAPL")
    assert o.side == Side.BUY
    sell_slot = next(s for s in eng.state.slots if s.side == Side.SELL)
    assert plan_status(eng, 2) == PlanStatus.LISTENING and sell_slot.entry.state == LegState.IDLE
    assert not any(x.status == OrderStatus.REJECTED for x in broker.orders())
    drive(eng, broker, b, start=20, stop=35)  # the buy expires at 30 minutes: the sell goes out
    assert plan_status(eng, 1) == PlanStatus.EXPIRED
    [o] = open_orders(broker, "AAPL")
    assert o.side == Side.SELL


def test_filled_buy_exits_at_predicted_high_and_pl_is_booked():
    p = params(leverage=FLAT, maxdiff={"ramp_minutes": 1, "ramp_step_minutes": 1})
    op = plan([], [mplan("AAPL", 1, low=100.0, high=102.0)])
    b = bars({"AAPL": 101.0}, touch={"AAPL": {10: 99.9, 50: 102.5}})
    eng, broker = setup(p, op, b)
    drive(eng, broker, b)
    s = eng.state.slots[0]
    assert s.entry.filled_qty > 0 and s.exit is not None and s.exit.filled_qty == s.entry.filled_qty
    assert s.exit.avg_price == 102.0
    assert eng.state.realized["maxdiff"] == pytest.approx(s.entry.filled_qty * (102.0 - s.entry.avg_price))
    assert plan_status(eng, 1) == PlanStatus.FILLED
    assert not broker.positions()


def test_stop_loss_and_end_of_day_close_directional():
    p = params()
    op = plan([order("AAPL", 100, 100.0, "takeprofit", tp=105.0, sl=98.0), order("MSFT", 50, 200.0)], [])
    b = bars({"AAPL": 100.0, "MSFT": 200.0}, touch={"AAPL": {100: 97.5}})
    eng, broker = setup(p, op, b)
    drive(eng, broker, b)
    aapl, msft = eng.state.directional
    # sent as a bracket (as the executor does): the broker's stop leg closed it, the take-profit leg was cancelled
    assert aapl.bracket and aapl.qty == 0 and [x.purpose for x in aapl.exits] == ["tp", "stop"]
    assert aapl.exits[1].filled_qty == 100 and aapl.exits[0].filled_qty == 0
    assert msft.qty == 0 and msft.exits[0].purpose == "close"  # flattened before the close
    assert not broker.positions() and not broker.open_orders()


def test_directional_kept_overnight_when_asked():
    p = params(intraday={"close_directional_eod": False})
    op = plan([order("MSFT", 50, 200.0)], [])
    b = bars({"MSFT": 200.0})
    eng, broker = setup(p, op, b)
    drive(eng, broker, b)
    assert [(x.symbol, x.qty) for x in broker.positions()] == [("MSFT", 50)]


# ---- invariants over many seeded days ------------------------------------------------------------


def random_day(seed: int, n: int = 24):
    rng = np.random.default_rng(seed)
    syms = [f"S{i:02d}" for i in range(n)]
    p0 = rng.uniform(20, 300, n)
    steps = rng.normal(0, 0.0012, (390, n))
    close = p0 * np.exp(np.cumsum(steps, axis=0))
    span = np.abs(rng.normal(0, 0.0008, (390, n)))
    times = pd.date_range(pd.Timestamp(f"{SESSION} 09:30", tz="America/New_York"), periods=390, freq="1min")
    b = SessionBars(syms, times, close, close * (1 + span), close * (1 - span), close)
    lo, hi = close.min(axis=0), close.max(axis=0)
    orders = []
    for i in range(10):
        strat = ["takeprofit", "highlow", "simple"][i % 3]
        qty = int(EQUITY * 0.095 // p0[i])
        orders.append(order(syms[i], qty, float(p0[i]), strat, tp=round(p0[i] * rng.uniform(1.002, 1.02), 2),
                            sl=round(p0[i] * rng.uniform(0.97, 0.995), 2)))
    plans = []
    for r, j in enumerate(rng.permutation(n)[:18], start=1):
        jitter = rng.uniform(0.998, 1.004)
        sym = syms[j]
        plans.append(mplan(sym, r, side=str(rng.choice(["buy", "sell", "both"])),
                           low=round(lo[j] * jitter, 2), high=round(hi[j] / jitter, 2),
                           room=float(rng.choice([0.0, 5_000.0, 12_000.0]))))
    plans.append(mplan(plans[0].symbol, 19, side=plans[0].side if plans[0].side != "both" else "buy",
                       low=plans[0].low_target, high=plans[0].high_target))
    return b, plan(orders, plans, run_id=f"day{seed}")


def test_invariants_hold_at_every_event_over_many_days():
    p = params(maxdiff={"expire_minutes": 45, "ramp_minutes": 30, "ramp_step_minutes": 5},
               sizing={"maxdiff_max_active": 6})
    checked = 0

    def check(eng: IntradayEngine, now: datetime) -> None:
        nonlocal checked
        e = eng.exposure()
        assert e.directional <= p.leverage.directional_max * EQUITY + 1e-6, now
        assert e.total <= p.leverage.total_max * EQUITY + 1e-6, now
        for s in eng.symbols:
            assert eng.positions_on(s) <= p.leverage.max_positions_per_symbol, (now, s)
        checked += 1

    fills = 0
    refused: list = []
    for seed in range(12):
        b, op = random_day(seed)
        broker = SimBroker(EQUITY, 2.0, partial_fill_prob=0.3, seed=seed)
        submit = broker.submit

        def watched(req, submit=submit):
            try:
                return submit(req)
            except (WashTradeRejected, InsufficientBuyingPower) as e:
                refused.append((req, e))
                raise

        broker.submit = watched
        eng = IntradayEngine.start(p, op, broker, equity=EQUITY, session=SESSION)
        drive(eng, broker, b, check=check)
        fills += sum(1 for f in eng.fills if f.layer == Layer.MAXDIFF)
        # every share the engine believes it holds is at the broker, and the day ends flat
        assert not broker.positions() and not broker.open_orders()
    assert checked == 12 * 391 and fills > 20  # the maxdiff layer did trade
    assert refused == []  # never a wash-trade or buying-power rejection


# ---- restart -------------------------------------------------------------------------------------


def _comparable(eng: IntradayEngine) -> dict:
    return eng.state.model_dump(mode="json")


@pytest.mark.parametrize("kill_at", [47, 200])
def test_restart_mid_session_ends_in_the_same_state(tmp_path, kill_at):
    p = params(maxdiff={"expire_minutes": 45, "ramp_minutes": 30, "ramp_step_minutes": 5})
    b, op = random_day(5)

    ref_broker = SimBroker(EQUITY, 2.0, partial_fill_prob=0.3, seed=1)
    ref = IntradayEngine.start(p, op, ref_broker, equity=EQUITY, session=SESSION)
    drive(ref, ref_broker, b)

    broker = SimBroker(EQUITY, 2.0, partial_fill_prob=0.3, seed=1)
    with Ledger(tmp_path / "l.sqlite", durable=False) as ledger:
        first = IntradayEngine.start(p, op, broker, equity=EQUITY, session=SESSION, ledger=ledger)
        drive(first, broker, b, stop=kill_at)
        del first  # killed: only the ledger and the broker survive
        again = IntradayEngine.resume(p, broker, ledger, op.run_id)
        assert again.position_mismatches() == {} and again.net_positions()  # positions agree with the broker
        drive(again, broker, b, start=kill_at)
        assert _comparable(again) == _comparable(ref)
        ids = [o.client_order_id for o in broker.orders()]
        assert len(ids) == len(set(ids)) == len(ref_broker.orders())
        assert ledger.fills_for_run(op.run_id)
        # every order sent is in the ledger's event trail: an intent written before its acknowledgement
        from wolfkit.ledger import EventKind

        seen: set[str] = set()
        acks = 0
        for ev in ledger.events(op.run_id):
            if ev.kind == EventKind.INTENT:
                seen.add(ev.client_order_id)
            elif ev.kind == EventKind.ACK:
                assert ev.client_order_id in seen
                acks += 1
        assert acks == len(broker.orders())  # one acknowledgement per order the broker holds


def test_restart_after_a_submit_whose_answer_was_lost(tmp_path):
    """A kill between sending an order and saving the state: the resumed engine adopts the order
    (found by its deterministic client id) instead of submitting it twice."""
    p = params(leverage=FLAT, maxdiff={"expire_minutes": 390})
    op = plan([], [mplan("MSFT", 1, low=100.0)])
    b = bars({"MSFT": 102.0})
    broker = SimBroker(EQUITY, 2.0)
    with Ledger(tmp_path / "l.sqlite", durable=False) as ledger:
        eng = IntradayEngine.start(p, op, broker, equity=EQUITY, session=SESSION, ledger=ledger)
        drive(eng, broker, b, stop=3)
        saved = ledger._db.execute("SELECT state FROM intraday_state").fetchone()[0]
        drive(eng, broker, b, start=3, stop=11)  # minute 10: the ramp replaces the order
        from wolfkit.ledger import save_engine_state

        save_engine_state(ledger, op.run_id, SESSION, saved)  # …but the state after minute 2 is all that survived
        again = IntradayEngine.resume(p, broker, ledger, op.run_id)
        drive(again, broker, b, start=11, stop=31)
        [o] = open_orders(broker, "MSFT")
        assert o.limit_price == ramp_price(p, Side.BUY, 100.0, 30)  # the ramp carried on after the restart
        ids = [o.client_order_id for o in broker.orders()]
        assert len(ids) == len(set(ids))


# ---- live: polling, adopting the executor's orders (the stream: test_intraday_stream.py) ---------


def test_polling_mode_steps_on_the_clock():
    from datetime import timedelta

    from wolfkit.intraday import run_polling

    p = params(leverage=FLAT)
    op = plan([order("MSFT", 100, 200.0)], [mplan("AAPL", 1, low=100.0, high=102.0)])
    b = bars({"AAPL": 101.0, "MSFT": 200.0}, touch={"AAPL": {3: 99.0}})
    eng, broker = setup(p, op, b)
    clock = {"t": 0}
    broker.on_bar(b.symbols, b.high[0], b.low[0], b.close[0], b.times[0].to_pydatetime())

    def now() -> datetime:
        return b.times[clock["t"]].to_pydatetime()

    def sleep(_s: float) -> None:  # a minute passes: the market moves
        clock["t"] += 1
        t = clock["t"]
        broker.on_bar(b.symbols, b.high[t], b.low[t], b.close[t], b.times[t].to_pydatetime())

    n = run_polling(eng, now=now, sleep=sleep, until=b.times[0].to_pydatetime() + timedelta(minutes=8),
                    poll_seconds=60)
    assert n == 8
    assert eng.state.directional[0].qty == 100
    assert eng.state.slots[0].entry.filled_qty > 0


def test_executor_opening_orders_are_adopted_or_cancelled_never_duplicated():
    from wolfkit.broker.base import OrderRequest

    p = params(leverage=FLAT, sizing={"maxdiff_max_active": 1})
    md = [planned_order(s, 10, px, run_id="t", layer=Layer.MAXDIFF, priority=1, cap_tier="mega", weight=0.01)
          for s, px in (("AAPL", 95.09), ("MSFT", 49.05))]
    op = plan(md, [mplan("AAPL", 1, low=95.0), mplan("MSFT", 2, low=49.0)])
    b = bars({"AAPL": 100.0, "MSFT": 50.0})
    broker = SimBroker(EQUITY, 2.0)
    broker.on_bar(b.symbols, b.high[0], b.low[0], b.close[0], b.times[0].to_pydatetime())
    for o in md:  # the executor sent them at the open
        broker.submit(OrderRequest(o.symbol, o.qty, o.side, o.type, o.time_in_force, o.client_order_id,
                                   o.limit_price))
    eng = IntradayEngine.start(p, op, broker, equity=EQUITY, session=SESSION)
    drive(eng, broker, b, start=1, stop=5)
    [a] = open_orders(broker, "AAPL")
    assert a.replaces == broker.get_by_client_id(md[0].client_order_id).id  # adopted, then resized
    assert not open_orders(broker, "MSFT")  # only one may listen: the other opening order is cancelled
    assert broker.get_by_client_id(md[1].client_order_id).status == OrderStatus.CANCELED


def test_entry_without_bracket_gets_engine_exits():
    """An entry the executor sent without legs: the engine rests the take-profit and watches the stop."""
    p = params()
    po = order("AAPL", 100, 100.0, "takeprofit", tp=105.0, sl=98.0)
    op = plan([po], [])
    b = bars({"AAPL": 100.0}, touch={"AAPL": {100: 97.5}})
    broker = SimBroker(EQUITY, 2.0)
    broker.on_bar(b.symbols, b.high[0], b.low[0], b.close[0], b.times[0].to_pydatetime())
    broker.submit(OrderRequest("AAPL", 100, Side.BUY, OrderType.MARKET, TimeInForce.DAY, po.client_order_id))
    eng = IntradayEngine.start(p, op, broker, equity=EQUITY, session=SESSION)
    drive(eng, broker, b, start=1, stop=50)
    d = eng.state.directional[0]
    assert not d.bracket and d.qty == 100
    [tp] = open_orders(broker, "AAPL")
    assert (tp.side, tp.type, tp.limit_price, tp.qty) == (Side.SELL, OrderType.LIMIT, 105.0, 100)
    drive(eng, broker, b, start=50, stop=103)  # minute 100 trades through the stop
    assert d.qty == 0 and [x.purpose for x in d.exits] == ["tp", "stop"] and d.exits[1].filled_qty == 100
    assert not broker.positions() and not broker.open_orders()
    assert len([o for o in broker.orders() if o.client_order_id == po.client_order_id]) == 1  # adopted, not resent


def test_directional_entries_are_capped_to_their_bucket():
    p = params()
    op = plan([order("AAPL", 1000, 100.0), order("MSFT", 1000, 50.0)], [])  # $150k planned, bucket $130k
    b = bars({"AAPL": 100.0, "MSFT": 50.0})
    eng, broker = setup(p, op, b)
    assert [d.entry.target_qty for d in eng.state.directional] == [1000, 600]  # priority order keeps AAPL whole
    drive(eng, broker, b, stop=3)
    assert eng.exposure().directional <= 1.3 * EQUITY + 1e-6


def test_directional_entry_refused_for_buying_power_is_resized_not_looped():
    p = params()
    op = plan([order("AAPL", 1300, 100.0)], [])  # $130k fits the bucket, not a $100k cash account
    b = bars({"AAPL": 100.0})
    broker = SimBroker(EQUITY, 1.0)
    eng = IntradayEngine.start(p, op, broker, equity=EQUITY, session=SESSION)
    drive(eng, broker, b, stop=5)
    e = eng.state.directional[0].entry
    assert e.filled_qty == 1000 and e.state == LegState.DONE  # resized to the reported buying power
    assert [o.qty for o in broker.orders()] == [1000]  # one accepted resubmission, nothing retried after


def test_polling_mode_against_the_emulator(monkeypatch):
    """The engine over HTTP: alpaca-py's clients (AlpacaBroker) → the emulator on 127.0.0.1 → a SimBroker."""
    from datetime import timedelta

    from wolfkit.broker.alpaca import AlpacaBroker
    from wolfkit.broker.emulator import create_app, serve
    from wolfkit.intraday import run_polling

    p = params(leverage=FLAT, maxdiff={"ramp_minutes": 1, "ramp_step_minutes": 1})
    op = plan([order("MSFT", 100, 200.0)], [mplan("AAPL", 1, low=100.0, high=102.0)])
    b = bars({"AAPL": 101.0, "MSFT": 200.0}, touch={"AAPL": {3: 99.0, 6: 102.5}})
    clock = {"t": 0}
    sim = SimBroker(EQUITY, 2.0, clock=lambda: b.times[clock["t"]].to_pydatetime())
    sim.on_bar(b.symbols, b.high[0], b.low[0], b.close[0], b.times[0].to_pydatetime())
    srv = serve(create_app(sim))
    try:
        for k, v in {"APCA_API_KEY_ID": "emulator-key", "APCA_API_SECRET_KEY": "emulator-secret",
                     "APCA_API_BASE_URL": srv.url, "APCA_API_DATA_URL": srv.url}.items():
            monkeypatch.setenv(k, v)
        eng = IntradayEngine.start(p, op, AlpacaBroker(timeout=5), equity=EQUITY, session=SESSION)

        def sleep(_s: float) -> None:
            clock["t"] += 1
            t = clock["t"]
            sim.on_bar(b.symbols, b.high[t], b.low[t], b.close[t], b.times[t].to_pydatetime())

        run_polling(eng, now=lambda: b.times[clock["t"]].to_pydatetime(), sleep=sleep,
                    until=b.times[0].to_pydatetime() + timedelta(minutes=9), poll_seconds=60)
    finally:
        srv.shutdown()
    slot = eng.state.slots[0]
    assert eng.state.directional[0].qty == 100
    assert slot.entry.filled_qty > 0 and slot.exit is not None and slot.exit.filled_qty == slot.entry.filled_qty
    assert {x.symbol: x.qty for x in sim.positions()} == {"MSFT": 100}
