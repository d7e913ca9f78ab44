"""The batch executor's entry: gets the whole pack into the broker, in priority order, exactly once.

`execute_plan` runs one execution of a plan: under the run lock for the account and session
(`wolfkit.runlock`: a second executor waits or exits 2) it checks the ledger's disk has room and
that no other plan for the session is live on the account (`wolfkit.session_guard`: a second plan
would double positions, so it exits 2 unless it is a deliberate replacement, `replace=True`,
`wolfkit execute --replace`); then it reconciles from the broker's own list of the run's orders
(`wolfkit.reconciliation`), settles every directional order before any maxdiff order spends buying
power, and sizes, sends and records each order (`wolfkit.executor`).

Everything goes to the ledger; `ExecutionReport` says, per planned order, its final state, the
quantity submitted vs planned, the attempts and the reason; its fill counts come from the ledger,
whose fills are keyed by the broker's identity, so re-runs never inflate them.

`execute_orders_file` is `wolfkit execute` (the file, the live gate, the ledger, the broker);
`open_broker` builds the broker of a gated kind.
"""

from __future__ import annotations

import time
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import pandas as pd

from wolfkit import market_hours
from wolfkit.broker.account import AccountKey, account_key, sim_account
from wolfkit.broker.base import AccountInfo, Broker, BrokerUnavailable, RateLimited, opg_allowed
from wolfkit.broker.gate import broker_kind_for
from wolfkit.broker.submission import backoff, retry_after
from wolfkit.config import Params, project_path
from wolfkit.domain import Layer
from wolfkit.errors import BrokerError
from wolfkit.execution_report import ExecutionReport, FillRow, order_result
from wolfkit.executor import Executor
from wolfkit.ledger import EventKind, Ledger
from wolfkit.orders import OrderPlan
from wolfkit.runlock import RunLock
from wolfkit.session_guard import check_plan_account, guard_session

if TYPE_CHECKING:
    from wolfkit.broker.sim import SimBroker
    from wolfkit.market_hours import SessionOverride

__all__ = ["ExecutionReport", "Executor", "execute_orders_file", "execute_plan", "open_broker",
           "opg_allowed", "sim_broker_for", "SIM_STATE", "broker_account"]

SIM_STATE = "sim_broker.json"  # the simulated account beside the orders file (`open_broker`)


def execute_plan(
    plan: OrderPlan, broker: Broker, ledger: Ledger, params: Params, *,
    now: Callable[[], datetime] | None = None,
    sleep: Callable[[float], None] = time.sleep,
    timer: Callable[[], float] = time.monotonic,
    orders_path: str | None = None,
    replace: bool = False,
    account: AccountKey | None = None,
    account_info: AccountInfo | None = None,
) -> ExecutionReport:
    """Execute `plan` on `broker`, recording everything in `ledger` (see the module docstring).

    `now` is the wall clock (OPG window), `sleep`/`timer` drive rate-limit waits and backoff; all are
    injectable so tests run instantly. Safe to call again on the same plan after a crash. Holds the
    run lock for the broker's account and the plan's session throughout; `replace` deliberately
    replaces another live plan of the session (`guard_session`). Everything is recorded under
    `account` (default: the account `ledger` is bound to, else the broker's own,
    `wolfkit.broker.account.account_key`), so the same plan on another account starts afresh instead
    of colliding with this one's rows. `account_info`: the account as just read (with the key), which
    the guard and the budget reuse instead of reading it again.
    """
    clock = now or market_hours.wall_clock
    if account is None and ledger.account is None:  # a view already bound to an account stays on it
        if callable(getattr(broker, "account_key", None)):  # Alpaca: one account read names the account,
            account_info = broker.account()                 # and the guard and the budget reuse it
        account = account_key(broker)
    if account is not None:
        ledger = ledger.for_account(account)
    key = account if account is not None else account_key(broker)
    with RunLock(ledger.path, key, plan.as_of, params.execution.lock_wait_seconds):
        ledger.check_room(params.execution.min_free_disk_mb)
        ex = Executor(plan, broker, ledger, params, clock, sleep, timer)
        if account_info is not None:
            ex.remember(broker.account, account_info)
        ex.plan, notes = guard_session(plan, ex, replace, orders_path)
        if replace:
            ex.forget()  # the guard may have cancelled orders: read the account again
        if ledger.notice:
            notes.insert(0, ledger.notice)
        return _execute(ex, orders_path, notes)


