"""Soak: 200+ seeded batch runs of the executor through alpaca-py against a faulty emulator.

Every run is a small, tight batch (its tail does not fit the account, so budgets shrink and 403s
resize) sent while the emulator injects 429 bursts, 5xx, 504s after acceptance, dropped
connections and partial fills. A run that gives up (broker unavailable too long) is re-run, as a
user would. Afterwards, for every run:

- no duplicate orders at the broker: at most one broker order per planned order, unless an earlier
  one is final and unfilled and a later attempt (new client id) replaced it;
- every broker order belongs to a planned order the ledger knows, under the id the ledger holds;
- every planned order has a final state in the ledger, and a reason where it was not sent as planned.

Time: one server for all runs, no real sleeps (the executor's sleep advances a fake clock that the
emulator's rate limiter shares).
"""

from __future__ import annotations

import re
import time
from collections import Counter, defaultdict

import pytest
from factories import OPEN, REFERENCE_PACK, FakeClock, gapped_asks, make_plan, quoted_sim

from wolfkit.broker.alpaca import AlpacaBroker
from wolfkit.broker.emulator import Faults, create_app, serve
from wolfkit.broker.sim import SimBroker
from wolfkit.config import Params
from wolfkit.errors import WolfkitError
from wolfkit.execute import execute_plan
from wolfkit.ledger import EventKind, Ledger, OrderState, Sizing

RUNS = 200
MAX_RERUNS = 6
FINAL = {OrderState.ACCEPTED, OrderState.PARTIALLY_FILLED, OrderState.FILLED, OrderState.CANCELED,
         OrderState.EXPIRED, OrderState.REJECTED, OrderState.SKIPPED}
pytestmark = pytest.mark.slow


def faults_for(run: int) -> Faults:
    return Faults(seed=run, rate_limit_burst=0.04, burst_length=2, server_error=0.06,
                  timeout_after_accept=0.15, drop_connection=0.08, partial_fill=0.3)


def base_of(client_id: str) -> str:
    return re.sub(r"-r\d+$", "", client_id)


def attempt_of(client_id: str) -> int:
    m = re.search(r"-r(\d+)$", client_id)
    return int(m.group(1)) if m else 0


@pytest.fixture(scope="module")
def rig(tmp_path_factory):
    clock = FakeClock()
    app = create_app(SimBroker(1.0), timer=clock.monotonic)
    srv = serve(app)
    mp = pytest.MonkeyPatch()
    for k, v in {"APCA_API_KEY_ID": "soak", "APCA_API_SECRET_KEY": "soak", "APCA_API_BASE_URL": srv.url,
                 "APCA_API_DATA_URL": srv.url}.items():
        mp.setenv(k, v)
    ledger = Ledger(tmp_path_factory.mktemp("soak") / "ledger.sqlite", durable=False)
    yield srv, clock, ledger
    ledger.close()
    mp.undo()
    srv.shutdown()


def one_batch(run: int, srv, clock: FakeClock, ledger: Ledger, params: Params) -> dict:
    """Run (and re-run until settled) one seeded batch; return what to check."""
    pack = [REFERENCE_PACK[(run + k) % len(REFERENCE_PACK)] for k in range(5)]  # 5 orders, rotating through the pack
    equity = 20_000.0
    scale = 0.97 / sum(e.weight for e in pack)  # 97% of equity at yesterday's closes: the tail won't fit
    plan = make_plan(run_id=f"soak-{run:03d}", equity=equity, pack=pack, scale=scale)
    # every third run the broker reserves more per market share than the executor budgets: 403s, resizes
    buffer = 0.045 if run % 3 == 0 else 0.03
    sim = quoted_sim(gapped_asks(pack, seed=run), equity=equity, market_buffer=buffer, fill_on_submit=run % 2 == 0,
                     seed=run)
    srv.emulator.use(sim, faults_for(run))
    clock.sleep(60.0)  # runs are a minute apart: each starts with a fresh rate-limit window
    executions, errors = 0, []
    while executions < MAX_RERUNS:
        executions += 1
        try:
            report = execute_plan(plan, AlpacaBroker(timeout=5), ledger, params, now=lambda: OPEN,
                                  sleep=clock.sleep, timer=clock.monotonic)
        except WolfkitError as e:  # gave up for now (e.g. unavailable too long): re-run, as a user would
            errors.append(f"{type(e).__name__}: {str(e)[:60]}")
            continue
        if not any(o.state in (OrderState.PLANNED, OrderState.SUBMITTING) for o in report.orders):
            break
    srv.emulator.set_faults(Faults())  # read the broker's truth without faults
    return {"plan": plan, "sim": sim, "rows": ledger.orders_for_run(plan.run_id), "executions": executions,
            "errors": errors, "events": ledger.events(plan.run_id)}


