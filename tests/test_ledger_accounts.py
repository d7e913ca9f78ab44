"""One ledger, keyed by account (broker kind + account id + base URL): the same plan on the simulator, on
paper and live never collides; an older ledger migrates in place; and the bad inputs that would trade on
the wrong account — a plan not built for live sent live, positions the plan does not know — exit 2 with
nothing sent."""

from __future__ import annotations

import sqlite3

import pytest
from factories import OPEN, REFERENCE_PACK, make_plan, quoted_sim

from wolfkit.broker.account import AccountKey, account_key, sim_account
from wolfkit.broker.base import OrderRequest
from wolfkit.broker.emulator import create_app, serve
from wolfkit.broker.gate import BrokerKind
from wolfkit.broker.sim import SimBroker
from wolfkit.cli import main
from wolfkit.config import Params
from wolfkit.domain import OrderType, Side, TimeInForce
from wolfkit.errors import BadInputError, BrokerError
from wolfkit.execute import execute_orders_file, execute_plan
from wolfkit.ledger import SCHEMA_VERSION, Ledger, OrderState
from wolfkit.orders import write_orders

PAPER = AccountKey(kind=BrokerKind.PAPER, account_id="PA0001", base_url="http://127.0.0.1:1")


def sim(**kw) -> SimBroker:
    return quoted_sim(now=OPEN, **kw)


def plan(run_id: str = "acct", n: int = 5):
    return make_plan(run_id=run_id, pack=REFERENCE_PACK[:n], scale=0.5)


def params() -> Params:
    return Params.model_validate({"execution": {"lock_wait_seconds": 0}})


def run(p, broker, lg, account=None, **kw):
    return execute_plan(p, broker, lg, params(), now=lambda: OPEN, sleep=lambda s: None, account=account, **kw)


def test_the_account_key_names_kind_account_and_url(tmp_path):
    key = sim_account(tmp_path / "sim_broker.json")
    assert str(key) == f"sim:sim@{(tmp_path / 'sim_broker.json').as_uri()}"
    assert str(PAPER) == "paper:PA0001@http://127.0.0.1:1"
    assert str(account_key(sim())) == "sim:sim@in-process"

    class Wrapped:  # a wrapper around the in-memory simulator is the same account, whatever it is called
        name = "wrapped"

    assert account_key(Wrapped()) == account_key(sim())


def test_same_plan_on_sim_then_paper_never_collides(tmp_path):
    p, a, b = plan(), sim(fill_on_submit=True), sim()
    with Ledger(tmp_path / "l.sqlite") as lg:
        first = run(p, a, lg, sim_account(tmp_path / "sim_broker.json"))
        second = run(p, b, lg, PAPER)  # used to fail: "the ledger says order … was accepted … broker does not know it"
        assert first.accepted == second.accepted == len(p.orders) and second.unresolved == 0
        assert len(b.orders()) == len(p.orders)
        mine = lg.for_account(PAPER).orders_for_run(p.run_id)
        assert {r.account for r in mine} == {str(PAPER)} and all(r.state == OrderState.ACCEPTED for r in mine)
        sims = lg.for_account(sim_account(tmp_path / "sim_broker.json")).orders_for_run(p.run_id)
        assert all(r.state == OrderState.FILLED for r in sims)  # the simulator's rows are untouched
        assert len(lg.orders_for_run(p.run_id)) == 2 * len(p.orders)  # an unbound ledger reads every account
        assert lg.for_account(PAPER).run(p.run_id)["executions"] == 1
        assert {f["account"] for f in lg.fills_for_run(p.run_id)} == {str(sim_account(tmp_path / "sim_broker.json"))}
        again = run(p, b, lg, PAPER)  # a re-run on paper sends nothing twice
        assert len(b.orders()) == len(p.orders) and again.execution == 2


def test_an_account_that_forgot_its_orders_names_the_fix(tmp_path):
    p = plan()
    with Ledger(tmp_path / "l.sqlite") as lg:
        run(p, sim(), lg, PAPER)
        reset = sim()  # the same account key, but its orders are gone (a reset paper account)
        with pytest.raises(BrokerError) as e:
            run(p, reset, lg, PAPER)
    msg = str(e.value)
    assert str(PAPER) in msg and "move the ledger" in msg and "execution.ledger_path" in msg
    assert not reset.orders()


# ---- the end to end the issue asks for: sim first, then paper on the emulator ------------------------


