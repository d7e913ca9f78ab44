"""Audit folders are append-only: no command overwrites a file under `outputs/<date>/`, and the day's
`latest.json` names the current plan, which `execute` and `intraday` send when no --orders is given."""

from __future__ import annotations

import hashlib
import json
from datetime import date, datetime, time, timedelta
from pathlib import Path

import pytest
from factories import FakeClock

from wolfkit import calendar, intraday
from wolfkit.calendar import NY
from wolfkit.cli import main
from wolfkit.day_folder import OnTaken, claim_file, claimed, current_plan, read_manifest, update_manifest
from wolfkit.errors import BadInputError

ROOT = Path(__file__).resolve().parents[1]
SESSION = calendar.latest_session(calendar.today_ny())  # fresh enough for the executor's plan-age check
# the pointer (rewritten atomically), the run log (appended) and the simulated account's state
MUTABLE = {"latest.json", "runs.jsonl", "sim_broker.json"}


Snapshot = dict[str, tuple[bytes, int]]


def _hashes(folder: Path) -> Snapshot:
    """Every file's bytes and modification time (a rewrite with the same bytes — the demo market is
    deterministic — still moves the time)."""
    return {str(p.relative_to(folder)): (p.read_bytes(), p.stat().st_mtime_ns)
            for p in sorted(folder.rglob("*")) if p.is_file()}


def _assert_append_only(before: Snapshot, after: Snapshot) -> None:
    """Every file that existed is still there, untouched; the run log only grew at its end."""
    for name, (data, mtime) in before.items():
        assert name in after, f"{name} disappeared"
        if name == "runs.jsonl":
            assert after[name][0].startswith(data), "runs.jsonl was rewritten, not appended to"
        elif name not in MUTABLE:
            assert hashlib.sha256(after[name][0]).digest() == hashlib.sha256(data).digest(), f"{name} was overwritten"
            assert after[name][1] == mtime, f"{name} was written again"


# ------------------------------------------------------------------------------- the naming rule


def test_claim_file_numbers_past_every_companion_and_reserves(tmp_path):
    day = tmp_path / "2026-01-02"
    companions = (".excluded.csv", ".data_quality.csv")
    first = claim_file(day / "opportunities.csv", companions=companions)
    (day / "opportunities.2.data_quality.csv").touch()  # a companion alone takes its number
    second = claim_file(day / "opportunities.csv", companions=companions)
    assert (first.name, second.name) == ("opportunities.csv", "opportunities.3.csv")
    assert first.is_file() and second.is_file()  # reserved: a concurrent writer cannot take them
    assert claim_file(day / "orders.json", start=4).name == "orders.4.json"


def test_explicit_name_in_a_day_folder_is_refused_elsewhere_kept(tmp_path):
    day = tmp_path / "2026-01-02"
    (day).mkdir()
    (day / "orders.json").write_text("{}")
    with pytest.raises(BadInputError, match=r"orders\.json already exists .* pass a new name \(e\.g\. .*orders\.2\.json\)"):
        claim_file(day / "orders.json", on_taken=OnTaken.REFUSE)
    other = tmp_path / "elsewhere" / "orders.json"
    other.parent.mkdir()
    other.write_text("{}")
    assert claim_file(other, on_taken=OnTaken.REFUSE) == other  # outside a day folder: written over, as before
    assert other.read_text() == "{}"


def test_a_failed_write_gives_its_name_back(tmp_path):
    day = tmp_path / "2026-01-02"
    with pytest.raises(RuntimeError), claimed(day / "orders.json") as p:
        assert p.is_file()
        raise RuntimeError("disk full")
    assert not (day / "orders.json").exists()
    mine = tmp_path / "elsewhere" / "orders.json"  # outside a day folder an existing file is the user's
    mine.parent.mkdir()
    mine.touch()
    with pytest.raises(RuntimeError), claimed(mine, on_taken=OnTaken.REFUSE):
        raise RuntimeError("disk full")
    assert mine.is_file()


def test_manifest_keeps_entries_it_is_not_told_about_and_is_checked(tmp_path):
    day = tmp_path / "2026-01-02"
    update_manifest(day, date(2026, 1, 2), orders=day / "orders.json", run_id="r1", command="build")
    update_manifest(day, date(2026, 1, 2), scan=day / "opportunities.2.csv")
    m = read_manifest(day)
    assert m is not None and (m.orders, m.scan, m.run_id) == ("orders.json", "opportunities.2.csv", "r1")
    assert current_plan(day) == day / "orders.json"
    assert not list(day.glob("*.tmp"))
    (day / "latest.json").write_text("{not json")
    with pytest.raises(BadInputError, match="latest.json: not a wolfkit manifest"):
        current_plan(day)
    with pytest.raises(BadInputError, match="no current plan .* or pass --orders"):
        current_plan(tmp_path / "2026-01-05")


