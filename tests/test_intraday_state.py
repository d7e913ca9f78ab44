"""The intraday engine's transition tables: every illegal change raises, every legal one is reachable,
and a replayed session only ever moves legs and plans through the tables."""

from __future__ import annotations

from itertools import product

import numpy as np
import pytest
from test_intraday import FLAT, bars, mplan, order, params, plan, setup

from wolfkit.domain import Layer, OrderType, PlanStatus, Side
from wolfkit.intraday import (
    LEG_TRANSITIONS,
    PLAN_TRANSITIONS,
    IllegalTransition,
    Leg,
    LegEvent,
    LegState,
    Market,
    MaxdiffPlanState,
    Purpose,
)


def leg(state: LegState) -> Leg:
    x = Leg.new("k", "AAPL", Side.BUY, Layer.MAXDIFF, Purpose.EXIT, OrderType.LIMIT, 10, 100.0)
    x.state = state
    return x


def md_plan(status: PlanStatus) -> MaxdiffPlanState:
    return MaxdiffPlanState(rank=1, symbol="AAPL", side="buy", high_target=105.0, low_target=95.0,
                            avg_return=0.01, status=status)


@pytest.mark.parametrize(("state", "event"), list(product(LegState, LegEvent)))
def test_leg_moves_only_by_the_table(state, event):
    x = leg(state)
    if (state, event) in LEG_TRANSITIONS:
        assert x.move(event) == LEG_TRANSITIONS[(state, event)] == x.state
    else:
        with pytest.raises(IllegalTransition, match=f"{event}.*{state}"):
            x.move(event)
        assert x.state == state  # refused: nothing changed


def test_leg_table_has_illegal_moves_and_names_the_reopen():
    illegal = set(product(LegState, LegEvent)) - set(LEG_TRANSITIONS)
    assert illegal == {(LegState.DONE, LegEvent.ENDED), (LegState.IDLE, LegEvent.REOPENED),
                       (LegState.OPEN, LegEvent.REOPENED)}
    # the only way back from DONE to IDLE is the named re-open
    assert [e for (s, e), t in LEG_TRANSITIONS.items() if (s, t) == (LegState.DONE, LegState.IDLE)] == [
        LegEvent.REOPENED]


def test_every_legal_leg_transition_is_reachable_from_a_new_leg():
    reached, frontier = {LegState.IDLE}, [LegState.IDLE]
    while frontier:
        s = frontier.pop()
        for (src, _), dst in LEG_TRANSITIONS.items():
            if src == s and dst not in reached:
                reached.add(dst)
                frontier.append(dst)
    assert {src for src, _ in LEG_TRANSITIONS} <= reached == set(LegState)


@pytest.mark.parametrize(("src", "dst"), list(product(PlanStatus, PlanStatus)))
def test_plan_moves_only_by_the_table(src, dst):
    p = md_plan(src)
    if (src, dst) in PLAN_TRANSITIONS:
        p.move(dst)
        assert p.status == dst
    else:
        with pytest.raises(IllegalTransition):
            p.move(dst)
        assert p.status == src


def test_every_legal_plan_transition_is_reachable_from_the_queue():
    reached, frontier = {PlanStatus.QUEUED}, [PlanStatus.QUEUED]
    while frontier:
        s = frontier.pop()
        for src, dst in PLAN_TRANSITIONS:
            if src == s and dst not in reached:
                reached.add(dst)
                frontier.append(dst)
    assert reached == set(PlanStatus)
    assert {(PlanStatus.FILLED, d) for d in PlanStatus} & PLAN_TRANSITIONS == set()  # filled is final
    # expired only goes back to the queue (room freed, its window still open: test_intraday_rules)
    assert {(PlanStatus.EXPIRED, d) for d in PlanStatus} & PLAN_TRANSITIONS == {(PlanStatus.EXPIRED, PlanStatus.QUEUED)}


