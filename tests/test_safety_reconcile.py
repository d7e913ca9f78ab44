"""Money safety, the reconciliation side: the broker's own list of a run's orders decides what exists
(a lost, moved or stale ledger never causes a resubmission), the ledger path is resolved one way,
directional orders settle before any maxdiff order spends buying power, a final refusal is final,
an intraday replace with an unknown outcome is adopted, and the in-process simulator has no rate gate.
"""

from __future__ import annotations

import random
import re
import shutil
import threading
from collections import defaultdict
from collections.abc import Sequence
from datetime import date, datetime
from pathlib import Path

import pytest
from factories import OPEN, REFERENCE_PACK, FakeClock, PackEntry, gapped_asks, make_plan, quoted_sim
from test_execute import Wrapper  # the recording SimBroker delegate both files use

from wolfkit.broker.base import (
    CODE_UNPROCESSABLE,
    BrokerUnavailable,
    OrderRejected,
    OrderRequest,
    OrderStatus,
    RateLimited,
    WashTradeRejected,
)
from wolfkit.broker.sim import SimBroker
from wolfkit.calendar import NY, today_ny
from wolfkit.cli import main
from wolfkit.config import Params, params_from_dict, project_path, project_root
from wolfkit.domain import (
    ClientOrderId,
    Layer,
    PlanStatus,
    Side,
    attempt_client_id,
    plan_attempt,
)
from wolfkit.execute import execute_plan
from wolfkit.intraday import IntradayEngine, Market, ramp_price
from wolfkit.ledger import Ledger, OrderState, Sizing
from wolfkit.orders import (
    MaxdiffPlan,
    OrderPlan,
    write_orders,
)
from wolfkit.replay import SessionBars

ROOT = Path(__file__).resolve().parents[1]


def stale_broker(pack: Sequence[PackEntry], seed: int, buffer: float = 0.06, **kw) -> SimBroker:
    """The pack's gapped open (shuffled by `seed`) on an account that reserves `buffer` on market buys: more
    than the executor budgets, so the tail meets 403s and is resized."""
    return quoted_sim(gapped_asks(pack, seed=seed), market_buffer=buffer, seed=seed, **kw)


def execute(plan: OrderPlan, broker, ledger_path: Path | str, ft: FakeClock | None = None,
            **execution):
    ft = ft or FakeClock()
    p = Params().with_changes({"execution": execution})
    with Ledger(ledger_path, durable=False) as lg:
        rep = execute_plan(plan, broker, lg, p, now=lambda: OPEN, sleep=ft.sleep, timer=ft.monotonic)
        rows = {r.plan_client_id: r for r in lg.orders_for_run(plan.run_id)}
    return rep, rows


def by_plan(broker: SimBroker, plan: OrderPlan) -> dict[str, list]:
    """Every broker order of each planned order (its base id or any `-rN` attempt)."""
    bases = {o.client_order_id for o in plan.orders}
    out: dict[str, list] = {b: [] for b in bases}
    for o in broker.orders():
        base = re.sub(r"-r\d+$", "", o.client_order_id)
        if base in bases:
            out[base].append(o)
    return out


def duplicates(broker: SimBroker, plan: OrderPlan) -> dict[str, list[str]]:
    """Planned orders the broker holds more than one order for (a planned order is ONE order)."""
    return {b: [o.client_order_id for o in v] for b, v in by_plan(broker, plan).items() if len(v) > 1}


def free_buying_power(b: SimBroker, drop: float = 0.10) -> None:
    """The market falls and every open market order fills lower: room appears for a resubmission."""
    for s in b.market.symbols():
        q = b.market.get(s)
        assert q is not None
        b.market.set(s, round(q.bid * (1 - drop), 2), round(q.ask * (1 - drop), 2))
    b.step()


def drop_ledger(path: Path) -> None:
    for p in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        p.unlink(missing_ok=True)


# ---- item 2: reconcile from the broker's list, whatever the ledger says -----------------------------