# ------------------------------------------------------------------------------- the day, end to end


@pytest.mark.slow
def test_no_command_overwrites_the_day_folder_and_execute_sends_the_current_plan(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # `wolfkit scan` without --out writes under ./outputs
    monkeypatch.delenv("APCA_API_KEY_ID", raising=False)
    params = tmp_path / "small.yaml"
    params.write_text(f"extends: {ROOT / 'parameters/demo.yaml'}\n"
                      f"execution:\n  ledger_path: {tmp_path / 'ledger.sqlite'}\n")
    d = SESSION.isoformat()
    day = tmp_path / "outputs" / d
    common = ["--params", str(params), "--date", d]

    assert main(["premarket", *common, "--outputs", "outputs"]) == 0
    first = _hashes(day)
    assert read_manifest(day).orders == "orders.json"  # type: ignore[union-attr]
    assert main(["premarket", *common, "--outputs", "outputs"]) == 0
    after_premarket = _hashes(day)
    _assert_append_only(first, after_premarket)
    m = read_manifest(day)
    assert m is not None and (m.orders, m.opportunities, m.notebook, m.html, m.command) == (
        "orders.2.json", "opportunities.2.csv", "premarket.2.ipynb", "premarket.2.html", "premarket")
    assert m.run_id == json.loads((day / "orders.2.json").read_text())["run_id"]

    capsys.readouterr()
    assert main(["scan", *common]) == 0  # no --out: its own numbered file, not the pre-market run's
    assert "opportunities.3.csv" in capsys.readouterr().out
    assert (day / "opportunities.3.excluded.csv").is_file()
    assert read_manifest(day).scan == "opportunities.3.csv"  # type: ignore[union-attr]
    assert read_manifest(day).orders == "orders.2.json"  # type: ignore[union-attr]  # a scan is not a plan

    assert main(["scan", *common, "--out", str(day / "opportunities.csv")]) == 2  # explicit, taken: refused
    err = capsys.readouterr().err
    assert "opportunities.csv already exists" in err and "pass a new name" in err
    elsewhere = tmp_path / "mine" / "opps.csv"
    assert main(["scan", *common, "--out", str(elsewhere)]) == 0
    assert main(["scan", *common, "--out", str(elsewhere)]) == 0  # outside a day folder: as before

    build = ["build", "--opportunities", str(day / "opportunities.3.csv"), *common, "--equity", "100000"]
    assert main([*build, "--out", str(day / "orders.json")]) == 2
    assert "orders.json already exists" in capsys.readouterr().err
    assert main([*build, "--out", str(day / "orders.manual.json")]) == 0
    _assert_append_only(after_premarket, _hashes(day))
    m = read_manifest(day)
    assert m is not None and (m.orders, m.opportunities, m.command, m.notebook) == (
        "orders.manual.json", "opportunities.3.csv", "build", None)
    before_execute = _hashes(day)

    capsys.readouterr()
    assert main(["execute", "--broker", "sim", "--params", str(params), "--date", d, "--outputs", "outputs"]) == 0
    out = capsys.readouterr().out
    assert f"orders: {day.relative_to(tmp_path) / 'orders.manual.json'} (the current plan in" in out
    log = json.loads((day / "execution_log.json").read_text())
    assert log["run"]["run_id"] == m.run_id  # the plan the manifest names is the one sent
    _assert_append_only(before_execute, _hashes(day))
    before_rerun = _hashes(day)
    assert main(["execute", "--broker", "sim", "--params", str(params), "--date", d, "--outputs", "outputs"]) == 0
    assert json.loads((day / "execution_log.2.json").read_text())["run"]["run_id"] == m.run_id  # its own log
    _assert_append_only(before_rerun, _hashes(day))

    monkeypatch.setattr(intraday, "wall_clock", FakeClock(datetime.combine(SESSION, time(10, 0), tzinfo=NY),
                                                         tick=timedelta(minutes=1)).now)
    assert main(["intraday", "--broker", "sim", "--params", str(params), "--date", d, "--outputs", "outputs",
                 "--max-steps", "1", "--poll-seconds", "0"]) == 0
    assert "the current plan in" in capsys.readouterr().out
