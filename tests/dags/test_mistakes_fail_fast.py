"""Mistakes in a run's settings fail the run in seconds, in one place (resolve_settings),
before anything is extracted, staged or sent: the real DAG under `airflow dags test`, against
the simulator and a SQLite warehouse."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import inspect

from lead_load_devtools.synthetic import generate, write_leads
from tests.dags.conftest import WINDOW

pytestmark = pytest.mark.slow

UNKNOWN_TASK = "123e4567-e89b-12d3-a456-426614174000"


@pytest.mark.parametrize(
    ("conf", "reason"),
    [
        (
            {"window_start": "2026-11-24", "window_end": None},
            "set both window_start and window_end, or neither",
        ),
        (
            {"window_start": "2026-11-25", "window_end": "2026-11-24"},
            "must be before window_end",
        ),
        (
            {"api_task_id": UNKNOWN_TASK},
            f"calling task {UNKNOWN_TASK} not found for user",
        ),
    ],
    ids=["only-window-start", "start-after-end", "unknown-calling-task"],
)
def test_a_mistake_fails_the_run_in_seconds_and_stages_nothing(sqlite_lead_load_env, conf, reason):
    env = sqlite_lead_load_env
    leads = generate(50, seed=5, start=WINDOW[0], end=WINDOW[1])
    write_leads(env.warehouse.engine, leads.frame)

    result = env.run_dag(timeout=300, **conf)
    out = result.stdout + result.stderr

    assert result.returncode != 0, out[-4000:]
    # In seconds: on the first try of the first task, with no retry waited for. (Not timed
    # here: `airflow dags test` alone costs seconds of CPU, many more on a loaded machine.)
    assert "up_for_retry" not in out.lower(), out[-4000:]
    assert reason in out
    # report ends the run in resolve_settings' words, once, without a TypeError of its own.
    assert "TypeError" not in out
    report_failure = re.search(r"AirflowFailException: resolve_settings failed: (.*)", out)
    assert report_failure and reason in report_failure.group(1), out[-4000:]
    assert out.count("Traceback") <= 2  # resolve_settings' and report's refusals, no other
    # Nothing reached the platform, nothing was staged.
    assert env.posts() == []
    if "lead_load_ledger" in inspect(env.warehouse.engine).get_table_names():
        assert env.warehouse.scalar("SELECT COUNT(*) FROM lead_load_ledger") == 0
    # The run is in the ledger although it never got past its first step, with the window
    # as it was typed.
    runs = env.warehouse.rows("SELECT state, window_start, summary FROM lead_load_runs")
    assert [r["state"] for r in runs] == ["failed"]
    assert runs[0]["window_start"] == conf.get("window_start", WINDOW[0].isoformat())
    assert '"failed_at": "resolve_settings"' in runs[0]["summary"]
    assert reason in runs[0]["summary"]