def test_lost_ledger_after_a_resize_does_not_resubmit_the_base_id(tmp_path):
    pack = REFERENCE_PACK[:8]
    plan = make_plan(pack=pack, scale=1.36)  # the tail does not fit at the open's prices
    inner = stale_broker(pack, seed=3)
    rep, rows = execute(plan, inner, tmp_path / "ledger.sqlite")
    resized = [r for r in rows.values() if r.sizing == Sizing.RESIZED and r.state.at_broker]
    assert resized and all(r.client_order_id.endswith(f"-r{r.attempt}") and r.attempt >= 1 for r in resized)
    assert not duplicates(inner, plan)
    free_buying_power(inner)  # the base ids' full quantities would fit now
    drop_ledger(tmp_path / "ledger.sqlite")
    b = Wrapper(inner)
    rep2, rows2 = execute(plan, b, tmp_path / "ledger.sqlite")
    assert not duplicates(inner, plan), duplicates(inner, plan)
    held = {base for base, v in by_plan(inner, plan).items() if v}
    assert not [cid for cid in b.submits if re.sub(r"-r\d+$", "", cid) in held and cid not in
                {o.client_order_id for v in by_plan(inner, plan).values() for o in v}]
    for r in resized:  # the fresh ledger adopted the broker's -rN, with its attempt number
        again = rows2[r.plan_client_id]
        assert again.client_order_id == r.client_order_id and again.attempt == r.attempt
        assert again.state.at_broker and any(e for e in [again.broker_order_id])
    assert rep2.unresolved == 0


def test_stale_ledger_copy_does_not_resubmit(tmp_path):
    """A ledger restored from a backup taken before the resize (it knows only the base id's intent)."""
    pack = REFERENCE_PACK[:8]
    plan = make_plan(pack=pack, scale=1.36)
    inner = stale_broker(pack, seed=5)
    path = tmp_path / "ledger.sqlite"
    with Ledger(path, durable=False) as lg:  # a backup taken before anything was sent
        lg.start_run(plan.run_id)
        lg.register_orders(plan.run_id, plan.orders)
    shutil.copy(path, tmp_path / "backup.sqlite")
    execute(plan, inner, path)
    assert any(o.client_order_id.endswith("-r1") for o in inner.orders())
    free_buying_power(inner)
    drop_ledger(path)
    shutil.copy(tmp_path / "backup.sqlite", path)
    rep, _ = execute(plan, inner, path)
    assert not duplicates(inner, plan) and rep.unresolved == 0


def test_alpaca_lists_a_runs_orders_across_pages_by_client_id_prefix(monkeypatch, requests_mock):
    """GET /v2/orders?status=all, 500 a page, `after` moving forward from `since`; Alpaca cannot filter
    by client id, so the adapter keeps the ids with the run's prefix (and only those)."""
    import uuid

    from wolfkit.broker.alpaca import AlpacaBroker

    base = "http://127.0.0.1:9"
    for k, v in {"APCA_API_KEY_ID": "k", "APCA_API_SECRET_KEY": "s", "APCA_API_BASE_URL": base,
                 "APCA_API_DATA_URL": base}.items():
        monkeypatch.setenv(k, v)

    def order(i: int, cid: str) -> dict:
        t = f"2024-06-03T13:{i // 60:02d}:{i % 60:02d}Z"
        return {"id": str(uuid.uuid4()), "client_order_id": cid, "created_at": t, "updated_at": t, "submitted_at": t,
                "filled_at": None, "asset_id": str(uuid.uuid4()), "symbol": "AAPL", "asset_class": "us_equity",
                "qty": "10", "filled_qty": "0", "filled_avg_price": None, "order_class": "simple",
                "order_type": "market", "type": "market", "side": "buy", "time_in_force": "day",
                "limit_price": None, "stop_price": None, "status": "accepted", "extended_hours": False,
                "legs": None, "replaced_by": None, "replaces": None}

    first = [order(i, f"wk-run1-{i}" if i % 2 else f"other-{i}") for i in range(500)]
    second = [order(500, "wk-run1-500-r1"), order(501, "wk-run2-x")]
    requests_mock.get(f"{base}/v2/orders", [{"json": first}, {"json": second}])
    since = datetime(2024, 6, 2, 8, 30, tzinfo=NY)
    got = AlpacaBroker(timeout=2).orders_by_prefix("wk-run1-", since)
    assert [o.client_order_id for o in got] == [f"wk-run1-{i}" for i in range(1, 500, 2)] + ["wk-run1-500-r1"]
    q1, q2 = (r.qs for r in requests_mock.request_history)
    assert q1["status"] == ["all"] and q1["limit"] == ["500"] and q1["direction"] == ["asc"]
    assert q1["after"][0].startswith("2024-06-02t08:30") and q2["after"][0].startswith("2024-06-03t13:08:18.999999")


