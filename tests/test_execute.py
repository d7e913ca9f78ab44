"""The batch executor: the seed's failure case, every broker answer, crash safety, the CLI's gates."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import pytest
from factories import OPEN, PREMARKET, FakeClock, make_plan, planned_order, quoted_sim

from wolfkit.broker.base import BrokerUnavailable, OrderRequest
from wolfkit.broker.sim import NY, SimBroker
from wolfkit.calendar import today_ny
from wolfkit.cli import main
from wolfkit.config import Params
from wolfkit.domain import (
    Layer,
    OrderType,
    Side,
    TimeInForce,
    attempt_client_id,
)
from wolfkit.execute import execute_plan, opg_allowed
from wolfkit.ledger import EventKind, Ledger, OrderState, Sizing
from wolfkit.orders import OrderPlan, write_orders

ROOT = Path(__file__).resolve().parents[1]


def params(**execution) -> Params:
    return Params().with_changes({"execution": execution})


def run(plan, broker, tmp_path, ft=None, now=OPEN, **execution):
    ft = ft or FakeClock()
    with Ledger(tmp_path / "ledger.sqlite", durable=False) as lg:
        rep = execute_plan(plan, broker, lg, params(**execution), now=lambda: now, sleep=ft.sleep,
                           timer=ft.monotonic)
        rows = lg.orders_for_run(plan.run_id)
        events = lg.events(plan.run_id)
    return rep, rows, events


def per_plan_counts(broker: SimBroker, plan: OrderPlan) -> dict[str, int]:
    """How many broker orders each planned order has (through any of its attempt ids)."""
    counts = {o.client_order_id: 0 for o in plan.orders}
    for o in broker.orders():
        base = next((b for b in counts if o.client_order_id == b or o.client_order_id.startswith(b + "-r")), None)
        if base is not None:  # orders of other clients are not the plan's
            counts[base] += 1
    return counts


def filled_value(b: SimBroker) -> float:
    return sum(f.qty * f.price for f in b.fills())


# ---- the seed's failure case --------------------------------------------------------------------


def test_seed_plan_matches_the_seed():
    plan = make_plan()
    assert len(plan.orders) == 12
    assert sum(o.est_cost for o in plan.orders) / 100_000 == pytest.approx(0.946, abs=0.01)


def naive_execute(plan: OrderPlan, broker: SimBroker) -> tuple[int, int]:
    """The seed's executor: every order sized from the same starting buying power, all sent at once."""
    ok = bad = 0
    for o in plan.orders:
        try:
            broker.submit(OrderRequest(o.symbol, o.qty, o.side, o.type, o.time_in_force, o.client_order_id))
            ok += 1
        except Exception:
            bad += 1
    return ok, bad


@pytest.mark.parametrize("broker_buffer", [0.0, 0.03, 0.05])
def test_seed_failure_case_all_12_accepted_and_over_94pct_deployed(tmp_path, broker_buffer):
    """broker_buffer 0.05 > the executor's 0.03: the broker refuses the tail (403) and the executor resizes."""
    plan = make_plan()
    b = quoted_sim(market_buffer=broker_buffer)
    rep, rows, events = run(plan, b, tmp_path)
    assert rep.accepted == 12 and rep.unresolved == 0
    assert all(r.state == OrderState.ACCEPTED for r in rows)
    assert rep.deployed_pct >= 0.94
    b.step()  # the open: market orders fill at the ask
    assert filled_value(b) / 100_000 >= 0.94
    assert all(n == 1 for n in per_plan_counts(b, plan).values())
    assert any(r.sizing != Sizing.AS_PLANNED for r in rows)  # the tail was cut, not rejected
    if broker_buffer <= 0.03:  # the executor's own buffer covers the broker's check
        assert rep.insufficient_bp_rejections == 0


def test_naive_executor_fails_on_the_same_setup():
    plan = make_plan()
    b = quoted_sim(market_buffer=0.03)
    ok, bad = naive_execute(plan, b)
    b.step()
    assert bad >= 1 and ok < 12
    assert filled_value(b) / 100_000 < 0.94


