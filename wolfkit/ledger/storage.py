"""The ledger's storage: the file checks, the one connection, and the guard that turns every sqlite
failure into an error naming the file and the fix.

`Store(path)` refuses a file that is not a whole wolfkit ledger (garbage, truncated, read-only,
foreign, a newer schema) with `LedgerError` (exit 2), never a raw sqlite traceback. A sidecar marker
(`<ledger>.marker`) records that a ledger was created here, so a ledger that *vanished* (a new one is
started, and said so in `notice`) is told apart from one that was *truncated* (an error). A full
disk mid-run poisons the ledger: every later write raises `LedgerFull` at once, so no order is sent
without its intent on disk.

One file holds every account; `Store.for_account(key)` is a view of the same connection that reads
and writes one account's rows only (`account`). An unbound store reads every account and writes
account "" (unknown): reports and tests.
"""

from __future__ import annotations

import copy
import shutil
import sqlite3
import struct
import sys
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime, timezone
from enum import StrEnum
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Self

from wolfkit.ledger.records import FIX, UNKNOWN_ACCOUNT, LedgerError, LedgerFull, OrderState
from wolfkit.ledger.schema import open_schema

_SQLITE_MAGIC = b"SQLite format 3\x00"

def connect(path: str) -> sqlite3.Connection:
    """The one place a connection is made (exported as `wolfkit.ledger._connect`)."""
    return sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=30)


def _connector() -> Callable[[str], sqlite3.Connection]:
    """`wolfkit.ledger._connect` as it is when a ledger opens (a test opens read-only by replacing it there);
    looked up in `sys.modules`, not imported, because the package imports this module."""
    package = sys.modules.get(__name__.rpartition(".")[0])
    found = getattr(package, "_connect", connect)
    return found if callable(found) else connect


def marker_path(path: Path) -> Path:
    """The sidecar that says a ledger was created at `path` (so a vanished one is noticed)."""
    return path.with_name(path.name + ".marker")


def check_file(path: Path) -> str | None:
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
                          f"header); {FIX}")
    if head[:16] != _SQLITE_MAGIC:
        raise LedgerError(f"ledger {path} is not a SQLite database (its header is not SQLite's: garbage or another "
                          f"kind of file); point execution.ledger_path at the ledger, or {FIX}")
    page_size = struct.unpack(">H", head[16:18])[0]
    page_size = 65536 if page_size == 1 else page_size
    change, pages, valid_for = struct.unpack(">I", head[24:28])[0], struct.unpack(">I", head[28:32])[0], \
        struct.unpack(">I", head[92:96])[0]
    if change == valid_for and pages * page_size > size:
        raise LedgerError(f"ledger {path} is truncated: its header says {pages * page_size} bytes, the file has "
                          f"{size}; {FIX}")
    return None


def now_text() -> str:
    return datetime.now(timezone.utc).isoformat()


def free_mb(path: Path) -> float:
    return shutil.disk_usage(path.parent if str(path) != ":memory:" else ".").free / 1e6


def json_default(v: Any) -> Any:
    if isinstance(v, (datetime, date)):
        return v.isoformat()
    if isinstance(v, StrEnum):
        return str(v)
    raise TypeError(f"not JSON-serialisable: {type(v).__name__}")


@dataclass
class _Shared:
    """What every account view of one open ledger shares: the connection, its lock, the full-disk state."""

    db: sqlite3.Connection
    lock: threading.RLock
    full: str | None = None  # set once the disk filled up: every later write refuses at once


