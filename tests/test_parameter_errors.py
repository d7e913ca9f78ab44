"""Every parameter problem a scheduled job can meet is exit 2 with a message naming the file and the fix:
the parameter file (unknown key, bad YAML, missing), the data source it names (universe or bars file
missing, Alpaca keys absent) — found before the pre-market notebook's kernel starts, where it used to be a
failed cell and exit 1 — the keys file `--env-file` loads, and the rehearsal clock `WOLFKIT_NOW`."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import pytest

from wolfkit.calendar import NOW_ENV, NY
from wolfkit.cli import main
from wolfkit.errors import BadInputError

ROOT = Path(__file__).resolve().parents[1]
PAPER = ROOT / "parameters" / "paper.yaml"
APCA = ("APCA_API_KEY_ID", "APCA_API_SECRET_KEY", "APCA_API_BASE_URL", "APCA_API_DATA_URL")
GOOD_KEYS = "export APCA_API_KEY_ID=k1\nexport APCA_API_SECRET_KEY='s 1'\n"


@pytest.fixture
def clean_env(monkeypatch):
    """No Alpaca variables and no rehearsal clock; anything a command sets is undone afterwards."""
    for name in (*APCA, NOW_ENV, "WOLFKIT_PROJECT"):
        monkeypatch.setenv(name, "placeholder")
        monkeypatch.delenv(name)
    return monkeypatch


def run(capsys, *argv: str) -> tuple[int, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def params_file(tmp_path: Path, body: str, name: str = "p.yaml") -> Path:
    path = tmp_path / name
    path.write_text(f"extends: {ROOT / 'parameters' / 'default.yaml'}\n{body}")
    return path


# ---- the parameter file and the data source it names -----------------------------------------------------


@pytest.mark.parametrize("body, says", [
    ("portfolio:\n  sector_capp: 0.3\n", "portfolio.sector_capp: unknown key"),
    ("portfolio:\n  sector_cap: [0.3\n", "not valid YAML"),
    ("data:\n  source: alpacca\n", "data.source"),
    ("execution:\n  max_plan_age_days: 1\n", "delete the line"),
])
def test_a_bad_parameter_file_exits_2_before_anything_runs(tmp_path, capsys, clean_env, body, says):
    path = params_file(tmp_path, body)
    for argv in (["params", "check", str(path)],
                 ["premarket", "--params", str(path), "--date", "2026-01-15", "--outputs", str(tmp_path / "out")]):
        code, out = run(capsys, *argv)
        assert code == 2 and says in out and str(path) in out, out
    assert not (tmp_path / "out").exists()


def test_a_missing_parameter_file_exits_2(tmp_path, capsys, clean_env):
    code, out = run(capsys, "premarket", "--params", str(tmp_path / "nope.yaml"), "--date", "2026-01-15")
    assert code == 2 and "parameter file not found" in out


@pytest.mark.parametrize("keys, body, says", [
    (True, "data:\n  source: alpaca\n  universe_path: {tmp}/missing.csv\n", "missing.csv"),
    (True, "data:\n  source: alpaca\n", "data.universe_path"),
    (False, "data:\n  source: alpaca\n  universe_path: {universe}\n", "APCA_API_KEY_ID"),
    (False, "data:\n  source: csv\n  bars_path: {tmp}/bars.csv\n  universe_path: {universe}\n", "data.bars_path"),
])
def test_a_data_source_that_cannot_load_exits_2_before_the_notebook_starts(tmp_path, capsys, clean_env, keys,
                                                                             body, says):
    """These used to fail inside the pre-market notebook: a failed cell, exit 1, a failed notebook written."""
    universe = tmp_path / "universe.csv"
    universe.write_text("Symbol,GICS Sector,Market Cap\nAAPL,Information Technology,3e12\n")
    if keys:
        clean_env.setenv("APCA_API_KEY_ID", "k")
        clean_env.setenv("APCA_API_SECRET_KEY", "s")
    path = params_file(tmp_path, body.format(tmp=tmp_path, universe=universe))
    code, out = run(capsys, "premarket", "--params", str(path), "--date", "2026-01-15", "--outputs",
                    str(tmp_path / "out"))
    assert code == 2 and says in out, out
    assert not (tmp_path / "out").exists()  # no kernel, no day folder, no failed notebook


def test_the_paper_parameters_read_gics_sectors_never_a_sub_industry(tmp_path, clean_env):
    from wolfkit.config import load_params
    from wolfkit.data.files import read_universe
    from wolfkit.data.registry import check_source

    both = tmp_path / "u.csv"
    both.write_text("Symbol,GICS Sub-Industry,GICS Sector,Market Cap\nMMM,Industrial Conglomerates,Industrials,9e10\n")
    assert read_universe(both)[0]["sector"].tolist() == ["Industrials"]
    p = load_params(PAPER)
    assert p.data.universe_path == "../shared/data/sp500_universe_2018.csv" and p.execution.broker == "paper"
    shared = ROOT.parent / "shared" / "data" / "sp500_universe_2018.csv"
    if not shared.is_file():
        pytest.skip(f"real data file {shared} is absent (a fresh clone without ../shared)")
    universe, _ = read_universe(shared)
    assert len(universe) > 490 and universe["sector"].nunique() == 11  # the 11 GICS sectors
    clean_env.setenv("APCA_API_KEY_ID", "k")
    clean_env.setenv("APCA_API_SECRET_KEY", "s")
    clean_env.chdir(ROOT)
    check_source(p)  # the shipped file loads as shipped, from the project folder


# ---- the keys file -------------------------------------------------------------------------------------


@pytest.mark.parametrize("text, says", [
    (None, "keys file not found"),
    ("export APCA_API_KEY_ID=k\nAPCA_API_SECRET_KEY\n", "line 2: not `NAME=value`"),
    ("export APCA_API_KEY_ID=k\nexport APCA_SECRET=s\n", "line 2: APCA_SECRET is not a variable"),
    (GOOD_KEYS + "export WOLFKIT_NOW=2026-01-15T08:30\n", "line 3: WOLFKIT_NOW is not a variable"),
    (GOOD_KEYS + "export APCA_API_KEY_ID=k2\n", "line 3: APCA_API_KEY_ID is set twice"),
    ("export APCA_API_KEY_ID=k\nexport APCA_API_SECRET_KEY=\n", "APCA_API_SECRET_KEY missing or empty"),
    ("export APCA_API_KEY_ID=two words\nexport APCA_API_SECRET_KEY=s\n", "line 1: the value of APCA_API_KEY_ID"),
    (b"export APCA_API_KEY_ID=\xff\n", "not UTF-8"),
])
def test_a_bad_keys_file_exits_2_naming_the_file_and_line(tmp_path, capsys, clean_env, text, says):
    keys = tmp_path / "alpaca.env"
    if isinstance(text, bytes):
        keys.write_bytes(text)
    elif text is not None:
        keys.write_text(text)
    code, out = run(capsys, "--env-file", str(keys), "params", "check", str(PAPER))
    assert code == 2 and says in out and str(keys) in out, out
    assert "k2" not in out and "valid" not in out


def test_a_good_keys_file_sets_the_environment_and_wants_chmod_600(tmp_path, capsys, clean_env):
    import os

    keys = tmp_path / "alpaca.env"
    keys.write_text("# paper keys\n\n" + GOOD_KEYS + "APCA_API_BASE_URL=\"http://127.0.0.1:9\"\n")
    keys.chmod(0o644)
    code, out = run(capsys, "--env-file", str(keys), "params", "check", str(PAPER))
    assert code == 0 and "valid" in out and "chmod 600" in out
    assert (os.environ["APCA_API_KEY_ID"], os.environ["APCA_API_SECRET_KEY"]) == ("k1", "s 1")
    assert os.environ["APCA_API_BASE_URL"] == "http://127.0.0.1:9"
    keys.chmod(0o600)
    code, out = run(capsys, "--env-file", str(keys), "params", "check", str(PAPER))
    assert code == 0 and "chmod" not in out and "s 1" not in out


# ---- the rehearsal clock -------------------------------------------------------------------------------


def test_wolfkit_now_is_the_wall_clock(clean_env):
    from wolfkit import calendar, market_hours

    clean_env.setenv(NOW_ENV, "2026-07-15T08:30")
    assert market_hours.wall_clock() == datetime(2026, 7, 15, 8, 30, tzinfo=NY)
    assert calendar.resolve_date("today").isoformat() == "2026-07-15"
    clean_env.setenv(NOW_ENV, "2026-01-16T02:30+00:00")  # UTC: still the 15th in New York
    assert market_hours.wall_clock() == datetime(2026, 1, 16, 2, 30, tzinfo=timezone.utc)
    assert calendar.today_ny().isoformat() == "2026-01-15"
    clean_env.delenv(NOW_ENV)
    assert abs((market_hours.wall_clock() - datetime.now(NY)).total_seconds()) < 60


def test_a_bad_wolfkit_now_exits_2(tmp_path, capsys, clean_env):
    clean_env.setenv(NOW_ENV, "tomorrow morning")
    code, out = run(capsys, "premarket", "--params", str(ROOT / "parameters" / "demo.yaml"), "--date", "today",
                    "--outputs", str(tmp_path / "out"))
    assert code == 2 and "WOLFKIT_NOW='tomorrow morning'" in out and "ISO-8601" in out


def test_wolfkit_now_never_trades_live(tmp_path, capsys, clean_env):
    from wolfkit.broker.gate import trading_url

    clean_env.setenv(NOW_ENV, "2026-01-15T09:30")
    with pytest.raises(BadInputError, match="WOLFKIT_NOW is set"):
        trading_url(live=True)
    assert trading_url(live=False) == "https://paper-api.alpaca.markets"  # paper rehearsals are its purpose
    live = params_file(tmp_path, "execution:\n  broker: live\n")
    code, out = run(capsys, "execute", "--params", str(live), "--live", "--orders", str(tmp_path / "orders.json"))
    assert code == 2 and "WOLFKIT_NOW" in out and "nothing was sent" in out