# ---- broker answers -----------------------------------------------------------------------------


class Wrapper:
    """Delegates to a SimBroker; tests override `submit` behaviour."""

    def __init__(self, inner: SimBroker):
        self.inner = inner
        self.name = "wrapped"
        self.submits: list[str] = []

    def __getattr__(self, k):
        return getattr(self.inner, k)

    def submit(self, r: OrderRequest):
        self.submits.append(r.client_order_id)
        return self.inner.submit(r)


def test_403_resize_after_an_external_reservation(tmp_path):
    """Someone else reserves buying power between the budget and the submission."""
    plan = make_plan()
    inner = quoted_sim()

    class External(Wrapper):
        def submit(self, r):
            if len(self.submits) == 6:  # before the 7th order: another client's open limit buy
                self.inner.submit(OrderRequest("PLTR", 400, Side.BUY, OrderType.LIMIT, TimeInForce.DAY, "external",
                                               25.0))
            return super().submit(r)

    b = External(inner)
    rep, rows, events = run(plan, b, tmp_path)
    ibp = [e for e in events if e.kind == EventKind.INSUFFICIENT_BP]
    assert rep.insufficient_bp_rejections == len(ibp) >= 1
    assert ibp[0].detail["buying_power"] < ibp[0].detail["cost_basis"]
    resized = [r for r in rows if r.sizing == Sizing.RESIZED]
    assert resized and resized[0].qty < resized[0].planned_qty
    assert len(b.submits) == len(set(b.submits))  # a new client id for every resubmission
    assert all(n <= 1 for n in per_plan_counts(inner, plan).values())
    assert rep.unresolved == 0
    # the resized order was looked up under its new id before being resubmitted
    assert resized[0].client_order_id == attempt_client_id(resized[0].plan_client_id, resized[0].attempt)


def test_duplicate_client_id_is_adopted(tmp_path):
    """alpaca-py retried a POST whose first try was accepted: 422 duplicate → adopt, no second order."""
    plan = make_plan()
    inner = quoted_sim()

    class RetriedPost(Wrapper):
        def submit(self, r):
            o = super().submit(r)
            if len(self.submits) == 3:
                self.inner.submit(r)  # raises DuplicateClientOrderId, as the retried POST would
            return o

    b = RetriedPost(inner)
    rep, rows, events = run(plan, b, tmp_path)
    assert [e.kind for e in events].count(EventKind.DUPLICATE_ADOPTED) == 1
    assert rep.accepted == 12 and all(n == 1 for n in per_plan_counts(inner, plan).values())


@pytest.mark.parametrize("accepted_before_failure", [True, False])
def test_unknown_outcome_looks_up_then_retries_with_the_same_id(tmp_path, accepted_before_failure):
    plan = make_plan()
    inner = quoted_sim()

    class Flaky(Wrapper):
        failed = False

        def submit(self, r):
            self.submits.append(r.client_order_id)
            if not self.failed and len(self.submits) == 2:
                self.failed = True
                if accepted_before_failure:
                    self.inner.submit(r)  # a 504 after the order was accepted
                raise BrokerUnavailable("504 gateway timeout")
            return self.inner.submit(r)

    b = Flaky(inner)
    rep, rows, events = run(plan, b, tmp_path)
    assert rep.unknown_outcomes == 1 and rep.accepted == 12
    assert all(n == 1 for n in per_plan_counts(inner, plan).values())
    second = b.submits[1]
    assert b.submits.count(second) == (1 if accepted_before_failure else 2)  # same id when retried
    assert not any(s.endswith("-r1") for s in b.submits)


