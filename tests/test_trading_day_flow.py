"""The trading day as a new user runs it, command by command in separate processes, with the clock injected
(`WOLFKIT_NOW`): pre-market on the demo market → execute on the simulated account → status shows the
positions and the P&L; the same plan executed on the emulator (paper) works; the plan the next morning is
refused with exit 2 and nothing is sent. Plus: the injected clock itself, and the carry from one session
into the next built against what the simulated account holds."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import datetime, time
from pathlib import Path

import pytest
from factories import SESSION

from wolfkit import calendar
from wolfkit.broker.sim import SimBroker
from wolfkit.calendar import NY
from wolfkit.cli import main
from wolfkit.config import load_params
from wolfkit.errors import BadInputError
from wolfkit.execute import sim_broker_for
from wolfkit.orders import read_orders

ROOT = Path(__file__).resolve().parents[1]
NEXT = calendar.next_session(SESSION)


def at(day, hh: int, mm: int) -> str:
    return datetime.combine(day, time(hh, mm), tzinfo=NY).isoformat()


def wolfkit(cwd: Path, now: str, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """`wolfkit ARGS` in its own process at `now` (WOLFKIT_NOW), without Alpaca keys unless `env` gives them."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("APCA_")}
    run_env = {**base, "WOLFKIT_NOW": now, "COLUMNS": "200", **(env or {})}
    return subprocess.run([sys.executable, "-m", "wolfkit.cli", *args], cwd=cwd, env=run_env, capture_output=True,
                          text=True, timeout=600)


def ok(r: subprocess.CompletedProcess) -> str:
    assert r.returncode == 0, f"exit {r.returncode}\n{r.stdout}\n{r.stderr}"
    return r.stdout


@pytest.mark.slow
@pytest.mark.session_rule
def test_premarket_execute_status_then_paper_then_yesterday_refused(tmp_path, emulator_server):
    params = tmp_path / "day.yaml"
    params.write_text(f"extends: {ROOT / 'parameters/demo.yaml'}\n"
                      f"execution:\n  ledger_path: {tmp_path / 'ledger.sqlite'}\n")
    day = tmp_path / "outputs" / SESSION.isoformat()
    common = ["--params", str(params), "--outputs", "outputs", "--date", SESSION.isoformat()]

    ok(wolfkit(tmp_path, at(SESSION, 8, 45), "premarket", *common))
    orders = day / "orders.json"
    plan = read_orders(orders)
    assert plan.as_of == SESSION and plan.orders

    out = ok(wolfkit(tmp_path, at(SESSION, 9, 35), "execute", *common, "--broker", "sim"))
    assert f"accepted {len(plan.orders)}/{len(plan.orders)}" in out, out
    sim_state = day / "sim_broker.json"

    # status at 10:30 moves the simulated market to the demo quotes: the market orders fill, as at a broker
    out = ok(wolfkit(tmp_path, at(SESSION, 10, 30), "status", "--params", str(params)))
    held = {p.symbol: p.qty for p in SimBroker.load(sim_state).positions()}
    assert held and set(held) <= {o.symbol for o in plan.orders}
    for symbol in list(held)[:3]:
        assert symbol in out, out
    assert "P&L BY LAYER" in out and "Directional: realized" in out and "unrealized" in out, out
    assert "positions, gross $" in out and "(from the broker)" in out, out

    # the same plan on the emulator (Alpaca paper's API on 127.0.0.1) over a simulated account at the same time
    p = load_params(params)
    now = datetime.fromisoformat(at(SESSION, 9, 40))
    paper = sim_broker_for(plan, p, now)
    paper.clock = lambda: now
    paper.fill_on_submit = True
    srv = emulator_server(paper)
    keys = {"APCA_API_KEY_ID": "emulator-key", "APCA_API_SECRET_KEY": "emulator-secret",
            "APCA_API_BASE_URL": srv.url, "APCA_API_DATA_URL": srv.url}
    out = ok(wolfkit(tmp_path, at(SESSION, 9, 40), "execute", *common, "--broker", "paper", env=keys))
    sent = {o.client_order_id for o in paper.orders()}
    assert sent <= {o.client_order_id for o in plan.orders} and sent
    assert f"accepted {len(sent)}/{len(plan.orders)}" in out, out
    # what is not sent is a maxdiff buy beside its own bracket's sell legs: the wash-trade rule, said per order
    for o in plan.orders:
        if o.client_order_id not in sent:
            assert o.layer == "maxdiff" and f"{o.symbol}: an opposite-side (sell) order is open" in out, (o, out)

    # the next morning, yesterday's plan is refused on both accounts, and nothing is sent
    sim_before, paper_before = sim_state.read_bytes(), len(paper.orders())
    for broker, env in (("sim", None), ("paper", keys)):
        r = wolfkit(tmp_path, at(NEXT, 9, 35), "execute", "--orders", str(orders), "--params", str(params),
                    "--broker", broker, env=env)
        assert r.returncode == 2, (r.stdout, r.stderr)
        assert f"this plan is for {SESSION}, an earlier session" in r.stderr and "nothing was sent" in r.stderr
    assert sim_state.read_bytes() == sim_before and len(paper.orders()) == paper_before


