"""What the account must look like before a plan is sent: one plan per session, no positions the plan
does not know about, and a plan built for the kind of account it is sent to.

Before the executor sends anything, `guard_session` looks for other runs of the session on the
account that are still live at the broker (open orders, or filled positions still held) and for open
wolfkit orders of runs the ledger does not know (a lost or moved ledger). Without a deliberate
replacement that is exit 2; with one (`wolfkit execute --replace`) their open orders are cancelled,
they are marked replaced, and this plan is sized against what they filled (`credit_orders`).
Then every position the account holds must be explained by the positions the plan was built against
(`holdings` in the orders file, read from the account at build time with `--broker`) plus this
session's wolfkit orders (`carried_positions`): a position the plan does not know about — carried
from an earlier session into a plan built as if flat, bought by hand, or changed since the build —
would have this plan trade on top of it or sell shares that are not there (exit 2, nothing sent).
On the symbols the plan trades against a held position (an exit, a trim, a top-up), the held
position's open exit orders (a carried bracket's take-profit and stop) are cancelled before anything
is sent (`release_carried_exits`): they reserve the shares a sell needs and are the opposite side of
a top-up, which the broker refuses as a potential wash trade. `check_plan_account` refuses, before anything is
opened, a plan that was not built for live trading but is sent to the live account.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Protocol, TypeVar

from wolfkit.broker.base import BrokerOrder, OrderNotFound, OrderRejected
from wolfkit.broker.submission import backoff
from wolfkit.calendar import NY
from wolfkit.domain import Layer, Side, is_attempt_of
from wolfkit.errors import BadInputError, BrokerError
from wolfkit.ledger import EventKind, LedgerOrder, OrderState
from wolfkit.market_hours import PRE_OPEN
from wolfkit.orders import OrderPlan

if TYPE_CHECKING:
    from wolfkit.broker.base import Broker
    from wolfkit.config import ExecutionParams
    from wolfkit.ledger import Ledger

T = TypeVar("T")


class _Executor(Protocol):
    """What the guard needs of the executor (`wolfkit.executor`), which calls it: its broker and ledger,
    the rate-limited, retrying call path, reads of the account's state the executor reuses, the id
    look-up and the clock's sleep."""

    broker: Broker
    ledger: Ledger
    ex: ExecutionParams

    def call(self, fn: Callable[..., T], *args: Any) -> T: ...
    def snapshot(self, fn: Callable[[], T]) -> T: ...
    def lookup(self, client_id: str) -> BrokerOrder | None: ...
    def sleep(self, seconds: float) -> None: ...
    def forget(self) -> None: ...


def _run_prefix(run_id: str) -> str:
    """What every client id of a run starts with (`wolfkit.domain.ClientOrderId.for_order`)."""
    return f"wk-{run_id[:40]}-"


@dataclass
class _LivePlan:
    """Another run of the session that still matters at the broker."""

    run: dict[str, Any]  # its `runs` row (run_id, orders_path, …)
    rows: list[LedgerOrder]
    working: list[BrokerOrder]  # its open orders at the broker
    held: list[LedgerOrder]  # its orders whose symbol is still held on their side


def check_plan_account(path: Path | str, plan: OrderPlan, kind: str) -> None:
    """A plan goes live only when it was built for live trading (`account.broker: live` in the file) from
    real prices: one built for the simulator or paper was sized against that account, perhaps from the
    demo market. Plans built for sim or paper run on either (trying a plan on the simulator first is
    the point). Exit 2 naming the file and the fix otherwise."""
    if kind != "live":
        return
    if plan.synthetic_prices:
        raise BadInputError(f"{path}: this plan was built from the demo market's synthetic prices and cannot trade "
                            "live; build one from real data with the live parameters (`wolfkit premarket --params "
                            "<live parameters>`); nothing was sent")
    if plan.account.broker != "live":
        built = plan.account.broker or "an unrecorded account kind (an older orders file)"
        raise BadInputError(f"{path}: this plan was built for {built}, not for the live account, so it was sized "
                            "against another account; build the live plan with the live parameters "
                            "(`execution.broker: live`) and execute that one; nothing was sent")


