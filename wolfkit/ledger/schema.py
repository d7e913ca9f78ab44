"""The ledger's tables, the checks that a file holds them, and the migrations from older wolfkit ledgers.

Schema 3 keys everything by account (`account`: broker kind + account id + base URL, as text): runs,
orders, events, fills, maxdiff plans and the intraday engine's state. The same plan executed on the
simulator and then on paper writes two sets of rows that never meet. Migration 2 → 3 rebuilds each
table with the account column; rows written before get account "" (unknown): they stay readable
(reports, `execution_log.json`), and no executor continues from them — a re-run of their orders file
reconciles from the broker's own order list, as after a lost ledger, so nothing is sent twice.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from wolfkit.ledger.records import FIX, UNKNOWN_ACCOUNT, LedgerError

APPLICATION_ID = 0x574B4C47  # "WKLG" in the SQLite header: this file is a wolfkit ledger
# PRAGMA user_version; 2: fills keyed by (broker order id, cumulative qty), runs.replaced_by; 3: keyed by account
SCHEMA_VERSION = 3

SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    account TEXT NOT NULL DEFAULT '', run_id TEXT NOT NULL, as_of TEXT, broker TEXT, params_digest TEXT,
    orders_path TEXT, equity REAL, created_at TEXT NOT NULL, started_at TEXT, finished_at TEXT, status TEXT,
    executions INTEGER NOT NULL DEFAULT 0, summary TEXT, replaced_by TEXT,
    PRIMARY KEY (account, run_id)
);
CREATE TABLE IF NOT EXISTS orders (
    account TEXT NOT NULL DEFAULT '', run_id TEXT NOT NULL, plan_client_id TEXT NOT NULL, symbol TEXT NOT NULL,
    side TEXT NOT NULL, layer TEXT NOT NULL, type TEXT NOT NULL, time_in_force TEXT NOT NULL, limit_price REAL,
    priority INTEGER NOT NULL, planned_qty INTEGER NOT NULL, est_price REAL NOT NULL,
    take_profit REAL, stop_loss REAL, strategy TEXT, sector TEXT, cap_tier TEXT, score REAL, weight REAL,
    state TEXT NOT NULL, attempt INTEGER NOT NULL DEFAULT 0, client_order_id TEXT, broker_order_id TEXT,
    qty INTEGER NOT NULL DEFAULT 0, filled_qty INTEGER NOT NULL DEFAULT 0, avg_price REAL,
    sizing TEXT NOT NULL DEFAULT 'as_planned', reason TEXT NOT NULL DEFAULT '',
    submitted_type TEXT, submitted_tif TEXT, submitted_limit REAL, updated_at TEXT NOT NULL,
    PRIMARY KEY (account, run_id, plan_client_id)
);
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY AUTOINCREMENT, account TEXT NOT NULL DEFAULT '', run_id TEXT NOT NULL,
    at TEXT NOT NULL, kind TEXT NOT NULL, plan_client_id TEXT, client_order_id TEXT, detail TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX IF NOT EXISTS events_run ON events (run_id, account, id);
CREATE TRIGGER IF NOT EXISTS events_no_update BEFORE UPDATE ON events
    BEGIN SELECT RAISE(ABORT, 'events are append-only'); END;
CREATE TRIGGER IF NOT EXISTS events_no_delete BEFORE DELETE ON events
    BEGIN SELECT RAISE(ABORT, 'events are append-only'); END;
CREATE TABLE IF NOT EXISTS fills (
    id INTEGER PRIMARY KEY AUTOINCREMENT, account TEXT NOT NULL DEFAULT '', run_id TEXT NOT NULL,
    plan_client_id TEXT, broker_order_id TEXT NOT NULL, client_order_id TEXT NOT NULL, symbol TEXT NOT NULL,
    side TEXT NOT NULL, qty INTEGER NOT NULL, price REAL NOT NULL, at TEXT NOT NULL, cum_qty INTEGER NOT NULL,
    UNIQUE (account, broker_order_id, cum_qty)
);
CREATE TABLE IF NOT EXISTS maxdiff_plans (
    account TEXT NOT NULL DEFAULT '', session TEXT NOT NULL, run_id TEXT NOT NULL, symbol TEXT NOT NULL,
    side TEXT NOT NULL, high_target REAL NOT NULL, low_target REAL NOT NULL, avg_return REAL NOT NULL,
    status TEXT NOT NULL, rank INTEGER NOT NULL, qty INTEGER NOT NULL DEFAULT 0,
    room_needed REAL NOT NULL DEFAULT 0, updated_at TEXT NOT NULL,
    PRIMARY KEY (account, session, symbol, side, rank)
);
CREATE TABLE IF NOT EXISTS intraday_state (
    account TEXT NOT NULL DEFAULT '', run_id TEXT NOT NULL, session TEXT NOT NULL, state TEXT NOT NULL,
    updated_at TEXT NOT NULL, PRIMARY KEY (account, run_id)
);
"""

# the columns each table must have for the file to be ours (extra columns from newer code are allowed)
REQUIRED = {
    "runs": {"account", "run_id", "as_of", "broker", "status", "executions", "summary", "replaced_by"},
    "orders": {"account", "run_id", "plan_client_id", "symbol", "side", "state", "attempt", "client_order_id",
               "broker_order_id", "qty", "filled_qty", "avg_price", "sizing", "reason"},
    "events": {"id", "account", "run_id", "at", "kind", "plan_client_id", "client_order_id", "detail"},
    "fills": {"account", "run_id", "broker_order_id", "client_order_id", "qty", "price", "at", "cum_qty"},
    "maxdiff_plans": {"account", "session", "run_id", "symbol", "side", "rank", "status"},
    "intraday_state": {"account", "run_id", "session", "state"},
}


