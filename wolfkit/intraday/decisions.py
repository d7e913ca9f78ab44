"""The two layers' decisions: what each leg of the engine should want now, given its state and the market.

These functions change only the engine's state (targets, limits, new legs, plan statuses); sending
is `wolfkit.intraday.tracking`'s job. The one broker action a decision needs at once is a cancel
(`Desk.cancel`): a resting exit must be gone before the close or a stop sizes its market order
from what is still working, within the same step.

- directional exits: an entry whose planned order carries `take_profit`/`stop_loss` goes out as a
  bracket and the broker works its legs. An entry found WITHOUT legs gets engine exits: a resting
  opposite-side limit at `take_profit` (every strategy has one), and for any stop a watch on every bar
  (a low at or through the stop for a long) that cancels the limit and closes at market. A trailing
  stop (`trail_amount`) rises after every bar to (high since the entry − trail), never down; a
  bracket's stop leg follows it by a replace of its stop price (`tracking`). The time stop
  (`time_stop_minutes` after the open) cancels the resting exits and closes at market. At
  `flatten_minutes` before the close, working exits are cancelled and directional positions closed at
  market when `intraday.close_directional_eod`, otherwise kept (brackets and all).
- maxdiff budget at time t = share(t) × (total bucket − directional committed), with share(t) =
  `leverage.maxdiff_share_at(t)`: `Params.maxdiff_budget`, the rule the build packs with. Plans are
  taken in rank order; a plan
  listens while there is room for it (its `room_needed`, or one share), at most `maxdiff_max_active`
  at once, at most `max_positions_per_symbol` positions on its symbol across layers. The rest queue.
  A plan leaves the listening set when its entry fills (FILLED) or `maxdiff.expire_minutes` after its
  order first reached the broker (EXPIRED without a fill; FILLED with the part that did fill).
- an EXPIRED plan listens again: it returns to the queue (then listens by the rules above, a new
  slot and ramp from its start) once an exit of either layer has filled since it expired (room freed)
  and a whole listening period (`maxdiff.expire_minutes`) still ends before the flatten time.
- sizing (`sizing.maxdiff_rule`): `dynamic` gives every listening plan an equal slice of the budget
  left after maxdiff positions; `kelly` uses the plan's own packed `room_needed`, capped by that slice.
- consolidation: listening plans on one symbol and side share ONE slot; its limit is the most
  conservative of the members (lowest buy, highest sell).
- ramp: a slot's limit starts at predicted_low × buy_ramp[0] (buy) or predicted_high × sell_ramp[0]
  (sell) and moves every `ramp_step_minutes` linearly to the ramp's end at `ramp_minutes`.
- a `both` plan enters on the side whose target is nearer the last price when it starts listening.
- a filled maxdiff entry exits at the other prediction, or at market `flatten_minutes` before the close.
"""

from __future__ import annotations

import math
from datetime import date, datetime, timedelta
from typing import Callable, Protocol

from wolfkit.calendar import NY
from wolfkit.config import Params
from wolfkit.domain import Layer, MaxdiffSide, OrderType, PlanStatus, Side, round_to_tick
from wolfkit.exits import ratchet
from wolfkit.intraday.state import (
    DirectionalPosition,
    EngineState,
    Leg,
    LegEvent,
    LegState,
    Market,
    MaxdiffPlanState,
    Purpose,
    Slot,
    exit_shares,
    exposure_of,
)


class Desk(Protocol):
    """The order side, as far as a decision needs it."""

    def cancel(self, leg: Leg) -> None: ...


def ramp_price(params: Params, side: Side, target: float, minutes_active: float) -> float:
    """The maxdiff limit after `minutes_active` minutes: stepwise-linear from the ramp start to its end."""
    md = params.maxdiff
    start, end = md.buy_ramp if side == Side.BUY else md.sell_ramp
    steps = math.floor(max(0.0, minutes_active) / md.ramp_step_minutes)
    frac = min(1.0, steps * md.ramp_step_minutes / md.ramp_minutes)
    return round_to_tick(target * (start + (end - start) * frac), side)


def entry_side(p: MaxdiffPlanState, price: float) -> Side:
    """A `both` plan enters on the side whose target is nearer the price when it starts listening."""
    if p.side is not MaxdiffSide.BOTH:
        return Side(p.side.value)
    return Side.BUY if (price - p.low_target) <= (p.high_target - price) else Side.SELL


def et(now: datetime) -> datetime:
    """Wall-clock New York time (the time-of-day budget is defined in ET); naive times are taken as ET."""
    return now.astimezone(NY) if now.tzinfo else now