def test_cli_execute_sim_then_the_same_file_on_the_emulator(tmp_path, monkeypatch, capsys):
    p = plan("e2e", n=4)
    orders = write_orders(p, tmp_path / "outputs" / str(p.as_of) / "orders.json")
    pfile = tmp_path / "p.yaml"
    ledger = tmp_path / "ledger.sqlite"
    pfile.write_text(f"execution:\n  broker: sim\n  ledger_path: {ledger}\n  lock_wait_seconds: 0\n")
    assert main(["execute", "--orders", str(orders), "--params", str(pfile), "--broker", "sim"]) == 0
    emu = sim()
    srv = serve(create_app(emu, rate_limit_per_minute=None))
    try:
        for k, v in {"APCA_API_KEY_ID": "k", "APCA_API_SECRET_KEY": "s", "APCA_API_BASE_URL": srv.url,
                     "APCA_API_DATA_URL": srv.url}.items():
            monkeypatch.setenv(k, v)
        capsys.readouterr()
        code = main(["execute", "--orders", str(orders), "--params", str(pfile), "--broker", "paper"])
        out = " ".join(capsys.readouterr().out.split())
        assert code == 0, out
        assert f"accepted {len(p.orders)}/{len(p.orders)}" in out
        assert sorted(o.client_order_id for o in emu.orders()) == sorted(o.client_order_id for o in p.orders)
    finally:
        srv.shutdown()
    with Ledger(ledger) as lg:
        accounts = {r["account"] for r in lg._rows("SELECT account FROM runs WHERE run_id=?", (p.run_id,))}
    assert accounts == {str(sim_account(orders.parent / "sim_broker.json")), f"paper:PAWOLFKIT1@{srv.url}"}


# ---- migrating a ledger written by the previous schema -----------------------------------------------

V2 = """
CREATE TABLE runs (run_id TEXT PRIMARY KEY, as_of TEXT, broker TEXT, params_digest TEXT, orders_path TEXT,
    equity REAL, created_at TEXT NOT NULL, started_at TEXT, finished_at TEXT, status TEXT,
    executions INTEGER NOT NULL DEFAULT 0, summary TEXT, replaced_by TEXT);
CREATE TABLE orders (run_id TEXT NOT NULL, plan_client_id TEXT NOT NULL, symbol TEXT NOT NULL, side TEXT NOT NULL,
    layer TEXT NOT NULL, type TEXT NOT NULL, time_in_force TEXT NOT NULL, limit_price REAL,
    priority INTEGER NOT NULL, planned_qty INTEGER NOT NULL, est_price REAL NOT NULL,
    take_profit REAL, stop_loss REAL, strategy TEXT, sector TEXT, cap_tier TEXT, score REAL, weight REAL,
    state TEXT NOT NULL, attempt INTEGER NOT NULL DEFAULT 0, client_order_id TEXT, broker_order_id TEXT,
    qty INTEGER NOT NULL DEFAULT 0, filled_qty INTEGER NOT NULL DEFAULT 0, avg_price REAL,
    sizing TEXT NOT NULL DEFAULT 'as_planned', reason TEXT NOT NULL DEFAULT '',
    submitted_type TEXT, submitted_tif TEXT, submitted_limit REAL, updated_at TEXT NOT NULL,
    PRIMARY KEY (run_id, plan_client_id));
CREATE TABLE events (id INTEGER PRIMARY KEY AUTOINCREMENT, run_id TEXT NOT NULL, at TEXT NOT NULL, kind TEXT NOT NULL,
    plan_client_id TEXT, client_order_id TEXT, detail TEXT NOT NULL DEFAULT '{}');
CREATE INDEX events_run ON events (run_id, id);
CREATE TRIGGER events_no_update BEFORE UPDATE ON events BEGIN SELECT RAISE(ABORT, 'events are append-only'); END;
CREATE TRIGGER events_no_delete BEFORE DELETE ON events BEGIN SELECT RAISE(ABORT, 'events are append-only'); END;
CREATE TABLE fills (id INTEGER PRIMARY KEY AUTOINCREMENT, run_id TEXT NOT NULL, plan_client_id TEXT,
    broker_order_id TEXT NOT NULL, client_order_id TEXT NOT NULL, symbol TEXT NOT NULL, side TEXT NOT NULL,
    qty INTEGER NOT NULL, price REAL NOT NULL, at TEXT NOT NULL, cum_qty INTEGER NOT NULL,
    UNIQUE (broker_order_id, cum_qty));
CREATE TABLE maxdiff_plans (session TEXT NOT NULL, run_id TEXT NOT NULL, symbol TEXT NOT NULL, side TEXT NOT NULL,
    high_target REAL NOT NULL, low_target REAL NOT NULL, avg_return REAL NOT NULL, status TEXT NOT NULL,
    rank INTEGER NOT NULL, qty INTEGER NOT NULL DEFAULT 0, room_needed REAL NOT NULL DEFAULT 0,
    updated_at TEXT NOT NULL, PRIMARY KEY (session, symbol, side, rank));
CREATE TABLE intraday_state (run_id TEXT PRIMARY KEY, session TEXT NOT NULL, state TEXT NOT NULL,
    updated_at TEXT NOT NULL);
PRAGMA application_id=1464552519;
PRAGMA user_version=2;
"""


