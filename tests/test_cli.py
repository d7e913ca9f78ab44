"""The command line's shared behaviour: help, `params check/show`, exit codes for bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from factories import demo_orders

from wolfkit.cli import main

ROOT = Path(__file__).resolve().parents[1]


def test_params_check_valid_file(capsys):
    assert main(["params", "check", str(ROOT / "parameters/demo.yaml")]) == 0
    assert "valid" in capsys.readouterr().out


def test_params_check_invalid_file_exits_2_and_names_key(tmp_path, capsys):
    f = tmp_path / "bad.yaml"
    f.write_text("extends: " + str(ROOT / "parameters/default.yaml") + "\nportfolio:\n  sector_cap: 1.5\n")
    assert main(["params", "check", str(f)]) == 2
    err = capsys.readouterr().err
    assert "bad.yaml" in err and "portfolio.sector_cap" in err and "1.5" in err


def test_params_show_prints_resolved_set(capsys):
    assert main(["params", "show", str(ROOT / "parameters/demo.yaml")]) == 0
    shown = yaml.safe_load(capsys.readouterr().out)
    assert shown["name"] == "demo" and shown["portfolio"]["target_positions"] == 12


def test_unknown_option_is_a_usage_error_exit_2():
    assert main(["params", "check", "--bogus"]) == 2


def test_bad_date_exits_2(capsys):
    assert main(["scan", "--params", str(ROOT / "parameters/demo.yaml"), "--date", "tomorrowish"]) == 2
    assert "YYYY-MM-DD" in capsys.readouterr().err


def test_scan_on_a_closed_day_says_so_and_build_refuses_unless_forced(tmp_path, capsys):
    params = str(ROOT / "parameters/demo.yaml")
    opp = tmp_path / "opp.csv"
    assert main(["scan", "--params", params, "--date", "2026-11-21", "--out", str(opp)]) == 0
    said = capsys.readouterr().out
    assert "2026-11-21 is not a trading day (a weekend)" in said and "Nothing scanned" in said and "--force" in said
    assert not opp.exists()
    assert main(["scan", "--params", params, "--date", "2026-11-26", "--out", str(opp), "--force"]) == 0
    assert opp.is_file(), "--force scans a holiday anyway"
    orders = tmp_path / "orders.json"
    assert main(["build", "--opportunities", str(opp), "--params", params, "--equity", "100000",
                 "--date", "2026-11-26", "--out", str(orders)]) == 2, "a plan for a closed day is bad input"
    assert "an NYSE holiday" in capsys.readouterr().err and not orders.exists()
    assert main(["build", "--opportunities", str(opp), "--params", params, "--equity", "100000",
                 "--date", "2026-11-26", "--out", str(orders), "--force"]) == 0
    assert orders.is_file()


def test_console_script_help_lists_every_command():
    out = subprocess.run(
        [sys.executable, "-m", "wolfkit.cli", "--help"], capture_output=True, text=True, check=True
    ).stdout
    for cmd in ("scan", "build", "premarket", "execute", "status", "replay", "emulator", "params"):
        assert cmd in out


def _demo_orders(tmp_path: Path) -> Path:
    """A small real plan (orders.json in tmp_path) whose ledger is in tmp_path; returns its parameter file."""
    params, _ = demo_orders(tmp_path, settings=f"execution:\n  ledger_path: {tmp_path / 'ledger.sqlite'}\n")
    return params


@pytest.mark.session_rule
def test_execute_notebook_refuses_a_stale_file_before_starting_a_kernel(tmp_path, capsys):
    params = _demo_orders(tmp_path)
    stale = json.loads((tmp_path / "orders.json").read_text())
    stale["as_of"] = "2020-01-02"
    (tmp_path / "stale.json").write_text(json.dumps(stale))
    out = tmp_path / "outputs"
    rc = main(["execute", "--orders", str(tmp_path / "stale.json"), "--params", str(params),
               "--notebook", "--outputs", str(out)])
    assert rc == 2 and "this plan is for 2020-01-02" in capsys.readouterr().err
    assert not out.exists()


def test_execute_notebook_runs_the_audit_notebook(tmp_path, capsys):
    from wolfkit.orders import read_orders
    from wolfkit.report import read_records

    params = _demo_orders(tmp_path)
    plan = read_orders(tmp_path / "orders.json")
    out = tmp_path / "outputs"
    rc = main(["execute", "--orders", str(tmp_path / "orders.json"), "--params", str(params),
               "--notebook", "--outputs", str(out), "--session-override", "test suite: runs at any hour"])
    assert rc == 0, capsys.readouterr().err
    day = out / plan.as_of.isoformat()
    rec = read_records(day / "execute.ipynb")
    assert rec["exec_planned"] == len(plan.orders) and rec["exec_unresolved"] == 0
    assert rec["exec_accepted"] == len(plan.orders)
    assert (day / "execute.html").is_file() and (tmp_path / "ledger.sqlite").is_file()