def age(slot: Slot, now: datetime) -> float:
    """Minutes since the slot's entry first reached the broker (0 while it still waits)."""
    return (now - slot.activated_at).total_seconds() / 60 if slot.started else 0.0


def session_close(session: date, now: datetime) -> datetime:
    """The session's close, in `now`'s time zone (naive when `now` is)."""
    from wolfkit.calendar import session_close as close_of

    close = close_of(session)
    return close.astimezone(now.tzinfo) if now.tzinfo else close.replace(tzinfo=None)


def position_counts(state: EngineState) -> dict[str, int]:
    """Positions per symbol across layers: a directional position (held or entering) and each
    maxdiff slot that is open or still holds shares."""
    count: dict[str, int] = {}
    for d in state.directional:
        if d.qty > 0 or d.entry.state != LegState.DONE:
            count[d.symbol] = count.get(d.symbol, 0) + 1
    for s in state.slots:
        if not s.closed or s.qty > 0:
            count[s.symbol] = count.get(s.symbol, 0) + 1
    return count


def stand_down(leg: Leg, desk: Desk) -> None:
    """This exit is no longer wanted: cancel what works, never resend."""
    if leg.state == LegState.DONE:
        return
    leg.target_qty = leg.filled_qty
    if leg.state == LegState.OPEN:
        desk.cancel(leg)
    else:
        leg.move(LegEvent.COMPLETED)


# ---- directional ---------------------------------------------------------------------------------


def session_open(session: date, now: datetime) -> datetime:
    """The session's open, in `now`'s time zone (naive when `now` is): the time stop counts from it."""
    from wolfkit.calendar import session_open as open_of

    opened = open_of(session)
    return opened.astimezone(now.tzinfo) if now.tzinfo else opened.replace(tzinfo=None)


def trail_stop(d: DirectionalPosition, market: Market | None, symbol_index: dict[str, int]) -> None:
    """A trailing stop after this bar: the high water mark takes the bar's high, and the stop (and a
    bracket's stop leg) rises to high water − trail, never down (`wolfkit.exits.ratchet`). The bar's
    own stop check used the stop from before it: inside one bar the order of high and low is unknown."""
    if d.trail_amount is None or d.stop_loss is None or d.side != Side.BUY or market is None or d.qty <= 0:
        return
    high = float(market.high[symbol_index[d.symbol]])
    if not math.isfinite(high):
        return
    d.high_water = max(high, d.high_water if d.high_water is not None else d.entry.avg_price)
    # rounded down: the stop stays at least the trail below the high
    new = round_to_tick(ratchet(d.stop_loss, d.high_water, d.trail_amount), Side.BUY)
    if new > d.stop_loss:
        d.stop_loss = new
    for x in d.exits:
        if x.purpose == Purpose.STOP and x.stop_price is not None and x.state != LegState.DONE:
            x.stop_price = max(x.stop_price, d.stop_loss)


def decide_directional(state: EngineState, params: Params, market: Market | None, symbol_index: dict[str, int],
                       flatten: bool, price: Callable[[str], float], desk: Desk,
                       opened: datetime | None = None) -> None:
    """Exits of the directional pack: take-profit limits, stop watches, trailing stops, the time stop, the
    close (module docstring). `opened`: the session's open (the time stop counts from it)."""
    eod = flatten and params.intraday.close_directional_eod
    now = state.now
    for d in state.directional:
        e = d.entry
        timed_out = (d.time_stop_minutes is not None and opened is not None and now is not None
                     and now >= opened + timedelta(minutes=d.time_stop_minutes))
        if (eod or timed_out) and e.state != LegState.DONE:
            e.target_qty = e.filled_qty  # an entry still working at the close or the time stop is cancelled
            if e.state == LegState.OPEN:
                desk.cancel(e)
        if e.state == LegState.OPEN or d.reduces:
            continue  # exits wait for the entry to end (they are opposite-side); a trim or exit of a held position has none
        held = d.qty
        if held <= 0:
            for x in d.exits:  # flat: nothing left to exit (e.g. the other bracket leg after a fill)
                stand_down(x, desk)
            continue
        exit_side = d.side.opposite()
        stop_hit = False
        if d.stop_loss is not None and market is not None and not d.bracket:  # a bracket's stop is the broker's
            i = symbol_index[d.symbol]
            stop_hit = bool(market.low[i] <= d.stop_loss) if d.side == Side.BUY else bool(market.high[i] >= d.stop_loss)
        if stop_hit or eod or timed_out:
            mkt = next((x for x in d.exits if x.key.endswith(("-stop", "-close", "-time"))), None)
            for x in d.exits:  # resting exits go first (no double exit)
                if x is not mkt:
                    stand_down(x, desk)
            held = d.qty
            resting = sum(x.working_qty for x in d.exits if x is not mkt)  # a cancel still pending
            if mkt is None:
                purpose = Purpose.STOP if stop_hit else Purpose.TIME_STOP if timed_out and not eod else Purpose.CLOSE
                mkt = Leg.new(f"d-{d.symbol}-{d.side}-{purpose}", d.symbol, exit_side, Layer.DIRECTIONAL,
                              purpose, OrderType.MARKET, 0, None)
                d.exits.append(mkt)
            mkt.ref_price = price(d.symbol)
            want = mkt.filled_qty + mkt.working_qty + max(0, held - resting - mkt.working_qty)
            if want > mkt.target_qty:
                mkt.target_qty = want
                if mkt.state == LegState.DONE:
                    mkt.move(LegEvent.REOPENED)
            continue
        trail_stop(d, market, symbol_index)
        if d.take_profit is not None and not d.exits:  # every strategy has a target (`wolfkit.exits`)
            d.exits.append(Leg.new(f"d-{d.symbol}-{d.side}-tp", d.symbol, exit_side, Layer.DIRECTIONAL,
                                   Purpose.TAKE_PROFIT, OrderType.LIMIT, held, round_to_tick(d.take_profit, exit_side)))


