"""wolfkit's trading day as Airflow DAGs: one DAG per job, each a BashOperator running the same command
as the crontab and the systemd units (deploy/), on weekdays at its New York time.

Copy this file into Airflow's dags folder. Placeholders: /opt/wolfkit = the project folder; alpaca.env =
the keys file (`export APCA_API_KEY_ID=…`, chmod 600) that `wolfkit --env-file` loads. The schedules are
`CronTriggerTimetable`s (Airflow 2.4+), which start a run at the cron time itself, and the commands take
`--date today` (New York, by the wall clock) rather than a templated date, whose meaning depends on the
timetable. Each job exits 0 on an NYSE holiday. `COMMANDS` is plain data (no Airflow needed to read it): the tests run every command in it.
"""

from __future__ import annotations

import importlib.util

TIMEZONE = "America/New_York"
COMMANDS = {  # job -> (cron schedule in TIMEZONE, bash command)
    "premarket": ("30 8 * * 1-5", "cd /opt/wolfkit && .venv/bin/wolfkit --env-file alpaca.env premarket "
                                  "--params parameters/paper.yaml --date today"),
    "execute": ("30 9 * * 1-5", "cd /opt/wolfkit && .venv/bin/wolfkit --env-file alpaca.env execute "
                                "--params parameters/paper.yaml"),
    "intraday": ("35 9 * * 1-5", "cd /opt/wolfkit && .venv/bin/wolfkit --env-file alpaca.env intraday "
                                 "--params parameters/paper.yaml"),
    "status": ("15 16 * * 1-5", "cd /opt/wolfkit && .venv/bin/wolfkit --env-file alpaca.env status "
                                "--params parameters/paper.yaml --snapshot"),
}


def _dags() -> dict:
    """One DAG per job; the start date carries the time zone, so the cron schedule is New York's."""
    import pendulum
    from airflow import DAG
    from airflow.operators.bash import BashOperator
    from airflow.timetables.trigger import CronTriggerTimetable

    dags = {}
    for job, (schedule, command) in COMMANDS.items():
        with DAG(dag_id=f"wolfkit_{job}", schedule=CronTriggerTimetable(schedule, timezone=TIMEZONE),
                 start_date=pendulum.datetime(2026, 1, 1, tz=TIMEZONE), catchup=False, max_active_runs=1,
                 tags=["wolfkit"]) as dag:
            BashOperator(task_id=job, bash_command=command)
        dags[dag.dag_id] = dag
    return dags


if importlib.util.find_spec("airflow") is not None:  # Airflow's DAG processor: register the DAGs
    globals().update(_dags())