def _execute(ex: Executor, orders_path: str | None, notes: list[str]) -> ExecutionReport:
    plan, broker, ledger = ex.plan, ex.broker, ex.ledger
    started = ex.now()
    execution = ledger.start_run(plan.run_id, as_of=plan.as_of, broker=getattr(broker, "name", "?"),
                                 params_digest=plan.params_digest, orders_path=orders_path,
                                 equity=plan.account.equity)
    ordered = sorted(enumerate(plan.orders), key=lambda t: (t[1].priority, t[0]))
    planned = [po for _, po in ordered]
    ledger.register_orders(plan.run_id, planned)
    pending = ex.reconcile(planned)  # before anything is sent: the broker's own list decides what exists

    # layer by layer: every directional order is settled before a maxdiff order spends buying power
    errors: list[BaseException] = []
    for layer in (Layer.DIRECTIONAL, Layer.MAXDIFF):
        todo = [(po, row) for po, row in pending if po.layer == layer]
        if not todo:
            continue
        if errors:
            ex.hold_back(todo, "not sent: the run stopped on an error before the maxdiff layer")
            continue
        waiting = ex.unsettled(Layer.DIRECTIONAL) if layer == Layer.MAXDIFF else []
        if waiting:
            ex.hold_back(todo, f"not sent: the directional order(s) {', '.join(sorted(set(waiting)))} have no "
                               "known outcome yet, and maxdiff orders wait until every directional order is "
                               "settled; re-run `wolfkit execute` to reconcile and send them")
            continue
        errors += ex.run_layer(todo)
    ex.settle()

    # the account as the budget read it (equity does not move with submissions), else read now
    acct = ex.account_seen or ex.call(broker.account)
    quotes = ex.quotes(sorted({po.symbol for po in planned}))
    rows = {r.plan_client_id: r for r in ledger.orders_for_run(plan.run_id)}
    results = [order_result(rows[po.client_order_id], quotes, po, ex.held_back.get(po.client_order_id, ""))
               for po in planned]
    counts: dict[str, int] = {}
    for r in results:
        counts[str(r.state)] = counts.get(str(r.state), 0) + 1
    fills = ledger.fills_for_run(plan.run_id)
    report = ExecutionReport(
        run_id=plan.run_id, broker=getattr(broker, "name", "?"), execution=execution, equity=acct.equity,
        orders=results, insufficient_bp_rejections=ex.n_ibp, rate_limited=ex.n_429,
        unknown_outcomes=ex.n_unknown, started_at=started, finished_at=ex.now(), counts=counts,
        ledger_path=str(ledger.path),
        fills=len(fills), filled_shares=sum(f["qty"] for f in fills), notes=notes,
        fill_log=[FillRow.from_ledger(f) for f in fills],
    )
    ledger.finish_run(plan.run_id, "error" if errors else ("incomplete" if report.unresolved else "done"),
                      report.summary())
    if errors:
        raise errors[0]
    return report


# ---- the command line's edge: orders file → broker → report ------------------------------------


def sim_broker_for(plan: OrderPlan, params: Params, now: datetime) -> SimBroker:
    """A simulated account like the plan's, quoted from the data provider (the demo market), or
    from the plan's estimated prices where the provider has no quote."""
    from wolfkit.broker.sim import SimBroker

    b = SimBroker(plan.account.equity, plan.account.multiplier, clock=lambda: market_hours.wall_clock())
    symbols = sorted({o.symbol for o in plan.orders})
    quotes = pd.DataFrame()
    try:
        from wolfkit.data import get_provider

        quotes = get_provider(params).latest_quotes(symbols, now)
    except Exception:
        quotes = pd.DataFrame()
    got = {r.symbol: (r.bid, r.ask) for r in quotes.itertuples()} if len(quotes) else {}
    for o in plan.orders:
        bid, ask = got.get(o.symbol, (o.est_price, o.est_price))
        if not (bid > 0 and ask >= bid):
            bid = ask = o.est_price
        b.market.set(o.symbol, float(bid), float(ask))
    return b


