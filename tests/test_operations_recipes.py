"""The schedules shipped under deploy/ (crontab, systemd units, Airflow DAG, jupyter-scheduler job), run as written.

Each recipe's commands are parsed out of its file; only the documented placeholders are substituted — the
project folder `/opt/wolfkit` (a scratch project: the worktree's .venv and parameters/, an outputs/ folder
as in a clone, `../shared/data` beside it) and the keys file `alpaca.env` (dummy keys pointing at the
emulator). The wall clock is injected with `WOLFKIT_NOW` at the time each job fires, in a January and a July
session (the New York times must hold in winter and summer), and the intraday engine is held to one step
with `WOLFKIT_MAX_STEPS`. The docs must quote the shipped files as they are.
"""

from __future__ import annotations

import ast
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from datetime import date, datetime, time
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from wolfkit.calendar import NY, is_trading_day

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
DOC = ROOT / "docs" / "operations.md"
PROJECT, KEYS = "/opt/wolfkit", "alpaca.env"  # the documented placeholders
JOBS = {"premarket": time(8, 30), "execute": time(9, 30), "intraday": time(9, 35), "status": time(16, 15)}
WINTER, SUMMER = date(2026, 1, 15), date(2026, 7, 15)  # a Thursday and a Wednesday, full sessions
HOLIDAY = date(2026, 1, 19)  # Martin Luther King Jr. Day: NYSE closed
WEEKDAYS = {"1-5", "Mon..Fri"}


@dataclass(frozen=True)
class Job:
    """One scheduled job of a recipe: when it fires (local time in `zone`, on `days`) and what it runs."""

    name: str
    at: time
    zone: str
    days: str
    command: str  # as written in the file (a shell line, or a systemd ExecStart)
    cwd: str | None = None  # systemd's WorkingDirectory

    def wolfkit_args(self) -> list[str]:
        """The wolfkit arguments, whatever wraps them (cd, log redirect, absolute path to the venv)."""
        words = shlex.split(self.command)
        start = next(i for i, w in enumerate(words) if w.endswith(".venv/bin/wolfkit")) + 1
        end = next((i for i, w in enumerate(words[start:], start) if w in ("&&", ">>", "|", ";")), len(words))
        return words[start:end]

    def fires_at(self, day: date) -> datetime:
        return datetime.combine(day, self.at, tzinfo=ZoneInfo(self.zone))


def _hm(hour: str, minute: str) -> time:
    return time(int(hour), int(minute))


def _job_name(command: str) -> str:
    words = shlex.split(command)
    return words[words.index("--env-file") + 2]


def cron_jobs() -> list[Job]:
    zone, jobs = None, []
    for line in (DEPLOY / "crontab").read_text().splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if line.startswith("CRON_TZ="):
            zone = line.partition("=")[2].strip()
            continue
        minute, hour, dom, month, dow, command = line.split(None, 5)
        assert (dom, month) == ("*", "*") and zone, line
        jobs.append(Job(_job_name(command), _hm(hour, minute), zone, dow, command))
    return jobs


def _unit(path: Path) -> dict[str, str]:
    keys: dict[str, str] = {}
    for line in path.read_text().splitlines():
        if "=" in line and not line.startswith("#"):
            k, _, v = line.partition("=")
            keys[k.strip()] = v.strip()
    return keys


def systemd_jobs() -> list[Job]:
    jobs = []
    for timer in sorted((DEPLOY / "systemd").glob("*.timer")):
        t = _unit(timer)
        m = re.fullmatch(r"(\S+) \*-\*-\* (\d\d):(\d\d):00 (\S+)", t["OnCalendar"])
        assert m, t["OnCalendar"]
        service = _unit(DEPLOY / "systemd" / t["Unit"])
        command = service["ExecStart"]
        jobs.append(Job(_job_name(command), _hm(m.group(2), m.group(3)), m.group(4), m.group(1), command,
                        service["WorkingDirectory"]))
    return jobs


def airflow_jobs() -> list[Job]:
    """COMMANDS and TIMEZONE read from the DAG file's syntax tree: Airflow is not installed here."""
    tree = ast.parse((DEPLOY / "airflow" / "wolfkit_day.py").read_text())
    values = {t.id: ast.literal_eval(n.value) for n in tree.body if isinstance(n, ast.Assign)
              for t in n.targets if isinstance(t, ast.Name) and t.id in ("COMMANDS", "TIMEZONE")}
    jobs = []
    for name, (schedule, command) in values["COMMANDS"].items():
        minute, hour, dom, month, dow = schedule.split()
        assert (dom, month) == ("*", "*") and _job_name(command) == name
        jobs.append(Job(name, _hm(hour, minute), values["TIMEZONE"], dow, command))
    return jobs


