"""The run lock: one executor per account and session, across processes.

Two executors on one ledger and account each reconcile, budget and submit as if alone; the lock
makes the second wait (up to `execution.lock_wait_seconds`) or stop with exit 2 naming the holder.
The lock is keyed by the account (`wolfkit.broker.account.AccountKey`: broker kind + account id + base
URL), never by the broker's kind: a simulator run and a paper run of one plan never wait for each
other, and two runs on one account always do, whichever command or notebook started them.
It is an `fcntl.flock` on a small file beside the ledger
(`<ledger>.locks/<kind>_<account id>_<digest of the key>_<session>.lock`):
the kernel drops it when the holder dies, however it dies, so a dead holder's lock is simply taken
over (its pid, host and start time are still in the file, and reported). The file is never
deleted — deleting it while held would let a second holder lock a new file. Re-entrant within one
thread, so `execute_orders_file` can hold it around opening the broker and `execute_plan` again inside.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import socket
import threading
import time
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Callable

from wolfkit.broker.account import AccountKey
from wolfkit.errors import BadInputError

_held: dict[Path, tuple[int, int]] = {}  # lock file -> (thread id, depth) held by this process
_held_lock = threading.Lock()


class RunLocked(BadInputError):
    """Another executor holds the run lock for this account and session."""


def lock_path(ledger_path: str | Path, account: AccountKey, session: date | str) -> Path:
    """The lock file of `account` and `session`: readable (kind, account id) and unique (a digest of the
    whole key, so two simulated accounts in different folders, whose ids are both `sim`, never share
    one; a long state-file URL never makes the name too long)."""
    digest = hashlib.sha256(str(account).encode()).hexdigest()[:12]
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", f"{account.kind}_{account.account_id[:40]}_{digest}_{session}")
    p = Path(ledger_path).resolve()
    return p.with_name(p.name + ".locks") / f"{safe}.lock"


class RunLock:
    """`with RunLock(ledger_path, account, session, wait_s):` — held inside, released after."""

    def __init__(self, ledger_path: str | Path, account: AccountKey, session: date | str, wait_s: float = 10.0,
                 sleep: Callable[[float], None] = time.sleep):
        self.enabled = str(ledger_path) != ":memory:"
        self.path = lock_path(ledger_path, account, session)
        self.account, self.session, self.wait_s, self.sleep = account, str(session), wait_s, sleep
        self.took_over: dict | None = None  # the previous holder's record when it had died holding it
        self._fd: int | None = None

    def __enter__(self) -> RunLock:
        if self.enabled:
            self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.enabled:
            self.release()

    def acquire(self) -> None:
        me = threading.get_ident()
        with _held_lock:
            owner = _held.get(self.path)
            if owner is not None and owner[0] == me:
                _held[self.path] = (me, owner[1] + 1)
                return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        deadline = time.monotonic() + self.wait_s
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    holder = _read(fd)
                    os.close(fd)
                    raise RunLocked(self._held_message(holder)) from None
                self.sleep(min(0.1, max(0.0, deadline - time.monotonic())))
        previous = _read(fd)
        if previous.get("pid"):
            self.took_over = previous  # its holder ended without releasing it (killed, crashed)
        record = {"pid": os.getpid(), "host": socket.gethostname(), "account": str(self.account),
                  "session": self.session, "started_at": datetime.now(timezone.utc).isoformat(timespec="seconds")}
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(record).encode(), 0)
        os.fsync(fd)
        self._fd = fd
        with _held_lock:
            _held[self.path] = (me, 1)

    def release(self) -> None:
        with _held_lock:
            owner = _held.get(self.path)
            if owner is None:
                return
            if owner[1] > 1:
                _held[self.path] = (owner[0], owner[1] - 1)
                return
            del _held[self.path]
        if self._fd is not None:
            os.ftruncate(self._fd, 0)  # released cleanly: no holder to report
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def _held_message(self, holder: dict) -> str:
        who = (f"pid {holder.get('pid', '?')} on {holder.get('host', '?')} since {holder.get('started_at', '?')}"
               if holder else "another process")
        return (f"another executor is running for account {self.account}, session {self.session}: {who} holds the "
                f"run lock {self.path} (waited {self.wait_s:g} s, execution.lock_wait_seconds). Let it finish, then "
                "re-run: the re-run reconciles and sends nothing twice")


def _read(fd: int) -> dict:
    try:
        raw = os.pread(fd, 4096, 0)
        return json.loads(raw) if raw.strip() else {}
    except (OSError, ValueError):
        return {}
