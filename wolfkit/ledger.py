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
- ``fills``: one row per execution, keyed by the broker's identity (broker order id, cumulative filled
  quantity), so the same execution seen by any number of processes is stored once.
- ``maxdiff_plans``: the day's maxdiff plans per session, symbol, side and rank (the intraday engine's).

Storage is checked when the ledger opens (`Ledger(path)`): the file must be a SQLite database with
wolfkit's application id and schema, pass `PRAGMA quick_check` and take a write; otherwise
`LedgerError` (exit 2) names the file and the fix, never a raw sqlite traceback. A sidecar marker
(`<ledger>.marker`) records that a ledger was created here, so a ledger that *vanished* (a new one
is started, and said so in `Ledger.notice`) is told apart from one that was *truncated* (an error).
A full disk mid-run poisons the ledger: every later write raises `LedgerFull` at once, so no order
is sent without its intent on disk.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import struct
import threading
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import date, datetime, timezone
from enum import StrEnum
from pathlib import Path
from typing import Any, Iterable, Iterator

from wolfkit.broker.base import BrokerOrder, Fill, OrderStatus
from wolfkit.domain import (
    Layer,
    MaxdiffSide,
    OrderType,
    PlanStatus,
    Side,
    Strategy,
    TimeInForce,
)
from wolfkit.errors import BadInputError
from wolfkit.orders import MaxdiffPlan, PlannedOrder

LOG_SCHEMA = "wolfkit.execution_log/1"
APPLICATION_ID = 0x574B4C47  # "WKLG" in the SQLite header: this file is a wolfkit ledger
SCHEMA_VERSION = 2  # PRAGMA user_version; 2: fills keyed by (broker order id, cumulative qty), runs.replaced_by
_SQLITE_MAGIC = b"SQLite format 3\x00"


class LedgerError(BadInputError):
    """The ledger file cannot be used as it is (garbage, truncated, read-only, foreign, no room)."""


class LedgerFull(LedgerError):
    """The disk filled up while writing the ledger: nothing more is sent until space is freed."""


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
    REPLACED_BY_PLAN = "replaced_by_plan"  # a later plan for the session cancelled this order (`--replace`)


@dataclass(frozen=True)
class LedgerOrder:
    """One planned order and where it stands."""

    run_id: str
    plan_client_id: str
    symbol: str
    side: Side
    layer: Layer
    type: OrderType
    time_in_force: TimeInForce
    limit_price: float | None
    priority: int
    planned_qty: int
    est_price: float
    take_profit: float | None
    stop_loss: float | None
    strategy: Strategy
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
    submitted_type: OrderType | None
    submitted_tif: TimeInForce | None
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
    side: MaxdiffSide
    high_target: float
    low_target: float
    avg_return: float
    status: PlanStatus
    rank: int
    qty: int
    room_needed: float
    updated_at: str