# ---- maxdiff -------------------------------------------------------------------------------------


def decide_maxdiff(state: EngineState, params: Params, now: datetime, flatten: bool, price: Callable[[str], float],
                   desk: Desk, plans: dict[int, MaxdiffPlanState] | None = None) -> None:
    """Expiries, exits, who listens, and each open slot's size and ramped limit (module docstring).
    `plans` is `state.plans` by rank (the engine keeps it: hundreds of plans, every step)."""
    md = params.maxdiff
    plans = plans if plans is not None else {p.rank: p for p in state.plans}
    slots = {s.id: s for s in state.slots}
    # 1. finished entries: fills and expiries move plans out of the listening set
    for s in state.slots:
        if s.closed:
            continue
        entry_done = s.entry.state == LegState.DONE or (
            s.entry.state == LegState.IDLE and s.entry.filled_qty > 0 and s.entry.target_qty <= s.entry.filled_qty)
        # after `expire_minutes` an unfilled entry expires; a partly filled one stops growing, so the
        # filled part can exit (the exit is opposite-side: it must wait for the entry to end)
        expired = flatten or (s.started and age(s, now) >= md.expire_minutes)
        if entry_done and s.entry.filled_qty > 0 or expired:
            close_entry(s, plans, PlanStatus.FILLED if s.entry.filled_qty > 0 else PlanStatus.EXPIRED)
            if s.entry.filled_qty == 0:
                for r in s.members:
                    plans[r].expired_at_exits = exit_shares(state)
    # 2. exits of held slots
    for s in state.slots:
        held = s.qty
        if held <= 0 or not s.closed:
            continue
        ex_side = s.side.opposite()
        if s.exit is None:
            members = [plans[r] for r in s.members]
            tgt = (min(p.high_target for p in members) if ex_side == Side.SELL
                   else max(p.low_target for p in members))
            s.exit = Leg.new(f"m-{s.id}-exit", s.symbol, ex_side, Layer.MAXDIFF, Purpose.EXIT,
                             OrderType.LIMIT, held, round_to_tick(tgt, ex_side))
        if flatten and s.exit.type == OrderType.LIMIT:
            if s.exit.state == LegState.OPEN:
                s.exit.target_qty = s.exit.filled_qty
                desk.cancel(s.exit)
            held = s.qty
            s.exit.type, s.exit.limit_price, s.exit.ref_price = OrderType.MARKET, None, price(s.symbol)
            s.exit.target_qty = s.exit.filled_qty + s.exit.working_qty + held
            if s.exit.state == LegState.DONE and held > 0:
                s.exit.move(LegEvent.REOPENED)
        elif s.exit.target_qty != s.exit.filled_qty + held:
            s.exit.target_qty = s.exit.filled_qty + held
            if s.exit.state == LegState.DONE:
                s.exit.move(LegEvent.REOPENED)
    if flatten:
        return
    requeue_expired(state, params, now)
    # 3. who listens: rank order, room, max active, per-symbol limit
    e = exposure_of(state)
    budget = params.maxdiff_budget(state.equity, e.directional, et(now).time(), state.buying_power)
    held_value = sum(max(0, s.qty) * s.entry.avg_price for s in state.slots)
    free = max(0.0, budget - held_value)
    listening: list[MaxdiffPlanState] = []
    need_sum = 0.0
    max_active = params.sizing.maxdiff_max_active
    per_symbol = params.leverage.max_positions_per_symbol
    open_slot = {(s.symbol, s.side): s for s in state.slots if not s.closed}
    count = position_counts(state)
    for p in state.plans:  # rank order; a full bucket makes the rest of the walk cheap
        if p.status in (PlanStatus.FILLED, PlanStatus.EXPIRED):
            continue
        slot = slots.get(p.slot) if p.slot else None
        locked = slot is not None and slot.entry.filled_qty > 0  # a partly filled plan keeps listening
        need = p.room_needed if p.room_needed > 0 else p.low_target
        if not locked and (len(listening) >= max_active or need_sum + need > free + 1e-9):
            if slot is not None:
                demote(p, slots)
            continue
        if slot is None:
            last = price(p.symbol)
            side = entry_side(p, (p.low_target + p.high_target) / 2 if math.isnan(last) else last)
            joined = open_slot.get((p.symbol, side))
            if joined is None and count.get(p.symbol, 0) >= per_symbol:
                continue  # at most `per_symbol` positions on a symbol across layers: it stays queued
            slot = join(state, p, side, now, joined)
            if joined is None:
                slots[slot.id] = open_slot[(p.symbol, side)] = slot
                count[p.symbol] = count.get(p.symbol, 0) + 1
        listening.append(p)
        need_sum += need
    # 4. size and price each open slot from the room
    n = len(listening)
    slice_ = free / n if n else 0.0
    for s in state.slots:
        if s.closed:
            continue
        members = [plans[r] for r in s.members]
        prices = [ramp_price(params, s.side, p.target(s.side), age(s, now)) for p in members]
        lim = min(prices) if s.side == Side.BUY else max(prices)  # the most conservative member
        room = slice_ * len(members)
        if params.sizing.maxdiff_rule == "kelly":
            room = min(room, sum(p.room_needed or slice_ for p in members))
        s.entry.limit_price = lim
        s.entry.ref_price = lim
        s.entry.target_qty = s.entry.filled_qty + int(room // lim)


def requeue_expired(state: EngineState, params: Params, now: datetime) -> None:
    """Expired plans go back to the queue when room has freed since they expired (an exit filled) and a
    whole listening period still ends before the flatten time (module docstring)."""
    freed = exit_shares(state)
    again = [p for p in state.plans
             if p.status == PlanStatus.EXPIRED and p.expired_at_exits is not None and freed > p.expired_at_exits]
    if not again:
        return
    flatten_at = session_close(state.session, now) - timedelta(minutes=params.intraday.flatten_minutes)
    if now + timedelta(minutes=params.maxdiff.expire_minutes) > flatten_at:
        return
    for p in again:
        p.slot, p.expired_at_exits = None, None
        p.move(PlanStatus.QUEUED)


def join(state: EngineState, p: MaxdiffPlanState, side: Side, now: datetime, slot: Slot | None) -> Slot:
    """Put a plan into the open slot of its symbol and side (consolidation) or open a new slot."""
    if slot is None:
        sid = f"{p.symbol}-{side}-{p.rank}-{sum(1 for s in state.slots if s.symbol == p.symbol)}"
        entry = Leg.new(f"m-{sid}-entry", p.symbol, side, Layer.MAXDIFF, Purpose.ENTRY, OrderType.LIMIT, 0, None)
        entry.client_id = state.planned_ids.pop(f"{p.symbol}-{side}", None)
        slot = Slot(id=sid, symbol=p.symbol, side=side, members=[], activated_at=now, entry=entry)
        state.slots.append(slot)
    slot.members = sorted([*slot.members, p.rank])
    p.slot = slot.id
    p.move(PlanStatus.LISTENING)
    return slot


def demote(p: MaxdiffPlanState, slots: dict[str, Slot]) -> None:
    """Back to the queue (no room, or a better plan took its place); its share of the order goes."""
    if p.slot is not None:
        s = slots[p.slot]
        s.members.remove(p.rank)
        if not s.members:
            s.closed = True
            s.entry.target_qty = s.entry.filled_qty
    p.slot = None
    p.move(PlanStatus.QUEUED)


def close_entry(s: Slot, plans: dict[int, MaxdiffPlanState], status: PlanStatus) -> None:
    """The slot's entry is finished (filled or expired): its plans leave the listening set."""
    s.closed = True
    s.entry.target_qty = s.entry.filled_qty
    for r in s.members:
        plans[r].move(status)
