"""`wolfkit intraday` end to end (the emulator over HTTP, the simulated broker), its gates, and the
`status --params` / `replay --equity --outputs` options."""

from __future__ import annotations

import json
from datetime import date, datetime, time, timedelta
from pathlib import Path

import pytest
from factories import DEMO_SYMBOLS, FakeClock, demo_orders

from wolfkit import intraday
from wolfkit.broker.emulator import DemoFeed, create_app, serve
from wolfkit.broker.sim import SimBroker
from wolfkit.calendar import NY
from wolfkit.cli import main
from wolfkit.config import load_params
from wolfkit.data import get_provider
from wolfkit.intraday import EngineState
from wolfkit.ledger import Ledger, load_engine_state
from wolfkit.orders import read_orders


@pytest.fixture(scope="module")
def demo_plan(tmp_path_factory) -> tuple[Path, Path]:
    """A small real plan (scan + build on 30 demo symbols, margin account) and its parameter file."""
    params, orders = demo_orders(
        tmp_path_factory.mktemp("plan"), DEMO_SYMBOLS[:30], buying_power=200_000.0, settings=
        "execution:\n  broker: paper\n"
        # a 30-name universe: a lower bar keeps enough candidates for the pack whatever day it is
        "portfolio:\n  min_score: 40\n  sector_cap: 0.5\n  tiers:\n"
        "    - {min_score: 90, weight_min: 0.10, weight_max: 0.12}\n"
        "    - {min_score: 75, weight_min: 0.07, weight_max: 0.09}\n"
        "    - {min_score: 40, weight_min: 0.05, weight_max: 0.06}\n"
        "maxdiff:\n  ramp_minutes: 5\n  ramp_step_minutes: 1\n")
    plan = read_orders(orders)
    assert plan.orders and plan.maxdiff_plans, "the demo plan needs both layers for these tests"
    return params, orders


def copy_setup(demo_plan, tmp_path, broker="paper"):
    """The demo plan in its own folder with a parameter file whose ledger is in tmp_path."""
    params, orders = demo_plan
    folder = tmp_path / "day"
    folder.mkdir()
    mine = folder / "orders.json"
    mine.write_text(orders.read_text())
    ledger = tmp_path / "ledger.sqlite"
    pfile = tmp_path / "p.yaml"
    pfile.write_text(f"extends: {params}\nexecution:\n  broker: {broker}\n  ledger_path: {ledger}\n")
    return pfile, mine, ledger


def session_clock(session: date) -> FakeClock:
    """The live clock on the plan's session from 10:00 ET, one minute later at every reading."""
    return FakeClock(datetime.combine(session, time(10, 0), tzinfo=NY), tick=timedelta(minutes=1))


@pytest.fixture()
def emulator(demo_plan, monkeypatch):
    """An Alpaca-compatible emulator on 127.0.0.1 over a SimBroker quoted from the demo market, the
    environment pointed at it (canary keys), and the live clock on the plan's session."""
    params, orders = demo_plan
    session = read_orders(orders).as_of
    clock = session_clock(session)
    sim = SimBroker(100_000.0, 2.0, clock=lambda: clock.instant)
    feed = DemoFeed(sim, get_provider(load_params(params)), clock=lambda: clock.instant)
    feed.refresh()
    clock.on_tick = feed.refresh
    monkeypatch.setattr(intraday, "wall_clock", clock.now)
    # the test squeezes minutes of polling into a second: Alpaca's per-minute limit would bite at once
    srv = serve(create_app(sim, rate_limit_per_minute=None))
    for k, v in {"APCA_API_KEY_ID": "canary-key-id", "APCA_API_SECRET_KEY": "canary-secret",
                 "APCA_API_BASE_URL": srv.url, "APCA_API_DATA_URL": srv.url}.items():
        monkeypatch.setenv(k, v)
    try:
        yield sim, clock
    finally:
        srv.shutdown()


def engine_state(ledger: Path, run_id: str) -> EngineState:
    with Ledger(ledger) as book:
        raw = load_engine_state(book, run_id)
    assert raw is not None, "no engine state in the ledger"
    return EngineState.model_validate_json(raw)