def carried_positions(plan: OrderPlan, ex: _Executor, also: dict[tuple[str, str], int] | None = None
                      ) -> dict[str, int]:
    """Shares per symbol the account holds beyond what the plan knows (signed; negative: fewer than the plan
    was built against). Known: the positions the plan was built against (`plan.holdings`, none when it was
    built as if flat), plus the fills of wolfkit orders of this session — this run's orders as the broker
    lists them (entries, exits, the intraday engine's), the ledger's other runs of the session on the
    account (replaced or live plans), and `also` (shares by symbol and side that cancelled orders of plans
    the ledger does not know filled). A position between the holdings and the holdings plus those fills is
    fine (exits filled); anything else was not there when the plan was built."""
    acct = ex.snapshot(ex.broker.account)  # the budget reuses this read
    built = plan.holdings.qty() if plan.holdings is not None else {}
    if not (acct.long_market_value or acct.short_market_value or also or built):
        return {}  # nothing held and nothing expected: nothing to explain, and no listing or positions request
    made = plan.created_at if plan.created_at.tzinfo else plan.created_at.replace(tzinfo=timezone.utc)
    explained: dict[str, int] = {}

    def add(symbol: str, side: Side | str, qty: int) -> None:
        explained[symbol] = explained.get(symbol, 0) + (qty if Side(side) == Side.BUY else -qty)

    for (symbol, side), qty in (also or {}).items():
        add(symbol, side, qty)
    for o in ex.call(ex.broker.orders_by_prefix, _run_prefix(plan.run_id), made - timedelta(days=1)):
        for leg in (o, *o.legs):
            if leg.filled_qty:
                add(leg.symbol, leg.side, leg.filled_qty)
    for r in ex.ledger.session_runs(plan.as_of):
        if r["run_id"] != plan.run_id:
            for w in ex.ledger.orders_for_run(r["run_id"]):
                if w.filled_qty:
                    add(w.symbol, w.side, w.filled_qty)
    held = {p.symbol: p.qty for p in ex.snapshot(ex.broker.positions)}
    out = {}
    for symbol in sorted(held.keys() | built.keys()):
        h, known = held.get(symbol, 0), built.get(symbol, 0)
        lo, hi = sorted((known, known + explained.get(symbol, 0)))
        if not lo <= h <= hi:
            out[symbol] = h - (hi if h > hi else lo)
    return out


def _unknown_positions(plan: OrderPlan, ex: _Executor, carried: dict[str, int], source: str | None) -> BadInputError:
    """Exit 2 for positions the plan does not know about, naming the file, the account and the fix."""
    what = source or "plan " + plan.run_id
    held = {p.symbol: p.qty for p in ex.snapshot(ex.broker.positions)}
    account = getattr(ex.ledger, "account", "?")
    kind = str(account).split(":", 1)[0] if account else "sim|paper|live"
    if plan.holdings is None:
        shown = ", ".join(f"{s} {q:+d}" for s, q in list(carried.items())[:8])
        return BadInputError(
            f"{what}: the account {account} holds shares no wolfkit plan of session {plan.as_of} bought ({shown}"
            f"{', …' if len(carried) > 8 else ''}): carried from an earlier session or traded outside wolfkit. This "
            "plan was built as if they were not there and would trade on top of them; nothing was sent. Close those "
            f"positions first, or build the plan against them (`wolfkit premarket --broker {kind}` or `wolfkit build "
            f"… --broker {kind}`: it sells what left the pack and tops up or trims the rest), or trade this plan on "
            "an account without them")
    built = plan.holdings.qty()
    shown = ", ".join(f"{s} held {held.get(s, 0):+d}, built against {built.get(s, 0):+d}"
                      for s in list(carried)[:8])
    return BadInputError(
        f"{what}: this plan was built against the positions of {plan.holdings.account} read at "
        f"{plan.holdings.read_at:%Y-%m-%d %H:%M} UTC, and the account {account} does not hold them now ({shown}"
        f"{', …' if len(carried) > 8 else ''}); its sells, trims and top-ups would be wrong; nothing was sent. "
        f"Rebuild the plan against what the account holds now (`wolfkit premarket --broker {kind}` or "
        f"`wolfkit build … --broker {kind}`), or execute it on the account it was built for")


def release_carried_exits(plan: OrderPlan, ex: _Executor) -> list[str]:
    """Cancel the open orders of other runs on each symbol where the plan trades a held position (an
    exit, trim or top-up): a carried bracket's take-profit and stop would hold the shares a sell needs
    (the broker refuses the sell) and are the opposite side of a top-up (refused as a wash trade). A held
    name the plan leaves unchanged keeps its exits. Notes for the report (none when nothing was open)."""
    built = plan.holdings.qty() if plan.holdings is not None else {}
    symbols = {po.symbol for po in plan.orders if po.layer == Layer.DIRECTIONAL and po.symbol in built}
    if not symbols:
        return []
    mine = _run_prefix(plan.run_id)
    stale = [o for o in ex.snapshot(ex.broker.open_orders)
             if o.symbol in symbols and not o.client_order_id.startswith(mine)]
    for o in stale:
        final = _cancel(ex, o)
        ex.ledger.record_event(plan.run_id, EventKind.NOTE, None, None, cancelled=o.client_order_id,
                               symbol=o.symbol, side=str(o.side), qty=o.qty, filled=final.filled_qty,
                               reason="a carried position's exit order: this plan trades the position")
    if stale:
        ex.forget()  # the budget and the wash-trade check read the account again
        return [f"cancelled {len(stale)} open exit order(s) of carried positions the plan trades ("
                + ", ".join(sorted({f"{o.symbol} {o.side} {o.qty}" for o in stale})) + ")"]
    return []