def test_soak_no_duplicates_every_order_accounted_for(rig):
    srv, clock, ledger = rig
    params = Params.model_validate({"execution": {"max_attempts": 6}})
    t0 = time.monotonic()
    totals: Counter[str] = Counter()
    problems: list[str] = []
    gave_up: Counter[str] = Counter()
    for run in range(RUNS):
        out = one_batch(run, srv, clock, ledger, params)
        plan, sim, rows = out["plan"], out["sim"], out["rows"]
        totals["executions"] += out["executions"]
        totals["gave_up"] += len(out["errors"])
        gave_up.update(out["errors"])
        planned = {po.client_order_id for po in plan.orders}
        by_plan: dict[str, list] = defaultdict(list)
        for o in sim.orders():
            base = base_of(o.client_order_id)
            if base not in planned:
                problems.append(f"run {run}: broker order {o.client_order_id} belongs to no planned order")
            by_plan[base].append(o)
        rowmap = {r.plan_client_id: r for r in rows}
        assert set(rowmap) == planned, f"run {run}: ledger rows {sorted(rowmap)} != plan"
        for base, orders in by_plan.items():
            orders.sort(key=lambda o: attempt_of(o.client_order_id))
            earlier = orders[:-1]
            if any(not o.status.is_final or o.filled_qty for o in earlier):
                problems.append(f"run {run}: duplicate live orders for {base}: "
                                f"{[(o.client_order_id, str(o.status), o.filled_qty) for o in orders]}")
            if rowmap[base].client_order_id != orders[-1].client_order_id or \
                    rowmap[base].broker_order_id != orders[-1].id:
                problems.append(f"run {run}: ledger holds {rowmap[base].client_order_id} for {base}, "
                                f"broker holds {orders[-1].client_order_id}")
        for r in rows:
            totals[str(r.state)] += 1
            totals[f"sizing:{r.sizing}"] += 1
            if r.state not in FINAL:
                problems.append(f"run {run}: {r.symbol} left {r.state} after {out['executions']} executions")
            if r.state.at_broker and r.plan_client_id not in by_plan:
                problems.append(f"run {run}: ledger says {r.symbol} is at the broker; the broker has no order")
            if r.state in (OrderState.REJECTED, OrderState.SKIPPED) or r.sizing != Sizing.AS_PLANNED:
                if not r.reason:
                    problems.append(f"run {run}: {r.symbol} {r.state}/{r.sizing} without a reason")
            if r.state.at_broker:
                b = by_plan[r.plan_client_id][-1]
                if r.filled_qty > b.filled_qty or r.qty != b.qty:
                    problems.append(f"run {run}: ledger qty/filled {r.qty}/{r.filled_qty} vs broker "
                                    f"{b.qty}/{b.filled_qty} for {r.symbol}")
        kinds = Counter(e.kind for e in out["events"])
        for k in (EventKind.UNKNOWN_OUTCOME, EventKind.INSUFFICIENT_BP, EventKind.RATE_LIMITED,
                  EventKind.DUPLICATE_ADOPTED, EventKind.RECONCILED, EventKind.SHRUNK):
            totals[f"event:{k}"] += kinds[k]
    stats = dict(srv.emulator.stats)
    elapsed = time.monotonic() - t0
    print(f"\n{RUNS} runs in {elapsed:.1f}s; totals {dict(totals)}; emulator {stats}; gave up {dict(gave_up)}")
    assert not problems, "\n".join(problems[:20])
    # the faults really happened, and the hard paths really ran
    for key in ("504_after_accept", "dropped_after", "dropped_before", "5xx_injected", "429_injected"):
        assert stats.get(key, 0) > 10, f"fault {key} barely injected: {stats}"
    assert totals["event:unknown_outcome"] > 20 and totals["event:reconciled"] > 10
    assert totals["event:insufficient_buying_power"] > 10 and totals["event:shrunk"] > 50
    assert totals["partially_filled"] > 0
