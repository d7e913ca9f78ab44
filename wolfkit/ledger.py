"""The ledger: a SQLite file (WAL mode) that remembers every run, order, attempt, fill and plan.

Why it exists: crash safety has to be provable. The executor writes an *intent* (the client order id
it is about to use) and commits it before the request leaves; the broker's answer is written as an
*ack* afterwards. After a crash at any point a re-run reads the intents, asks the broker about each
client id, and adopts what exists instead of submitting again.

Tables
- ``runs``: one row per plan run id (`executions` counts how often it was executed).
- ``orders``: one row per planned order (key: run id + the plan's client id): the plan fields, then
  the execution state: current attempt and client id, broker id, `state` (`OrderState`), submitted
  and filled quantity, average price, `sizing` (`Sizing`) and the reason for the last change.
- ``events``: append-only (UPDATE and DELETE are refused by triggers) history of everything.
- ``fills``: one row per execution (deduplicated).
- ``maxdiff_plans``: the day's maxdiff plans per session, symbol, side and rank (the intraday engine's).
"""

from __future__ import annotations

import json
import sqlite3
import threading
from dataclasses import asdict, dataclass
from datetime import date, datetime, timezone
from enum import StrEnum
from pathlib import Path
from typing import Any, Iterable

from wolfkit.broker.base import BrokerOrder, Fill, OrderStatus
from wolfkit.orders import MaxdiffPlan, PlannedOrder

LOG_SCHEMA = "wolfkit.execution_log/1"


class OrderState(StrEnum):
    """Where a planned order stands, from the executor's point of view."""

    PLANNED = "planned"  # known, nothing sent yet
    SUBMITTING = "submitting"  # intent written; the broker's answer is not (yet) known
    ACCEPTED = "accepted"  # the broker holds it, open
    PARTIALLY_FILLED = "partially_filled"
    FILLED = "filled"
    CANCELED = "canceled"
    EXPIRED = "expired"
    REJECTED = "rejected"  # refused for a reason resubmitting will not fix
    SKIPPED = "skipped"  # deliberately not sent (no budget, wash-trade rule, no quote, …)

    @property
    def at_broker(self) -> bool:
        return self in (OrderState.ACCEPTED, OrderState.PARTIALLY_FILLED, OrderState.FILLED,
                        OrderState.CANCELED, OrderState.EXPIRED)

    @classmethod
    def of(cls, status: OrderStatus) -> OrderState:
        """The ledger state for a broker status."""
        return {
            OrderStatus.FILLED: cls.FILLED, OrderStatus.PARTIALLY_FILLED: cls.PARTIALLY_FILLED,
            OrderStatus.CANCELED: cls.CANCELED, OrderStatus.EXPIRED: cls.EXPIRED,
            OrderStatus.DONE_FOR_DAY: cls.EXPIRED, OrderStatus.REJECTED: cls.REJECTED,
            OrderStatus.REPLACED: cls.CANCELED,
        }.get(status, cls.ACCEPTED)


class Sizing(StrEnum):
    """How the submitted quantity relates to the planned one."""

    AS_PLANNED = "as_planned"
    SHRUNK = "shrunk"  # cut before submitting, to fit the running buying-power budget
    RESIZED = "resized"  # cut after an insufficient-buying-power rejection, to what the broker reported


class EventKind(StrEnum):
    RUN_STARTED = "run_started"
    RUN_FINISHED = "run_finished"
    INTENT = "intent"
    ACK = "ack"
    REJECTED = "rejected"
    INSUFFICIENT_BP = "insufficient_buying_power"
    DUPLICATE_ADOPTED = "duplicate_adopted"
    UNKNOWN_OUTCOME = "unknown_outcome"
    RATE_LIMITED = "rate_limited"
    RECONCILED = "reconciled"
    SKIPPED = "skipped"
    SHRUNK = "shrunk"
    FALLBACK = "fallback"
    FILL = "fill"
    STATUS = "status"
    NOTE = "note"


