"""Money safety, the ledger's part (issue 10 items 3, 5, 7, 8): fills recorded once, one plan per
session and account, storage checked before the first order, one executor per account and session."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from datetime import date, datetime, timezone
from pathlib import Path

import pytest
from factories import OPEN, REFERENCE_PACK, SESSION, make_plan, quoted_sim

from wolfkit.broker.account import sim_account
from wolfkit.broker.base import Fill, OrderRequest
from wolfkit.broker.sim import SimBroker
from wolfkit.calendar import today_ny
from wolfkit.cli import main
from wolfkit.config import Params
from wolfkit.domain import Side
from wolfkit.errors import BadInputError
from wolfkit.execute import execute_plan
from wolfkit.ledger import (
    EventKind,
    Ledger,
    LedgerError,
    LedgerFull,
    OrderState,
    marker_path,
)
from wolfkit.orders import OrderPlan, write_orders
from wolfkit.runlock import RunLock, RunLocked, lock_path

ROOT = Path(__file__).resolve().parents[1]
T0 = datetime(2024, 6, 3, 14, 0, tzinfo=timezone.utc)
SIM_KEY = sim_account(None)  # an in-memory simulated account


def small_plan(run_id: str, n: int = 5, equity: float = 100_000.0, as_of: date = SESSION) -> OrderPlan:
    """The first `n` names of the reference pack at half their weight: they all fit the account."""
    return make_plan(run_id=run_id, equity=equity, pack=REFERENCE_PACK[:n], scale=0.5, as_of=as_of)


def params(**execution) -> Params:
    return Params.model_validate({"execution": {"lock_wait_seconds": 0, **execution}})


def execute(plan, broker, ledger, **kw):
    return execute_plan(plan, broker, ledger, params(), now=lambda: OPEN, sleep=lambda s: None, **kw)


def fill(cum: int, qty: int, price: float, order: str = "b-1") -> Fill:
    return Fill(order, "wk-1", "AAPL", Side.BUY, qty, price, T0, cum)


# ---- 3. fills recorded once ---------------------------------------------------------------------


def test_fill_identity_is_the_brokers_not_the_clock(tmp_path):
    with Ledger(tmp_path / "l.sqlite") as lg:
        lg.start_run("r")
        assert lg.record_fill("r", None, fill(3, 3, 100.0)) is True
        later = Fill("b-1", "wk-1", "AAPL", Side.BUY, 3, 100.0, datetime.now(timezone.utc), 3)
        assert lg.record_fill("r", None, later) is False  # same execution, another process, another clock
        # a fresh process sees the order at 8 filled (avg 101.25) as one fill from zero: only 5 are new
        assert lg.record_fill("r", None, fill(8, 8, 101.25)) is True
        assert lg.record_fill("r", None, fill(5, 2, 100.0)) is False  # inside what is recorded
        rows = lg.fills_for_run("r")
        assert [(r["qty"], r["cum_qty"]) for r in rows] == [(3, 3), (5, 8)]
        assert rows[1]["price"] == pytest.approx((8 * 101.25 - 3 * 100.0) / 5)
        assert lg.recorded_fill_qty("b-1") == 8 and lg.recorded_fill_qty("b-2") == 0


def test_old_ledger_fills_are_migrated_to_the_brokers_identity(tmp_path):
    path = tmp_path / "old.sqlite"
    db = sqlite3.connect(path)
    db.executescript("""
        CREATE TABLE runs (run_id TEXT PRIMARY KEY, as_of TEXT, broker TEXT, params_digest TEXT, orders_path TEXT,
            equity REAL, created_at TEXT NOT NULL, started_at TEXT, finished_at TEXT, status TEXT,
            executions INTEGER NOT NULL DEFAULT 0, summary TEXT);
        CREATE TABLE orders (run_id TEXT NOT NULL, plan_client_id TEXT NOT NULL, symbol TEXT NOT NULL,
            side TEXT NOT NULL, layer TEXT NOT NULL, type TEXT NOT NULL, time_in_force TEXT NOT NULL,
            limit_price REAL, priority INTEGER NOT NULL, planned_qty INTEGER NOT NULL, est_price REAL NOT NULL,
            take_profit REAL, stop_loss REAL, strategy TEXT, sector TEXT, cap_tier TEXT, score REAL, weight REAL,
            state TEXT NOT NULL, attempt INTEGER NOT NULL DEFAULT 0, client_order_id TEXT, broker_order_id TEXT,
            qty INTEGER NOT NULL DEFAULT 0, filled_qty INTEGER NOT NULL DEFAULT 0, avg_price REAL,
            sizing TEXT NOT NULL DEFAULT 'as_planned', reason TEXT NOT NULL DEFAULT '', submitted_type TEXT,
            submitted_tif TEXT, submitted_limit REAL, updated_at TEXT NOT NULL, PRIMARY KEY (run_id, plan_client_id));
        CREATE TABLE events (id INTEGER PRIMARY KEY AUTOINCREMENT, run_id TEXT NOT NULL, at TEXT NOT NULL,
            kind TEXT NOT NULL, plan_client_id TEXT, client_order_id TEXT, detail TEXT NOT NULL DEFAULT '{}');
        CREATE TABLE fills (id INTEGER PRIMARY KEY AUTOINCREMENT, run_id TEXT NOT NULL, plan_client_id TEXT,
            broker_order_id TEXT NOT NULL, client_order_id TEXT NOT NULL, symbol TEXT NOT NULL, side TEXT NOT NULL,
            qty INTEGER NOT NULL, price REAL NOT NULL, at TEXT NOT NULL, UNIQUE (broker_order_id, at, qty, price));
        INSERT INTO fills (run_id, broker_order_id, client_order_id, symbol, side, qty, price, at)
            VALUES ('r', 'b-1', 'wk-1', 'AAPL', 'buy', 3, 100, 't1'), ('r', 'b-1', 'wk-1', 'AAPL', 'buy', 5, 102, 't2');
    """)
    db.close()
    with Ledger(path) as lg:
        assert [(r["qty"], r["cum_qty"]) for r in lg.fills_for_run("r")] == [(3, 3), (5, 8)]
        assert lg.record_fill("r", None, fill(8, 8, 101.25)) is False
    assert sqlite3.connect(path).execute("PRAGMA user_version").fetchone()[0] == 3


def test_four_executions_through_alpaca_py_record_each_fill_once(tmp_path, monkeypatch):
    """The issue's reproduction: the plan executed 4 times, each with a fresh adapter (a new process's
    view), while the market fills the orders in pieces between executions."""
    from wolfkit.broker.alpaca import AlpacaBroker
    from wolfkit.broker.emulator import Faults, create_app, serve

    b = quoted_sim(seed=7)
    srv = serve(create_app(b, Faults(partial_fill=0.6)))
    try:
        for k in ("APCA_API_BASE_URL", "APCA_API_DATA_URL"):
            monkeypatch.setenv(k, srv.url)
        monkeypatch.setenv("APCA_API_KEY_ID", "k")
        monkeypatch.setenv("APCA_API_SECRET_KEY", "s")
        plan = small_plan("fills4")
        with Ledger(tmp_path / "l.sqlite", durable=False) as lg:
            for _ in range(4):
                report = execute(plan, AlpacaBroker(timeout=5), lg)
                b.step()  # fills (some partial) happen between executions
            report = execute(plan, AlpacaBroker(timeout=5), lg)
            rows = lg.fills_for_run(plan.run_id)
    finally:
        srv.shutdown()
    broker_fills = b.fills()
    assert len(broker_fills) > len(plan.orders)  # partial fills happened
    assert len(rows) == len(broker_fills)
    assert sum(r["qty"] for r in rows) == sum(f.qty for f in broker_fills)
    per_order = Counter()
    for r in rows:
        per_order[r["broker_order_id"]] += r["qty"]
    assert per_order == Counter({o.id: o.filled_qty for o in b.orders() if o.filled_qty})
    assert (report.fills, report.filled_shares) == (len(broker_fills), sum(f.qty for f in broker_fills))
    assert report.execution == 5 and len(b.orders()) == len(plan.orders)


def test_fills_made_while_no_executor_watched_are_caught_up(tmp_path):
    """A fresh SimBroker process has no update stream of earlier fills: the executor takes the
    broker's filled quantities instead, once."""
    state = tmp_path / "sim.json"
    b = quoted_sim()
    b.persist(state)
    plan = small_plan("catchup")
    with Ledger(tmp_path / "l.sqlite") as lg:
        execute(plan, b, lg)
        b.step()  # filled after the executor settled
        for _ in range(2):
            again = SimBroker.load(state, clock=lambda: OPEN)  # a new process: no updates pending
            report = execute(plan, again, lg)
        rows = lg.fills_for_run(plan.run_id)
    assert sum(r["qty"] for r in rows) == sum(f.qty for f in b.fills()) == report.filled_shares > 0
    assert len(rows) == len(b.fills())