RECIPES = {"cron": cron_jobs, "systemd": systemd_jobs, "airflow": airflow_jobs}


def scheduler_job() -> dict:
    return json.loads((DEPLOY / "jupyter-scheduler" / "premarket.job.json").read_text())


# ---- the schedules: the same jobs at the same New York times, winter and summer -------------------------


@pytest.mark.parametrize("recipe", RECIPES)
def test_recipe_schedules_the_four_jobs_on_weekdays_in_new_york(recipe):
    jobs = RECIPES[recipe]()
    assert {j.name: j.at for j in jobs} == JOBS and len(jobs) == len(JOBS)
    assert all(j.zone == "America/New_York" and j.days in WEEKDAYS for j in jobs)


@pytest.mark.parametrize("recipe", RECIPES)
@pytest.mark.parametrize("day", [WINTER, SUMMER])
def test_the_new_york_times_hold_in_winter_and_summer(recipe, day):
    """08:30 New York is 13:30 UTC in January and 12:30 UTC in July: a schedule in UTC (or the machine's zone)
    would be an hour off half the year; one in the New York zone fires at 08:30 there either way."""
    utc_offset = {WINTER: -5, SUMMER: -4}[day]
    for job in RECIPES[recipe]():
        fired = job.fires_at(day)
        assert fired.astimezone(NY).time() == JOBS[job.name]
        assert fired.utcoffset().total_seconds() == utc_offset * 3600
    pre = next(j for j in RECIPES[recipe]() if j.name == "premarket").fires_at(day)
    assert pre.astimezone(ZoneInfo("UTC")).hour == 8 - utc_offset  # 13 in winter, 12 in summer


def test_every_recipe_runs_the_same_commands():
    """One set of commands for every scheduler: what cron runs is what systemd and Airflow run."""
    by_recipe = {r: {j.name: j.wolfkit_args() for j in f()} for r, f in RECIPES.items()}
    assert by_recipe["cron"] == by_recipe["systemd"] == by_recipe["airflow"]
    args = by_recipe["cron"]
    assert args["premarket"] == ["--env-file", KEYS, "premarket", "--params", "parameters/paper.yaml", "--date", "today"]
    assert args["status"][-1] == "--snapshot"
    for job in systemd_jobs():
        assert job.cwd == PROJECT and shlex.split(job.command)[0] == f"{PROJECT}/.venv/bin/wolfkit"


def test_every_option_in_the_recipes_is_one_the_command_takes():
    for name, args in {j.name: j.wolfkit_args() for j in cron_jobs()}.items():
        sub = args[args.index(name):]
        helptext = subprocess.run([sys.executable, "-m", "wolfkit.cli", name, "--help"], capture_output=True,
                                  text=True, check=True, env={**os.environ, "COLUMNS": "200"}).stdout
        for opt in (a for a in sub if a.startswith("--")):
            assert opt in helptext, f"{opt} is not a `wolfkit {name}` option"
        assert (ROOT / sub[sub.index("--params") + 1]).is_file()


def test_jupyter_scheduler_job_runs_the_premarket_notebook_at_0830_new_york():
    job = scheduler_job()
    assert job["input_uri"] == f"{PROJECT}/notebooks/premarket.ipynb"
    assert (ROOT / "notebooks" / "premarket.ipynb").is_file()
    assert (job["schedule"], job["timezone"]) == ("30 8 * * 1-5", "America/New_York")
    assert set(job["output_formats"]) == {"ipynb", "html"}
    notebook = json.loads((ROOT / "notebooks" / "premarket.ipynb").read_text())
    declared = "".join(next(c["source"] for c in notebook["cells"]
                            if "parameters" in c.get("metadata", {}).get("tags", [])))
    for name in job["parameters"]:
        assert re.search(rf"^{name}\s*[:=]", declared, re.M), f"{name} is not a premarket notebook parameter"


def _fences(text: str) -> list[str]:
    return [m.group(1).strip() for m in re.finditer(r"```[a-z]*\n(.*?)```", text, re.S)]