def open_broker(kind: str, plan: OrderPlan, params: Params, state_dir: Path) -> Broker:
    """The broker of a gated `kind` (see `wolfkit.broker.gate.broker_kind_for`): `sim` is the simulated account kept in
    `state_dir/sim_broker.json` (created like the plan's account on first use, saved after every
    change, so `execute` and `intraday` share it); `paper`/`live` are Alpaca with keys from the environment."""
    if kind == "sim":
        from wolfkit.broker.sim import SimBroker

        state = state_dir / SIM_STATE
        broker = SimBroker.load(state, clock=lambda: market_hours.wall_clock()) if state.is_file() \
            else sim_broker_for(plan, params, market_hours.wall_clock())
        broker.persist(state)
        return broker
    from wolfkit.broker.alpaca import AlpacaBroker

    return AlpacaBroker(paper=kind == "paper", timeout=params.execution.request_timeout)


def broker_account(kind: str, broker: Broker, state_dir: Path,
                   attempts: int = 5) -> tuple[AccountKey, AccountInfo | None]:
    """The account `open_broker(kind, …, state_dir)` trades, and the account as read to learn it: the
    simulated one in its state file (no read), or the broker's own (Alpaca: its account number and
    trading URL from one account request, retried like every other on a 429 or an unknown outcome)."""
    if kind == "sim":
        return sim_account(state_dir / SIM_STATE), None
    for i in range(attempts):
        try:
            info = broker.account()
            return account_key(broker), info
        except RateLimited as e:
            time.sleep(retry_after(e))
        except BrokerUnavailable:
            time.sleep(backoff(i))
    raise BrokerError(f"the broker did not say which account it is after {attempts} tries; run the same command "
                      "again (nothing was sent)")


def execution_log_path(orders: Path) -> Path:
    """`execution_log.json` beside the orders file; in a day folder, which is append-only, each run's
    own (`execution_log.2.json` for the second, … via `wolfkit.day_folder.claim_file`)."""
    from wolfkit.day_folder import claim_file, in_day_folder

    path = orders.parent / "execution_log.json"
    return claim_file(path) if in_day_folder(path) else path


def execute_orders_file(orders: Path, params: Params, broker_kind: str | None = None, live: bool = False,
                        replace: bool = False, override: SessionOverride | None = None,
                        ) -> tuple[ExecutionReport, Path]:
    """`wolfkit execute`: gate live trading, validate the file (nothing is sent when either is wrong),
    open and check the ledger, take the account's run lock (before the simulated account's state is
    read, so a second process sees the first one's orders; Alpaca's account is named by one read of it), build the broker, execute, and export
    `execution_log.json` beside the orders file — from the ledger, under the lock, so it holds every
    process's work; in a day folder each run writes its own numbered log. A relative `execution.ledger_path` is the project's (`wolfkit.config.project_path`),
    whatever the working directory. The session rule (`wolfkit.market_hours.clear_to_send`) is the
    commands' to apply before calling this; a deliberate `override` of it is recorded on the run."""
    from wolfkit.orders import read_orders

    kind = broker_kind_for(params, broker_kind, live)
    plan = read_orders(orders)
    check_plan_account(orders, plan, kind)
    with Ledger(project_path(params.execution.ledger_path)) as ledger:
        # the lock is the account's: the simulated one is named by its state file (read under the lock, so a
        # second process sees the first one's orders); Alpaca's by one account read (it sends nothing)
        remote = None if kind == "sim" else open_broker(kind, plan, params, orders.parent)
        account, info = (sim_account(orders.parent / SIM_STATE), None) if remote is None else \
            broker_account(kind, remote, orders.parent, params.execution.max_attempts)
        with RunLock(ledger.path, account, plan.as_of, params.execution.lock_wait_seconds):
            ledger.check_room(params.execution.min_free_disk_mb)
            broker = remote or open_broker(kind, plan, params, orders.parent)
            book = ledger.for_account(account)
            if override is not None:
                book.record_event(plan.run_id, EventKind.SESSION_OVERRIDE, command="execute", orders=str(orders),
                                  **override.detail())
            report = execute_plan(plan, broker, ledger, params, orders_path=str(orders), replace=replace,
                                  account=account, account_info=info)
            log = book.export_execution_log(plan.run_id, execution_log_path(orders),
                                            extra={"report": report.summary()})
    return report, log