def test_plan_attempt_recognises_only_the_plans_ids():
    base = str(ClientOrderId.for_order("run", "dir", "AAPL", Layer.DIRECTIONAL))
    long_base = "x" * 126  # attempt ids of a long base cut it to stay within 128 characters
    bases = {base, long_base}
    assert plan_attempt(base, bases) == (base, 0)
    assert plan_attempt(f"{base}-r3", bases) == (base, 3)
    assert plan_attempt(attempt_client_id(long_base, 12), bases) == (long_base, 12)
    for other in (f"{base}-tp", f"{base}-r0", f"{base}-r01", f"{base}x-r1", "wk-run-d-AAPL-entry-r1", "unrelated"):
        assert plan_attempt(other, bases) is None, other


def _project(tmp_path: Path, day: date, seed: int = 3) -> tuple[Path, Path, Path, OrderPlan]:
    """A project folder with a parameter file whose ledger path is RELATIVE, today's orders file and a
    simulated account (beside the orders file, where `wolfkit execute --broker sim` keeps it)."""
    proj = tmp_path / "proj"
    (proj / "parameters").mkdir(parents=True)
    (proj / "notebooks").mkdir()
    pfile = proj / "parameters" / "mine.yaml"
    pfile.write_text(f"extends: {ROOT / 'parameters/default.yaml'}\nexecution:\n  broker: sim\n"
                     "  ledger_path: outputs/ledger.sqlite\n")
    pack = REFERENCE_PACK[:8]
    plan = make_plan(run_id="cwd", pack=pack, scale=1.36, as_of=day)
    orders = write_orders(plan, proj / "outputs" / str(day) / "orders.json")
    stale_broker(pack, seed=seed, now=None).save(orders.parent / "sim_broker.json")
    return proj, pfile, orders, plan


