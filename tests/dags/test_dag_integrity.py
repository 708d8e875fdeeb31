"""DAG integrity: every file in dags/ parses cleanly, and every DAG is well described.

Modelled on the Astronomer project template's test of the same name.
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from airflow.dag_processing.dagbag import DagBag

DAGS_FOLDER = Path(__file__).resolve().parents[2] / "dags"
REPO_INCLUDE = DAGS_FOLDER.parent / "include"
# Generous: parsing must not wait on anything; a DAG file that does I/O at parse
# time blows far past this (the blocked connections below also fail it).
PARSE_BUDGET_SECONDS = 10.0


class ParseTimeIO(AssertionError):
    """Raised when DAG parsing tries to open a connection."""


@pytest.fixture(scope="module")
def dag_bag() -> DagBag:
    """Parse dags/ with every network and database connection refused."""
    mp = pytest.MonkeyPatch()

    def refuse(*args, **kwargs):
        raise ParseTimeIO(f"DAG parsing opened a connection: {args!r}")

    mp.setattr(socket.socket, "connect", refuse)
    mp.setattr(socket.socket, "connect_ex", refuse)
    mp.setattr(sqlite3, "connect", refuse)
    try:
        started = time.monotonic()
        bag = DagBag(dag_folder=str(DAGS_FOLDER))
        bag.parse_seconds = time.monotonic() - started
    finally:
        mp.undo()
    return bag


def test_dags_folder_has_dags(dag_bag: DagBag) -> None:
    assert dag_bag.dags, f"no DAG found in {DAGS_FOLDER}"


def test_no_import_errors(dag_bag: DagBag) -> None:
    assert dag_bag.import_errors == {}, "\n".join(
        f"{path}: {error}" for path, error in dag_bag.import_errors.items()
    )


def test_parse_is_fast_and_makes_no_connections(dag_bag: DagBag) -> None:
    # Any connection attempt would have surfaced as an import error above.
    assert dag_bag.parse_seconds < PARSE_BUDGET_SECONDS


@pytest.mark.parametrize("attribute", ["tags", "doc_md"])
def test_every_dag_is_described(dag_bag: DagBag, attribute: str) -> None:
    missing = [dag_id for dag_id, dag in dag_bag.dags.items() if not getattr(dag, attribute)]
    assert not missing, f"DAGs without {attribute}: {missing}"


def test_every_task_has_owner_and_retries(dag_bag: DagBag) -> None:
    problems = []
    for dag_id, dag in dag_bag.dags.items():
        for task in dag.tasks:
            if not task.owner or task.owner == "airflow":
                problems.append(f"{dag_id}.{task.task_id}: owner is {task.owner!r}")
            if task.retries < 2:
                problems.append(f"{dag_id}.{task.task_id}: retries={task.retries}")
    assert not problems, "\n".join(problems)


def test_dags_still_import_after_airflow_loads_the_plugins_folder() -> None:
    """Airflow imports every .py file of plugins/ as a top-level module named after the file
    (as the dag-processor and workers do): plugins/agent_api/hooks/agent_api.py would then
    shadow the agent_api package, unless plugins/.airflowignore keeps the loader out of it."""
    import subprocess
    import sys

    script = (
        "from airflow import plugins_manager\n"
        "plugins_manager.ensure_plugins_loaded()\n"
        "from airflow.dag_processing.dagbag import DagBag\n"
        f"bag = DagBag(dag_folder={str(DAGS_FOLDER)!r})\n"
        "assert not bag.import_errors, bag.import_errors\n"
        "print('dags', sorted(bag.dags))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=False, timeout=120
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "dags ['lapsed_customers', 'lead_load']" in result.stdout  # the example loads


def test_lead_load_posts_and_waits_in_the_triggerer_as_the_scheduler_sees_it(
    dag_bag: DagBag,
) -> None:
    """The scheduler works from the serialized DAG: the triggerer start must survive it."""
    from airflow.serialization.serialized_objects import DagSerialization

    serialized = DagSerialization.from_dict(DagSerialization.to_dict(dag_bag.dags["lead_load"]))
    expected = {
        "post_batch": "lead_load.glue.triggers.PostBatchTrigger",
        "wait_for_callbacks": "lead_load.glue.callbacks_trigger.RunCallbacksTrigger",
    }
    for task_id, trigger_cls in expected.items():
        task = serialized.get_task(task_id)
        assert task.start_from_trigger is True, task_id
        assert task.start_trigger_args.trigger_cls == trigger_cls
        assert task.start_trigger_args.next_method == "execute_complete"
    # One wait for the whole run, beside the posts (not behind the last of them), and one
    # post per batch: the scheduler has one waiting task per run to check.
    wait = serialized.get_task("wait_for_callbacks")
    assert wait.upstream_task_ids == {"plan_batches"}
    assert not hasattr(wait, "expand_input")
    assert serialized.get_task("post_batch").upstream_task_ids == {
        "plan_batches",
        "resolve_settings",
    }
    # Both find their work in the ledger from their own run (and map index): nothing for
    # the triggerer to render, so no XCom request through its supervisor per batch.
    for task_id in expected:
        kwargs = serialized.get_task(task_id).start_trigger_args.trigger_kwargs
        assert "{{" not in str(kwargs), (task_id, kwargs)
    assert serialized.get_task("verify_landing").upstream_task_ids == {
        "resolve_settings",
        "post_batch",
        "wait_for_callbacks",
    }


def test_parsing_imports_neither_pandas_nor_the_http_client() -> None:
    """The dag-processor re-parses the file every few minutes: the pipeline's heavy
    dependencies are imported by the tasks that use them, never by the parse."""
    probe = (
        "import json, sys\n"
        "from airflow.dag_processing.dagbag import DagBag\n"
        "before = set(sys.modules)\n"
        f"bag = DagBag(dag_folder={str(DAGS_FOLDER)!r})\n"
        "assert bag.dags and not bag.import_errors, bag.import_errors\n"
        "print(json.dumps(sorted({m.split('.')[0] for m in set(sys.modules) - before})))\n"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stderr[-3000:]
    imported = set(json.loads(out.stdout.strip().splitlines()[-1]))
    assert "lead_load" in imported  # the probe did parse our DAG
    # YAML is read at parse time: the loads' configuration (a few small local files).
    assert imported.isdisjoint({"pandas", "numpy", "aiohttp"}), sorted(imported)


def test_the_trigger_form_is_the_settings_registry(dag_bag: DagBag) -> None:
    from lead_load.glue.settings_catalog import dag_params

    dag = dag_bag.dags["lead_load"]
    expected = dag_params()
    assert list(dag.params.keys()) == list(expected)
    for name, param in expected.items():
        assert dag.params.get_param(name).schema == param.schema, name


def test_a_broken_load_configuration_is_the_dag_files_import_error(tmp_path: Path) -> None:
    """No half-built DAGs: the file fails to import, saying which file, load and key."""
    good = (REPO_INCLUDE / "lead_load" / "loads" / "lead_load.yaml").read_text()
    (tmp_path / "lead_load.yaml").write_text(good)
    (tmp_path / "win_back.yaml").write_text(
        "load_id: win_back\nschedule: every monday\nsql: {extract: sql/extract_leads.sql}\n"
    )
    script = (
        "import json\n"
        "from airflow.dag_processing.dagbag import DagBag\n"
        f"bag = DagBag(dag_folder={str(DAGS_FOLDER)!r})\n"
        "errors = list(bag.import_errors.values())\n"
        "print(json.dumps({'dags': sorted(bag.dags), 'errors': errors}))\n"
    )
    env = {**os.environ, "LEAD_LOAD_LOADS_DIR": str(tmp_path)}
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, check=False
    )
    assert out.returncode == 0, out.stderr[-3000:]
    found = json.loads(out.stdout.strip().splitlines()[-1])
    assert found["dags"] == []  # not even the good load
    (error,) = found["errors"]
    assert "win_back.yaml: load 'win_back': key schedule: 'every monday' is not a cron" in error