_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY, as_of TEXT, broker TEXT, params_digest TEXT, orders_path TEXT,
    equity REAL, created_at TEXT NOT NULL, started_at TEXT, finished_at TEXT, status TEXT,
    executions INTEGER NOT NULL DEFAULT 0, summary TEXT, replaced_by TEXT
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
    qty INTEGER NOT NULL, price REAL NOT NULL, at TEXT NOT NULL, cum_qty INTEGER NOT NULL,
    UNIQUE (broker_order_id, cum_qty)
);
CREATE TABLE IF NOT EXISTS maxdiff_plans (
    session TEXT NOT NULL, run_id TEXT NOT NULL, symbol TEXT NOT NULL, side TEXT NOT NULL,
    high_target REAL NOT NULL, low_target REAL NOT NULL, avg_return REAL NOT NULL, status TEXT NOT NULL,
    rank INTEGER NOT NULL, qty INTEGER NOT NULL DEFAULT 0, room_needed REAL NOT NULL DEFAULT 0,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (session, symbol, side, rank)
);
"""


# the columns each table must have for the file to be ours (extra columns from newer code are allowed)
_REQUIRED = {
    "runs": {"run_id", "as_of", "broker", "status", "executions", "summary", "replaced_by"},
    "orders": {"run_id", "plan_client_id", "symbol", "side", "state", "attempt", "client_order_id",
               "broker_order_id", "qty", "filled_qty", "avg_price", "sizing", "reason"},
    "events": {"id", "run_id", "at", "kind", "plan_client_id", "client_order_id", "detail"},
    "fills": {"run_id", "broker_order_id", "client_order_id", "qty", "price", "at", "cum_qty"},
    "maxdiff_plans": {"session", "run_id", "symbol", "side", "rank", "status"},
}

_FIX = "restore it from a backup, or move it aside to start a new ledger (a re-run then reconciles with the broker)"


def _connect(path: str) -> sqlite3.Connection:
    """The one place a connection is made (tests open read-only through here)."""
    return sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=30)


def marker_path(path: Path) -> Path:
    """The sidecar that says a ledger was created at `path` (so a vanished one is noticed)."""
    return path.with_name(path.name + ".marker")


def _check_file(path: Path) -> str | None:
    """Refuse a file that is not a whole SQLite database; a notice when a known ledger vanished."""
    marker = marker_path(path)
    wal = path.with_name(path.name + "-wal")
    if not path.exists():
        if wal.exists() and wal.stat().st_size > 0:
            raise LedgerError(f"ledger {path}: the database file is missing but its write-ahead log {wal} is "
                              f"there; restore {path.name} beside it, or move {wal.name} aside to start a new ledger")
        if marker.exists():
            return (f"the ledger {path} had vanished (created {marker.read_text().strip()[:40]}); a new one is "
                    "started and the broker's orders are the record to reconcile against")
        return None
    if path.is_dir():
        raise LedgerError(f"ledger {path} is a directory; set execution.ledger_path to a file")
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(100)
    if size == 0 and not marker.exists() and not wal.exists():
        return None  # a new empty file (e.g. made by `touch`): SQLite initialises it
    if len(head) < 100:
        raise LedgerError(f"ledger {path} is truncated ({size} bytes, a SQLite file has at least a 100-byte "
                          f"header); {_FIX}")
    if head[:16] != _SQLITE_MAGIC:
        raise LedgerError(f"ledger {path} is not a SQLite database (its header is not SQLite's: garbage or another "
                          f"kind of file); point execution.ledger_path at the ledger, or {_FIX}")
    page_size = struct.unpack(">H", head[16:18])[0]
    page_size = 65536 if page_size == 1 else page_size
    change, pages, valid_for = struct.unpack(">I", head[24:28])[0], struct.unpack(">I", head[28:32])[0], \
        struct.unpack(">I", head[92:96])[0]
    if change == valid_for and pages * page_size > size:
        raise LedgerError(f"ledger {path} is truncated: its header says {pages * page_size} bytes, the file has "
                          f"{size}; {_FIX}")
    return None


def _now() -> str:
    return datetime.now(timezone.utc).isoformat()


def _statements(script: str) -> list[str]:
    """A script as single statements (executescript would commit the transaction it runs in)."""
    out, buf = [], ""
    for part in script.split(";"):
        buf += part + ";"
        if sqlite3.complete_statement(buf):
            if buf.strip(" \n;"):
                out.append(buf.strip())
            buf = ""
    return out


def _free_mb(path: Path) -> float:
    return shutil.disk_usage(path.parent if str(path) != ":memory:" else ".").free / 1e6


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
        memory = str(path) == ":memory:"
        self.notice: str | None = None  # something the user should know about the file (a vanished ledger)
        if not memory:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.notice = _check_file(self.path)
        self._lock = threading.RLock()
        self._full: str | None = None  # set once the disk filled up: every later write refuses at once
        try:
            self._db = _connect(str(path))
        except sqlite3.Error as e:
            raise LedgerError(f"ledger {self.path} cannot be opened ({e}); check the path and its directory") from None
        try:
            self._db.row_factory = sqlite3.Row
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute(f"PRAGMA synchronous={'FULL' if durable else 'NORMAL'}")
            self._open_schema()
            bad = [r[0] for r in self._db.execute("PRAGMA quick_check").fetchall() if r[0] != "ok"]
            if bad:
                raise LedgerError(f"ledger {self.path} fails SQLite's integrity check ({'; '.join(bad[:3])}); {_FIX}")
        except BaseException as e:
            self._db.close()
            if isinstance(e, sqlite3.Error):
                raise self._storage_error(e, "opening") from None
            raise
        if not memory and not marker_path(self.path).exists():
            try:
                marker_path(self.path).write_text(_now() + "\n")
            except OSError:
                pass  # the marker only sharpens a later diagnosis; the ledger itself is fine

    def _open_schema(self) -> None:
        """Create, adopt (an older wolfkit ledger: migrate) or refuse the schema; then prove a write."""
        tables = {r[0] for r in self._db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        app = self._db.execute("PRAGMA application_id").fetchone()[0]
        version = self._db.execute("PRAGMA user_version").fetchone()[0]
        ours = app == APPLICATION_ID or (app == 0 and {"runs", "orders", "events", "fills"} <= tables)
        if not ours and (tables - {"sqlite_sequence"} or app != 0):
            raise LedgerError(f"ledger {self.path} is a SQLite database but not a wolfkit ledger (application id "
                              f"{app:#x}, tables {sorted(tables)[:6]}); point execution.ledger_path at the ledger "
                              "or at a new file")
        if version > SCHEMA_VERSION:
            raise LedgerError(f"ledger {self.path} has schema version {version}, newer than this wolfkit's "
                              f"{SCHEMA_VERSION}; upgrade wolfkit")
        self._db.execute("BEGIN IMMEDIATE")  # also the write probe: a read-only file fails here
        try:
            if tables and version < 2:
                self._migrate_v2(tables)
            for stmt in _statements(_SCHEMA):
                self._db.execute(stmt)
            self._db.execute(f"PRAGMA application_id={APPLICATION_ID}")
            self._db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        for table, need in _REQUIRED.items():
            have = {r[1] for r in self._db.execute(f"PRAGMA table_info({table})")}
            if not need <= have:
                raise LedgerError(f"ledger {self.path}: table {table} lacks column(s) {sorted(need - have)}, so "
                                  f"its schema is not wolfkit's; {_FIX}")

    def _migrate_v2(self, tables: set[str]) -> None:
        """Older ledgers keyed fills by the clock: key them by (order id, cumulative qty) instead,
        counting each order's fills in the order they were stored (duplicates by identity drop)."""
        runs_cols = {r[1] for r in self._db.execute("PRAGMA table_info(runs)")}
        if "replaced_by" not in runs_cols:
            self._db.execute("ALTER TABLE runs ADD COLUMN replaced_by TEXT")
        fill_cols = {r[1] for r in self._db.execute("PRAGMA table_info(fills)")}
        if "fills" in tables and "cum_qty" not in fill_cols:
            self._db.execute("ALTER TABLE fills RENAME TO fills_v1")
            for stmt in _statements(_SCHEMA):
                self._db.execute(stmt)
            self._db.execute(
                "INSERT OR IGNORE INTO fills (run_id, plan_client_id, broker_order_id, client_order_id, symbol, side, "
                "qty, price, at, cum_qty) SELECT run_id, plan_client_id, broker_order_id, client_order_id, symbol, "
                "side, qty, price, at, SUM(qty) OVER (PARTITION BY broker_order_id ORDER BY id) FROM fills_v1")
            self._db.execute("DROP TABLE fills_v1")

    def _storage_error(self, e: sqlite3.Error, doing: str) -> LedgerError:
        """A sqlite failure as the error that says what is wrong with the file and how to fix it."""
        msg = str(e).lower()
        if "full" in msg:
            free = _free_mb(self.path)
            return LedgerFull(f"ledger {self.path}: the disk is full ({free:.0f} MB free) while {doing}; nothing more "
                              "is sent. Free space, then re-run the same command: it reconciles with the broker"
                              f"{self._in_doubt()}")
        if "readonly" in msg or "read-only" in msg:
            return LedgerError(f"ledger {self.path} is read-only ({e}); make the file and its directory writable "
                               "(the WAL journal needs <ledger>-wal and -shm beside it) or set execution.ledger_path "
                               "to a writable place")
        if type(e) is sqlite3.DatabaseError or "malformed" in msg or "not a database" in msg:
            return LedgerError(f"ledger {self.path} is damaged ({e}); {_FIX}")
        return LedgerError(f"ledger {self.path}: {e} while {doing}; check the file, its directory and the disk")

    def _in_doubt(self) -> str:
        """Orders whose outcome the ledger could not record (state `submitting`), for the message."""
        try:
            rows = self._db.execute("SELECT run_id, client_order_id FROM orders WHERE state=?",
                                    (str(OrderState.SUBMITTING),)).fetchall()
        except sqlite3.Error:
            return ""
        if not rows:
            return "."
        ids = ", ".join(r[1] or "?" for r in rows[:10])
        return (f". {len(rows)} order(s) were sent or about to be sent without their answer recorded ({ids}"
                f"{', …' if len(rows) > 10 else ''}); the re-run looks each up by client id and adopts it, "
                "never sending it twice.")

    @contextmanager
    def _guard(self, doing: str) -> Iterator[sqlite3.Connection]:
        """Hold the lock and turn sqlite failures into `LedgerError`; after a full disk, refuse at once."""
        with self._lock:
            if self._full is not None:
                raise LedgerFull(self._full)
            try:
                yield self._db
            except (sqlite3.IntegrityError, sqlite3.ProgrammingError, sqlite3.InterfaceError):
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise  # a bug or a refused statement (append-only events), not the storage
            except sqlite3.Error as e:
                if self._db.in_transaction:
                    try:
                        self._db.execute("ROLLBACK")
                    except sqlite3.Error:
                        pass
                err = self._storage_error(e, doing)
                if isinstance(err, LedgerFull):
                    self._full = str(err)
                raise err from None

    @contextmanager
    def connection(self, doing: str) -> Iterator[sqlite3.Connection]:
        """The connection under the ledger's lock and storage guard, for a module that keeps its own table
        in this file (`wolfkit.snapshots`): sqlite failures become `LedgerError`, a full disk `LedgerFull`."""
        with self._guard(doing) as db:
            yield db

    def check_room(self, min_free_mb: float) -> None:
        """Before the first order: the disk under the ledger has at least `min_free_mb` MB free."""
        if str(self.path) == ":memory:":
            return
        free = _free_mb(self.path)
        if free < min_free_mb:
            raise LedgerError(f"ledger {self.path}: only {free:.1f} MB free on its disk, below "
                              f"execution.min_free_disk_mb ({min_free_mb:g} MB); free space (or move the ledger with "
                              "execution.ledger_path) before executing — nothing was sent")

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _write(self, sql: str, args: Iterable[Any] = ()) -> sqlite3.Cursor:
        with self._guard("writing") as db:
            return db.execute(sql, tuple(args))

    def _rows(self, sql: str, args: Iterable[Any] = ()) -> list[sqlite3.Row]:
        with self._lock:
            try:
                return self._db.execute(sql, tuple(args)).fetchall()
            except sqlite3.Error as e:
                raise self._storage_error(e, "reading") from None

    @property
    def journal_mode(self) -> str:
        return self._rows("PRAGMA journal_mode")[0][0]

    # ---- runs -----------------------------------------------------------------------------------

    def start_run(self, run_id: str, *, as_of: date | str | None = None, broker: str = "",
                  params_digest: str = "", orders_path: str | Path | None = None,
                  equity: float | None = None) -> int:
        """Open (or re-open) a run; returns which execution of this run this is (1 for the first)."""
        now = _now()
        with self._guard("starting the run"):
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
                if self._db.in_transaction:
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

    def session_runs(self, session: date | str, broker: str) -> list[dict[str, Any]]:
        """The runs executed for `session` on `broker` (oldest first), replaced ones included."""
        return [dict(r) for r in self._rows(
            "SELECT run_id, orders_path, started_at, status, replaced_by FROM runs WHERE as_of=? AND broker=? "
            "ORDER BY created_at, run_id", (str(session), broker))]

    def run_ids(self) -> list[str]:
        return [r[0] for r in self._rows("SELECT run_id FROM runs")]

    def mark_replaced(self, run_id: str, by: str) -> None:
        """`run_id` was replaced by the plan `by` (its open orders cancelled): no longer live."""
        self._write("UPDATE runs SET replaced_by=?, status='replaced' WHERE run_id=?", (by, run_id))
        self.record_event(run_id, EventKind.REPLACED_BY_PLAN, replaced_by=by)

    def runs_replaced_by(self, run_id: str) -> list[str]:
        return [r[0] for r in self._rows("SELECT run_id FROM runs WHERE replaced_by=? ORDER BY run_id", (run_id,))]

    # ---- orders ---------------------------------------------------------------------------------

    def register_orders(self, run_id: str, orders: Iterable[PlannedOrder]) -> None:
        """Insert each planned order once (state PLANNED); existing rows are left as they are."""
        now = _now()
        with self._guard("registering the plan"):
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
        d["side"], d["layer"], d["strategy"] = Side(d["side"]), Layer(d["layer"]), Strategy(d["strategy"])
        d["type"], d["time_in_force"] = OrderType(d["type"]), TimeInForce(d["time_in_force"])
        d["submitted_type"] = OrderType(d["submitted_type"]) if d["submitted_type"] else None
        d["submitted_tif"] = TimeInForce(d["submitted_tif"]) if d["submitted_tif"] else None
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
        """Store an execution once, by the broker's identity (order id, cumulative quantity); True when new.

        What another process already stored for the order is not stored again: a fill that covers
        executions already recorded (a fresh process sees a partly recorded order as one fill from
        zero) is cut to the quantity beyond them, at the price that makes the order's total cost
        come out right. So the ledger's shares per order equal the broker's filled quantity.
        """
        with self._guard("recording a fill") as db:
            db.execute("BEGIN IMMEDIATE")
            seen = db.execute("SELECT COALESCE(MAX(cum_qty), 0) FROM fills WHERE broker_order_id=?",
                              (fill.order_id,)).fetchone()[0]
            if fill.cum_qty <= seen:
                db.execute("COMMIT")
                return False
            qty, price, start = fill.qty, fill.price, fill.cum_qty - fill.qty
            if start < seen:  # overlaps recorded executions: keep only the part beyond them
                covered = 0.0
                for r in db.execute("SELECT qty, price, cum_qty FROM fills WHERE broker_order_id=? AND cum_qty>?",
                                    (fill.order_id, start)):
                    lo = max(start, r["cum_qty"] - r["qty"])
                    covered += max(0, r["cum_qty"] - lo) * r["price"]
                qty = fill.cum_qty - seen
                rest = fill.qty * fill.price - covered
                price = round(rest / qty, 6) if rest > 0 else fill.price
            db.execute(
                "INSERT INTO fills (run_id, plan_client_id, broker_order_id, client_order_id, symbol, side, qty, "
                "price, at, cum_qty) VALUES (?,?,?,?,?,?,?,?,?,?)",
                (run_id, plan_client_id, fill.order_id, fill.client_order_id, fill.symbol, str(fill.side), qty,
                 price, fill.timestamp.isoformat(), fill.cum_qty))
            self.record_event(run_id, EventKind.FILL, plan_client_id, fill.client_order_id,
                              qty=qty, price=price, cum_qty=fill.cum_qty, at=fill.timestamp)
            db.execute("COMMIT")
            return True

    def recorded_fill_qty(self, broker_order_id: str) -> int:
        """Shares of this broker order the fills table holds (its highest cumulative quantity)."""
        return self._rows("SELECT COALESCE(MAX(cum_qty), 0) FROM fills WHERE broker_order_id=?",
                          (broker_order_id,))[0][0]

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
        tmp = p.with_name(p.name + f".{os.getpid()}.tmp")
        try:
            p.parent.mkdir(parents=True, exist_ok=True)
            tmp.write_text(json.dumps(doc, indent=2, default=_json_default))
            tmp.replace(p)
        except OSError as e:
            tmp.unlink(missing_ok=True)
            raise LedgerError(f"cannot write {p} ({e.strerror or e}); the ledger {self.path} holds the run — free "
                              "space or fix the folder, then re-run (nothing is sent twice)") from None
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
        return [PlanRow(**{**dict(r), "side": MaxdiffSide(r["side"]), "status": PlanStatus(r["status"])})
                for r in self._rows(sql + " ORDER BY session, rank, symbol", args)]


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