# ---- 7. storage ---------------------------------------------------------------------------------


def a_ledger(path: Path) -> Path:
    with Ledger(path) as lg:
        lg.start_run("r")
        for i in range(300):
            lg.record_event("r", EventKind.NOTE, None, None, n=i, pad="x" * 200)
    return path


def test_garbage_file_is_a_clear_error(tmp_path):
    p = tmp_path / "ledger.sqlite"
    p.write_bytes(os.urandom(4096))
    with pytest.raises(LedgerError, match="not a SQLite database") as e:
        Ledger(p)
    assert str(p) in str(e.value) and e.value.exit_code == 2


@pytest.mark.parametrize("keep", [0, 50, "half"])
def test_truncated_ledger_is_an_error_not_a_silent_restart(tmp_path, keep):
    p = a_ledger(tmp_path / "ledger.sqlite")
    size = p.stat().st_size
    with open(p, "r+b") as f:
        f.truncate(size // 2 if keep == "half" else keep)
    with pytest.raises(LedgerError, match="truncated") as e:
        Ledger(p)
    assert str(p) in str(e.value)


def test_vanished_ledger_is_noticed_and_started_anew(tmp_path):
    p = a_ledger(tmp_path / "ledger.sqlite")
    assert marker_path(p).exists()
    p.unlink()
    with Ledger(p) as lg:
        assert lg.notice and "vanished" in lg.notice and lg.run("r") is None


def test_rerun_after_the_ledger_vanished_sends_nothing_twice_and_says_so(tmp_path):
    b = quoted_sim()
    plan = small_plan("lost")
    p = tmp_path / "l.sqlite"
    with Ledger(p) as lg:
        execute(plan, b, lg)
    n = len(b.orders())
    for f in tmp_path.glob("l.sqlite*"):
        if f.is_file() and not f.name.endswith(".marker"):
            f.unlink()
    with Ledger(p) as lg:
        report = execute(plan, b, lg)  # its own orders at the broker are not "another plan"
    assert len(b.orders()) == n and report.unresolved == 0
    assert any("vanished" in note for note in report.notes)


def test_missing_database_with_its_wal_left_is_refused(tmp_path):
    p = tmp_path / "ledger.sqlite"
    p.with_name("ledger.sqlite-wal").write_bytes(b"x" * 64)
    with pytest.raises(LedgerError, match="write-ahead log"):
        Ledger(p)


def test_read_only_ledger_is_a_clear_error(tmp_path, monkeypatch):
    """Tests run as root, for whom chmod does not stop a write: open the file the way SQLite opens a
    read-only one (mode=ro) instead — a real read-only database, not a mocked error."""
    import wolfkit.ledger as ledger_mod

    p = a_ledger(tmp_path / "ledger.sqlite")
    monkeypatch.setattr(ledger_mod, "_connect", lambda path: sqlite3.connect(
        f"file:{path}?mode=ro", uri=True, check_same_thread=False, isolation_level=None))
    with pytest.raises(LedgerError, match="read-only") as e:
        Ledger(p)
    assert "writable" in str(e.value)


def test_foreign_sqlite_file_is_not_taken_for_a_ledger(tmp_path):
    p = tmp_path / "other.sqlite"
    sqlite3.connect(p).executescript("CREATE TABLE prices (symbol TEXT, px REAL); INSERT INTO prices VALUES ('A', 1);")
    with pytest.raises(LedgerError, match="not a wolfkit ledger"):
        Ledger(p)


def test_corrupt_page_fails_the_integrity_check(tmp_path):
    p = a_ledger(tmp_path / "ledger.sqlite")
    with Ledger(p) as lg:
        lg._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    with open(p, "r+b") as f:  # scribble over the middle of the file, header intact
        f.seek(p.stat().st_size // 2)
        f.write(os.urandom(8192))
    with pytest.raises(LedgerError, match="integrity check|damaged"):
        Ledger(p)


def test_no_room_on_disk_refuses_before_the_first_order(tmp_path, monkeypatch):
    import shutil

    import wolfkit.ledger as ledger_mod

    monkeypatch.setattr(ledger_mod.shutil, "disk_usage", lambda p: shutil._ntuple_diskusage(10**10, 10**10, 10**6))
    b = quoted_sim()
    with Ledger(tmp_path / "l.sqlite") as lg, pytest.raises(LedgerError, match="min_free_disk_mb") as e:
        execute(small_plan("room"), b, lg)
    assert e.value.exit_code == 2 and b.orders() == [] and b.request_count == 0


def test_disk_full_mid_batch_stops_sending_then_a_rerun_reconciles(tmp_path):
    """A real SQLITE_FULL (the ledger's page limit reached after the third order went out): sending
    stops at once, the message names the orders in doubt, and a re-run with room completes the plan
    with each order exactly once."""
    plan = small_plan("full", n=12)
    b = quoted_sim()

    class FillsTheDisk:
        def __init__(self, inner, lg):
            self.inner, self.lg, self.name, self.sent, self.after_full = inner, lg, inner.name, 0, 0

        def __getattr__(self, k):
            return getattr(self.inner, k)

        def submit(self, r: OrderRequest):
            self.after_full += self.lg._full is not None
            o = self.inner.submit(r)
            self.sent += 1
            if self.sent == 3:
                pages = self.lg._db.execute("PRAGMA page_count").fetchone()[0]
                self.lg._db.execute(f"PRAGMA max_page_count={pages}")
            return o

    p = tmp_path / "l.sqlite"
    with Ledger(p) as lg:
        broker = FillsTheDisk(b, lg)
        with pytest.raises(LedgerFull) as e:
            execute_plan(plan, broker, lg, params(max_concurrency=1), now=lambda: OPEN,
                         sleep=lambda s: None)
        rows = lg.orders_for_run(plan.run_id)
    msg = str(e.value)
    assert e.value.exit_code == 2 and "disk is full" in msg and "re-run" in msg
    sent = len(b.orders())
    assert 3 <= sent < len(plan.orders) and broker.after_full == 0  # no request once a write had failed
    doubt = [r for r in rows if r.state == OrderState.SUBMITTING]
    assert all(r.client_order_id in msg for r in doubt)  # nothing stuck without being named
    assert {o.client_order_id for o in b.orders()} <= {r.client_order_id for r in rows if r.client_order_id}
    with Ledger(p) as lg:  # space freed (a new connection has no page limit)
        report = execute(plan, b, lg)
    assert report.unresolved == 0 and report.accepted == len(plan.orders)
    assert sorted(o.client_order_id for o in b.orders()) == sorted(po.client_order_id for po in plan.orders)


def cli_files(tmp_path, **execution):
    ledger = tmp_path / "ledger.sqlite"
    extra = "".join(f"  {k}: {v}\n" for k, v in execution.items())
    pfile = tmp_path / "p.yaml"
    pfile.write_text(f"extends: {ROOT / 'parameters/default.yaml'}\nexecution:\n  broker: sim\n"
                     f"  ledger_path: {ledger}\n{extra}")
    folder = tmp_path / "outputs" / str(today_ny())
    return pfile, ledger, folder


@pytest.mark.parametrize("damage", ["garbage", "truncated"])
def test_cli_execute_and_status_on_a_damaged_ledger_exit_2(tmp_path, capsys, damage):
    pfile, ledger, folder = cli_files(tmp_path)
    if damage == "garbage":
        ledger.write_bytes(b"\x00garbage" * 500)
    else:
        a_ledger(ledger)
        with open(ledger, "r+b") as f:
            f.truncate(60)
    orders = write_orders(small_plan("cli", as_of=today_ny()), folder / "orders.json")
    assert main(["execute", "--orders", str(orders), "--params", str(pfile)]) == 2
    err = capsys.readouterr().err
    assert str(ledger.name) in err and "Traceback" not in err
    assert not (folder / "sim_broker.json").exists()  # nothing was opened, let alone sent
    assert main(["status", "--ledger", str(ledger)]) == 2


# ---- 5. one plan per session and account ----------------------------------------------------------


def test_second_plan_for_the_session_exits_2_naming_the_live_plan(tmp_path):
    b = quoted_sim()
    with Ledger(tmp_path / "l.sqlite") as lg:
        execute(small_plan("planA"), b, lg)  # open market orders: not filled yet
        n = len(b.orders())
        with pytest.raises(BadInputError, match="planA") as e:
            execute(small_plan("planB"), b, lg)
        assert "--replace" in str(e.value) and e.value.exit_code == 2
        assert len(b.orders()) == n and lg.run("planB") is None
        b.step()  # now filled: the positions it filled are live too
        with pytest.raises(BadInputError, match="still held"):
            execute(small_plan("planB"), b, lg)
        # the live plan's own re-run is fine
        assert execute(small_plan("planA"), b, lg).unresolved == 0


def test_a_plan_whose_positions_are_gone_does_not_block(tmp_path):
    b = quoted_sim()
    with Ledger(tmp_path / "l.sqlite") as lg:
        execute(small_plan("planA", n=2), b, lg)
        for o in b.open_orders():
            b.cancel(o.id)
        report = execute(small_plan("planB", n=2), b, lg)
    assert report.accepted == 2


def test_replace_cancels_the_first_plan_and_sizes_against_its_fills(tmp_path):
    b = quoted_sim(partial_fill_prob=1.0, seed=3)  # every fill opportunity fills part
    plan_a, plan_b = small_plan("planA"), small_plan("planB")
    with Ledger(tmp_path / "l.sqlite") as lg:
        execute(plan_a, b, lg)
        b.step()  # A partly filled, the rest open
        filled_a = {o.symbol: o.filled_qty for o in b.orders()}
        assert all(0 < filled_a[po.symbol] < po.qty for po in plan_a.orders)
        report = execute(plan_b, b, lg, replace=True)
        assert lg.run("planA")["status"] == "replaced" and lg.run("planA")["replaced_by"] == "planB"
        a_rows = lg.orders_for_run("planA")
        assert all(r.state == OrderState.CANCELED for r in a_rows)
        assert any(n.startswith("replaced plan planA") for n in report.notes)
        b_orders = {o.symbol: o for o in b.orders() if o.client_order_id.startswith("wk-planB-")}
        for po in plan_b.orders:  # new quantity = planned minus what A filled
            assert b_orders[po.symbol].qty == po.qty - filled_a[po.symbol]
        b.market_buffer, b.partial_fill_prob = 0.0, 0.0
        b.step()
        held = {p.symbol: p.qty for p in b.positions()}
        assert held == {po.symbol: po.qty for po in plan_b.orders}  # targets, not doubled
        # a plain re-run of the replacing plan: A is replaced, so no refusal; nothing new is sent
        n = len(b.orders())
        again = execute(plan_b, b, lg)
        assert len(b.orders()) == n and again.unresolved == 0


def test_replace_skips_an_order_the_first_plan_filled_entirely(tmp_path):
    b = quoted_sim(fill_on_submit=True)
    with Ledger(tmp_path / "l.sqlite") as lg:
        execute(small_plan("planA", n=2), b, lg)
        report = execute(small_plan("planB", n=3), b, lg, replace=True)
    states = {o.symbol: (o.state, o.reason) for o in report.orders}
    for s, _, _, _ in REFERENCE_PACK[:2]:
        assert states[s][0] == OrderState.SKIPPED and "already held" in states[s][1]
    assert states[REFERENCE_PACK[2][0]][0] in (OrderState.ACCEPTED, OrderState.FILLED)
    held = {p.symbol: p.qty for p in b.positions()}
    assert held == {po.symbol: po.qty for po in small_plan("planB", n=3).orders}


def test_cli_second_plan_needs_replace(tmp_path, capsys):
    pfile, ledger, folder = cli_files(tmp_path)
    a = write_orders(small_plan("cliA", as_of=today_ny()), folder / "orders.json")
    bfile = write_orders(small_plan("cliB", as_of=today_ny()), folder / "orders.2.json")
    assert main(["execute", "--orders", str(a), "--params", str(pfile)]) == 0
    capsys.readouterr()
    assert main(["execute", "--orders", str(bfile), "--params", str(pfile)]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "cliA" in err and "--replace" in err
    assert main(["execute", "--orders", str(bfile), "--params", str(pfile), "--replace"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "replaced plan cliA" in out
    state = SimBroker.load(folder / "sim_broker.json")
    live = [o for o in state.orders() if o.status.is_open]
    assert live and all(o.client_order_id.startswith("wk-cliB-") for o in live)


# ---- 8. run lock ----------------------------------------------------------------------------------

HOLD = """
import fcntl, json, os, sys, time
path = sys.argv[1]
fd = os.open(path, os.O_RDWR | os.O_CREAT)
fcntl.flock(fd, fcntl.LOCK_EX)
os.pwrite(fd, json.dumps({"pid": os.getpid(), "host": "here", "started_at": "2026-01-20T14:30:00"}).encode(), 0)
print("held", flush=True)
time.sleep(float(sys.argv[2]))
"""


def test_lock_held_by_another_process_exits_2_naming_it(tmp_path):
    path = lock_path(tmp_path / "l.sqlite", SIM_KEY, "2024-06-03")
    path.parent.mkdir(parents=True)
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(path), "30"], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        t0 = time.monotonic()
        with pytest.raises(RunLocked) as e, RunLock(tmp_path / "l.sqlite", SIM_KEY, "2024-06-03", wait_s=0.3):
            pass
        assert time.monotonic() - t0 >= 0.3  # it waited first
        assert f"pid {holder.pid}" in str(e.value) and "2026-01-20T14:30:00" in str(e.value)
        assert e.value.exit_code == 2
    finally:
        holder.kill()
        holder.wait()
    with RunLock(tmp_path / "l.sqlite", SIM_KEY, "2024-06-03", wait_s=0) as lock:  # its holder died: taken over
        assert lock.took_over["pid"] == holder.pid
        with RunLock(tmp_path / "l.sqlite", SIM_KEY, "2024-06-03", wait_s=0):
            pass  # re-entrant in the same thread
    with RunLock(tmp_path / "l.sqlite", SIM_KEY, "2024-06-03", wait_s=0) as lock:
        assert lock.took_over is None  # released cleanly last time


CHILD = """
import sys
from datetime import datetime
from pathlib import Path
import wolfkit.broker.sim as sim
from wolfkit.config import Params
from wolfkit.errors import WolfkitError
from wolfkit.execute import execute_orders_file

orders, ledger, wait, latency = sys.argv[1], sys.argv[2], float(sys.argv[3]), float(sys.argv[4])
OPEN = datetime(2024, 6, 3, 9, 31, tzinfo=sim.NY)  # the simulated market fills only while its clock says open
load = sim.SimBroker.load.__func__
sim.SimBroker.load = classmethod(lambda cls, path, **kw: load(cls, path, **{**kw, "latency_s": latency,
                                                                          "clock": lambda: OPEN}))
p = Params.model_validate({"execution": {"ledger_path": ledger, "lock_wait_seconds": wait, "max_concurrency": 2}})
try:
    report, log = execute_orders_file(Path(orders), p)
except WolfkitError as e:
    print(e, file=sys.stderr)
    sys.exit(e.exit_code)
print(report.execution, report.accepted, report.unresolved, report.fills, report.filled_shares)
"""


def two_executors(tmp_path, second_wait: float):
    plan = small_plan("twice", n=8)  # its session is the simulated clock's (the children's OPEN)
    folder = tmp_path / "out"
    orders = write_orders(plan, folder / "orders.json")
    b = quoted_sim(fill_on_submit=True)
    b.clock = None
    b.save(folder / "sim_broker.json")
    ledger = tmp_path / "ledger.sqlite"
    first = subprocess.Popen([sys.executable, "-c", CHILD, str(orders), str(ledger), "0", "0.5"], cwd=ROOT,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lock = lock_path(ledger, sim_account(folder / "sim_broker.json"), plan.as_of)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not (lock.exists() and lock.read_text().strip()):
        time.sleep(0.01)
    second = subprocess.run([sys.executable, "-c", CHILD, str(orders), str(ledger), str(second_wait), "0"],
                            cwd=ROOT, capture_output=True, text=True, timeout=120)
    out1, err1 = first.communicate(timeout=120)
    return plan, folder, ledger, (first.returncode, out1, err1), second, first.pid


def check_broker_and_ledger(plan, folder, ledger):
    state = SimBroker.load(folder / "sim_broker.json")
    counts = Counter(o.client_order_id for o in state.orders())
    assert sorted(counts) == sorted(po.client_order_id for po in plan.orders) and set(counts.values()) == {1}
    with Ledger(ledger) as lg:
        rows = lg.fills_for_run(plan.run_id)
    assert len(rows) == len(state.fills()) and sum(r["qty"] for r in rows) == sum(f.qty for f in state.fills()) > 0
    log = json.loads((folder / "execution_log.json").read_text())
    assert log["report"]["accepted"] == len(plan.orders) and len(log["fills"]) == len(rows)


def test_two_executors_at_once_second_exits_2_naming_the_holder(tmp_path):
    plan, folder, ledger, (rc1, out1, err1), second, pid1 = two_executors(tmp_path, second_wait=0)
    assert rc1 == 0, err1
    assert second.returncode == 2 and f"pid {pid1}" in second.stderr, second.stderr
    check_broker_and_ledger(plan, folder, ledger)


def test_two_executors_at_once_second_waits_then_sends_nothing_new(tmp_path):
    plan, folder, ledger, (rc1, out1, err1), second, _ = two_executors(tmp_path, second_wait=60)
    assert rc1 == 0 and second.returncode == 0, (err1, second.stderr)
    first_exec, second_exec = out1.split(), second.stdout.split()
    assert first_exec[0] == "1" and second_exec[0] == "2"  # the second ran after the first, in turn
    assert second_exec[1:] == first_exec[1:]  # same accepted, unresolved, fills, shares: nothing new
    check_broker_and_ledger(plan, folder, ledger)


def test_credit_goes_to_the_same_symbol_and_side_highest_priority_first():
    from wolfkit.session_guard import credit_orders

    plan = small_plan("credit", n=3)
    a, b, c = plan.orders
    extra = a.model_copy(update={"client_order_id": "wk-credit-x", "priority": 9, "qty": 50})
    plan = plan.model_copy(update={"orders": [extra, a, b, c]})
    cut = credit_orders(plan, {(a.symbol, "buy"): a.qty + 7, (b.symbol, "sell"): 5})
    assert cut == {a.client_order_id: a.qty, "wk-credit-x": 7}  # b's credit is for the other side


def test_open_orders_of_a_plan_the_ledger_does_not_know_block_a_second_plan(tmp_path):
    b = quoted_sim()
    with Ledger(tmp_path / "first.sqlite") as lg:
        execute(small_plan("planA", n=2), b, lg)
    with Ledger(tmp_path / "second.sqlite") as lg:  # the first plan's ledger is elsewhere (or lost)
        with pytest.raises(BadInputError, match="does not know"):
            execute(small_plan("planB", n=2), b, lg)
        report = execute(small_plan("planB", n=2), b, lg, replace=True)
    assert all(o.status.value == "canceled" for o in b.orders() if o.client_order_id.startswith("wk-planA-"))
    assert report.accepted == 2