def test_intraday_polls_the_emulator_and_a_second_run_resumes(demo_plan, emulator, tmp_path, capsys):
    sim, clock = emulator
    pfile, orders, ledger = copy_setup(demo_plan, tmp_path)
    plan = read_orders(orders)
    args = ["intraday", "--orders", str(orders), "--params", str(pfile), "--poll-seconds", "0",
            "--status-every", "2"]
    assert main([*args, "--max-steps", "4"]) == 0, capsys.readouterr().err
    out = " ".join(capsys.readouterr().out.split())
    assert f"started run {plan.run_id}" in out and "step 2: leverage directional" in out
    assert "stopped after 4 step(s): --max-steps 4" in out and "LEVERAGE USAGE" in out

    first = sim.orders()
    assert first, "no order reached the broker"
    directional = {o.symbol for o in plan.orders if o.layer == "directional"}
    assert directional <= {o.symbol for o in first}  # every directional entry went out
    state = engine_state(ledger, plan.run_id)
    assert state.now is not None and len(state.directional) == len(directional)
    assert any(p.status == "listening" for p in state.plans)

    assert main([*args, "--max-steps", "3"]) == 0, capsys.readouterr().err
    out = " ".join(capsys.readouterr().out.split())
    assert f"resumed run {plan.run_id}" in out and "stopped after 3 step(s)" in out
    ids = [o.client_order_id for o in sim.orders()]
    assert len(ids) == len(set(ids)) and len(ids) >= len(first)  # nothing sent twice
    seen = {o.client_order_id: o.id for o in sim.orders()}
    assert all(seen[o.client_order_id] == o.id for o in first)
    again = engine_state(ledger, plan.run_id)
    assert again.now > state.now  # the resumed engine carried on from the saved state


def test_intraday_stops_at_until(demo_plan, emulator, tmp_path, capsys):
    sim, clock = emulator
    pfile, orders, ledger = copy_setup(demo_plan, tmp_path)
    assert main(["intraday", "--orders", str(orders), "--params", str(pfile), "--poll-seconds", "0",
                 "--until", "10:05"]) == 0, capsys.readouterr().err
    out = " ".join(capsys.readouterr().out.split())
    assert "reached 10:05 ET" in out
    assert engine_state(ledger, read_orders(orders).run_id).now.astimezone(NY).time() < time(10, 5)


def test_intraday_on_the_simulated_broker(demo_plan, tmp_path, monkeypatch, capsys):
    pfile, orders, ledger = copy_setup(demo_plan, tmp_path, broker="sim")
    plan = read_orders(orders)
    monkeypatch.setattr(intraday, "wall_clock", session_clock(plan.as_of).now)
    assert main(["intraday", "--orders", str(orders), "--params", str(pfile), "--poll-seconds", "0",
                 "--max-steps", "3"]) == 0, capsys.readouterr().err
    assert "stopped after 3 step(s)" in " ".join(capsys.readouterr().out.split())
    b = SimBroker.load(orders.parent / "sim_broker.json")  # the same account `wolfkit execute --broker sim` uses
    ids = [o.client_order_id for o in b.orders()]
    assert ids and len(ids) == len(set(ids))
    assert engine_state(ledger, plan.run_id).now is not None


@pytest.mark.parametrize("args,param_broker", [(["--broker", "live"], "live"), (["--live"], "paper"),
                                               (["--live", "--broker", "live"], "paper")])
def test_intraday_live_needs_both_switches(demo_plan, tmp_path, capsys, args, param_broker):
    pfile, orders, ledger = copy_setup(demo_plan, tmp_path, broker=param_broker)
    assert main(["intraday", "--orders", str(orders), "--params", str(pfile), *args]) == 2
    err = capsys.readouterr().err
    assert "--live" in err and "execution.broker: live" in err
    assert not ledger.exists()


@pytest.mark.parametrize("how,needle", [("negative_qty", "qty"), ("stale", "an earlier session"),
                                        ("not_json", "not valid JSON")])
@pytest.mark.session_rule
def test_intraday_bad_orders_file_exits_2_and_sends_nothing(demo_plan, tmp_path, monkeypatch, capsys, how, needle):
    pfile, orders, ledger = copy_setup(demo_plan, tmp_path, broker="sim")
    monkeypatch.setattr(intraday, "wall_clock", session_clock(read_orders(orders).as_of).now)
    doc = json.loads(orders.read_text())
    if how == "negative_qty":
        doc["orders"][0]["qty"] = -5
    elif how == "stale":
        doc["as_of"] = "2020-01-02"
    orders.write_text("{oops" if how == "not_json" else json.dumps(doc))
    assert main(["intraday", "--orders", str(orders), "--params", str(pfile), "--max-steps", "1"]) == 2
    assert needle in capsys.readouterr().err
    assert not ledger.exists() and not (orders.parent / "sim_broker.json").exists()


