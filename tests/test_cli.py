"""The command line's shared behaviour: help, `params check/show`, exit codes for bad input."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml

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


def test_console_script_help_lists_every_command():
    out = subprocess.run(
        [sys.executable, "-m", "wolfkit.cli", "--help"], capture_output=True, text=True, check=True
    ).stdout
    for cmd in ("scan", "build", "premarket", "execute", "status", "replay", "emulator", "params"):
        assert cmd in out