@dataclass(frozen=True)
class LedgerOrder:
    """One planned order and where it stands."""

    run_id: str
    plan_client_id: str
    symbol: str
    side: str
    layer: str
    type: str
    time_in_force: str
    limit_price: float | None
    priority: int
    planned_qty: int
    est_price: float
    take_profit: float | None
    stop_loss: float | None
    strategy: str
    sector: str
    cap_tier: str
    score: float
    weight: float
    state: OrderState
    attempt: int
    client_order_id: str | None
    broker_order_id: str | None
    qty: int
    filled_qty: int
    avg_price: float | None
    sizing: Sizing
    reason: str
    submitted_type: str | None
    submitted_tif: str | None
    submitted_limit: float | None
    updated_at: str


@dataclass(frozen=True)
class LedgerEvent:
    id: int
    run_id: str
    at: str
    kind: EventKind
    plan_client_id: str | None
    client_order_id: str | None
    detail: dict[str, Any]


@dataclass(frozen=True)
class PlanRow:
    """A maxdiff plan as stored for a session."""

    session: str
    run_id: str
    symbol: str
    side: str
    high_target: float
    low_target: float
    avg_return: float
    status: str
    rank: int
    qty: int
    room_needed: float
    updated_at: str


_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY, as_of TEXT, broker TEXT, params_digest TEXT, orders_path TEXT,
    equity REAL, created_at TEXT NOT NULL, started_at TEXT, finished_at TEXT, status TEXT,
    executions INTEGER NOT NULL DEFAULT 0, summary TEXT
);
CREATE TABLE IF NOT EXISTS orders (
    run_id TEXT NOT NULL, plan_client_id TEXT NOT NULL, symbol TEXT NOT NULL, side TEXT NOT NULL,
    layer TEXT NOT NULL, type TEXT NOT NULL, time_in_force TEXT NOT NULL, limit_price REAL,
    priority INTEGER NOT NULL, planned_qty INTEGER NOT NULL, est_price REAL NOT NULL,
    take_profit REAL, stop_loss REAL, strategy TEXT, sector TEXT, cap_tier TEXT, score REAL, weight REAL,
    state TEXT NOT NULL, attempt INTEGER NOT NULL DEFAULT 0, client_order_id TEXT, broker_order_id TEXT,
    qty INTEGER NOT NULL DEFAULT 0, filled_qty INTEGER NOT NULL DEFAULT 0, avg_price REAL,
    sizing TEXT NOT NULL DEFAULT 'as_planned', reason TEXT NOT NULL DEFAULT '',
    submitted_type TEXT, submitted_tif TEXT, submitted_limit REAL, updated_at TEXT NOT NULL,
    PRIMARY KEY (run_id, plan_client_id)
);
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY AUTOINCREMENT, run_id TEXT NOT NULL, at TEXT NOT NULL, kind TEXT NOT NULL,
    plan_client_id TEXT, client_order_id TEXT, detail TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX IF NOT EXISTS events_run ON events (run_id, id);
CREATE TRIGGER IF NOT EXISTS events_no_update BEFORE UPDATE ON events
    BEGIN SELECT RAISE(ABORT, 'events are append-only'); END;
CREATE TRIGGER IF NOT EXISTS events_no_delete BEFORE DELETE ON events
    BEGIN SELECT RAISE(ABORT, 'events are append-only'); END;
