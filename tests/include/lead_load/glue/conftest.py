"""Fixtures of the glue tests: planned leads in a real ledger behind the ``lead_warehouse``
connection, a simulator account, and the triggerer's way of driving a trigger."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from lead_load.ledger import planning, run_lifecycle, schema, staging
from tests.dags.conftest import postgres_warehouse, sqlite_warehouse
from tests.include.lead_load.samples import candidate
from tests.plugins.agent_api.conftest import account, new_phones  # noqa: F401 (a fixture)

RUN = "run-trigger"


def _planned_leads(warehouse, account, monkeypatch):
    """Five staged leads planned in batches of two, in the ledger behind lead_warehouse."""
    monkeypatch.setenv("AIRFLOW_CONN_LEAD_WAREHOUSE", warehouse.conn_uri)
    engine = warehouse.engine
    schema.create_tables(engine)
    phones = new_phones(5)
    staging.add_candidates(engine, RUN, [candidate(f"l{i}", p) for i, p in enumerate(phones)])
    staging.stage_candidates(engine, RUN, account.task_id)
    settings = {
        "run_id": RUN,
        "api_task_id": account.task_id,
        "window_start": "2026-11-24T00:00:00+00:00",
        "window_end": "2026-11-25T00:00:00+00:00",
        "batch_size": 2,
    }
    window = (settings["window_start"], settings["window_end"])
    run_lifecycle.start_run(engine, RUN, account.task_id, window, settings=settings)
    batches = planning.plan(engine, RUN, account.task_id, 2).batches
    return engine, settings, batches, phones


@pytest.fixture
def ledger_env(tmp_path, account, monkeypatch):
    """(engine, settings, batches, phones) of a SQLite ledger."""
    return _planned_leads(sqlite_warehouse(tmp_path), account, monkeypatch)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def any_ledger_env(request, tmp_path, account, monkeypatch):
    """``ledger_env`` on SQLite and on PostgreSQL."""
    warehouse = sqlite_warehouse(tmp_path) if request.param == "sqlite" else postgres_warehouse()
    yield _planned_leads(warehouse, account, monkeypatch)
    for step in warehouse.cleanup:
        step()


def events_of(trigger) -> list:
    """Run a trigger to its end in an event loop, as the triggerer does."""

    async def consume():
        return [event async for event in trigger.run()]

    return asyncio.run(consume())


def ledger_status(engine, batch_no: int) -> set[str]:
    with engine.connect() as conn:
        rows = conn.execute(
            schema.ledger.select().where(
                schema.ledger.c.run_id == RUN, schema.ledger.c.batch_no == batch_no
            )
        )
        return {r.status for r in rows}


def as_the_triggerer_starts_it(trigger, map_index: int, try_number: int = 1):
    """Attach the task instance the triggerer gives a trigger that starts a mapped task (the
    run, the map index, the try); returns the trigger."""
    trigger.task_instance = SimpleNamespace(
        dag_id="lead_load",
        task_id="post_batch",
        run_id=RUN,
        map_index=map_index,
        try_number=try_number,
    )
    return trigger


def trigger_module_in_a_fresh_interpreter(classpath: str, tmp_path: Path) -> str:
    """Import ``classpath`` as the triggerer does, in a fresh interpreter whose DAGs and
    plugins folders are empty (the triggerer parses no DAG file); returns the module's file."""
    empty = tmp_path / "empty"
    empty.mkdir(exist_ok=True)
    env = {
        **os.environ,
        "AIRFLOW__CORE__DAGS_FOLDER": str(empty),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(empty),
    }
    env.pop("PYTHONPATH", None)
    probe = (
        "import sys\n"
        "from airflow._shared.module_loading import import_string\n"
        "from airflow.triggers.base import BaseTrigger\n"
        "trigger = import_string(sys.argv[1])\n"
        "assert issubclass(trigger, BaseTrigger), trigger\n"
        "print(sys.modules[trigger.__module__].__file__)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe, classpath],
        cwd=empty,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout.strip().splitlines()[-1]