def test_rate_limited_waits_retry_after_and_retries(tmp_path):
    ft = FakeClock()
    plan = make_plan()
    inner = quoted_sim(rate_limit_per_minute=8, timer=ft.monotonic)
    rep, rows, events = run(plan, inner, tmp_path, ft=ft, rate_limit_per_minute=1000)
    assert rep.rate_limited >= 1 and rep.accepted == 12
    assert any(s > 1 for s in ft.slept)  # waited for the window, as retry_after said
    assert all(n == 1 for n in per_plan_counts(inner, plan).values())


def test_the_gate_keeps_inside_the_rate_limit(tmp_path):
    ft = FakeClock()
    plan = make_plan()
    inner = quoted_sim(rate_limit_per_minute=10, timer=ft.monotonic)
    rep, _, _ = run(plan, inner, tmp_path, ft=ft, rate_limit_per_minute=10, max_concurrency=4)
    assert rep.rate_limited == 0 and rep.accepted == 12
    assert ft.t >= 60 * (inner.request_count // 10 - 1)


def test_concurrency_with_latency_gets_everything_in_once(tmp_path):
    plan = make_plan()
    inner = quoted_sim(latency_s=0.01)
    t0 = time.perf_counter()
    rep, _, _ = run(plan, inner, tmp_path, max_concurrency=8)
    assert rep.accepted == 12 and all(n == 1 for n in per_plan_counts(inner, plan).values())
    assert time.perf_counter() - t0 < 12 * 3 * 0.01 + 2  # submissions overlapped


# ---- rules --------------------------------------------------------------------------------------


def test_opg_window_and_fallback_to_day(tmp_path):
    assert opg_allowed(PREMARKET) and opg_allowed(datetime(2026, 1, 20, 19, 0, tzinfo=NY))
    assert not opg_allowed(datetime(2026, 1, 20, 9, 28, tzinfo=NY))
    plan = make_plan(tif=TimeInForce.OPG)
    b = quoted_sim(now=PREMARKET)
    rep, rows, _ = run(plan, b, tmp_path / "pre", now=PREMARKET)
    assert rep.accepted == 12 and {o.time_in_force for o in b.orders()} == {TimeInForce.OPG}
    b2 = quoted_sim()
    rep, rows, events = run(plan, b2, tmp_path / "open")
    assert rep.accepted == 12 and {o.time_in_force for o in b2.orders()} == {TimeInForce.DAY}
    assert "opg is refused" in rows[0].reason and any(e.kind == EventKind.FALLBACK for e in events)


def test_brackets_are_attached(tmp_path):
    plan = make_plan(brackets=True)
    b = quoted_sim()
    rep, _, _ = run(plan, b, tmp_path)
    o = next(o for o in b.orders() if o.symbol == "NVDA")
    assert rep.accepted == 12 and all(len(x.legs) == 2 for x in b.orders())
    assert {leg.limit_price or leg.stop_price for leg in o.legs} == {495.0, 427.5}


def test_maxdiff_order_opposite_an_open_order_is_skipped(tmp_path):
    sell = planned_order("NVDA", 5, 520.0, layer=Layer.MAXDIFF, side=Side.SELL, priority=20, sector="AI",
                         cap_tier="mega", weight=0.02)
    plan = make_plan(extra=[sell])
    b = quoted_sim()
    rep, rows, _ = run(plan, b, tmp_path)
    r = next(r for r in rows if r.layer == "maxdiff")
    assert r.state == OrderState.SKIPPED and "wash trade" in r.reason
    assert rep.accepted == 12 and len(b.orders()) == 12


def test_skips_when_nothing_is_left_and_says_why(tmp_path):
    plan = make_plan()
    b = quoted_sim()
    b.submit(OrderRequest("TSM", 500, Side.BUY, OrderType.LIMIT, TimeInForce.DAY, "other", 180.0))  # 90k held
    rep, rows, _ = run(plan, b, tmp_path)
    skipped = [r for r in rows if r.state == OrderState.SKIPPED]
    assert skipped and all("no buying power left" in r.reason for r in skipped)
    assert rep.unresolved == 0


def test_execution_log_export(tmp_path):
    plan = make_plan()
    with Ledger(tmp_path / "l.sqlite") as lg:
        rep = execute_plan(plan, quoted_sim(), lg, params(), now=lambda: OPEN)
        p = lg.export_execution_log(plan.run_id, tmp_path / "outputs" / "2026-01-20" / "execution_log.json",
                                    extra={"report": rep.summary()})
    doc = json.loads(p.read_text())
    assert len(doc["orders"]) == 12 and doc["report"]["accepted"] == 12
    assert all(o["state"] == "accepted" and o["reason"] is not None for o in doc["orders"])


# ---- crash safety -------------------------------------------------------------------------------


class Crash(BaseException):
    """Stands for the process dying: nothing after it runs (not even except Exception blocks)."""


@pytest.mark.parametrize("at", [0, 5, 11])
@pytest.mark.parametrize("when", ["before_submit", "after_accept"])
def test_crash_at_any_point_then_rerun_submits_nothing_twice(tmp_path, at, when):
    plan = make_plan()
    inner = quoted_sim(market_buffer=0.05)  # the tail also goes through the 403 resize path

    class Dying(Wrapper):
        dead = False

        def __getattr__(self, k):
            if self.dead:
                raise Crash
            return getattr(self.inner, k)

        def submit(self, r):
            if self.dead:
                raise Crash
            self.submits.append(r.client_order_id)
            if len(self.submits) - 1 >= at:
                if when == "after_accept":
                    self.inner.submit(r)  # the broker has it (or refused it); the ledger never hears back
                self.dead = True
                raise Crash
            return self.inner.submit(r)

    with pytest.raises(Crash):
        run(plan, Dying(inner), tmp_path, max_concurrency=1)
    rep, rows, events = run(plan, Wrapper(inner), tmp_path)  # the re-run, same broker, same ledger
    assert rep.execution == 2
    counts = per_plan_counts(inner, plan)
    assert all(n == 1 for n in counts.values()), counts
    assert rep.accepted == 12 and rep.unresolved == 0
    if when == "after_accept":
        assert any(e.kind == EventKind.RECONCILED for e in events)
    again, _, _ = run(plan, Wrapper(inner), tmp_path)  # a third run changes nothing
    assert per_plan_counts(inner, plan) == counts and again.accepted == 12


CHILD = """
import sys
from wolfkit.broker.sim import SimBroker
from wolfkit.config import Params
from wolfkit.execute import execute_plan
from wolfkit.ledger import Ledger
from wolfkit.orders import read_orders
orders, state, ledger, latency = sys.argv[1:5]
b = SimBroker.load(state, latency_s=float(latency))
b.persist(state)
p = Params().with_changes({"execution": {"max_concurrency": 2}})
with Ledger(ledger) as lg:
    rep = execute_plan(read_orders(orders), b, lg, p)
print(rep.accepted, rep.unresolved)
"""


@pytest.mark.parametrize("kill_after", [1, 5, 10])
def test_sigkill_mid_batch_then_rerun_ends_with_exactly_the_planned_orders(tmp_path, kill_after):
    """A real process killed with SIGKILL; the simulated broker's state lives in a file it saves after
    every change, so the broker outlives the executor."""
    plan = make_plan()
    orders = write_orders(plan, tmp_path / "orders.json")
    state, ledger = tmp_path / "sim.json", tmp_path / "ledger.sqlite"
    quoted_sim().save(state)
    args = [sys.executable, "-c", CHILD, str(orders), str(state), str(ledger)]
    child = subprocess.Popen([*args, "0.05"], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            n = len(json.loads(state.read_text())["orders"])
        except (json.JSONDecodeError, OSError):
            n = 0
        if n >= kill_after or child.poll() is not None:
            break
        time.sleep(0.005)
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    assert child.returncode == -signal.SIGKILL, "the child finished before it could be killed"
    before = len(SimBroker.load(state).orders())
    assert kill_after <= before < 12
    done = subprocess.run([*args, "0"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["12", "0"]
    b = SimBroker.load(state)
    assert all(n == 1 for n in per_plan_counts(b, plan).values())
    assert len(b.orders()) == 12


# ---- the command line ---------------------------------------------------------------------------


def cli_setup(tmp_path, broker="sim"):
    ledger = tmp_path / "ledger.sqlite"
    pfile = tmp_path / "p.yaml"
    pfile.write_text(f"extends: {ROOT / 'parameters/default.yaml'}\nexecution:\n  broker: {broker}\n"
                     f"  ledger_path: {ledger}\n")
    day = today_ny()
    folder = tmp_path / "outputs" / str(day)
    return pfile, ledger, folder, day


def test_cli_execute_sim_end_to_end_and_rerun(tmp_path, capsys):
    pfile, ledger, folder, day = cli_setup(tmp_path)
    orders = write_orders(make_plan(as_of=day), folder / "orders.json")
    assert main(["execute", "--orders", str(orders), "--params", str(pfile)]) == 0
    out = " ".join(capsys.readouterr().out.split())  # rich may wrap lines
    assert "unresolved 0" in out
    # quotes come from the demo market (its own prices), so how many fit depends on it; all are accounted for
    log = json.loads((folder / "execution_log.json").read_text())
    assert len(log["orders"]) == 12 and log["report"]["unresolved"] == 0
    assert all(o["state"] in ("accepted", "skipped") and o["reason"] is not None for o in log["orders"])
    accepted = log["report"]["accepted"]
    assert main(["execute", "--orders", str(orders), "--params", str(pfile)]) == 0  # re-run: nothing twice
    b = SimBroker.load(folder / "sim_broker.json")
    assert len(b.orders()) == accepted and all(n <= 1 for n in per_plan_counts(b, make_plan(as_of=day)).values())


def _tamper(doc, how):
    if how == "schema":
        doc["schema"] = "wolfkit.orders/0"
    elif how == "negative_qty":
        doc["orders"][3]["qty"] = -5
    elif how == "nan_price":
        doc["orders"][2]["est_price"] = float("nan")
    elif how == "duplicate_symbol":
        dup = dict(doc["orders"][0], client_order_id="other-id")
        doc["orders"].append(dup)
    elif how == "stale":
        doc["as_of"] = "2020-01-02"
    return doc


@pytest.mark.parametrize("how,needle", [("schema", "unknown schema"), ("negative_qty", "orders.3.qty"),
                                        ("nan_price", "est_price"), ("duplicate_symbol", "appears twice"),
                                        ("stale", "an earlier session")])
@pytest.mark.session_rule
def test_cli_bad_orders_file_exits_2_and_submits_nothing(tmp_path, capsys, how, needle):
    pfile, ledger, folder, day = cli_setup(tmp_path)
    good = write_orders(make_plan(as_of=day), folder / "orders.json")
    doc = _tamper(json.loads(good.read_text()), how)
    good.write_text(json.dumps(doc))  # NaN is written as the bare token NaN
    assert main(["execute", "--orders", str(good), "--params", str(pfile)]) == 2
    err = capsys.readouterr().err
    assert needle in err and "orders.json" in err
    assert not ledger.exists() and not (folder / "sim_broker.json").exists()


@pytest.mark.parametrize("args,param_broker", [(["--broker", "live"], "live"), (["--live"], "sim"),
                                               (["--live", "--broker", "live"], "paper"),
                                               (["--live", "--broker", "paper"], "live")])
def test_cli_live_needs_both_switches(tmp_path, capsys, args, param_broker):
    pfile, ledger, folder, day = cli_setup(tmp_path, broker=param_broker)
    orders = write_orders(make_plan(as_of=day), folder / "orders.json")
    assert main(["execute", "--orders", str(orders), "--params", str(pfile), *args]) == 2
    err = capsys.readouterr().err
    assert "--live" in err and "execution.broker: live" in err
    assert not ledger.exists()
