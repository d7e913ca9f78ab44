"""The ledger's history: the append-only events, the fills keyed by the broker's identity, the day's
maxdiff plans, the intraday engine's saved state, and the `execution_log.json` export.

Every row carries the account of the view that wrote it (`Store.for_account`); a bound view reads its
own account's rows only, so the same broker order id on the simulator and on paper never meet.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict
from datetime import date
from pathlib import Path
from typing import Any

from wolfkit.broker.base import Fill
from wolfkit.domain import MaxdiffSide, PlanStatus
from wolfkit.ledger.records import EventKind, LedgerError, LedgerEvent, PlanRow
from wolfkit.ledger.storage import Store, json_default, now_text
from wolfkit.orders import MaxdiffPlan

LOG_SCHEMA = "wolfkit.execution_log/1"


class History(Store):
    """Events, fills, maxdiff plans and engine state (the run and order tables are `wolfkit.ledger.Ledger`'s)."""

    # ---- events -----------------------------------------------------------------------------------

    def record_event(self, run_id: str, kind: EventKind, plan_client_id: str | None = None,
                     client_order_id: str | None = None, **detail: Any) -> None:
        self._write(
            "INSERT INTO events (account, run_id, at, kind, plan_client_id, client_order_id, detail) "
            "VALUES (?,?,?,?,?,?,?)",
            (self.write_account, run_id, now_text(), str(kind), plan_client_id, client_order_id,
             json.dumps(detail, default=json_default, sort_keys=True)))

    def events(self, run_id: str, kind: EventKind | None = None) -> list[LedgerEvent]:
        mine, margs = self._mine()
        sql, args = "SELECT * FROM events WHERE run_id=?" + mine, [run_id, *margs]
        if kind is not None:
            sql, args = sql + " AND kind=?", [*args, str(kind)]
        return [LedgerEvent(r["id"], r["account"], r["run_id"], r["at"], EventKind(r["kind"]), r["plan_client_id"],
                            r["client_order_id"], json.loads(r["detail"]))
                for r in self._rows(sql + " ORDER BY id", args)]

    # ---- fills ------------------------------------------------------------------------------------

    def record_fill(self, run_id: str, plan_client_id: str | None, fill: Fill) -> bool:
        """Store an execution once, by the broker's identity (account, order id, cumulative quantity); True when new.

        What another process already stored for the order is not stored again: a fill that covers
        executions already recorded (a fresh process sees a partly recorded order as one fill from
        zero) is cut to the quantity beyond them, at the price that makes the order's total cost
        come out right. So the ledger's shares per order equal the broker's filled quantity.
        """
        acct = self.write_account
        with self._guard("recording a fill") as db:
            db.execute("BEGIN IMMEDIATE")
            seen = db.execute("SELECT COALESCE(MAX(cum_qty), 0) FROM fills WHERE account=? AND broker_order_id=?",
                              (acct, fill.order_id)).fetchone()[0]
            if fill.cum_qty <= seen:
                db.execute("COMMIT")
                return False
            qty, price, start = fill.qty, fill.price, fill.cum_qty - fill.qty
            if start < seen:  # overlaps recorded executions: keep only the part beyond them
                covered = 0.0
                for r in db.execute("SELECT qty, price, cum_qty FROM fills WHERE account=? AND broker_order_id=? "
                                    "AND cum_qty>?", (acct, fill.order_id, start)):
                    lo = max(start, r["cum_qty"] - r["qty"])
                    covered += max(0, r["cum_qty"] - lo) * r["price"]
                qty = fill.cum_qty - seen
                rest = fill.qty * fill.price - covered
                price = round(rest / qty, 6) if rest > 0 else fill.price
            db.execute(
                "INSERT INTO fills (account, run_id, plan_client_id, broker_order_id, client_order_id, symbol, side, "
                "qty, price, at, cum_qty) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                (acct, run_id, plan_client_id, fill.order_id, fill.client_order_id, fill.symbol, str(fill.side), qty,
                 price, fill.timestamp.isoformat(), fill.cum_qty))
            self.record_event(run_id, EventKind.FILL, plan_client_id, fill.client_order_id,
                              qty=qty, price=price, cum_qty=fill.cum_qty, at=fill.timestamp)
            db.execute("COMMIT")
            return True

    def recorded_fill_qty(self, broker_order_id: str) -> int:
        """Shares of this broker order the fills table holds for this account (its highest cumulative quantity)."""
        rows = self._rows("SELECT COALESCE(MAX(cum_qty), 0) FROM fills WHERE account=? AND broker_order_id=?",
                          (self.write_account, broker_order_id))
        return int(rows[0][0])

    def fills_for_run(self, run_id: str) -> list[dict[str, Any]]:
        mine, margs = self._mine()
        return [dict(r) for r in self._rows("SELECT * FROM fills WHERE run_id=?" + mine + " ORDER BY id",
                                            (run_id, *margs))]

    # ---- maxdiff plans ----------------------------------------------------------------------------

    def upsert_plan(self, session: date | str, run_id: str, plan: MaxdiffPlan) -> None:
        """Insert or update the plan for (session, symbol, side) on this account."""
        self._write(
            "INSERT INTO maxdiff_plans (account, session, run_id, symbol, side, high_target, low_target, avg_return, "
            "status, rank, qty, room_needed, updated_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?) "
            "ON CONFLICT (account, session, symbol, side, rank) DO UPDATE SET run_id=excluded.run_id, "
            "high_target=excluded.high_target, low_target=excluded.low_target, avg_return=excluded.avg_return, "
            "status=excluded.status, qty=excluded.qty, room_needed=excluded.room_needed, "
            "updated_at=excluded.updated_at",
            (self.write_account, str(session), run_id, plan.symbol, plan.side, plan.high_target, plan.low_target,
             plan.avg_return, str(plan.status), plan.rank, plan.qty, plan.room_needed, now_text()))

    def plans(self, session: date | str | None = None, status: str | None = None) -> list[PlanRow]:
        """Stored plans, best rank first; filter by session and/or status."""
        mine, margs = self._mine()
        sql, args = "SELECT * FROM maxdiff_plans WHERE 1=1" + mine, list(margs)
        if session is not None:
            sql += " AND session=?"
            args.append(str(session))
        if status is not None:
            sql += " AND status=?"
            args.append(str(status))
        return [PlanRow(**{**dict(r), "side": MaxdiffSide(r["side"]), "status": PlanStatus(r["status"])})
                for r in self._rows(sql + " ORDER BY session, rank, symbol", args)]

    # ---- the intraday engine's state ----------------------------------------------------------------
    # The engine saves its whole state (a JSON document, `wolfkit.intraday.EngineState`) after every step,
    # one row per run and account, so a restart resumes exactly where the last step ended and
    # `wolfkit status` can show both layers without a running engine.

    def save_engine_state(self, run_id: str, session: date | str, state_json: str) -> None:
        """Store (replace) the engine state of a run on this account."""
        self._write(
            "INSERT INTO intraday_state (account, run_id, session, state, updated_at) VALUES (?,?,?,?,?) "
            "ON CONFLICT (account, run_id) DO UPDATE SET session=excluded.session, state=excluded.state, "
            "updated_at=excluded.updated_at",
            (self.write_account, run_id, str(session), state_json, now_text()))

    def load_engine_state(self, run_id: str | None = None) -> str | None:
        """The saved engine state of `run_id`, or of the most recently updated run when None."""
        mine, margs = self._mine()
        if run_id is None:
            rows = self._rows("SELECT state FROM intraday_state WHERE 1=1" + mine +
                              " ORDER BY updated_at DESC, rowid DESC LIMIT 1", margs)
        else:
            rows = self._rows("SELECT state FROM intraday_state WHERE run_id=?" + mine +
                              " ORDER BY updated_at DESC LIMIT 1", (run_id, *margs))
        return str(rows[0][0]) if rows else None

    # ---- export -----------------------------------------------------------------------------------

    def export_document(self, run_id: str) -> dict[str, Any]:
        """What `execution_log.json` holds besides the report: overridden by `wolfkit.ledger.Ledger`."""
        return {"fills": self.fills_for_run(run_id), "events": [asdict(e) for e in self.events(run_id)]}

    def export_execution_log(self, run_id: str, path: str | Path, extra: dict[str, Any] | None = None) -> Path:
        """Write `execution_log.json` for a run (run, orders with final state and reason, events,
        fills), atomically. Holds no secrets: only what the ledger holds."""
        doc = {"schema": LOG_SCHEMA, "account": self.account, **self.export_document(run_id), **(extra or {})}
        p = Path(path)
        tmp = p.with_name(p.name + f".{os.getpid()}.tmp")
        try:
            p.parent.mkdir(parents=True, exist_ok=True)
            tmp.write_text(json.dumps(doc, indent=2, default=json_default))
            tmp.replace(p)
        except OSError as e:
            tmp.unlink(missing_ok=True)
            raise LedgerError(f"cannot write {p} ({e.strerror or e}); the ledger {self.path} holds the run — free "
                              "space or fix the folder, then re-run (nothing is sent twice)") from None
        return p