@pytest.mark.slow
@pytest.mark.session_rule
def test_the_next_session_is_built_against_what_the_simulated_account_holds(tmp_path, monkeypatch, capsys):
    """Carry (in this process, the clock still injected by WOLFKIT_NOW): the simulated account holds yesterday's
    pack (its state copied into today's folder); `wolfkit premarket --broker sim` sizes today's pack against it,
    `execute` trades only the deltas, and a plan built as if flat is refused on that account."""
    for k in [k for k in os.environ if k.startswith("APCA_")]:
        monkeypatch.delenv(k)
    params = tmp_path / "carry.yaml"
    params.write_text(f"extends: {ROOT / 'parameters/demo.yaml'}\n"
                      "portfolio:\n  sector_cap: 0.5\nintraday:\n  close_directional_eod: false\n"
                      f"execution:\n  ledger_path: {tmp_path / 'ledger.sqlite'}\n")
    first, second = tmp_path / "outputs" / SESSION.isoformat(), tmp_path / "outputs" / NEXT.isoformat()

    def run(now: str, *args: str) -> int:
        monkeypatch.setenv("WOLFKIT_NOW", now)
        return main(list(args))

    def scan_build(day, folder: Path) -> Path:
        opp, out = folder / "opp.csv", folder / "orders.flat.json"
        if not opp.exists():
            assert run(at(day, 8, 45), "scan", "--params", str(params), "--date", day.isoformat(), "--out", str(opp)) == 0
        assert run(at(day, 8, 50), "build", "--opportunities", str(opp), "--params", str(params), "--equity",
                   "100000", "--date", day.isoformat(), "--out", str(out)) == 0
        return out

    execute = ["execute", "--params", str(params), "--broker", "sim", "--orders"]
    assert run(at(SESSION, 9, 35), *execute, str(scan_build(SESSION, first))) == 0
    assert run(at(SESSION, 15, 0), "status", "--params", str(params)) == 0  # the market orders fill
    second.mkdir(parents=True)
    (second / "sim_broker.json").write_bytes((first / "sim_broker.json").read_bytes())  # the account carries on
    held = {p.symbol: p.qty for p in SimBroker.load(second / "sim_broker.json").positions()}
    exits = {o.symbol for o in SimBroker.load(second / "sim_broker.json").open_orders()
             if o.client_order_id.endswith(("-tp", "-sl"))}  # the carried brackets' legs, working
    assert held and exits

    flat = scan_build(NEXT, second)
    capsys.readouterr()
    assert run(at(NEXT, 9, 35), *execute, str(flat)) == 2
    err = capsys.readouterr().err
    assert "holds shares no wolfkit plan" in err and "--broker sim" in err, err

    # the pre-market job, as a scheduler runs it, sized against the simulated account of the day folder
    assert run(at(NEXT, 8, 55), "premarket", "--params", str(params), "--date", NEXT.isoformat(), "--outputs",
               str(tmp_path / "outputs"), "--broker", "sim") == 0
    carry_file = second / json.loads((second / "latest.json").read_text())["orders"]
    carry = read_orders(carry_file)
    assert carry.holdings is not None and carry.holdings.qty() == held
    assert run(at(NEXT, 9, 36), *execute, str(carry_file)) == 0
    assert run(at(NEXT, 9, 40), "status", "--params", str(params), "--sim-state",
               str(second / "sim_broker.json")) == 0  # the market orders fill on the 09:40 quotes
    account = SimBroker.load(second / "sim_broker.json")
    after = {p.symbol: p.qty for p in account.positions()}
    yesterday = "wk-" + read_orders(first / "orders.flat.json").run_id[:40]
    traded = {o.symbol for o in carry.orders if o.symbol in held}
    assert traded & exits and not [o.client_order_id for o in account.open_orders()  # carried exits there were cancelled
                           if o.symbol in traded and o.client_order_id.startswith(yesterday)]
    maxdiff = {o.symbol for o in carry.orders if o.layer == "maxdiff"}
    directional = [o for o in carry.orders if o.layer == "directional" and o.symbol not in maxdiff]
    assert {o.rebalance for o in directional} >= {"buy", "exit"}, [(o.symbol, o.rebalance) for o in directional]
    closed = {o.client_order_id[:-3] for o in account.orders()  # a buy's bracket leg that filled since (its target)
              if o.client_order_id.endswith(("-tp", "-sl")) and o.status == "filled"}
    assert closed <= {o.client_order_id for o in carry.orders}
    log = json.loads((second / "execution_log.json").read_text())
    sent = {r["plan_client_id"]: r["client_order_id"] for r in log["orders"]}
    at_broker = {o.client_order_id: o.filled_qty for o in account.orders()}
    filled = {o.client_order_id: int(at_broker.get(sent[o.client_order_id], 0)) for o in directional}
    for o in directional:  # every delta traded exactly what filled: held ± the fill, never the whole target on top
        assert 0 <= filled[o.client_order_id] <= o.qty, o  # what the simulator's quotes filled by 09:40
        bought = 0 if o.client_order_id in closed else filled[o.client_order_id]  # bought, then sold by its exit leg
        assert after.get(o.symbol, 0) == held.get(o.symbol, 0) + (bought if o.side == "buy" else -filled[o.client_order_id]), o
    assert "exit" in {o.rebalance for o in directional if filled[o.client_order_id]}  # what left the pack was sold
    assert log["account"].startswith("sim:sim@file://")


