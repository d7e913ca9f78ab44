"""The ledger: a SQLite file (WAL mode) that remembers every run, order, attempt, fill and plan, per account.

Why it exists: crash safety has to be provable. The executor writes an *intent* (the client order id
it is about to use) and commits it before the request leaves; the broker's answer is written as an
*ack* afterwards. After a crash at any point a re-run reads the intents, asks the broker about each
client id, and adopts what exists instead of submitting again.

Tables (every one keyed by `account` too: `Ledger.for_account(key)` reads and writes one account)
- ``runs``: one row per plan run id and account (`executions` counts how often it was executed there).
- ``orders``: one row per planned order (key: account + run id + the plan's client id): the plan
  fields, then the execution state: current attempt and client id, broker id, `state` (`OrderState`),
  submitted and filled quantity, average price, `sizing` (`Sizing`) and the reason for the last change.
- ``events``: append-only (UPDATE and DELETE are refused by triggers) history of everything.
- ``fills``: one row per execution, keyed by the broker's identity (account, broker order id, cumulative
  filled quantity), so the same execution seen by any number of processes is stored once.
- ``maxdiff_plans``, ``intraday_state``: the intraday engine's plans and saved state.

Storage checks are `wolfkit.ledger.storage`'s, the schema and its migrations `wolfkit.ledger.schema`'s,
events, fills and plans `wolfkit.ledger.history`'s; this module holds the runs and the orders.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import asdict
from datetime import date
from enum import StrEnum
from pathlib import Path
from typing import Any, Iterable

from wolfkit.broker.base import BrokerOrder
from wolfkit.domain import Layer, OrderType, Side, Strategy, TimeInForce
from wolfkit.ledger.history import History
from wolfkit.ledger.records import EventKind, LedgerOrder, OrderState, Sizing
from wolfkit.ledger.storage import json_default, now_text
from wolfkit.orders import PlannedOrder


class Ledger(History):
    """The SQLite ledger. Thread-safe (one connection behind a lock); every write commits at once.

    `Ledger(path)` opens and checks the file (`wolfkit.ledger.storage.Store`); `for_account(key)` is
    the view an executor or engine works through, so the simulator's, paper's and live's rows never meet.
    """

    # ---- runs -----------------------------------------------------------------------------------

    def start_run(self, run_id: str, *, as_of: date | str | None = None, broker: str = "",
                  params_digest: str = "", orders_path: str | Path | None = None,
                  equity: float | None = None) -> int:
        """Open (or re-open) a run on this account; returns which execution of it this is (1 for the first)."""
        now, acct = now_text(), self.write_account
        with self._guard("starting the run"):
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.execute(
                    "INSERT OR IGNORE INTO runs (account, run_id, created_at) VALUES (?, ?, ?)", (acct, run_id, now))
                self._db.execute(
                    "UPDATE runs SET as_of=?, broker=?, params_digest=?, orders_path=?, equity=?, started_at=?, "
                    "finished_at=NULL, status='running', executions=executions+1 WHERE account=? AND run_id=?",
                    (str(as_of) if as_of else None, broker, params_digest,
                     str(orders_path) if orders_path else None, equity, now, acct, run_id))
                n = self._db.execute("SELECT executions FROM runs WHERE account=? AND run_id=?",
                                     (acct, run_id)).fetchone()[0]
                self._db.execute("COMMIT")
            except BaseException:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise
        self.record_event(run_id, EventKind.RUN_STARTED, execution=n, broker=broker)
        return n

    def finish_run(self, run_id: str, status: str, summary: dict[str, Any] | None = None) -> None:
        self._write("UPDATE runs SET finished_at=?, status=?, summary=? WHERE account=? AND run_id=?",
                    (now_text(), status, json.dumps(summary or {}, default=json_default), self.write_account, run_id))
        self.record_event(run_id, EventKind.RUN_FINISHED, status=status)

    def run(self, run_id: str) -> dict[str, Any] | None:
        mine, margs = self._mine()
        rows = self._rows("SELECT * FROM runs WHERE run_id=?" + mine + " ORDER BY started_at DESC", (run_id, *margs))
        if not rows:
            return None
        d = dict(rows[0])
        d["summary"] = json.loads(d["summary"]) if d["summary"] else None
        return d

    def session_runs(self, session: date | str) -> list[dict[str, Any]]:
        """The runs executed for `session` on this account (oldest first), replaced ones included."""
        return [dict(r) for r in self._rows(
            "SELECT run_id, orders_path, started_at, status, replaced_by FROM runs WHERE as_of=? AND account=? "
            "ORDER BY created_at, run_id", (str(session), self.write_account))]

    def run_ids(self) -> list[str]:
        """Every run this account's rows know."""
        mine, margs = self._mine()
        return [r[0] for r in self._rows("SELECT DISTINCT run_id FROM runs WHERE 1=1" + mine, margs)]

    def mark_replaced(self, run_id: str, by: str) -> None:
        """`run_id` was replaced by the plan `by` (its open orders cancelled): no longer live."""
        self._write("UPDATE runs SET replaced_by=?, status='replaced' WHERE account=? AND run_id=?",
                    (by, self.write_account, run_id))
        self.record_event(run_id, EventKind.REPLACED_BY_PLAN, replaced_by=by)

    def runs_replaced_by(self, run_id: str) -> list[str]:
        return [r[0] for r in self._rows("SELECT run_id FROM runs WHERE replaced_by=? AND account=? ORDER BY run_id",
                                         (run_id, self.write_account))]

    # ---- orders ---------------------------------------------------------------------------------

    def register_orders(self, run_id: str, orders: Iterable[PlannedOrder]) -> None:
        """Insert each planned order once (state PLANNED); existing rows are left as they are."""
        now, acct = now_text(), self.write_account
        with self._guard("registering the plan"):
            self._db.execute("BEGIN IMMEDIATE")
            try:
                for o in orders:
                    self._db.execute(
                        "INSERT OR IGNORE INTO orders (account, run_id, plan_client_id, symbol, side, layer, type, "
                        "time_in_force, limit_price, priority, planned_qty, est_price, take_profit, stop_loss, "
                        "strategy, sector, cap_tier, score, weight, state, updated_at) "
                        "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                        (acct, run_id, o.client_order_id, o.symbol, str(o.side), str(o.layer), str(o.type),
                         str(o.time_in_force), o.limit_price, o.priority, o.qty, o.est_price, o.take_profit,
                         o.stop_loss, o.strategy, o.sector, o.cap_tier, o.score, o.weight,
                         str(OrderState.PLANNED), now))
                self._db.execute("COMMIT")
            except BaseException:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise

    def record_intent(self, run_id: str, plan_client_id: str, client_order_id: str, attempt: int, qty: int,
                      *, type: str, time_in_force: str, limit_price: float | None = None,
                      sizing: Sizing = Sizing.AS_PLANNED, reason: str = "") -> None:
        """Write (and commit) the attempt about to be sent, BEFORE sending it."""
        self._update(run_id, plan_client_id, state=OrderState.SUBMITTING, attempt=attempt,
                     client_order_id=client_order_id, qty=qty, sizing=sizing, reason=reason,
                     submitted_type=str(type), submitted_tif=str(time_in_force), submitted_limit=limit_price)
        self.record_event(run_id, EventKind.INTENT, plan_client_id, client_order_id, attempt=attempt, qty=qty,
                          type=type, time_in_force=time_in_force, limit_price=limit_price, sizing=sizing,
                          reason=reason)

    def record_ack(self, run_id: str, plan_client_id: str, order: BrokerOrder, *,
                   event: EventKind = EventKind.ACK, reason: str | None = None, attempt: int | None = None) -> None:
        """The broker holds `order` for this planned order: store its id, status and fills so far
        (and its `attempt` number when it was found at the broker rather than sent from this ledger)."""
        fields: dict[str, Any] = dict(
            state=OrderState.of(order.status), broker_order_id=order.id, client_order_id=order.client_order_id,
            qty=order.qty, filled_qty=order.filled_qty, avg_price=order.filled_avg_price,
            submitted_type=str(order.type), submitted_tif=str(order.time_in_force),
            submitted_limit=order.limit_price,
        )
        if reason is not None:
            fields["reason"] = reason
        if attempt is not None:
            fields["attempt"] = attempt
        self._update(run_id, plan_client_id, **fields)
        self.record_event(run_id, event, plan_client_id, order.client_order_id, broker_order_id=order.id,
                          status=order.status, qty=order.qty, filled_qty=order.filled_qty,
                          **({"reason": reason} if reason else {}))

    def record_outcome(self, run_id: str, plan_client_id: str, state: OrderState, reason: str,
                       **fields: Any) -> None:
        """A final decision that involves no broker order: REJECTED or SKIPPED, with why."""
        self._update(run_id, plan_client_id, state=state, reason=reason, **fields)
        kind = EventKind.SKIPPED if state == OrderState.SKIPPED else EventKind.REJECTED
        self.record_event(run_id, kind, plan_client_id, None, state=state, reason=reason)

    _COLUMNS = frozenset({"state", "attempt", "client_order_id", "broker_order_id", "qty", "filled_qty",
                          "avg_price", "sizing", "reason", "submitted_type", "submitted_tif", "submitted_limit"})

    def _update(self, run_id: str, plan_client_id: str, **fields: Any) -> None:
        unknown = set(fields) - self._COLUMNS
        if unknown:
            raise ValueError(f"unknown order column(s) {sorted(unknown)}")
        cols = ", ".join(f"{k}=?" for k in fields)
        vals = [str(v) if isinstance(v, StrEnum) else v for v in fields.values()]
        cur = self._write(f"UPDATE orders SET {cols}, updated_at=? WHERE account=? AND run_id=? AND plan_client_id=?",
                          (*vals, now_text(), self.write_account, run_id, plan_client_id))
        if cur.rowcount != 1:
            raise KeyError(f"no planned order {plan_client_id!r} in run {run_id!r}; register_orders first")

    def orders_for_run(self, run_id: str) -> list[LedgerOrder]:
        mine, margs = self._mine()
        rows = self._rows("SELECT * FROM orders WHERE run_id=?" + mine + " ORDER BY priority, plan_client_id",
                          (run_id, *margs))
        return [self._order(r) for r in rows]

    def order(self, run_id: str, plan_client_id: str) -> LedgerOrder | None:
        mine, margs = self._mine()
        rows = self._rows("SELECT * FROM orders WHERE run_id=? AND plan_client_id=?" + mine,
                          (run_id, plan_client_id, *margs))
        return self._order(rows[0]) if rows else None

    @staticmethod
    def _order(r: sqlite3.Row) -> LedgerOrder:
        d = dict(r)
        d["state"] = OrderState(d["state"])
        d["sizing"] = Sizing(d["sizing"])
        d["side"], d["layer"], d["strategy"] = Side(d["side"]), Layer(d["layer"]), Strategy(d["strategy"])
        d["type"], d["time_in_force"] = OrderType(d["type"]), TimeInForce(d["time_in_force"])
        d["submitted_type"] = OrderType(d["submitted_type"]) if d["submitted_type"] else None
        d["submitted_tif"] = TimeInForce(d["submitted_tif"]) if d["submitted_tif"] else None
        return LedgerOrder(**d)

    # ---- export -----------------------------------------------------------------------------------

    def export_document(self, run_id: str) -> dict[str, Any]:
        return {"run": self.run(run_id), "orders": [asdict(o) for o in self.orders_for_run(run_id)],
                **super().export_document(run_id)}