def test_the_docs_quote_the_shipped_files_as_they_are():
    doc = DOC.read_text()
    blocks = _fences(doc)
    for rel in ("crontab", "systemd/wolfkit-premarket.service", "systemd/wolfkit-premarket.timer",
                "airflow/wolfkit_day.py", "jupyter-scheduler/premarket.job.json", "alpaca.env.example"):
        text = (DEPLOY / rel).read_text().strip()
        assert text in blocks, f"docs/operations.md does not quote deploy/{rel} as shipped"
    for unit in (DEPLOY / "systemd").iterdir():
        assert f"deploy/systemd/{unit.name}" in doc or unit.name in doc, f"{unit.name} is not in the docs"


def test_the_keys_file_is_ignored_by_git_and_the_example_is_not():
    def ignored(name: str) -> bool:
        return subprocess.run(["git", "check-ignore", "-q", name], cwd=ROOT).returncode == 0

    if not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    assert ignored("alpaca.env") and ignored("deploy/alpaca.env")
    assert not ignored("deploy/alpaca.env.example") and not ignored("parameters/paper.yaml")


# ---- run as written, against the emulator, at the hour each job fires ------------------------------------


class Day:
    """A scratch project beside a copy of `../shared`, an emulator whose clock the test moves, the keys file."""

    def __init__(self, tmp: Path, emulator_server) -> None:
        from wolfkit.broker.emulator import DemoFeed
        from wolfkit.broker.sim import SimBroker
        from wolfkit.data.demo import DemoMarket

        self.project = tmp / "project"
        (self.project / "outputs").mkdir(parents=True)
        shutil.copy(ROOT / "outputs" / "README.md", self.project / "outputs" / "README.md")
        (self.project / ".venv").symlink_to(Path(sys.prefix))
        (self.project / "parameters").symlink_to(ROOT / "parameters")
        (self.project / "notebooks").symlink_to(ROOT / "notebooks")
        (tmp / "shared").symlink_to(ROOT.parent / "shared")
        self.now = datetime.combine(WINTER, time(8, 30), tzinfo=NY)
        market = DemoMarket(seed=7)
        self.sim = SimBroker(100_000.0, 2.0, clock=lambda: self.now)
        self.server = emulator_server(self.sim, data=market)
        self.feed = DemoFeed(self.sim, market, clock=lambda: self.now)
        self.keys = tmp / "keys.env"
        self.keys.write_text("export APCA_API_KEY_ID=dummy-key\nexport APCA_API_SECRET_KEY=dummy-secret\n"
                             f"export APCA_API_BASE_URL={self.server.url}\nexport APCA_API_DATA_URL={self.server.url}\n")
        self.keys.chmod(0o600)

    def substitute(self, text: str) -> str:
        return text.replace(PROJECT, str(self.project)).replace(KEYS, str(self.keys))

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("APCA_", "WOLFKIT_"))}
        return {**env, "WOLFKIT_NOW": self.now.isoformat(), "WOLFKIT_MAX_STEPS": "1"}

    def run(self, job: Job, day: date) -> str:
        """Move the clock (and the emulator's quotes) to when `job` fires on `day`, then run its command as
        written: a shell line through /bin/sh, a systemd ExecStart split and started in its WorkingDirectory."""
        self.now = job.fires_at(day).astimezone(NY)
        self.feed.refresh()
        log = self.project / "outputs" / "cron.log"
        before = log.read_text() if log.exists() else ""
        if job.cwd is None:
            res = subprocess.run(["/bin/sh", "-c", self.substitute(job.command)], env=self.env(),
                                 capture_output=True, text=True, timeout=600)
        else:
            res = subprocess.run(shlex.split(self.substitute(job.command)), cwd=self.substitute(job.cwd),
                                 env=self.env(), capture_output=True, text=True, timeout=600)
        out = res.stdout + res.stderr + (log.read_text()[len(before):] if log.exists() else "")
        assert res.returncode == 0, f"{job.name} at {self.now}: exit {res.returncode}\n{out[-4000:]}"
        return out


def run_the_day(day_: Day, jobs: list[Job], day: date) -> None:
    """The trading day, job by job in schedule order, each checked for what it is there to do."""
    assert is_trading_day(day)
    folder = day_.project / "outputs" / day.isoformat()
    for job in sorted(jobs, key=lambda j: j.at):
        out = day_.run(job, day)
        if job.name == "premarket":
            latest = json.loads((folder / "latest.json").read_text())
            assert (folder / "orders.json").is_file() and (folder / "premarket.html").is_file(), out
            assert latest["orders"].endswith("orders.json"), latest
        elif job.name == "execute":
            assert "accepted" in out and "unresolved 0" in out, out[-3000:]
            assert day_.sim.orders(), "execute sent nothing to the emulator"
        elif job.name == "intraday":
            assert "stopped after 1 step(s)" in out, out[-3000:]
        else:
            assert f"snapshot recorded for {day}" in out, out[-3000:]


