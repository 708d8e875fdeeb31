"""Two `airflow dags test` runs of lead_load over the same window, the second started a few
seconds after the first, and what to read back afterwards.

Shared by tests/dags/test_overlapping_runs.py and benchmarks/overlap.py. Each run is its own
process with the environment of a ``LeadLoadEnv`` (same warehouse, ledger, simulator and
target task), exactly as two people typing the same command would start them.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import IO

from tests.dags.conftest import WINDOW, LeadLoadEnv

PAIR_TIMEOUT_S = 900


@dataclass
class DagTestRun:
    """One `airflow dags test lead_load` process; its output goes to a file (a pipe nobody
    reads would fill up and stall it)."""

    logical_date: datetime
    process: subprocess.Popen
    output: IO[str]
    started: float = field(default_factory=time.monotonic)
    ended: float | None = None

    @property
    def returncode(self) -> int | None:
        return self.process.returncode

    @property
    def wall_s(self) -> float:
        return round((self.ended or time.monotonic()) - self.started, 2)

    def poll(self) -> bool:
        """True once the process has ended (and its end time is noted)."""
        if self.ended is None and self.process.poll() is not None:
            self.ended = time.monotonic()
        return self.ended is not None

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def log(self) -> str:
        self.output.seek(0)
        return self.output.read()

    def tail(self, chars: int = 4000) -> str:
        return self.log()[-chars:]


def start_dag_test(env: LeadLoadEnv, logical_date: datetime, **conf) -> DagTestRun:
    """Start `airflow dags test lead_load <logical_date> -c <conf>` without waiting for it.

    The window defaults to the tests' WINDOW. Each process gets its own logical date:
    `dags test` clears the task instances at its logical date before it starts, so two
    processes sharing one would clear each other's.
    """
    conf.setdefault("window_start", WINDOW[0].isoformat())
    conf.setdefault("window_end", WINDOW[1].isoformat())
    output = tempfile.TemporaryFile("w+", encoding="utf-8")  # noqa: SIM115 - closed by its run
    command = [
        sys.executable,
        *("-m", "airflow", "dags", "test", "lead_load", logical_date.isoformat()),
        *("-c", json.dumps(conf)),
    ]
    process = subprocess.Popen(
        command, env=env.env, stdout=output, stderr=subprocess.STDOUT, text=True
    )
    return DagTestRun(logical_date, process, output)


def run_overlapping(
    env: LeadLoadEnv, offset_s: float, timeout: float = PAIR_TIMEOUT_S, **conf
) -> list[DagTestRun]:
    """Start two runs of the same window ``offset_s`` apart and wait for both to end.

    On a timeout both processes are killed and TimeoutError is raised.
    """
    now = datetime.now(UTC)
    runs = [start_dag_test(env, now, **conf)]
    time.sleep(offset_s)
    runs.append(start_dag_test(env, now + timedelta(seconds=1), **conf))
    deadline = time.monotonic() + timeout
    try:
        # A list, not a generator: both are polled each time, so each gets its own end time.
        while not all([run.poll() for run in runs]):
            if time.monotonic() > deadline:
                raise TimeoutError(f"the two runs did not end within {timeout:.0f} s")
            time.sleep(0.2)
    finally:
        for run in runs:
            run.stop()
    return runs


def accepted_posts(env: LeadLoadEnv, since: int = 0) -> list[dict]:
    """The journal's async_number posts into the env's task that the platform accepted."""
    return [
        entry
        for entry in env.sim.journal(since)
        if entry["method"] == "POST"
        and entry["path"].endswith(f"/task/{env.task_id}/async_number")
        and entry["status"] == 200
        and entry["code"] == 200
    ]


def posts_per_phone(posts: list[dict]) -> Counter[str]:
    """How many accepted posts carried each phone."""
    return Counter(row["phone"] for post in posts for row in post["body"]["data"])


def last_seq(env: LeadLoadEnv) -> int:
    return max((entry["seq"] for entry in env.sim.journal()), default=0)


def run_summaries(env: LeadLoadEnv) -> dict[str, dict]:
    """Each run's stored summary (lead_load_runs), by run id."""
    rows = env.warehouse.rows(
        "SELECT run_id, summary FROM lead_load_runs WHERE api_task_id = :t", t=env.task_id
    )
    return {row["run_id"]: json.loads(row["summary"]) for row in rows}


def ledger_rows(env: LeadLoadEnv) -> list[dict]:
    return env.warehouse.rows(
        "SELECT lead_id, phone, status, run_id FROM lead_load_ledger WHERE api_task_id = :t",
        t=env.task_id,
    )
