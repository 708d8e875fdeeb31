"""A canary on a shared Airflow: is a big load leaving the scheduler free for other DAGs?

``Canaries(stack, every=10)`` triggers the ``canary`` DAG (canary_dags/canary_dag.py: one
task that does nothing) through the stack's REST API every ``every`` seconds, in a
background thread, until stopped; ``results()`` then reads, for each run, when it was created
and when its task started and ended. A canary's delays are measured from the run's
``queued_at``: the API server creates a triggered run in the queued state and stamps
``queued_at`` in the same insert, so it is the run's creation time (``run_after`` is the
time asked for, ``logical_date`` is empty for these runs). Every clock read here is the same
machine's wall clock, so the delays compare with the simulator journal's ``time`` too.

The scheduler's loop durations come from its own timer: every loop of
``SchedulerJobRunner`` is timed (the ``scheduler.scheduler_loop_duration`` metric) and logged
as ``Ran scheduling loop in <ms> ms`` at debug level. StatsD would need the ``statsd`` package,
which the project does not install, and the scheduler job's heartbeats in the metadata DB are
written at most every ``scheduler_heartbeat_sec``, too coarse for loops of a fraction of a
second. So a stack started with ``SCHEDULER_LOOP_LOG`` in its ``extra_env`` raises only that
module's logger to debug, and ``scheduler_loops(stack)`` reads the lines back, each with the
time it was written. The duration excludes the idle sleep between loops: it is the time one
loop kept the scheduler busy, and so how long a new run can wait for the next loop to see it.
"""

from __future__ import annotations

import itertools
import math
import re
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime

import requests

from tests.distributed.stack import AirflowStack, StackError

DAG_ID = "canary"
TASK_ID = "chirp"
SCHEDULER_LOOP_LOG = {
    "AIRFLOW__LOGGING__NAMESPACE_LEVELS": "airflow.jobs.scheduler_job_runner=DEBUG",
}
LOOP_LINE = re.compile(r"^(\S+Z) \[debug\s*\] Ran scheduling loop in ([\d.]+) ms", re.MULTILINE)
FINISHED = ("success", "failed")


def _epoch(value: str | None) -> float | None:
    return datetime.fromisoformat(value).timestamp() if value else None


@dataclass
class Canary:
    """One canary run; times are epoch seconds, None where it never got that far."""

    run_id: str
    triggered: float  # when the trigger request left the client
    api_s: float  # how long the API server took to answer it
    created: float | None = None  # the run's queued_at
    started: float | None = None  # its task's start_date
    ended: float | None = None  # its task's end_date
    state: str = ""  # the task's state

    @property
    def start_delay_s(self) -> float | None:
        return self.started - self.created if self.started and self.created else None

    @property
    def end_delay_s(self) -> float | None:
        return self.ended - self.created if self.ended and self.created else None

    def within(self, first: float, last: float) -> bool:
        """Whether its task started and succeeded between ``first`` and ``last``."""
        return (
            self.state == "success"
            and self.started is not None
            and self.ended is not None
            and first <= self.started
            and self.ended <= last
        )


@dataclass
class Canaries:
    """Triggers a canary every ``every`` seconds while in its ``with`` block."""

    stack: AirflowStack
    every: float = 10.0
    triggered: list[Canary] = field(default_factory=list)
    failed_triggers: list[str] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> Canaries:
        self._stop.clear()
        self._thread = threading.Thread(target=self._trigger_every, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def _trigger_every(self) -> None:
        # On a fixed grid, so a slow API answer does not push every later canary back.
        first = time.monotonic()
        for tick in itertools.count():
            if self._stop.wait(max(0.0, first + tick * self.every - time.monotonic())):
                return
            self._trigger_one()

    def _trigger_one(self) -> None:
        triggered = time.time()
        try:
            run_id = self.stack.trigger({}, dag_id=DAG_ID)
        except (StackError, requests.RequestException) as error:
            # A refused or timed-out trigger is a finding, not a reason to stop measuring.
            self.failed_triggers.append(f"{datetime.now().isoformat()}: {error}")
            return
        self.triggered.append(Canary(run_id, triggered, time.time() - triggered))

    def results(self, timeout: float = 300) -> list[Canary]:
        """Every triggered canary, read once its run finished (or ``timeout`` passed)."""
        self.stop()
        deadline = time.monotonic() + timeout
        for canary in self.triggered:
            self._read(canary, deadline)
        return self.triggered

    def _read(self, canary: Canary, deadline: float) -> None:
        path = f"/dags/{DAG_ID}/dagRuns/{canary.run_id}"
        run = self.stack.api("GET", path)
        while run["state"] not in FINISHED and time.monotonic() < deadline:
            time.sleep(2)
            run = self.stack.api("GET", path)
        ti = self.stack.api("GET", f"{path}/taskInstances/{TASK_ID}")
        canary.created = _epoch(run["queued_at"])
        canary.started = _epoch(ti["start_date"])
        canary.ended = _epoch(ti["end_date"])
        canary.state = ti["state"] or ""


def scheduler_loops(stack: AirflowStack) -> list[tuple[float, float]]:
    """(when it ended, epoch s; how long it took, s) for every scheduling loop logged so far;
    empty unless the stack was started with ``SCHEDULER_LOOP_LOG``."""
    return [
        (datetime.fromisoformat(when).timestamp(), float(ms) / 1000)
        for when, ms in LOOP_LINE.findall(stack.log("scheduler"))
    ]


def percentile(values: list[float], share: float) -> float | None:
    """Nearest-rank percentile (``share`` 0.95 for p95): always one of the values measured."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(share * len(ordered)) - 1)]
