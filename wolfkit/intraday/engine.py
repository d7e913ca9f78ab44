"""The intraday engine: one object that steps the two layers through a session over a `Broker`.

It is driven by events — market prices (minute bars or quotes), order updates and the clock — and the
same code runs in a replayed session (`step(now, market)` after the simulated broker has seen the
minute's bars) and live (`wolfkit.intraday.live`). Each step: look up ids sent without a known
answer, let the layers decide (`wolfkit.intraday.decisions`), make the broker match
(`wolfkit.intraday.tracking`), and save the state (`wolfkit.intraday.state`) to the ledger.
"""

from __future__ import annotations

import logging
from datetime import date, datetime, timedelta
from typing import Callable

import numpy as np

from wolfkit.broker.base import Broker, BrokerError, OrderUpdate
from wolfkit.config import Params
from wolfkit.domain import Layer, PlanStatus, Side
from wolfkit.intraday.decisions import (
    decide_directional,
    decide_maxdiff,
    position_counts,
    session_close,
    session_open,
)
from wolfkit.intraday.state import (
    DirectionalPosition,
    EngineState,
    Exposure,
    FillRecord,
    Leg,
    Market,
    MaxdiffPlanState,
    Purpose,
    exposure_of,
)
from wolfkit.intraday.tracking import OrderTracker
from wolfkit.ledger import EventKind, Ledger, load_engine_state, save_engine_state
from wolfkit.orders import MaxdiffPlan, OrderPlan
from wolfkit.rebalance import RebalanceAction

log = logging.getLogger(__name__)