def v2_ledger(tmp_path, p, broker):
    """A schema-2 ledger holding `p` executed on `broker` (the rows as the previous wolfkit wrote them)."""
    with Ledger(tmp_path / "now.sqlite") as lg:
        run(p, broker, lg)
        tables = {t: [dict(r) for r in lg._rows(f"SELECT * FROM {t}")] for t in ("runs", "orders", "events", "fills")}
    old = tmp_path / "old.sqlite"
    db = sqlite3.connect(old)
    db.executescript(V2)
    for t, rows in tables.items():
        for r in rows:
            r.pop("account")
            db.execute(f"INSERT INTO {t} ({', '.join(r)}) VALUES ({', '.join('?' * len(r))})", tuple(r.values()))
    db.execute("INSERT INTO intraday_state VALUES (?, ?, ?, ?)", (p.run_id, str(p.as_of), "{}", "t"))
    db.commit()
    db.close()
    return old, tables


def test_a_schema_2_ledger_migrates_in_place_and_a_rerun_sends_nothing_twice(tmp_path):
    p, b = plan("old"), sim(fill_on_submit=True)
    path, before = v2_ledger(tmp_path, p, b)
    sent = len(b.orders())
    with Ledger(path) as lg:
        assert lg.notice and "1 earlier run(s)" in lg.notice and "account 'unknown'" in lg.notice
        old = lg.orders_for_run(p.run_id)
        assert len(old) == len(before["orders"]) and {r.account for r in old} == {""}
        assert len(lg.events(p.run_id)) == len(before["events"]) and len(lg.fills_for_run(p.run_id)) == len(before["fills"])
        assert lg.load_engine_state(p.run_id) == "{}"
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            lg._write("UPDATE events SET kind='x'")
        again = run(p, b, lg)  # the same plan on the same (simulated) account: adopted from the broker's list
        assert len(b.orders()) == sent and again.unresolved == 0 and again.execution == 1
        assert {r.state for r in lg.for_account(account_key(b)).orders_for_run(p.run_id)} == {OrderState.FILLED}
    assert sqlite3.connect(path).execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 3
    with Ledger(path) as lg:
        assert lg.notice is None  # told once


# ---- bad input: nothing is sent -----------------------------------------------------------------------


def test_positions_the_plan_does_not_know_refuse_the_execution(tmp_path):
    p, b = plan("carry"), sim(fill_on_submit=True)
    b.submit(OrderRequest("NVDA", 3, Side.BUY, OrderType.MARKET, TimeInForce.DAY, "by-hand-1"))
    with Ledger(tmp_path / "l.sqlite") as lg:
        with pytest.raises(BadInputError) as e:
            run(p, b, lg, orders_path="outputs/2024-06-03/orders.json")
        assert [o.client_order_id for o in b.orders()] == ["by-hand-1"]  # nothing of the plan was sent
        msg = str(e.value)
        assert msg.startswith("outputs/2024-06-03/orders.json: ") and "NVDA +3" in msg and "Close those positions" in msg
        assert e.value.exit_code == 2
        b.submit(OrderRequest("NVDA", 3, Side.SELL, OrderType.MARKET, TimeInForce.DAY, "by-hand-close"))
        report = run(p, b, lg)  # flat again: the plan goes out, and its own fills never block a re-run
        assert report.accepted == len(p.orders)
        assert run(p, b, lg).execution == 2


def test_a_plan_not_built_for_live_is_refused_live_before_anything_opens(tmp_path, monkeypatch):
    monkeypatch.delenv("APCA_API_BASE_URL", raising=False)
    live = Params.model_validate({"execution": {"broker": "live", "ledger_path": str(tmp_path / "l.sqlite")}})
    for built, needle in [("sim", "built for sim"), (None, "an unrecorded account kind"), ("paper", "built for paper")]:
        p = plan("live").model_copy(update={"account": plan().account.model_copy(update={"broker": built})})
        f = write_orders(p, tmp_path / "orders.json")
        with pytest.raises(BadInputError) as e:
            execute_orders_file(f, live, "live", True)
        assert needle in str(e.value) and str(f) in str(e.value) and "execution.broker: live" in str(e.value)
    p = plan("live").model_copy(update={"synthetic_prices": True,
                                        "account": plan().account.model_copy(update={"broker": "live"})})
    with pytest.raises(BadInputError, match="synthetic prices"):
        execute_orders_file(write_orders(p, tmp_path / "orders.json"), live, "live", True)
    assert not (tmp_path / "l.sqlite").exists()


def test_plans_record_the_broker_they_were_built_for():
    from test_orders import build

    from wolfkit.orders import Account

    assert build(Params.model_validate({"execution": {"broker": "paper"}})).plan.account.broker == "paper"
    assert Account(equity=1, buying_power=1, multiplier=1).broker is None  # older files still read