@pytest.mark.session_rule
def test_intraday_refuses_another_day_and_a_past_until(demo_plan, tmp_path, monkeypatch, capsys):
    pfile, orders, ledger = copy_setup(demo_plan, tmp_path, broker="sim")
    clock = session_clock(read_orders(orders).as_of)
    monkeypatch.setattr(intraday, "wall_clock", clock.now)
    base = ["intraday", "--orders", str(orders), "--params", str(pfile), "--max-steps", "1"]
    assert main([*base, "--until", "09:45"]) == 2
    assert "has passed" in capsys.readouterr().err
    assert main([*base, "--until", "quarter past"]) == 2
    assert "HH:MM" in capsys.readouterr().err
    clock.sleep(timedelta(days=1).total_seconds())
    assert main(base) == 2
    assert "an earlier session" in capsys.readouterr().err
    assert main([*base, "--mode", "stream"]) == 2  # the simulated broker has no trade-update stream
    assert "--mode stream" in capsys.readouterr().err
    assert not ledger.exists()


def test_status_takes_the_traders_parameters(demo_plan, emulator, tmp_path, capsys):
    pfile, orders, ledger = copy_setup(demo_plan, tmp_path)
    assert main(["intraday", "--orders", str(orders), "--params", str(pfile), "--poll-seconds", "0",
                 "--max-steps", "2"]) == 0
    capsys.readouterr()
    tight = tmp_path / "tight.yaml"
    tight.write_text(f"extends: {pfile}\nleverage:\n  total_max: 1.0\n  directional_max: 1.0\n")
    outs = {}
    for name, f in (("mine", pfile), ("tight", tight)):
        assert main(["status", "--ledger", str(ledger), "--params", str(f)]) == 0
        outs[name] = " ".join(capsys.readouterr().out.split())
    assert "LEVERAGE USAGE" in outs["mine"] and outs["mine"] != outs["tight"]
    assert main(["status", "--ledger", str(ledger), "--params", str(tmp_path / "missing.yaml")]) == 2


def test_replay_equity_and_outputs(demo_plan, tmp_path, capsys):
    params, orders = demo_plan
    day = read_orders(orders).as_of
    out = tmp_path / "out"
    assert main(["replay", "--params", str(params), "--date", str(day), "--equity", "50000",
                 "--outputs", str(out)]) == 0, capsys.readouterr().err
    text = capsys.readouterr().out
    assert (out / str(day) / "replay.sqlite").is_file()
    with Ledger(out / str(day) / "replay.sqlite") as book:
        assert EngineState.model_validate_json(load_engine_state(book)).equity == 50_000
    assert "50,000" in text or "50000" in text
    assert main(["replay", "--params", str(params), "--date", str(day), "--equity", "-1",
                 "--outputs", str(out)]) == 2


def test_intraday_rides_out_broker_faults_without_duplicates(demo_plan, tmp_path, monkeypatch, capsys):
    """429s and 5xx (outcome unknown) mid-step: the command waits, reconciles, carries on, sends nothing twice."""
    import time as _time

    from wolfkit.broker.emulator import Faults

    params, orders0 = demo_plan
    plan = read_orders(orders0)
    clock = session_clock(plan.as_of)
    sim = SimBroker(100_000.0, 2.0, clock=lambda: clock.instant)
    feed = DemoFeed(sim, get_provider(load_params(params)), clock=lambda: clock.instant)
    feed.refresh()
    clock.on_tick = feed.refresh
    monkeypatch.setattr(intraday, "wall_clock", clock.now)
    monkeypatch.setattr(_time, "sleep", lambda s: None)  # the retry waits take no wall time
    srv = serve(create_app(sim, Faults(seed=5, server_error=0.08, rate_limit_burst=0.03, timeout_after_accept=0.05),
                           rate_limit_per_minute=None))
    for k, v in {"APCA_API_KEY_ID": "canary-key-id", "APCA_API_SECRET_KEY": "canary-secret",
                 "APCA_API_BASE_URL": srv.url, "APCA_API_DATA_URL": srv.url}.items():
        monkeypatch.setenv(k, v)
    try:
        pfile, orders, ledger = copy_setup(demo_plan, tmp_path)
        rc = main(["intraday", "--orders", str(orders), "--params", str(pfile), "--poll-seconds", "0",
                   "--max-steps", "6"])
    finally:
        srv.shutdown()
    cap = capsys.readouterr()
    out = " ".join(cap.out.split())
    assert rc == 0, cap.err
    assert "reconciling and continuing" in out and "stopped after 6 step(s)" in out
    maxdiff = {m.symbol for m in plan.maxdiff_plans}
    planned = {o.symbol: o.qty for o in plan.orders if o.layer == "directional" and o.symbol not in maxdiff}
    held = {p.symbol: p.qty for p in sim.positions()}
    over = {s: (held.get(s, 0), q) for s, q in planned.items() if held.get(s, 0) > q}
    assert planned and not over  # no directional entry went out twice
    assert engine_state(ledger, plan.run_id).now is not None