def test_rerun_from_another_directory_finds_the_same_ledger_and_no_duplicate(tmp_path, monkeypatch, capsys):
    day = today_ny()
    proj, pfile, orders, plan = _project(tmp_path, day)
    state = orders.parent / "sim_broker.json"
    ledger = proj / "outputs" / "ledger.sqlite"
    monkeypatch.chdir(proj)
    assert main(["execute", "--orders", str(orders), "--params", str(pfile)]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert str(ledger) in out  # the resolved, absolute ledger path is printed
    b = SimBroker.load(state)
    assert any(o.client_order_id.endswith("-r1") for o in b.orders()), "the setup must resize an order"
    free_buying_power(b)
    b.save(state)

    monkeypatch.chdir(proj / "notebooks")  # inside the project: the same ledger
    assert main(["execute", "--orders", str(orders), "--params", str(pfile)]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert str(ledger) in out
    assert not (proj / "notebooks" / "outputs").exists()
    with Ledger(ledger) as lg:
        assert lg.run(plan.run_id)["executions"] == 2
    assert not duplicates(SimBroker.load(state), plan)

    elsewhere = tmp_path / "elsewhere"  # outside any project: a new, empty ledger — the broker still decides
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert main(["execute", "--orders", str(orders), "--params", str(pfile)]) == 0
    assert str(elsewhere / "outputs" / "ledger.sqlite") in " ".join(capsys.readouterr().out.split())
    b = SimBroker.load(state)
    assert not duplicates(b, plan), duplicates(b, plan)


def test_one_function_resolves_relative_paths_against_the_project(tmp_path, monkeypatch):
    proj = tmp_path / "p"
    (proj / "parameters").mkdir(parents=True)
    (proj / "notebooks" / "deep").mkdir(parents=True)
    monkeypatch.chdir(proj / "notebooks" / "deep")
    assert project_root() == proj.resolve()
    assert project_path("outputs/ledger.sqlite") == proj.resolve() / "outputs" / "ledger.sqlite"
    assert project_path(tmp_path / "abs.sqlite") == tmp_path / "abs.sqlite"
    other = tmp_path / "q"
    other.mkdir()
    (other / "pyproject.toml").write_text("[project]\nname='x'\n")
    monkeypatch.chdir(other)
    assert project_root() == other.resolve()  # pyproject.toml marks a project as well


def test_status_names_the_resolved_ledger(tmp_path, monkeypatch, capsys):
    proj = tmp_path / "proj"
    (proj / "parameters").mkdir(parents=True)
    (proj / "notebooks").mkdir()
    pfile = proj / "parameters" / "mine.yaml"
    pfile.write_text("execution:\n  ledger_path: outputs/ledger.sqlite\n")
    monkeypatch.chdir(proj / "notebooks")
    assert main(["status", "--params", str(pfile)]) == 2  # no ledger yet: the message says where it looked
    assert str(proj.resolve() / "outputs" / "ledger.sqlite") in " ".join(capsys.readouterr().err.split())


class Faulty(Wrapper):
    """Seeded faults on every order write: 429s (nothing done), unknown outcomes before or after the
    broker accepted, and a crash (the process dies; the broker keeps what it has)."""

    def __init__(self, inner: SimBroker, rng: random.Random, crash: float):
        super().__init__(inner)
        self.rng, self.crash, self._lock = rng, crash, threading.Lock()
        self.dead = False

    def _draw(self) -> float:
        with self._lock:
            return self.rng.random()

    def submit(self, r: OrderRequest):
        if self.dead:
            raise Crash
        self.submits.append(r.client_order_id)
        u = self._draw()
        if u < self.crash:
            self.dead = True
            if u < self.crash / 2:
                self.inner.submit(r)  # accepted; the executor never hears back
            raise Crash
        if u < 0.10:
            raise RateLimited("429", retry_after=0.5)
        if u < 0.22:
            self.inner.submit(r)  # a 504 after acceptance
            raise BrokerUnavailable("HTTP 504 (the request's outcome is unknown)")
        if u < 0.30:
            raise BrokerUnavailable("HTTP 503 (the request's outcome is unknown)")
        return self.inner.submit(r)

    def get_by_client_id(self, cid: str):
        if self.dead:
            raise Crash
        if self._draw() < 0.08:
            raise BrokerUnavailable("HTTP 502 (the request's outcome is unknown)")
        return self.inner.get_by_client_id(cid)


class Crash(BaseException):
    """Stands for the process dying: nothing after it runs."""


SOAK_RUNS = 60


@pytest.mark.slow
def test_soak_ledger_deleted_moved_or_stale_between_runs_never_duplicates(tmp_path):
    """60 seeded batches, each executed up to 6 times with random faults; between executions the
    ledger is kept, deleted, moved away, or replaced by an older copy, and the market sometimes falls
    (orders fill, buying power frees up, so a wrong resubmission WOULD be accepted)."""
    totals: defaultdict[str, int] = defaultdict(int)
    problems: list[str] = []
    for run in range(SOAK_RUNS):
        rng = random.Random(run)
        pack = rng.sample(REFERENCE_PACK, 6)
        scale = rng.uniform(0.92, 1.0) / sum(w for _, _, w, _ in pack)  # with the gaps, the tail will not fit
        plan = make_plan(run_id=f"soak{run:03d}", equity=50_000.0, pack=pack, scale=scale)
        inner = stale_broker(pack, seed=run, equity=50_000.0, buffer=rng.choice([0.05, 0.07, 0.09]),
                             fill_on_submit=rng.random() < 0.3)
        folder = tmp_path / f"run{run}"
        folder.mkdir()
        path = folder / "ledger.sqlite"
        backups: list[Path] = []
        for k in range(6):
            broker = Faulty(inner, rng, crash=0.04 if k < 5 else 0.0)
            try:
                execute(plan, broker, path, max_attempts=3, max_concurrency=rng.choice([1, 2, 4]))
            except Crash:
                totals["crashes"] += 1
            except Exception as e:
                totals[f"gave_up:{type(e).__name__}"] += 1
            if path.exists():
                backup = folder / f"backup{k}.sqlite"
                shutil.copy(path, backup)
                backups.append(backup)
            what = rng.choice(["keep", "delete", "move", "stale"])
            totals[what] += 1
            if what == "delete":
                drop_ledger(path)
            elif what == "move":
                drop_ledger(path)
                path = folder / f"moved{k}" / "ledger.sqlite"
            elif what == "stale" and backups:
                drop_ledger(path)
                shutil.copy(rng.choice(backups), path)
            if rng.random() < 0.4:
                free_buying_power(inner, drop=rng.choice([0.03, 0.08]))
        # settle: one clean execution, then the broker's truth is checked
        rep, rows = execute(plan, inner, path)
        totals["broker_orders"] += len(inner.orders())
        totals["resized_at_broker"] += sum(bool(re.search(r"-r\d+$", o.client_order_id)) for o in inner.orders())
        dup = duplicates(inner, plan)
        if dup:
            problems.append(f"run {run}: duplicates {dup}")
        for base, orders in by_plan(inner, plan).items():
            if orders and rows[base].client_order_id != orders[-1].client_order_id:
                problems.append(f"run {run}: ledger holds {rows[base].client_order_id}, broker "
                                f"{orders[-1].client_order_id}")
        if rep.unresolved:
            problems.append(f"run {run}: {rep.unresolved} unresolved after a clean execution")
    print(f"\n{SOAK_RUNS} soak runs: {dict(totals)}")
    assert not problems, "\n".join(problems[:20])
    # the hard paths really ran
    assert totals["crashes"] > 5 and totals["resized_at_broker"] > 20
    assert totals["delete"] > 20 and totals["move"] > 20 and totals["stale"] > 20


# ---- item 4: directional orders settle before any maxdiff order spends buying power ---------------


class Recording(Wrapper):
    """Records each submission with the broker's buying power just before it."""

    def __init__(self, inner: SimBroker):
        super().__init__(inner)
        self.log: list[tuple[str, float]] = []
        self._lock = threading.Lock()

    def submit(self, r: OrderRequest):
        with self._lock:
            self.log.append((r.client_order_id, self.inner.account().buying_power))
        return super().submit(r)


def test_directional_orders_settle_before_any_maxdiff_buy(tmp_path):
    """Tight accounts with stale prices over 12 seeds: every directional order is accepted, at the
    best size the broker's buying power allows, before any maxdiff buy is sent."""
    problems: list[str] = []
    ibp = 0
    for seed in range(12):
        pack = REFERENCE_PACK[:9]
        rng = random.Random(seed)
        maxdiff = [(sym, int(3_000 // (close * 0.97)), round(close * 0.97, 2))
                   for sym, _, _, close in rng.sample(REFERENCE_PACK[9:], 3) + [rng.choice(pack)]]
        # the budget (asks x 1.03) thinks most of the directional pack fits, some with room for maxdiff
        # buys; the broker reserves asks x 1.08: directional orders meet 403s
        plan = make_plan(run_id=f"prio{seed}", pack=pack, scale=1.12 + 0.12 * rng.random(), maxdiff=maxdiff)
        inner = stale_broker(REFERENCE_PACK, seed=seed, buffer=0.08)
        b = Recording(inner)
        rep, rows = execute(plan, b, tmp_path / f"l{seed}.sqlite", max_concurrency=4)
        ibp += rep.insufficient_bp_rejections
        layer = {o.client_order_id: o.layer for o in plan.orders}
        kinds = [layer[re.sub(r"-r\d+$", "", cid)] for cid, _ in b.log]
        first_md = kinds.index(Layer.MAXDIFF) if Layer.MAXDIFF in kinds else len(kinds)
        if Layer.DIRECTIONAL not in kinds or Layer.DIRECTIONAL in kinds[first_md:]:
            problems.append(f"seed {seed}: submissions by layer {[str(k)[:3] for k in kinds]}")
        directional = [rows[o.client_order_id] for o in plan.orders if o.layer == Layer.DIRECTIONAL]
        if not all(r.state.at_broker for r in directional):
            problems.append(f"seed {seed}: {[(r.symbol, str(r.state), r.reason) for r in directional]}")
        # best size: when the maxdiff layer starts, no cut directional order could take one more share
        bp = b.log[first_md][1] if first_md < len(b.log) else inner.account().buying_power
        for r in directional:
            one_share = inner.market.get(r.symbol).ask * (1 + inner.market_buffer)
            if r.qty < r.planned_qty and bp >= one_share:
                problems.append(f"seed {seed}: {r.symbol} got {r.qty}/{r.planned_qty} with ${bp:,.2f} left")
    assert not problems, "\n".join(problems)
    assert ibp >= 4  # the stale prices really caused 403s (and resizes) in the directional layer


def test_maxdiff_waits_when_a_directional_outcome_is_unknown(tmp_path):
    pack = REFERENCE_PACK[:4]
    plan = make_plan(run_id="hold", pack=pack, scale=0.5, maxdiff=[("SNOW", 5, 150.0)])
    inner = stale_broker([*pack, *(p for p in REFERENCE_PACK if p.symbol == "SNOW")], seed=1)

    class Down(Wrapper):
        def submit(self, r):
            if "-dir-" in r.client_order_id and "AMD" in r.client_order_id:
                raise BrokerUnavailable("HTTP 503 (the request's outcome is unknown)")
            return super().submit(r)

    b = Down(inner)
    rep, rows = execute(plan, b, tmp_path / "l.sqlite", max_attempts=2)
    md = next(r for r in rows.values() if r.layer == Layer.MAXDIFF)
    assert md.state == OrderState.PLANNED and rep.unresolved == 2
    assert not any("-md-" in cid for cid in b.submits)
    assert "directional" in next(o.reason for o in rep.orders if o.layer == Layer.MAXDIFF)
    rep2, rows2 = execute(plan, inner, tmp_path / "l.sqlite")  # the broker is back: both go out, once
    assert rep2.unresolved == 0 and not duplicates(inner, plan)


# ---- item 9: a final refusal is final -----------------------------------------------------------


class Refusing(Wrapper):
    """Refuses one symbol as a potential wash trade and another for a sub-penny price (both final)."""

    def submit(self, r: OrderRequest):
        self.submits.append(r.client_order_id)
        if r.symbol == "AMD":
            raise WashTradeRejected("potential wash trade detected. use complex orders", 40310000, 403)
        if r.symbol == "PLTR":
            raise OrderRejected("invalid limit_price 21.771. sub-penny increment does not fulfill minimum "
                                "pricing criteria", CODE_UNPROCESSABLE, 422)
        return self.inner.submit(r)


def test_final_refusals_are_final_with_their_reason(tmp_path):
    pack = REFERENCE_PACK[:5]
    plan = make_plan(run_id="final", pack=pack, scale=0.5)
    b = Refusing(stale_broker(pack, seed=2))
    rep, rows = execute(plan, b, tmp_path / "l.sqlite")
    refused = {r.symbol: r for r in rows.values() if r.state == OrderState.REJECTED}
    assert set(refused) == {"AMD", "PLTR"}
    assert "wash trade" in refused["AMD"].reason and "sub-penny" in refused["PLTR"].reason
    assert rep.unresolved == 0 and rep.rejected == 2 and rep.summary()["rejected"] == 2
    sent = len(b.submits)
    rep2, _ = execute(plan, b, tmp_path / "l.sqlite")
    assert len(b.submits) == sent  # a re-run sends nothing: the refusals stand
    assert rep2.unresolved == 0 and rep2.rejected == 2


def _cli_plan(tmp_path: Path) -> tuple[Path, Path]:
    day = today_ny()
    pfile = tmp_path / "p.yaml"
    pfile.write_text(f"extends: {ROOT / 'parameters/default.yaml'}\nexecution:\n  broker: sim\n  max_attempts: 1\n"
                     f"  ledger_path: {tmp_path / 'ledger.sqlite'}\n")
    orders = write_orders(make_plan(run_id="clifinal", pack=REFERENCE_PACK[:5], scale=0.5, as_of=day),
                          tmp_path / "outputs" / str(day) / "orders.json")
    return pfile, orders


def test_cli_rerun_after_final_refusals_exits_0_and_names_the_reasons(tmp_path, monkeypatch, capsys):
    pfile, orders = _cli_plan(tmp_path)
    broker = Refusing(stale_broker(REFERENCE_PACK[:5], seed=2, now=None))
    monkeypatch.setattr("wolfkit.execute.open_broker", lambda *a, **k: broker)
    for _ in range(2):
        assert main(["execute", "--orders", str(orders), "--params", str(pfile)]) == 0
        captured = capsys.readouterr()
        text = " ".join((captured.out + captured.err).split())
        assert "re-run to reconcile" not in text and "unresolved 0" in text
        assert "rejected 2" in text and "wash trade" in text


def test_cli_genuinely_unresolved_still_exits_1(tmp_path, monkeypatch, capsys):
    pfile, orders = _cli_plan(tmp_path)

    class Down(Wrapper):
        def submit(self, r):
            if r.symbol == "AMD":
                raise BrokerUnavailable("HTTP 503 (the request's outcome is unknown)")
            return super().submit(r)

    broker = Down(stale_broker(REFERENCE_PACK[:5], seed=2, now=None))
    monkeypatch.setattr("wolfkit.execute.open_broker", lambda *a, **k: broker)
    monkeypatch.setattr("wolfkit.execute.time.sleep", lambda s: None)
    assert main(["execute", "--orders", str(orders), "--params", str(pfile)]) == 1
    assert "re-run to reconcile" in " ".join(capsys.readouterr().err.split())


# ---- item 10: an intraday replace with an unknown outcome is adopted --------------------------------


class FlakyReplace:
    """Delegates to a SimBroker. The first ramp replace answers 429 (nothing done); the second is
    processed and then answered 504; after it, the next `lookups_429` look-ups by client id answer 429."""

    def __init__(self, inner: SimBroker, lookups_429: int = 3):
        self.inner, self.name = inner, "flaky"
        self.replaces = 0
        self.lookups_429 = 0
        self._after = lookups_429

    def __getattr__(self, k):
        return getattr(self.inner, k)

    def replace(self, order_id: str, **kw):
        self.replaces += 1
        if self.replaces == 1:
            raise RateLimited("429 too many requests", retry_after=0.0)
        if self.replaces == 2:
            self.inner.replace(order_id, **kw)
            self.lookups_429 = self._after
            raise BrokerUnavailable("HTTP 504 Gateway Time-out (the request's outcome is unknown)")
        return self.inner.replace(order_id, **kw)

    def get_by_client_id(self, cid: str):
        if self.lookups_429 > 0:
            self.lookups_429 -= 1
            raise RateLimited("429 too many requests", retry_after=0.0)
        return self.inner.get_by_client_id(cid)


def _bars(prices: dict[str, float], minutes: int = 120) -> SessionBars:
    import numpy as np
    import pandas as pd

    times = pd.date_range(pd.Timestamp("2025-06-02 09:30", tz="America/New_York"), periods=minutes, freq="1min")
    syms = sorted(prices)
    c = np.tile(np.array([prices[x] for x in syms], dtype=float), (minutes, 1))
    return SessionBars(syms, times, c.copy(), c * 1.0002, c * 0.9998, c)


@pytest.mark.parametrize("poll", [True, False], ids=["polling", "streaming"])
@pytest.mark.parametrize("lookups_429", [0, 3])
def test_intraday_replace_with_unknown_outcome_tracks_the_live_order(lookups_429, poll):
    """A ramp replace answered 429, then one processed but answered 504 (and look-ups answered 429):
    the engine adopts the live replacement — from the update feed when it polls, by looking the id up
    itself when updates stream elsewhere — and never has two live orders."""
    p = params_from_dict({"leverage": {"directional_max": 1.3, "total_max": 1.5},
                          "maxdiff": {"expire_minutes": 390}})
    day = date(2025, 6, 2)
    plan = make_plan(pack=(), run_id="rp", as_of=day, buying_power=200_000.0, maxdiff_plans=[
        MaxdiffPlan(symbol="MSFT", high_target=110.0, low_target=100.0, side="buy", avg_return=0.01,
                    status=PlanStatus.QUEUED, rank=1)])
    inner = SimBroker(100_000.0, 2.0)
    broker = FlakyReplace(inner, lookups_429)
    eng = IntradayEngine.start(p, plan, broker, equity=100_000.0, session=day)
    b = _bars({"MSFT": 102.0})
    failures = 0
    for t in range(0, 45):  # ramp replaces at minutes 10 (429), 11 (504 after accept), 20, 30, 40
        now = b.times[t].to_pydatetime()
        inner.on_bar(b.symbols, b.high[t], b.low[t], b.close[t], now)
        try:
            eng.step(now, Market(b.high[t], b.low[t], b.close[t]), poll=poll)
        except (RateLimited, BrokerUnavailable):
            failures += 1  # the caller goes on with the next minute, as `wolfkit intraday` does
        live = [o for o in inner.open_orders() if o.symbol == "MSFT"]
        assert len(live) <= 1, f"minute {t}: two live orders {[o.client_order_id for o in live]}"
    assert broker.replaces >= 4 and (failures >= 1 if lookups_429 else failures == 0)
    [live] = [o for o in inner.open_orders() if o.symbol == "MSFT"]
    entry = eng.state.slots[0].entry
    assert (entry.order_id, entry.client_id) == (live.id, live.client_order_id)
    assert live.limit_price == ramp_price(p, Side.BUY, 100.0, 44)  # the ramp carried on after the failures
    ids = [o.client_order_id for o in inner.orders()]
    assert len(ids) == len(set(ids))


def test_intraday_adopts_the_executors_resized_orders_never_their_base_ids():
    """The executor resized a directional entry and a maxdiff opening order after 403s (`…-r1` live):
    the engine adopts the directional `-r1` and cancels the maxdiff one no plan took over — it never
    sends the base id next to them."""
    p = params_from_dict({"leverage": {"directional_max": 1.3, "total_max": 1.5}})
    day = date(2025, 6, 2)
    plan = make_plan(pack=[PackEntry("AAPL", "Tech", 0.1, 100.0)], maxdiff=[("MSFT", 10, 49.05)], run_id="ex",
                     as_of=day, buying_power=200_000.0)
    aapl, msft = plan.orders
    b = _bars({"AAPL": 100.0, "MSFT": 50.0})
    broker = SimBroker(100_000.0, 2.0)
    broker.on_bar(b.symbols, b.high[0], b.low[0], b.close[0], b.times[0].to_pydatetime())
    for po, qty in ((aapl, 80), (msft, 8)):  # the executor's attempt 1, after a 403 on the base id
        broker.submit(OrderRequest(po.symbol, qty, po.side, po.type, po.time_in_force,
                                   attempt_client_id(po.client_order_id, 1), po.limit_price))
    eng = IntradayEngine.start(p, plan, broker, equity=100_000.0, session=day)
    for t in range(1, 6):
        now = b.times[t].to_pydatetime()
        broker.on_bar(b.symbols, b.high[t], b.low[t], b.close[t], now)
        eng.step(now, Market(b.high[t], b.low[t], b.close[t]))
    ids = [o.client_order_id for o in broker.orders()]
    assert aapl.client_order_id not in ids and msft.client_order_id not in ids  # no base id was sent
    entry = eng.state.directional[0].entry
    r1 = broker.get_by_client_id(attempt_client_id(aapl.client_order_id, 1))
    assert r1.id in entry.booked  # adopted: its fills count towards the planned 100 shares
    assert sum(o.qty for o in broker.orders() if o.symbol == "AAPL") == entry.filled_qty == 100
    assert broker.get_by_client_id(attempt_client_id(msft.client_order_id, 1)).status == OrderStatus.CANCELED


# ---- item 12: no rate gate for the in-process simulator ------------------------------------------


def test_two_thousand_orders_through_the_simulator_never_wait():
    n = 2000
    prices = {f"S{i:04d}": 10.0 for i in range(n)}
    plan = make_plan(run_id="many", equity=1e6, pack=[PackEntry(s, "-", 1e-5, px) for s, px in prices.items()])
    b = quoted_sim(prices, bids=prices, equity=1e6)  # no rate limit asked for
    ft = FakeClock()
    rep, _ = execute(plan, b, ":memory:", ft=ft)  # execution.rate_limit_per_minute: 180 by default
    assert len(b.orders()) == n and rep.accepted == n
    assert b.request_count > n and ft.slept == []  # thousands of requests, not one wait


def test_a_simulator_with_a_limit_is_still_gated(tmp_path):
    plan = make_plan(run_id="gated", pack=REFERENCE_PACK[:6], scale=0.5)
    ft = FakeClock()
    b = stale_broker(REFERENCE_PACK[:6], seed=1, rate_limit_per_minute=5, timer=ft.monotonic)
    rep, _ = execute(plan, b, tmp_path / "l.sqlite", ft=ft, rate_limit_per_minute=5)
    assert rep.accepted == 6 and rep.rate_limited == 0 and ft.slept  # the gate waited instead of meeting 429s
    assert SimBroker(1.0).rate_limit_per_minute is None