def test_wolfkit_now_is_the_clock_and_is_refused_live(monkeypatch):
    from wolfkit import market_hours
    from wolfkit.broker.gate import broker_kind_for
    from wolfkit.config import Params

    monkeypatch.setenv("WOLFKIT_NOW", "2024-06-03T09:31:00")
    assert market_hours.wall_clock() == datetime(2024, 6, 3, 9, 31, tzinfo=NY)  # no offset: New York time
    monkeypatch.setenv("WOLFKIT_NOW", "2024-06-03T13:31:00+00:00")
    assert market_hours.wall_clock() == datetime(2024, 6, 3, 9, 31, tzinfo=NY)
    monkeypatch.setenv("WOLFKIT_NOW", "yesterday")
    with pytest.raises(BadInputError, match="WOLFKIT_NOW='yesterday': not an ISO-8601 time"):
        market_hours.wall_clock()
    monkeypatch.setenv("WOLFKIT_NOW", "2024-06-03T09:31:00")
    live = Params.model_validate({"execution": {"broker": "live"}})
    with pytest.raises(BadInputError, match="WOLFKIT_NOW is set.*never trades live money"):
        broker_kind_for(live, "live", live=True)
    assert broker_kind_for(live, "sim") == "sim"
    monkeypatch.delenv("WOLFKIT_NOW")
    assert abs((market_hours.wall_clock() - datetime.now(NY)).total_seconds()) < 5


def test_a_bad_broker_for_the_holdings_is_refused_before_any_work(tmp_path, capsys):
    demo = str(ROOT / "parameters/demo.yaml")
    assert main(["premarket", "--params", demo, "--date", SESSION.isoformat(), "--outputs", str(tmp_path),
                 "--broker", "nope"]) == 2
    assert "--broker 'nope': use sim, paper or live" in capsys.readouterr().err
    assert not (tmp_path / SESSION.isoformat()).exists()  # no notebook ran, nothing written
    assert main(["premarket", "--params", demo, "--date", SESSION.isoformat(), "--outputs", str(tmp_path),
                 "--broker", "live"]) == 2  # reading the live account needs the live parameters
    assert "live trading needs BOTH switches" in capsys.readouterr().err