@pytest.mark.slow
def test_the_crontab_runs_a_january_session(tmp_path, emulator_server):
    run_the_day(Day(tmp_path, emulator_server), cron_jobs(), WINTER)


@pytest.mark.slow
def test_the_systemd_units_run_a_july_session(tmp_path, emulator_server):
    run_the_day(Day(tmp_path, emulator_server), systemd_jobs(), SUMMER)


@pytest.mark.slow
def test_the_airflow_commands_are_quiet_on_a_holiday(tmp_path, emulator_server):
    """Each job fires on every weekday: on an NYSE holiday it says so, exits 0 and writes nothing. (The
    Airflow commands are the crontab's — test_every_recipe_runs_the_same_commands — whose trading day runs
    above; a third full day would add two minutes to the suite.)"""
    d = Day(tmp_path, emulator_server)
    for job in airflow_jobs():
        out = d.run(job, HOLIDAY)
        assert f"{HOLIDAY} is not a trading day" in out, out[-2000:]
    assert not (d.project / "outputs" / HOLIDAY.isoformat()).exists() and not d.sim.orders()
    assert not (d.project / "outputs" / "ledger.sqlite").exists()


@pytest.mark.slow
def test_the_jupyter_scheduler_job_runs_the_premarket_notebook(tmp_path, emulator_server, monkeypatch):
    """What jupyter-scheduler does with the job: the input notebook, parameterised, executed in a staging
    folder outside the project, with the Jupyter server's environment (keys, WOLFKIT_PROJECT)."""
    import papermill as pm

    d = Day(tmp_path, emulator_server)
    job = scheduler_job()
    d.now = datetime.combine(SUMMER, time(8, 30), tzinfo=ZoneInfo(job["timezone"]))
    d.feed.refresh()
    for k, v in {**d.env(), "WOLFKIT_PROJECT": str(d.project)}.items():
        monkeypatch.setenv(k, v)
    for line in d.keys.read_text().splitlines():
        name, _, value = line.removeprefix("export ").partition("=")
        monkeypatch.setenv(name, value)
    staging = tmp_path / "scheduler_staging_area" / "job-1"  # its `../shared` is not the project's
    staging.mkdir(parents=True)
    params = json.loads(d.substitute(json.dumps(job["parameters"])))
    pm.execute_notebook(d.substitute(job["input_uri"]), str(staging / "premarket-out.ipynb"), parameters=params,
                        kernel_name="python3", cwd=str(staging), progress_bar=False)
    folder = d.project / "outputs" / SUMMER.isoformat()
    assert (folder / "orders.json").is_file() and (folder / "opportunities.csv").is_file()
    assert json.loads((folder / "orders.json").read_text())["as_of"] == SUMMER.isoformat()
    assert [p.name for p in staging.iterdir()] == ["premarket-out.ipynb"]  # the project's paths, not the staging's


# ---- the emulator the recipes are rehearsed against: its market-data errors are Alpaca's JSON too ----------


@pytest.mark.parametrize("path, params, status, code", [
    ("/v2/stocks/bars", {"symbols": "AAPL", "timeframe": "7Parsecs"}, 422, 40010001),
    ("/v2/stocks/bars", {"symbols": "AAPL", "timeframe": "1Day", "start": "yesterday"}, 400, 40010001),
    ("/v2/stocks/bars", {"timeframe": "1Day"}, 400, 40010001),
    ("/v2/stocks/quotes/latest", {}, 400, 40010001),
    ("/v2/stocks/ZZZZ/bars", {}, 404, 40410000),
    ("/v2/calendar", {"start": "nope"}, 400, 40010001),
    ("/v2/account", None, 401, 40110000),  # no keys
])
def test_market_data_errors_are_alpaca_json(emulator_server, path, params, status, code):
    """tests/test_emulator.py covers the trading routes; these are the data routes the pre-market job calls."""
    import requests

    from wolfkit.broker.sim import SimBroker
    from wolfkit.data.demo import DemoMarket

    srv = emulator_server(SimBroker(100_000.0, 2.0), data=DemoMarket(seed=7))
    headers = {"APCA-API-KEY-ID": "k", "APCA-API-SECRET-KEY": "s"} if params is not None else {}
    r = requests.get(srv.url + path, params=params, headers=headers, timeout=10)
    assert r.status_code == status and r.headers["Content-Type"].startswith("application/json"), r.text
    assert r.json()["code"] == code and r.json()["message"]