def test_a_replayed_session_moves_legs_and_plans_only_through_the_tables(monkeypatch):
    """A session with a take-profit exit, maxdiff fills, expiries, rotation and the close: the engine
    takes the legal transitions (recorded) and never an illegal one (it would raise)."""
    seen_legs: set[tuple[LegState, LegEvent]] = set()
    seen_plans: set[tuple[PlanStatus, PlanStatus]] = set()
    leg_move, plan_move = Leg.move, MaxdiffPlanState.move

    def rec_leg(self, event):
        seen_legs.add((self.state, event))
        return leg_move(self, event)

    def rec_plan(self, status):
        seen_plans.add((self.status, status))
        return plan_move(self, status)

    monkeypatch.setattr(Leg, "move", rec_leg)
    monkeypatch.setattr(MaxdiffPlanState, "move", rec_plan)
    p = params(leverage=FLAT, maxdiff={"ramp_minutes": 1, "ramp_step_minutes": 1, "expire_minutes": 30})
    op = plan([order("MSFT", 100, 200.0, strategy="takeprofit", tp=201.0)],
              [mplan("AAPL", 1, low=100.0, high=102.0), mplan("NVDA", 2, low=50.0, high=60.0)])
    b = bars({"AAPL": 101.0, "MSFT": 200.0, "NVDA": 55.0},
             touch={"AAPL": {5: 99.5, 40: 102.5}, "MSFT": {20: 201.5}})
    eng, broker = setup(p, op, b)
    idx = np.array([b.symbols.index(s) for s in eng.symbols])
    for t in range(len(b.times)):
        now = b.times[t].to_pydatetime()
        broker.on_bar(b.symbols, b.high[t], b.low[t], b.close[t], now)
        eng.step(now, Market(b.high[t][idx], b.low[t][idx], b.close[t][idx]))
    assert seen_legs <= set(LEG_TRANSITIONS) and seen_plans <= PLAN_TRANSITIONS
    assert {(LegState.IDLE, LegEvent.WORKING), (LegState.OPEN, LegEvent.WORKING),
            (LegState.OPEN, LegEvent.COMPLETED)} <= seen_legs
    assert {(PlanStatus.QUEUED, PlanStatus.LISTENING), (PlanStatus.LISTENING, PlanStatus.FILLED),
            (PlanStatus.LISTENING, PlanStatus.EXPIRED)} <= seen_plans


def test_cancels_refusals_and_the_close_take_the_other_legal_transitions(monkeypatch):
    """A working entry cancelled at the broker goes back to IDLE and out again; an entry refused for
    good is DONE from IDLE; a maxdiff exit cancelled at the close while shares are held is re-opened
    (the named DONE -> IDLE) as a market exit."""
    from wolfkit.broker.base import OrderRejected
    from wolfkit.broker.sim import SimBroker

    seen: set[tuple[LegState, LegEvent]] = set()
    leg_move = Leg.move

    def rec_leg(self, event):
        seen.add((self.state, event))
        return leg_move(self, event)

    class RefusesBad(SimBroker):
        def submit(self, request):
            if request.symbol == "BAD":
                raise OrderRejected("symbol is not tradable")
            return super().submit(request)

    monkeypatch.setattr(Leg, "move", rec_leg)
    p = params(leverage=FLAT, maxdiff={"ramp_minutes": 1, "ramp_step_minutes": 1, "expire_minutes": 390})
    op = plan([order("BAD", 10, 20.0)], [mplan("AAPL", 1, low=100.0, high=102.0), mplan("NVDA", 2, low=50.0,
                                                                                         high=60.0)])
    b = bars({"AAPL": 101.0, "BAD": 20.0, "NVDA": 55.0}, touch={"AAPL": {5: 99.5}})
    eng, broker = setup(p, op, b)
    broker.__class__ = RefusesBad
    idx = np.array([b.symbols.index(s) for s in eng.symbols])
    cancelled = False
    for t in range(len(b.times)):
        now = b.times[t].to_pydatetime()
        broker.on_bar(b.symbols, b.high[t], b.low[t], b.close[t], now)
        nvda = next((s for s in eng.state.slots if s.symbol == "NVDA"), None)
        if t == 30 and nvda is not None and nvda.entry.order_id:
            broker.cancel(nvda.entry.order_id)  # cancelled at the broker, not by the engine
            cancelled = True
        eng.step(now, Market(b.high[t][idx], b.low[t][idx], b.close[t][idx]))
    assert cancelled
    assert {(LegState.OPEN, LegEvent.ENDED), (LegState.IDLE, LegEvent.WORKING), (LegState.IDLE, LegEvent.COMPLETED),
            (LegState.DONE, LegEvent.REOPENED)} <= seen <= set(LEG_TRANSITIONS)
    aapl = next(s for s in eng.state.slots if s.symbol == "AAPL")
    assert aapl.exit is not None and aapl.exit.type == OrderType.MARKET and aapl.qty == 0  # flattened at the close
