"""The session rule: a plan sends orders only in its own session (pre-open from 04:00 ET and regular hours,
early closes included), opening-auction orders only until 09:28 ET; otherwise exit 2 with why and the fix,
unless `--session-override "why"`, which is printed and recorded in the ledger. Every clock is injected."""

from __future__ import annotations

import json
from datetime import date, datetime, time

import pytest
from factories import REFERENCE_PACK, make_plan

from wolfkit import market_hours
from wolfkit.calendar import NY
from wolfkit.cli import main
from wolfkit.config import load_params
from wolfkit.domain import TimeInForce
from wolfkit.errors import BadInputError
from wolfkit.ledger import EventKind, Ledger
from wolfkit.market_hours import clear_to_send, opg_orders, session_rule
from wolfkit.orders import write_orders

MONDAY = date(2026, 11, 30)  # a regular session (16:00 close)
EARLY = date(2026, 11, 27)  # the day after Thanksgiving: 13:00 close


def at(day: date, hh: int, mm: int = 0) -> datetime:
    return datetime.combine(day, time(hh, mm), tzinfo=NY)


@pytest.mark.parametrize("now", [at(MONDAY, 4, 0), at(MONDAY, 8, 45), at(MONDAY, 9, 30), at(MONDAY, 15, 59)])
def test_a_plan_sends_in_its_pre_open_and_regular_hours(now):
    assert session_rule(MONDAY, now).allowed


@pytest.mark.parametrize("now,why,fix", [
    (at(MONDAY, 16, 10), "closed at 16:00 ET and it is 16:10 ET", "wolfkit premarket"),  # the 16:10 run
    (at(MONDAY, 3, 59), "before the 2026-11-30 session takes orders (04:00 ET)", "from 04:00 ET"),
    (at(date(2026, 12, 1), 10, 0), "an earlier session; today (New York) is 2026-12-01",
     "build today's with `wolfkit premarket --date today`"),  # the previous session's plan, the next morning
    (at(date(2026, 11, 29), 10, 0), "today (New York) is 2026-11-29", "2026-11-30"),  # a plan for tomorrow
])
def test_outside_its_session_a_plan_is_refused_with_why_and_fix(now, why, fix):
    v = session_rule(MONDAY, now)
    assert not v.allowed and why in v.why and fix in v.fix, v


def test_early_close_ends_the_session_at_13_00():
    assert session_rule(EARLY, at(EARLY, 12, 59)).allowed
    v = session_rule(EARLY, at(EARLY, 13, 5))
    assert not v.allowed and "closed at 13:00 ET (an early close)" in v.why


def test_a_plan_for_a_weekend_or_holiday_is_not_a_session():
    v = session_rule(date(2026, 11, 28), at(date(2026, 11, 28), 10))
    assert not v.allowed and "a Saturday, not a trading session" in v.why and "2026-11-30" in v.fix
    v = session_rule(date(2026, 11, 26), at(date(2026, 11, 26), 10))  # Thanksgiving
    assert not v.allowed and "an NYSE holiday" in v.why


def test_opening_auction_orders_only_until_09_28():
    assert session_rule(MONDAY, at(MONDAY, 9, 27), opg_orders=3).allowed
    v = session_rule(MONDAY, at(MONDAY, 9, 28), opg_orders=3)
    assert not v.allowed and "3 opening-auction (opg) order(s)" in v.why and "until 09:28 ET" in v.why
    assert "time_in_force: day" in v.fix
    assert session_rule(MONDAY, at(MONDAY, 9, 28), opg_orders=0).allowed  # day orders go on all session


def test_naive_times_are_new_york_and_utc_is_converted():
    assert session_rule(MONDAY, datetime(2026, 11, 30, 15, 0)).allowed
    assert not session_rule(MONDAY, datetime(2026, 11, 30, 21, 10, tzinfo=NY).astimezone(NY)).allowed
    from datetime import timezone
    assert session_rule(MONDAY, datetime(2026, 11, 30, 20, 59, tzinfo=timezone.utc)).allowed  # 15:59 ET
    assert not session_rule(MONDAY, datetime(2026, 11, 30, 21, 1, tzinfo=timezone.utc)).allowed  # 16:01 ET


def plan_for(day: date, tif: TimeInForce = TimeInForce.DAY, bracket: bool = False):
    plan = make_plan(run_id=f"mh{day:%m%d}", pack=REFERENCE_PACK[:4], scale=0.5)
    orders = [o.model_copy(update={"time_in_force": tif, **({"take_profit": o.est_price * 1.1} if bracket else {})})
              for o in plan.orders]
    return plan.model_copy(update={"as_of": day, "orders": orders})


def test_a_bracket_is_not_an_auction_order():
    assert opg_orders(plan_for(MONDAY, TimeInForce.OPG)) == 4
    assert opg_orders(plan_for(MONDAY, TimeInForce.OPG, bracket=True)) == 0