class Store:
    """The SQLite file behind the ledger. Thread-safe (one connection behind a lock); every write commits at once.

    `durable=True` (default) sets `synchronous=FULL`: a committed intent survives even a power cut;
    `False` (replays, tests of speed) uses NORMAL, which still survives the process being killed.
    """

    account: str | None = None  # None: every account (reads), "" (writes); else one account's rows

    def __init__(self, path: str | Path, *, durable: bool = True):
        self.path = Path(path)
        memory = str(path) == ":memory:"
        self.notice: str | None = None  # something the user should know about the file (a vanished ledger)
        if not memory:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.notice = check_file(self.path)
        try:
            db = _connector()(str(path))
        except sqlite3.Error as e:
            raise LedgerError(f"ledger {self.path} cannot be opened ({e}); check the path and its directory") from None
        self._shared = _Shared(db, threading.RLock())
        try:
            self._db.row_factory = sqlite3.Row
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute(f"PRAGMA synchronous={'FULL' if durable else 'NORMAL'}")
            migrated = open_schema(self._db, self.path)
            if migrated:
                self.notice = "; ".join(filter(None, [self.notice, migrated]))
            bad = [r[0] for r in self._db.execute("PRAGMA quick_check").fetchall() if r[0] != "ok"]
            if bad:
                raise LedgerError(f"ledger {self.path} fails SQLite's integrity check ({'; '.join(bad[:3])}); {FIX}")
        except BaseException as e:
            self._db.close()
            if isinstance(e, sqlite3.Error):
                raise self._storage_error(e, "opening") from None
            raise
        if not memory and not marker_path(self.path).exists():
            try:
                marker_path(self.path).write_text(now_text() + "\n")
            except OSError:
                pass  # the marker only sharpens a later diagnosis; the ledger itself is fine


    @property
    def _db(self) -> sqlite3.Connection:
        return self._shared.db

    @property
    def _lock(self) -> threading.RLock:
        return self._shared.lock

    @property
    def _full(self) -> str | None:
        return self._shared.full

    def for_account(self, account: object) -> Self:
        """A view of this ledger that reads and writes `account`'s rows only (same file, same connection);
        `account` is an `AccountKey` or its text."""
        view = copy.copy(self)
        view.account = str(account)
        return view

    @property
    def write_account(self) -> str:
        """The account rows written through this view carry ("" when unbound: unknown)."""
        return UNKNOWN_ACCOUNT if self.account is None else self.account

    def _mine(self, alias: str = "") -> tuple[str, list[Any]]:
        """SQL (` AND account=?`) and its argument restricting a query to this view's account; nothing when unbound."""
        if self.account is None:
            return "", []
        return f" AND {alias}account=?", [self.account]

    def _storage_error(self, e: sqlite3.Error, doing: str) -> LedgerError:
        """A sqlite failure as the error that says what is wrong with the file and how to fix it."""
        msg = str(e).lower()
        if "full" in msg:
            free = free_mb(self.path)
            return LedgerFull(f"ledger {self.path}: the disk is full ({free:.0f} MB free) while {doing}; nothing more "
                              "is sent. Free space, then re-run the same command: it reconciles with the broker"
                              f"{self._in_doubt()}")
        if "readonly" in msg or "read-only" in msg:
            return LedgerError(f"ledger {self.path} is read-only ({e}); make the file and its directory writable "
                               "(the WAL journal needs <ledger>-wal and -shm beside it) or set execution.ledger_path "
                               "to a writable place")
        if type(e) is sqlite3.DatabaseError or "malformed" in msg or "not a database" in msg:
            return LedgerError(f"ledger {self.path} is damaged ({e}); {FIX}")
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
                    self._shared.full = str(err)
                raise err from None

    @contextmanager
    def connection(self, doing: str) -> Iterator[sqlite3.Connection]:
        """The connection under the ledger's lock and storage guard, for a module that keeps its own table
        in this file (`wolfkit.snapshots`): sqlite failures become `LedgerError`, a full disk `LedgerFull`."""
        with self._guard(doing) as db:
            yield db

    def check_room(self, minfree_mb: float) -> None:
        """Before the first order: the disk under the ledger has at least `minfree_mb` MB free."""
        if str(self.path) == ":memory:":
            return
        free = free_mb(self.path)
        if free < minfree_mb:
            raise LedgerError(f"ledger {self.path}: only {free:.1f} MB free on its disk, below "
                              f"execution.min_free_disk_mb ({minfree_mb:g} MB); free space (or move the ledger with "
                              "execution.ledger_path) before executing — nothing was sent")

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> Self:
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