CREATE TABLE IF NOT EXISTS fills (
    id INTEGER PRIMARY KEY AUTOINCREMENT, run_id TEXT NOT NULL, plan_client_id TEXT,
    broker_order_id TEXT NOT NULL, client_order_id TEXT NOT NULL, symbol TEXT NOT NULL, side TEXT NOT NULL,
    qty INTEGER NOT NULL, price REAL NOT NULL, at TEXT NOT NULL,
    UNIQUE (broker_order_id, at, qty, price)
);
CREATE TABLE IF NOT EXISTS maxdiff_plans (
    session TEXT NOT NULL, run_id TEXT NOT NULL, symbol TEXT NOT NULL, side TEXT NOT NULL,
    high_target REAL NOT NULL, low_target REAL NOT NULL, avg_return REAL NOT NULL, status TEXT NOT NULL,
    rank INTEGER NOT NULL, qty INTEGER NOT NULL DEFAULT 0, room_needed REAL NOT NULL DEFAULT 0,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (session, symbol, side, rank)
);
"""


def _now() -> str:
    return datetime.now(timezone.utc).isoformat()


def _json_default(v: Any) -> Any:
    if isinstance(v, (datetime, date)):
        return v.isoformat()
    if isinstance(v, StrEnum):
        return str(v)
    raise TypeError(f"not JSON-serialisable: {type(v).__name__}")


class Ledger:
    """The SQLite ledger. Thread-safe (one connection behind a lock); every write commits at once.

    `durable=True` (default) sets `synchronous=FULL`: a committed intent survives even a power cut;
    `False` (replays, tests of speed) uses NORMAL, which still survives the process being killed.
    """

    def __init__(self, path: str | Path, *, durable: bool = True):
        self.path = Path(path)
        if str(path) != ":memory:":
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None, timeout=30)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(f"PRAGMA synchronous={'FULL' if durable else 'NORMAL'}")
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _write(self, sql: str, args: Iterable[Any] = ()) -> sqlite3.Cursor:
        with self._lock:
            return self._db.execute(sql, tuple(args))

    def _rows(self, sql: str, args: Iterable[Any] = ()) -> list[sqlite3.Row]:
        with self._lock:
            return self._db.execute(sql, tuple(args)).fetchall()

    @property
    def journal_mode(self) -> str:
        return self._rows("PRAGMA journal_mode")[0][0]

    # ---- runs -----------------------------------------------------------------------------------

    def start_run(self, run_id: str, *, as_of: date | str | None = None, broker: str = "",
                  params_digest: str = "", orders_path: str | Path | None = None,
                  equity: float | None = None) -> int:
        """Open (or re-open) a run; returns which execution of this run this is (1 for the first)."""
        now = _now()
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.execute(
                    "INSERT OR IGNORE INTO runs (run_id, created_at) VALUES (?, ?)", (run_id, now))
                self._db.execute(
                    "UPDATE runs SET as_of=?, broker=?, params_digest=?, orders_path=?, equity=?, started_at=?, "
                    "finished_at=NULL, status='running', executions=executions+1 WHERE run_id=?",
                    (str(as_of) if as_of else None, broker, params_digest,
                     str(orders_path) if orders_path else None, equity, now, run_id))
                n = self._db.execute("SELECT executions FROM runs WHERE run_id=?", (run_id,)).fetchone()[0]
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        self.record_event(run_id, EventKind.RUN_STARTED, execution=n, broker=broker)
        return n

    def finish_run(self, run_id: str, status: str, summary: dict[str, Any] | None = None) -> None:
        self._write("UPDATE runs SET finished_at=?, status=?, summary=? WHERE run_id=?",
                    (_now(), status, json.dumps(summary or {}, default=_json_default), run_id))
        self.record_event(run_id, EventKind.RUN_FINISHED, status=status)

    def run(self, run_id: str) -> dict[str, Any] | None:
        rows = self._rows("SELECT * FROM runs WHERE run_id=?", (run_id,))
        if not rows:
            return None
        d = dict(rows[0])
        d["summary"] = json.loads(d["summary"]) if d["summary"] else None
        return d

    # ---- orders ---------------------------------------------------------------------------------

    def register_orders(self, run_id: str, orders: Iterable[PlannedOrder]) -> None:
        """Insert each planned order once (state PLANNED); existing rows are left as they are."""
        now = _now()
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                for o in orders:
                    self._db.execute(
                        "INSERT OR IGNORE INTO orders (run_id, plan_client_id, symbol, side, layer, type, "
                        "time_in_force, limit_price, priority, planned_qty, est_price, take_profit, stop_loss, "
                        "strategy, sector, cap_tier, score, weight, state, updated_at) "
                        "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                        (run_id, o.client_order_id, o.symbol, str(o.side), str(o.layer), str(o.type),
                         str(o.time_in_force), o.limit_price, o.priority, o.qty, o.est_price, o.take_profit,
                         o.stop_loss, o.strategy, o.sector, o.cap_tier, o.score, o.weight,
                         str(OrderState.PLANNED), now))
                self._db.execute("COMMIT")
            except BaseException:
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
        cur = self._write(f"UPDATE orders SET {cols}, updated_at=? WHERE run_id=? AND plan_client_id=?",
                          (*vals, _now(), run_id, plan_client_id))
        if cur.rowcount != 1:
            raise KeyError(f"no planned order {plan_client_id!r} in run {run_id!r}; register_orders first")

    def orders_for_run(self, run_id: str) -> list[LedgerOrder]:
        rows = self._rows("SELECT * FROM orders WHERE run_id=? ORDER BY priority, plan_client_id", (run_id,))
        return [self._order(r) for r in rows]

    def order(self, run_id: str, plan_client_id: str) -> LedgerOrder | None:
        rows = self._rows("SELECT * FROM orders WHERE run_id=? AND plan_client_id=?", (run_id, plan_client_id))
        return self._order(rows[0]) if rows else None

    @staticmethod
    def _order(r: sqlite3.Row) -> LedgerOrder:
        d = dict(r)
        d["state"] = OrderState(d["state"])
        d["sizing"] = Sizing(d["sizing"])
        return LedgerOrder(**d)

    # ---- events and fills -----------------------------------------------------------------------

    def record_event(self, run_id: str, kind: EventKind, plan_client_id: str | None = None,
                     client_order_id: str | None = None, **detail: Any) -> None:
        self._write(
            "INSERT INTO events (run_id, at, kind, plan_client_id, client_order_id, detail) VALUES (?,?,?,?,?,?)",
            (run_id, _now(), str(kind), plan_client_id, client_order_id,
             json.dumps(detail, default=_json_default, sort_keys=True)))

    def events(self, run_id: str, kind: EventKind | None = None) -> list[LedgerEvent]:
        sql, args = "SELECT * FROM events WHERE run_id=?", [run_id]
        if kind is not None:
            sql, args = sql + " AND kind=?", [run_id, str(kind)]
        return [LedgerEvent(r["id"], r["run_id"], r["at"], EventKind(r["kind"]), r["plan_client_id"],
                            r["client_order_id"], json.loads(r["detail"]))
                for r in self._rows(sql + " ORDER BY id", args)]

    def record_fill(self, run_id: str, plan_client_id: str | None, fill: Fill) -> bool:
        """Store a fill once (the same execution seen twice is ignored); True when it was new."""
        cur = self._write(
            "INSERT OR IGNORE INTO fills (run_id, plan_client_id, broker_order_id, client_order_id, symbol, side, "
            "qty, price, at) VALUES (?,?,?,?,?,?,?,?,?)",
            (run_id, plan_client_id, fill.order_id, fill.client_order_id, fill.symbol, str(fill.side), fill.qty,
             fill.price, fill.timestamp.isoformat()))
        if cur.rowcount == 1:
            self.record_event(run_id, EventKind.FILL, plan_client_id, fill.client_order_id,
                              qty=fill.qty, price=fill.price, at=fill.timestamp)
            return True
        return False

    def fills_for_run(self, run_id: str) -> list[dict[str, Any]]:
        return [dict(r) for r in self._rows("SELECT * FROM fills WHERE run_id=? ORDER BY id", (run_id,))]

    # ---- export ---------------------------------------------------------------------------------

    def export_execution_log(self, run_id: str, path: str | Path, extra: dict[str, Any] | None = None) -> Path:
        """Write `execution_log.json` for a run (run, orders with final state and reason, events,
        fills), atomically. Holds no secrets: only what the ledger holds."""
        doc = {
            "schema": LOG_SCHEMA,
            "run": self.run(run_id),
            "orders": [asdict(o) for o in self.orders_for_run(run_id)],
            "fills": self.fills_for_run(run_id),
            "events": [asdict(e) for e in self.events(run_id)],
            **(extra or {}),
        }
        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        tmp = p.with_name(p.name + ".tmp")
        tmp.write_text(json.dumps(doc, indent=2, default=_json_default))
        tmp.replace(p)
        return p

    # ---- maxdiff plans --------------------------------------------------------------------------

    def upsert_plan(self, session: date | str, run_id: str, plan: MaxdiffPlan) -> None:
        """Insert or update the plan for (session, symbol, side)."""
        self._write(
            "INSERT INTO maxdiff_plans (session, run_id, symbol, side, high_target, low_target, avg_return, status, "
            "rank, qty, room_needed, updated_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?) "
            "ON CONFLICT (session, symbol, side, rank) DO UPDATE SET run_id=excluded.run_id, "
            "high_target=excluded.high_target, low_target=excluded.low_target, avg_return=excluded.avg_return, "
            "status=excluded.status, qty=excluded.qty, room_needed=excluded.room_needed, "
            "updated_at=excluded.updated_at",
            (str(session), run_id, plan.symbol, plan.side, plan.high_target, plan.low_target, plan.avg_return,
             str(plan.status), plan.rank, plan.qty, plan.room_needed, _now()))

    def plans(self, session: date | str | None = None, status: str | None = None) -> list[PlanRow]:
        """Stored plans, best rank first; filter by session and/or status."""
        sql, args = "SELECT * FROM maxdiff_plans WHERE 1=1", []
        if session is not None:
            sql += " AND session=?"
            args.append(str(session))
        if status is not None:
            sql += " AND status=?"
            args.append(str(status))
        return [PlanRow(**dict(r)) for r in self._rows(sql + " ORDER BY session, rank, symbol", args)]


# ---- intraday engine state (issue 7: wolfkit.intraday / wolfkit.status) -------------------------
# The engine saves its whole state (a JSON document, `wolfkit.intraday.EngineState`) after every step,
# one row per run, so a restart resumes exactly where the last step ended and `wolfkit status` can
# show both layers without a running engine.

_ENGINE_SCHEMA = """
CREATE TABLE IF NOT EXISTS intraday_state (
    run_id TEXT PRIMARY KEY, session TEXT NOT NULL, state TEXT NOT NULL, updated_at TEXT NOT NULL
);
"""


def save_engine_state(ledger: Ledger, run_id: str, session: date | str, state_json: str) -> None:
    """Store (replace) the engine state of a run."""
    with ledger._lock:
        ledger._db.executescript(_ENGINE_SCHEMA)
        ledger._db.execute(
            "INSERT INTO intraday_state (run_id, session, state, updated_at) VALUES (?,?,?,?) "
            "ON CONFLICT (run_id) DO UPDATE SET session=excluded.session, state=excluded.state, "
            "updated_at=excluded.updated_at",
            (run_id, str(session), state_json, _now()))


def load_engine_state(ledger: Ledger, run_id: str | None = None) -> str | None:
    """The saved engine state of `run_id`, or of the most recently updated run when None."""
    with ledger._lock:
        ledger._db.executescript(_ENGINE_SCHEMA)
        if run_id is None:
            row = ledger._db.execute(
                "SELECT state FROM intraday_state ORDER BY updated_at DESC, rowid DESC LIMIT 1").fetchone()
        else:
            row = ledger._db.execute("SELECT state FROM intraday_state WHERE run_id=?", (run_id,)).fetchone()
    return row[0] if row else None