def test_clear_to_send_names_the_file_and_the_override():
    plan = plan_for(MONDAY)
    assert clear_to_send("o.json", plan, at(MONDAY, 10)) is None
    with pytest.raises(BadInputError) as e:
        clear_to_send("outputs/2026-11-30/orders.json", plan, at(MONDAY, 16, 10))
    msg = str(e.value)
    assert msg.startswith("outputs/2026-11-30/orders.json: ") and "nothing was sent" in msg
    assert "--session-override" in msg and e.value.exit_code == 2
    with pytest.raises(BadInputError, match="needs the reason"):
        clear_to_send("o.json", plan, at(MONDAY, 16, 10), override="  ")
    o = clear_to_send("o.json", plan, at(MONDAY, 16, 10), override="closing out a test account")
    assert o is not None and o.why == "closing out a test account" and "closed at 16:00" in o.refused
    assert "@" in o.by and o.at == at(MONDAY, 16, 10)
    assert "closing out a test account" in o.message()


def test_the_plan_age_knob_is_gone_with_the_reason(tmp_path):
    f = tmp_path / "old.yaml"
    f.write_text("execution:\n  max_plan_age_days: 3\n")
    with pytest.raises(BadInputError, match="max_plan_age_days: removed .*own session"):
        load_params(f)


# ---- the commands, with the real rule on an injected wall clock ----------------------------------


def cli_files(tmp_path, day: date):
    ledger = tmp_path / "ledger.sqlite"
    pfile = tmp_path / "p.yaml"
    pfile.write_text(f"execution:\n  broker: sim\n  ledger_path: {ledger}\n  lock_wait_seconds: 0\n")
    orders = write_orders(plan_for(day), tmp_path / "outputs" / str(day) / "orders.json")
    return pfile, ledger, orders


@pytest.mark.session_rule
def test_execute_refuses_after_the_close_and_yesterdays_plan_sending_nothing(tmp_path, monkeypatch, capsys):
    pfile, ledger, orders = cli_files(tmp_path, MONDAY)
    for now, needle in [(at(MONDAY, 16, 10), "closed at 16:00 ET"),
                        (at(date(2026, 12, 1), 9, 45), "this plan is for 2026-11-30, an earlier session")]:
        monkeypatch.setattr(market_hours, "wall_clock", lambda now=now: now)
        assert main(["execute", "--orders", str(orders), "--params", str(pfile)]) == 2
        err = " ".join(capsys.readouterr().err.split())
        assert needle in err and str(orders) in err and "wolfkit premarket" in err
        assert not ledger.exists() and not (orders.parent / "sim_broker.json").exists()  # nothing sent or opened


@pytest.mark.session_rule
def test_execute_in_session_sends(tmp_path, monkeypatch, capsys):
    pfile, ledger, orders = cli_files(tmp_path, MONDAY)
    monkeypatch.setattr(market_hours, "wall_clock", lambda: at(MONDAY, 9, 45))
    assert main(["execute", "--orders", str(orders), "--params", str(pfile)]) == 0, capsys.readouterr().err
    log = json.loads((orders.parent / "execution_log.json").read_text())
    assert log["report"]["accepted"] == 4
    with Ledger(ledger) as lg:
        assert not lg.events(plan_for(MONDAY).run_id, EventKind.SESSION_OVERRIDE)


@pytest.mark.session_rule
def test_session_override_sends_prints_and_records_who_when_why(tmp_path, monkeypatch, capsys):
    pfile, ledger, orders = cli_files(tmp_path, MONDAY)
    monkeypatch.setattr(market_hours, "wall_clock", lambda: at(MONDAY, 16, 10))
    args = ["execute", "--orders", str(orders), "--params", str(pfile)]
    assert main([*args, "--session-override", "flatten before the weekend"]) == 0, capsys.readouterr().err
    out = " ".join(capsys.readouterr().out.split())
    assert "session rule overridden by" in out and "flatten before the weekend" in out
    with Ledger(ledger) as lg:
        (ev,) = lg.events(plan_for(MONDAY).run_id, EventKind.SESSION_OVERRIDE)
    assert ev.detail["why"] == "flatten before the weekend" and "closed at 16:00" in ev.detail["rule"]
    assert ev.detail["by"] and ev.detail["at"].startswith("2026-11-30T16:10") and ev.detail["command"] == "execute"
    assert ev.account.startswith("sim:sim@file://")


@pytest.mark.session_rule
def test_execute_notebook_refuses_before_a_kernel_starts(tmp_path, monkeypatch, capsys):
    pfile, ledger, orders = cli_files(tmp_path, MONDAY)
    monkeypatch.setattr(market_hours, "wall_clock", lambda: at(MONDAY, 16, 10))
    out = tmp_path / "nb"
    assert main(["execute", "--orders", str(orders), "--params", str(pfile), "--notebook", "--outputs", str(out)]) == 2
    assert "closed at 16:00" in " ".join(capsys.readouterr().err.split())
    assert not out.exists() and not ledger.exists()