def guard_session(plan: OrderPlan, ex: _Executor, replace: bool, source: str | None = None,
                  ) -> tuple[OrderPlan, list[str]]:
    """One plan per session and account: refuse a second one while another is live, or replace it.

    Without `replace`, a live plan (`_live_plans`) means exit 2 naming it and the option — a second
    plan would double positions. With it, `_replace` cancels the live plans' open orders and marks
    them replaced; then this plan is sized against what every plan it replaced filled, the same way
    on every re-run. Returns the plan to execute and notes for the report.
    """
    live, strangers = _live_plans(plan, ex)
    if (live or strangers) and not replace:
        what = [f"plan {lp.run['run_id']} ({lp.run['orders_path'] or 'orders file unknown'}): {len(lp.working)} "
                f"open order(s), {len(lp.held)} filled order(s) still held" for lp in live]
        if strangers:
            what.append(f"{len(strangers)} open wolfkit order(s) of a plan this ledger does not know "
                        f"({', '.join(o.client_order_id for o in strangers[:3])})")
        account = getattr(ex.broker, "name", "?")
        raise BadInputError(
            f"another plan for session {plan.as_of} is live on {account}: {'; '.join(what)}. Executing plan "
            f"{plan.run_id} too would double positions; nothing was sent. To replace it deliberately, add --replace "
            "(its open orders are cancelled and this plan is sized against what it filled); to continue it, "
            "execute its own orders file")
    notes, credit = _replace(plan.run_id, ex, live, strangers) if (live or strangers) else ([], {})
    carried = carried_positions(plan, ex, credit)
    if carried:
        raise _unknown_positions(plan, ex, carried, source)
    notes += release_carried_exits(plan, ex)
    for rid in ex.ledger.runs_replaced_by(plan.run_id):
        for w in ex.ledger.orders_for_run(rid):
            if w.filled_qty:
                credit[(w.symbol, w.side)] = credit.get((w.symbol, w.side), 0) + w.filled_qty
    cut = credit_orders(plan, credit)
    if not cut:
        return plan, notes
    orders = []
    for po in plan.orders:
        c = cut.get(po.client_order_id, 0)
        if c == po.qty:  # all of it already held: recorded as skipped, kept in the plan for the report
            ex.ledger.register_orders(plan.run_id, [po])
            row = ex.ledger.order(plan.run_id, po.client_order_id)
            if row is not None and row.state == OrderState.PLANNED:
                ex.ledger.record_outcome(plan.run_id, po.client_order_id, OrderState.SKIPPED,
                                         f"already held: the replaced plan filled {c} {po.symbol} ({po.side})")
        elif c:
            ex.ledger.record_event(plan.run_id, EventKind.NOTE, po.client_order_id, None, planned=po.qty, credited=c,
                                   reason=f"{c} of {po.qty} already filled by the replaced plan")
            po = po.model_copy(update={"qty": po.qty - c, "est_cost": round((po.qty - c) * po.est_price, 2)})
        orders.append(po)
    notes.append("sized against the replaced plan's fills: " + ", ".join(
        f"{po.symbol} -{n}" for po in plan.orders if (n := cut.get(po.client_order_id))))
    return plan.model_copy(update={"orders": orders}), notes


def credit_orders(plan: OrderPlan, credit: dict[tuple[str, str], int]) -> dict[str, int]:
    """Shares per planned order (client id) already held from a replaced plan: the filled shares of
    each (symbol, side) go to this plan's orders of that symbol and side, highest priority first."""
    left = dict(credit)
    cut: dict[str, int] = {}
    for po in sorted(plan.orders, key=lambda o: o.priority):
        key = (po.symbol, str(po.side))
        c = min(left.get(key, 0), po.qty)
        if c:
            left[key] -= c
            cut[po.client_order_id] = c
    return cut