def statements(script: str) -> list[str]:
    """A script as single statements (executescript would commit the transaction it runs in)."""
    out, buf = [], ""
    for part in script.split(";"):
        buf += part + ";"
        if sqlite3.complete_statement(buf):
            if buf.strip(" \n;"):
                out.append(buf.strip())
            buf = ""
    return out


def _tables(db: sqlite3.Connection) -> set[str]:
    return {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}


def _columns(db: sqlite3.Connection, table: str) -> list[str]:
    return [r[1] for r in db.execute(f"PRAGMA table_info({table})")]


def open_schema(db: sqlite3.Connection, path: Path) -> str | None:
    """Create, adopt (an older wolfkit ledger: migrate) or refuse the schema; the write also proves the
    file takes one. Returns what the user should know about a migration, or None."""
    tables = _tables(db)
    app = db.execute("PRAGMA application_id").fetchone()[0]
    version = db.execute("PRAGMA user_version").fetchone()[0]
    ours = app == APPLICATION_ID or (app == 0 and {"runs", "orders", "events", "fills"} <= tables)
    if not ours and (tables - {"sqlite_sequence"} or app != 0):
        raise LedgerError(f"ledger {path} is a SQLite database but not a wolfkit ledger (application id "
                          f"{app:#x}, tables {sorted(tables)[:6]}); point execution.ledger_path at the ledger "
                          "or at a new file")
    if version > SCHEMA_VERSION:
        raise LedgerError(f"ledger {path} has schema version {version}, newer than this wolfkit's "
                          f"{SCHEMA_VERSION}; upgrade wolfkit")
    notice = None
    db.execute("BEGIN IMMEDIATE")  # also the write probe: a read-only file fails here
    try:
        if tables and version < 2:
            _migrate_v2(db, tables)
        if tables and version < 3:
            notice = _migrate_v3(db, path)
        for stmt in statements(SCHEMA):
            db.execute(stmt)
        db.execute(f"PRAGMA application_id={APPLICATION_ID}")
        db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise
    for table, need in REQUIRED.items():
        have = set(_columns(db, table))
        if not need <= have:
            raise LedgerError(f"ledger {path}: table {table} lacks column(s) {sorted(need - have)}, so "
                              f"its schema is not wolfkit's; {FIX}")
    return notice


def _migrate_v2(db: sqlite3.Connection, tables: set[str]) -> None:
    """Older ledgers keyed fills by the clock: key them by (order id, cumulative qty) instead,
    counting each order's fills in the order they were stored (duplicates by identity drop)."""
    if "replaced_by" not in _columns(db, "runs"):
        db.execute("ALTER TABLE runs ADD COLUMN replaced_by TEXT")
    if "fills" in tables and "cum_qty" not in _columns(db, "fills"):
        db.execute("ALTER TABLE fills RENAME TO fills_v1")
        db.execute(
            "CREATE TABLE fills (id INTEGER PRIMARY KEY AUTOINCREMENT, run_id TEXT NOT NULL, plan_client_id TEXT, "
            "broker_order_id TEXT NOT NULL, client_order_id TEXT NOT NULL, symbol TEXT NOT NULL, side TEXT NOT NULL, "
            "qty INTEGER NOT NULL, price REAL NOT NULL, at TEXT NOT NULL, cum_qty INTEGER NOT NULL, "
            "UNIQUE (broker_order_id, cum_qty))")
        db.execute(
            "INSERT OR IGNORE INTO fills (run_id, plan_client_id, broker_order_id, client_order_id, symbol, side, "
            "qty, price, at, cum_qty) SELECT run_id, plan_client_id, broker_order_id, client_order_id, symbol, "
            "side, qty, price, at, SUM(qty) OVER (PARTITION BY broker_order_id ORDER BY id) FROM fills_v1")
        db.execute("DROP TABLE fills_v1")


def _migrate_v3(db: sqlite3.Connection, path: Path) -> str | None:
    """Rebuild every table with the account column in its key; existing rows get account "" (unknown)."""
    for name in ("events_run", ):
        db.execute(f"DROP INDEX IF EXISTS {name}")
    for name in ("events_no_update", "events_no_delete"):  # they move with a renamed table: recreate them
        db.execute(f"DROP TRIGGER IF EXISTS {name}")
    old = {t: _columns(db, t) for t in REQUIRED if t in _tables(db)}
    for t in old:
        db.execute(f"ALTER TABLE {t} RENAME TO {t}_v2")
    for stmt in statements(SCHEMA):
        db.execute(stmt)
    for t, cols in old.items():
        keep = [c for c in cols if c in set(_columns(db, t)) and c != "account"]
        names = ", ".join(keep)
        db.execute(f"INSERT INTO {t} (account, {names}) SELECT ?, {names} FROM {t}_v2", (UNKNOWN_ACCOUNT,))
        db.execute(f"DROP TABLE {t}_v2")
    runs = db.execute("SELECT COUNT(*) FROM runs WHERE account=?", (UNKNOWN_ACCOUNT,)).fetchone()[0]
    if not runs:
        return None
    return (f"the ledger {path} was upgraded to keep each broker account apart (schema {SCHEMA_VERSION}): its "
            f"{runs} earlier run(s) did not record their account and are kept as account 'unknown' — readable "
            "in reports, but no execution continues from them: running one of their orders files again "
            "reconciles from the broker's own order list (nothing is sent twice), and their still-open orders "
            "count as another plan's (`--replace` to take over)")
