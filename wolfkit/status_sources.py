"""Where the status screen's inputs come from: the ledger (fills, planned orders, the engine's state,
snapshots) and, when one is reachable, the broker (positions, working orders, quotes, the account).

This is the I/O edge of `wolfkit.status`: `collect_status` gathers, `wolfkit.status.build_status`
computes. With a broker, fills the broker made of the ledger's planned orders since the ledger last
heard of them (a market order that filled after `wolfkit execute` returned, a bracket's take-profit) are
recorded first (`sync_fills`, keyed by the broker's identity as every fill is, so nothing is counted
twice); without one, positions come from the ledger's fills and marks from the engine's last prices or
the last fill price — and the screen says which.

Which runs count: every run of the account (the broker's name; without a broker, the latest executed
run's), plus intraday-engine and replay runs, which record fills without an executed run of their own.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import date, datetime, time
from pathlib import Path
from typing import Any

from wolfkit.broker.account import AccountKey, account_key
from wolfkit.broker.base import Broker, BrokerOrder, Fill, Position
from wolfkit.broker.sim import SimBroker
from wolfkit.calendar import NY, now_ny
from wolfkit.config import Params
from wolfkit.domain import ClientOrderId, Layer, Side
from wolfkit.errors import BadInputError
from wolfkit.intraday import EngineState, LegState
from wolfkit.ledger import EventKind, Ledger, OrderState, load_engine_state
from wolfkit.pnl import BookedFill, layer_of_fill
from wolfkit.reconciliation import LIST_LOOKBACK
from wolfkit.snapshots import daily_history, load_snapshots
from wolfkit.status import AccountView, OpenOrder, Source, StatusReport, build_status

ENGINE_ACCOUNT = "engine"  # the account name of a ledger only the intraday engine wrote
REPLAY_ACCOUNT = "replay"  # the account of `wolfkit replay`'s ledger (a simulated session)


@dataclass
class LedgerView:
    """What the ledger holds for one account."""

    account: str
    fills: list[BookedFill] = field(default_factory=list)
    unattributed: int = 0
    order_layers: dict[str, Layer] = field(default_factory=dict)  # plan client id -> layer
    strategies: dict[str, str] = field(default_factory=dict)  # symbol -> directional strategy
    open_orders: list[OpenOrder] = field(default_factory=list)  # working per the ledger (and the engine)
    last_fill: dict[str, float] = field(default_factory=dict)  # symbol -> last fill price
    start_equity: float | None = None
    executed_runs: list[str] = field(default_factory=list)  # runs with planned orders (to sync with a broker)
    engine: EngineState | None = None
    other_accounts: set[str] = field(default_factory=set)


def _fill_run_ids(ledger: Ledger) -> list[str]:
    with ledger.connection("reading the fills") as db:
        return [r[0] for r in db.execute("SELECT run_id FROM fills GROUP BY run_id ORDER BY MIN(id)")]


def _runs(ledger: Ledger) -> dict[str, dict[str, Any]]:
    runs = {}
    for rid in ledger.run_ids():
        row = ledger.run(rid)
        if row is not None:
            runs[rid] = row
    return runs


def ledger_account(ledger: Ledger) -> str:
    """The account of the latest executed run in the ledger; when none was executed (the intraday engine
    or a replay wrote it), the account of its latest snapshot; else `engine`."""
    runs = sorted(_runs(ledger).values(), key=lambda r: (r.get("started_at") or "", r["run_id"]))
    if runs:
        return runs[-1].get("broker") or ENGINE_ACCOUNT
    snaps = sorted(load_snapshots(ledger), key=lambda s: s.taken_at)
    return snaps[-1].account if snaps else ENGINE_ACCOUNT


def read_ledger(ledger: Ledger, account: str, run_id: str | None = None) -> LedgerView:
    """Fills, planned orders and the engine state of `account`'s runs (run ids without an executed run
    — the engine's, a replay's — always count)."""
    runs = _runs(ledger)
    view = LedgerView(account)
    mine = {rid for rid, r in runs.items() if (r.get("broker") or ENGINE_ACCOUNT) == account}
    view.other_accounts = {r.get("broker") or "?" for rid, r in runs.items() if rid not in mine}
    for rid in sorted(mine, key=lambda x: (runs[x].get("started_at") or "", x)):
        rows = ledger.orders_for_run(rid)
        if rows:
            view.executed_runs.append(rid)
        if view.start_equity is None and runs[rid].get("equity"):
            view.start_equity = float(runs[rid]["equity"])
        for o in rows:
            view.order_layers[o.plan_client_id] = o.layer
            if o.layer == Layer.DIRECTIONAL:
                view.strategies[o.symbol] = str(o.strategy)
            if o.state in (OrderState.ACCEPTED, OrderState.PARTIALLY_FILLED):
                view.open_orders.append(OpenOrder(o.symbol, o.side, o.layer, o.qty, o.filled_qty, o.submitted_limit,
                                                  str(o.state), o.client_order_id or o.plan_client_id))
    raw = load_engine_state(ledger, run_id)
    if raw is None and run_id is not None:
        raise BadInputError(f"{ledger.path}: no intraday engine state for run {run_id!r}; pass a run the engine or "
                            "`wolfkit replay` wrote, or leave the run out")
    if raw is not None:
        view.engine = EngineState.model_validate_json(raw)
        if view.start_equity is None:
            view.start_equity = view.engine.equity
        for d in view.engine.directional:
            view.strategies.setdefault(d.symbol, d.strategy)
        for leg in view.engine.legs():
            if leg.state == LegState.OPEN and leg.client_id:
                view.open_orders.append(OpenOrder(leg.symbol, leg.side, leg.layer, leg.order_qty, leg.seen_qty,
                                                  leg.order_limit, str(leg.purpose), leg.client_id))
    for rid in _fill_run_ids(ledger):
        if rid in runs and rid not in mine:
            continue
        for f in ledger.fills_for_run(rid):
            layer = layer_of_fill(f["plan_client_id"], f["client_order_id"], view.order_layers)
            if layer is None:
                view.unattributed += 1
            view.fills.append(BookedFill(f["symbol"], layer or Layer.DIRECTIONAL, Side(f["side"]), int(f["qty"]),
                                         float(f["price"])))
            view.last_fill[f["symbol"]] = float(f["price"])
    return view


def _runs_to_sync(ledger: Ledger, view: LedgerView) -> list[str]:
    """The executed runs the broker may still be filling: those of the latest session, and any whose
    ledger still shows an order working (older runs are final: asking again would page through history)."""
    runs = {rid: ledger.run(rid) or {} for rid in view.executed_runs}
    latest = max((r.get("as_of") or "" for r in runs.values()), default="")
    working = (OrderState.ACCEPTED, OrderState.PARTIALLY_FILLED, OrderState.SUBMITTING)
    return [rid for rid, r in runs.items()
            if (r.get("as_of") or "") == latest or any(o.state in working for o in ledger.orders_for_run(rid))]


def sync_fills(ledger: Ledger, broker: Broker, view: LedgerView, now: datetime) -> int:
    """Record what the broker filled of the ledger's planned orders (and their bracket legs) that the
    ledger has not seen; returns how many fills were new. One list request per run that may still be
    filling (`_runs_to_sync`): the broker's orders with the run's client-id prefix, as the executor reads them."""
    new = 0
    for rid in _runs_to_sync(ledger, view):
        rows = {o.plan_client_id: o for o in ledger.orders_for_run(rid)}
        as_of = (ledger.run(rid) or {}).get("as_of")  # the plan's session: its orders went out from that day on
        since = datetime.combine(date.fromisoformat(as_of), time(0), NY) - LIST_LOOKBACK if as_of else None
        for o in broker.orders_by_prefix(os.path.commonprefix(sorted(rows)), since):
            hit = ClientOrderId.parse(o.client_order_id, frozenset(rows))
            if hit is None:
                continue
            row = rows[hit.base]
            for x in [o, *o.legs]:
                if x.filled_qty > 0 and x.filled_avg_price and x.filled_qty > ledger.recorded_fill_qty(x.id):
                    new += ledger.record_fill(rid, hit.base, Fill(x.id, x.client_order_id, x.symbol, x.side,
                                                                  x.filled_qty, x.filled_avg_price, now, x.filled_qty))
            if o.id == row.broker_order_id and (o.filled_qty != row.filled_qty or OrderState.of(o.status) != row.state):
                ledger.record_ack(rid, hit.base, o, event=EventKind.RECONCILED, reason=row.reason)
    return new


def _broker_open_orders(orders: list[BrokerOrder], view: LedgerView) -> list[OpenOrder]:
    bases = frozenset(view.order_layers)
    out = []
    for o in orders:
        hit = ClientOrderId.parse(o.client_order_id, bases)
        layer = view.order_layers[hit.base] if hit is not None else layer_of_fill(None, o.client_order_id, {})
        out.append(OpenOrder(o.symbol, o.side, layer, o.qty, o.filled_qty, o.limit_price or o.stop_price,
                             str(o.status), o.client_order_id))
    return out


def collect_status(ledger: Ledger, params: Params, broker: Broker | None = None, run_id: str | None = None, *,
                   account: str | None = None, now: datetime | None = None, history_days: int = 5,
                   broker_key: AccountKey | None = None) -> StatusReport:
    """The status of `account` (default: the broker's, else the ledger's latest executed run's) from the
    ledger, and from the broker when one is given (its fills are recorded first: `sync_fills`, into the
    ledger's rows of the broker's account — `broker_key`, default the one the broker names, e.g. a
    simulated account's state file as `wolfkit.broker.account.sim_account` keys it)."""
    at = (now or now_ny()).astimezone(NY)
    name = account or (broker.name if broker is not None else ledger_account(ledger))
    view = read_ledger(ledger, name, run_id)
    if not view.fills and not view.executed_runs and view.engine is None:
        others = (f" (it holds runs on {', '.join(sorted(view.other_accounts))}: unset APCA_API_KEY_ID to see the "
                  "simulated account, or set it to see Alpaca's)") if view.other_accounts else ""
        raise BadInputError(f"{ledger.path}: no executed run, fills or intraday engine state for account {name!r}"
                            f"{others}; run `wolfkit execute`, `wolfkit intraday` or `wolfkit replay` first, or pass "
                            "--ledger with the ledger they wrote")
    notes = []
    if view.other_accounts:
        notes.append(f"runs on other accounts ({', '.join(sorted(view.other_accounts))}) are in this ledger and "
                     "not counted here")
    positions: list[Position] | None = None
    if broker is not None:
        writer = ledger if ledger.account is not None else ledger.for_account(broker_key or account_key(broker))
        new = sync_fills(writer, broker, view, at)
        if new:
            notes.append(f"{new} fill(s) the broker made since the ledger last heard were recorded")
            view = read_ledger(ledger, name, run_id)
        positions = broker.positions()
        held = sorted({f.symbol for f in view.fills} | {p.symbol for p in positions})
        marks = {s: q.mid for s, q in broker.quotes(held).items()}
        for p in positions:
            if p.symbol not in marks and p.qty:
                marks[p.symbol] = p.market_value / p.qty
        acct = broker.account()
        view_account = AccountView(name, acct.equity, acct.cash, Source.BROKER)
        open_orders = _broker_open_orders(broker.open_orders(), view)
        marks_from = Source.BROKER
    else:
        marks = dict(view.last_fill)
        marks_from = Source.FILLS
        if view.engine is not None:
            marks.update(view.engine.last_price)
            marks_from = Source.ENGINE
        open_orders = view.open_orders
        if view.start_equity is None:
            notes.append("the ledger records no starting equity: equity and cash show the P&L alone")
        view_account = AccountView(name, view.start_equity or 0.0, view.start_equity or 0.0, Source.LEDGER)
    history = daily_history(load_snapshots(ledger, name, history_days))
    return build_status(params, fills=view.fills, unattributed_fills=view.unattributed, open_orders=open_orders,
                        positions=positions, marks=marks, account=view_account, now=at, marks_from=marks_from,
                        engine=view.engine, strategies=view.strategies, history=history, notes=notes)


def sim_account_path(ledger: Ledger) -> Path | None:
    """The simulated account `wolfkit execute --broker sim` kept for the latest sim run: `sim_broker.json`
    beside its orders file (where `execute` and `intraday` keep it), or None."""
    runs = sorted((r for r in _runs(ledger).values() if r.get("broker") == "sim" and r.get("orders_path")),
                  key=lambda r: (r.get("started_at") or "", r["run_id"]))
    if not runs:
        return None
    path = Path(runs[-1]["orders_path"]).resolve().parent / "sim_broker.json"
    return path if path.is_file() else None


def open_sim_account(path: Path, params: Params, now: datetime) -> tuple[SimBroker, str]:
    """The simulated account at `path`, its market moved to the data provider's latest quotes at `now`
    (working orders fill on them as they would have at a broker in the meantime), saved back; and a line
    saying so. A file that is not a simulated account is exit 2 naming it."""
    from wolfkit.data import get_provider

    try:
        broker = SimBroker.load(path, clock=lambda: now)
    except FileNotFoundError:
        raise BadInputError(f"{path}: no simulated account there; pass --sim-state with the sim_broker.json "
                            "`wolfkit execute --broker sim` wrote beside the orders file") from None
    except (ValueError, KeyError, TypeError) as e:
        raise BadInputError(f"{path}: not a simulated account ({e}); pass --sim-state with the sim_broker.json "
                            "`wolfkit execute --broker sim` wrote beside the orders file") from None
    symbols = sorted({p.symbol for p in broker.positions()} | {o.symbol for o in broker.open_orders()})
    filled = 0
    if symbols:
        q = get_provider(params).latest_quotes(symbols, now)
        if len(q):
            broker.market.update(list(q["symbol"]), q["bid"].to_numpy(), q["ask"].to_numpy(), now)
        filled = broker.step()
        broker.save(path)
    return broker, (f"simulated account {path}: market moved to the {params.data.source} quotes at "
                    f"{now.astimezone(NY):%H:%M} ET; {filled} fill(s) on working orders")