def _live_plans(plan: OrderPlan, ex: _Executor) -> tuple[list[_LivePlan], list[BrokerOrder]]:
    """Other runs of the session on this account with open orders at the broker or positions they
    filled still held (an order that reached the broker may have filled since the ledger looked);
    and open wolfkit orders of runs the ledger does not know (a lost or moved ledger) sent in this session —
    an earlier session's (a carried bracket's exits) is not another plan of this one: the positions check
    and `release_carried_exits` deal with it."""
    ledger = ex.ledger
    others = [r for r in ledger.session_runs(plan.as_of) if r["run_id"] != plan.run_id and not r["replaced_by"]]
    known = [_run_prefix(r) for r in {plan.run_id, *ledger.run_ids()}]
    open_orders = ex.snapshot(ex.broker.open_orders)  # the executor's budget reuses this read
    held = {p.symbol: p.qty for p in ex.snapshot(ex.broker.positions)} if others else {}
    live = []
    for r in others:
        rows = ledger.orders_for_run(r["run_id"])
        working = [o for o in open_orders if o.client_order_id.startswith(_run_prefix(r["run_id"]))]
        kept = [w for w in rows if (w.filled_qty > 0 or w.state in (OrderState.ACCEPTED, OrderState.PARTIALLY_FILLED))
                and held.get(w.symbol, 0) * (1 if w.side == Side.BUY else -1) > 0]
        if working or kept:
            live.append(_LivePlan(r, rows, working, kept))
    opened = datetime.combine(plan.as_of, PRE_OPEN, tzinfo=NY)  # orders sent before it belong to earlier sessions
    strangers = [o for o in open_orders if o.client_order_id.startswith("wk-")
                 and not any(o.client_order_id.startswith(k) for k in known)
                 and (o.submitted_at is None or o.submitted_at >= opened)]
    return live, strangers


def _replace(run: str, ex: _Executor, live: list[_LivePlan], strangers: list[BrokerOrder],
             ) -> tuple[list[str], dict[tuple[str, str], int]]:
    """Cancel the live plans' open orders (bracket exits of filled entries stay: they protect what is
    held), bring their rows up to the broker's fills, mark them replaced by `run`; cancel strangers.
    Returns notes and what the strangers filled (the known plans' fills are in the ledger now)."""
    ledger, notes = ex.ledger, []
    for lp in live:
        rid, cancelled = lp.run["run_id"], 0
        exits = {f"{w.client_order_id[:120]}-{k}" for w in lp.rows if w.client_order_id for k in ("tp", "sl")}
        for o in lp.working:
            if o.client_order_id in exits:
                continue
            final = _cancel(ex, o)
            cancelled += 1
            row = next((w for w in lp.rows if is_attempt_of(w.plan_client_id, o.client_order_id)), None)
            if row is not None:
                ledger.record_ack(rid, row.plan_client_id, final, event=EventKind.REPLACED_BY_PLAN,
                                  reason=f"cancelled: plan {run} replaces this plan")
        for w in ledger.orders_for_run(rid):
            found = ex.lookup(w.client_order_id) if w.client_order_id and w.state.at_broker else None
            if found is not None and (found.filled_qty, OrderState.of(found.status)) != (w.filled_qty, w.state):
                ledger.record_ack(rid, w.plan_client_id, found, event=EventKind.RECONCILED)
        ledger.mark_replaced(rid, run)
        notes.append(f"replaced plan {rid}: cancelled {cancelled} open order(s)")
    credit: dict[tuple[str, str], int] = {}
    for o in strangers:
        final = _cancel(ex, o)
        key = (final.symbol, str(final.side))
        credit[key] = credit.get(key, 0) + final.filled_qty
        notes.append(f"cancelled {o.client_order_id} of a plan this ledger does not know (filled {final.filled_qty})")
    return notes, credit


def _cancel(ex: _Executor, order: BrokerOrder) -> BrokerOrder:
    """Cancel an open order and wait until the broker says it is final (fills may land meanwhile)."""
    try:
        ex.call(ex.broker.cancel, order.id)
    except (OrderRejected, OrderNotFound):
        pass  # finished meanwhile (filled or cancelled): the look-up below says which
    get: Callable[[str], BrokerOrder] = getattr(ex.broker, "get")  # every broker has it; the protocol does not
    for i in range(ex.ex.max_attempts * 2):
        got = ex.call(get, order.id)
        if got.status.is_final:
            return got
        ex.sleep(backoff(i))
    raise BrokerError(f"{order.client_order_id}: cancel requested but the broker still reports {got.status}; "
                      "re-run the same command with --replace once it is final (nothing is sent before)")