class IntradayEngine:
    """The two-layer engine over a `Broker`. Build with `start` (fresh) or `resume` (after a restart).

    `sleep` is what a 429 or a retry waits with (default `time.sleep`; injectable for tests).
    """

    def __init__(self, params: Params, state: EngineState, broker: Broker, *, ledger: Ledger | None = None,
                 sleep: Callable[[float], None] | None = None):
        self.params = params
        self.state = state
        self.broker = broker
        self.ledger = ledger
        self.orders = OrderTracker(params, state, broker, ledger, sleep)
        syms = sorted({d.symbol for d in state.directional} | {p.symbol for p in state.plans})
        self.symbols: list[str] = syms
        self.symbol_index = {s: i for i, s in enumerate(syms)}
        self._plan_by_rank = {p.rank: p for p in state.plans}
        self._market: Market | None = None
        self._saved_status: dict[int, PlanStatus] = {}
        self._close_at: datetime | None = None
        self._open_at: datetime | None = None

    # ---- construction -------------------------------------------------------------------------

    @classmethod
    def start(cls, params: Params, plan: OrderPlan, broker: Broker, *, equity: float | None = None,
              session: date | None = None, maxdiff: bool | None = None, ledger: Ledger | None = None,
              sleep: Callable[[float], None] | None = None) -> IntradayEngine:
        """A fresh engine for the plan's session: directional entries of the plan, maxdiff plans queued."""
        eq = equity if equity is not None else plan.account.equity
        md_on = params.maxdiff.enabled if maxdiff is None else maxdiff
        state = EngineState(run_id=plan.run_id, session=session or plan.as_of, equity=eq,
                            buying_power=plan.account.buying_power, maxdiff_enabled=md_on)
        # directional first, but never past its own bucket
        room = params.account(eq, plan.account.buying_power).directional_bucket
        for o in sorted(plan.orders, key=lambda o: o.priority):
            if o.layer == Layer.MAXDIFF:
                state.planned_ids[f"{o.symbol}-{o.side}"] = o.client_order_id
                continue
            ref = o.limit_price or o.est_price
            reduces = o.side == Side.SELL and o.rebalance in (RebalanceAction.TRIM, RebalanceAction.EXIT)
            qty = o.qty if reduces else min(o.qty, int(max(0.0, room) // ref))  # a sale of held shares takes no room
            if qty < o.qty:
                log.warning("%s: %d of %d planned shares fit the directional bucket", o.symbol, qty, o.qty)
            if qty == 0:
                continue
            room -= 0 if reduces else qty * ref
            entry = Leg(
                key=f"d-{o.symbol}-{o.side}-entry", symbol=o.symbol, side=o.side, layer=Layer.DIRECTIONAL,
                purpose=Purpose.ENTRY, type=o.type, target_qty=qty, limit_price=o.limit_price,
                ref_price=o.limit_price or o.est_price, client_id=o.client_order_id,
            )
            state.directional.append(DirectionalPosition(
                symbol=o.symbol, side=o.side, strategy=o.strategy, take_profit=o.take_profit,
                stop_loss=o.stop_loss, trail_amount=o.trail_amount, time_stop_minutes=o.time_stop_minutes,
                entry=entry, reduces=reduces,
            ))
        if md_on:
            for p in sorted(plan.maxdiff_plans, key=lambda p: p.rank):
                if p.avg_return < params.maxdiff.min_avg_return:
                    continue
                state.plans.append(MaxdiffPlanState(
                    rank=p.rank, symbol=p.symbol, side=p.side, high_target=p.high_target,
                    low_target=p.low_target, avg_return=p.avg_return, room_needed=p.room_needed,
                ))
        eng = cls(params, state, broker, ledger=ledger, sleep=sleep)
        eng._save_plans()
        return eng

    @classmethod
    def resume(cls, params: Params, broker: Broker, ledger: Ledger, run_id: str, *,
               sleep: Callable[[float], None] | None = None) -> IntradayEngine:
        """The engine as saved by its last step, reconciled with the broker (fills and cancels it missed)."""
        raw = load_engine_state(ledger, run_id)
        if raw is None:
            raise BrokerError(f"no saved intraday state for run {run_id!r} in {ledger.path}; start the engine instead")
        eng = cls(params, EngineState.model_validate_json(raw), broker, ledger=ledger, sleep=sleep)
        eng.reconcile()
        return eng

    # ---- what it knows ------------------------------------------------------------------------

    @property
    def fills(self) -> list[FillRecord]:
        """Every fill booked in this process, by layer."""
        return self.orders.fills

    def exposure(self) -> Exposure:
        """Committed exposure at cost by layer (`wolfkit.intraday.state`)."""
        return exposure_of(self.state)

    def net_positions(self) -> dict[str, int]:
        """The engine's signed net position per symbol across both layers (what the broker should hold)."""
        net: dict[str, int] = {}
        for d in self.state.directional:
            if d.qty:
                net[d.symbol] = net.get(d.symbol, 0) + (d.qty if d.side == Side.BUY else -d.qty)
        for s in self.state.slots:
            if s.qty:
                net[s.symbol] = net.get(s.symbol, 0) + (s.qty if s.side == Side.BUY else -s.qty)
        return {k: v for k, v in net.items() if v}

    def position_mismatches(self) -> dict[str, tuple[int, int]]:
        """symbol -> (engine net qty, broker qty) for the engine's symbols where the two differ."""
        mine = self.net_positions()
        theirs = {p.symbol: p.qty for p in self.broker.positions() if p.symbol in self.symbol_index}
        return {s: (mine.get(s, 0), theirs.get(s, 0)) for s in sorted(set(mine) | set(theirs))
                if mine.get(s, 0) != theirs.get(s, 0)}

    def positions_on(self, symbol: str) -> int:
        """Positions on `symbol` across both layers (the per-symbol limit counts these)."""
        return position_counts(self.state).get(symbol, 0)

    # ---- events -------------------------------------------------------------------------------

    def on_update(self, update: OrderUpdate) -> None:
        """One trade update (stream or poll): book fills and status changes of our orders; ignore others."""
        self.orders.on_update(update)

    def reconcile(self) -> None:
        """REST reconciliation (after a restart, and on a timer while streaming): look up every order we know or
        may have sent, book what happened while we were not listening, and say where positions differ."""
        self.orders.reconcile_legs()
        mismatch = self.position_mismatches()
        if mismatch:  # shares the engine cannot attribute to a layer: say so, never trade them blindly
            log.warning("positions differ from the broker after reconciling: %s", mismatch)
        if self.ledger is not None:
            self.ledger.record_event(self.state.run_id, EventKind.RECONCILED, None, None, at=self.state.now,
                                     mismatches={k: list(v) for k, v in mismatch.items()})

    def step(self, now: datetime, market: Market | None = None, *, poll: bool = True) -> None:
        """One event: book updates (polling), take in prices, then act (exits, sizing, ramps, rotation)."""
        self.state.now = now
        if poll:
            self.orders.drain()
        if market is not None:
            self._market = market
        self._act(now, market)
        if self.ledger is not None:
            self._save_plans()
            save_engine_state(self.ledger, self.state.run_id, self.state.session, self.state.model_dump_json())

    def _act(self, now: datetime, market: Market | None) -> None:
        for leg in self.state.legs():  # ids sent without a known answer first: decide on the live orders
            if leg.pending:
                self.orders.settle_pending(leg)
        if self._close_at is None:
            self._close_at = session_close(self.state.session, now)
        flatten = now >= self._close_at - timedelta(minutes=self.params.intraday.flatten_minutes)
        if self._open_at is None:
            self._open_at = session_open(self.state.session, now)
        decide_directional(self.state, self.params, market, self.symbol_index, flatten, self._price, self.orders,
                           self._open_at)
        if self.state.maxdiff_enabled:
            decide_maxdiff(self.state, self.params, now, flatten, self._price, self.orders, self._plan_by_rank)
        if not self.state.planned_checked:
            self.orders.cancel_unadopted()
        self.orders.send()

    def _price(self, symbol: str) -> float:
        """The symbol's last price: this event's close when it has one, else the last one seen."""
        m = self._market
        if m is not None:
            p = m.close[self.symbol_index[symbol]]
            if not np.isnan(p):
                self.state.last_price[symbol] = float(p)
        return self.state.last_price.get(symbol, float("nan"))

    def _save_plans(self) -> None:
        """Mirror plan statuses into the ledger's maxdiff_plans table (only rows that changed)."""
        if self.ledger is None:
            return
        saved = self._saved_status
        for p in self.state.plans:
            if saved.get(p.rank) == p.status:
                continue
            saved[p.rank] = p.status
            self.ledger.upsert_plan(self.state.session, self.state.run_id, MaxdiffPlan(
                symbol=p.symbol, high_target=p.high_target, low_target=p.low_target, side=p.side,
                avg_return=p.avg_return, status=p.status, rank=p.rank, room_needed=p.room_needed,
                qty=self._plan_qty(p)))

    def _plan_qty(self, p: MaxdiffPlanState) -> int:
        s = next((x for x in self.state.slots if x.id == p.slot), None)
        return s.entry.target_qty // max(1, len(s.members)) if s is not None else 0
