"""AgentApiCallbackSensor against the simulator, deferrable and not, alone and inside a DAG run."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
import time

import pytest
from airflow.sdk.exceptions import AirflowSensorTimeout, AirflowSkipException, TaskDeferred

from agent_api.hooks.agent_api import AgentApiHook
from agent_api.sensors.callback import AgentApiCallbackSensor
from agent_api.triggers.callback import AgentApiCallbackTrigger
from tests.plugins.agent_api.conftest import new_phones, rows_for


def run_trigger(trigger: AgentApiCallbackTrigger) -> dict:
    async def first() -> dict:
        async for event in trigger.run():
            return event.payload
        raise AssertionError("no event")

    return asyncio.run(asyncio.wait_for(first(), timeout=30))


def import_batch(account, count: int) -> tuple[str, list[str]]:
    phones = new_phones(count)
    return AgentApiHook().import_batch(account.task_id, rows_for(phones)).unique_id, phones


def test_deferrable_sensor_defers_then_returns_the_outcome(account):
    account.sim.set_faults(callback_delay=3600)  # processed below, once the sensor deferred
    unique_id, _ = import_batch(account, 3)
    sensor = AgentApiCallbackSensor(task_id="wait", unique_id=unique_id, poll_interval=0.1)

    with pytest.raises(TaskDeferred) as deferred:
        sensor.execute(context={})
    trigger = deferred.value.trigger
    assert isinstance(trigger, AgentApiCallbackTrigger)
    assert trigger.unique_id == unique_id
    assert trigger.deadline == pytest.approx(time.time() + 3600, abs=30)
    assert deferred.value.method_name == "execute_complete"

    account.sim.process()
    result = sensor.execute_complete(context={}, event=run_trigger(trigger))
    assert result == {"unique_id": unique_id, "imported": 3}


def test_deferrable_sensor_skips_the_triggerer_when_already_processed(account):
    unique_id, _ = import_batch(account, 2)
    account.sim.wait_until_processed()
    sensor = AgentApiCallbackSensor(task_id="wait", unique_id=unique_id)
    assert sensor.execute(context={}) == {"unique_id": unique_id, "imported": 2}


def test_poke_mode_waits_in_the_worker(account):
    account.sim.set_faults(callback_delay=0.4)
    unique_id, _ = import_batch(account, 4)
    sensor = AgentApiCallbackSensor(
        task_id="wait", unique_id=unique_id, deferrable=False, poke_interval=0.1, timeout=20
    )
    assert sensor.execute(context={}) == {"unique_id": unique_id, "imported": 4}


class KeepsTheOutcome(AgentApiCallbackSensor):
    def on_outcome(self, context, outcome):
        self.outcome = outcome
        return super().on_outcome(context, outcome)


@pytest.mark.parametrize("key", ["api_task_id", "task_id"])
def test_a_success_event_names_the_calling_task_under_the_new_or_the_old_key(account, key):
    # "task_id": the key of an event fired by a trigger of the release before the rename,
    # which a sensor resumed after the upgrade must still understand.
    unique_id, phones = import_batch(account, 2)
    account.sim.wait_until_processed()
    url = AgentApiHook().get_callback(unique_id)["data"]["url"]
    event = {"status": "success", "unique_id": unique_id, "download_url": url, key: account.task_id}
    sensor = KeepsTheOutcome(task_id="wait", unique_id=unique_id)

    assert sensor.execute_complete(context={}, event=event) == {
        "unique_id": unique_id,
        "imported": 2,
    }
    assert sensor.outcome.api_task_id == account.task_id
    assert sorted(sensor.outcome.imported_numbers) == sorted(phones)


def test_poke_reads_the_calling_task_from_the_callback_data(account):
    unique_id, _ = import_batch(account, 1)
    account.sim.wait_until_processed()
    sensor = KeepsTheOutcome(task_id="wait", unique_id=unique_id, deferrable=False)
    assert sensor.execute(context={}) == {"unique_id": unique_id, "imported": 1}
    assert sensor.outcome.api_task_id == account.task_id


def test_timeout_event_fails_or_skips_with_soft_fail(account):
    event = {"status": "timeout", "unique_id": "u", "message": "batch u not processed"}
    sensor = AgentApiCallbackSensor(task_id="wait", unique_id="u")
    with pytest.raises(AirflowSensorTimeout, match="stays 'submitted'"):
        sensor.execute_complete(context={}, event=event)

    soft = AgentApiCallbackSensor(task_id="wait", unique_id="u", soft_fail=True)
    with pytest.raises(AirflowSkipException):
        soft.resume_execution("execute_complete", {"event": event}, context={})


DAG_FILE = """
import json, pathlib
import pendulum
from airflow.sdk import DAG, task
from agent_api.hooks.agent_api import AgentApiHook
from agent_api.sensors.callback import AgentApiCallbackSensor

OUT = pathlib.Path({out!r})


class RecordingSensor(AgentApiCallbackSensor):
    def on_outcome(self, context, outcome):
        OUT.joinpath(self.task_id).write_text(json.dumps(sorted(outcome.imported_numbers)))
        return super().on_outcome(context, outcome)


@task
def send(phones):
    rows = [{{"phone": p, "sort": 0}} for p in phones]
    return AgentApiHook().import_batch({task_id!r}, rows).unique_id


with DAG("agent_api_sensor_test", schedule=None, catchup=False,
         start_date=pendulum.datetime(2026, 1, 1, tz="UTC")):
    # A chain, so each sensor starts right after its batch was sent and has to wait.
    deferred = send.override(task_id="send_a")({deferred_phones!r})
    rescheduled = send.override(task_id="send_b")({rescheduled_phones!r})
    wait_a = RecordingSensor(task_id="deferrable", unique_id=deferred, poll_interval=0.2)
    wait_b = RecordingSensor(task_id="reschedule", unique_id=rescheduled, deferrable=False,
                             mode="reschedule", poke_interval=0.5)
    deferred >> wait_a >> rescheduled >> wait_b
"""


def run_dags_test_releasing_callbacks(account, env: dict, releases: list[str]) -> str:
    """Run `airflow dags test` while the simulator processes nothing on its own; process the
    pending batches each time the next marker of ``releases`` appears in the output.

    The interleaving is forced: a sensor sees its batch pending first (so the deferrable one
    has to defer and the rescheduled one has to reschedule), whatever the machine's load."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "airflow", "dags", "test", "agent_api_sensor_test"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    watchdog = threading.Timer(240, proc.kill)
    watchdog.start()
    lines = []
    waiting_for = list(releases)
    try:
        for line in proc.stdout:
            lines.append(line)
            if waiting_for and waiting_for[0] in line.lower():
                waiting_for.pop(0)
                account.sim.process()
        proc.wait()
    finally:
        watchdog.cancel()
    log = "".join(lines)
    assert proc.returncode == 0, log[-3000:]
    assert not waiting_for, f"never saw {waiting_for} in the output: {log[-3000:]}"
    return log


@pytest.mark.slow
def test_sensor_in_a_dag_run_deferrable_and_reschedule(account, airflow_db, tmp_path):
    """`airflow dags test` runs both sensors for real: one deferred to its trigger, one in
    reschedule mode; each gets the numbers its batch imported."""
    # No batch is processed until the test says so (below, once each sensor has waited).
    account.sim.set_faults(callback_delay=3600)
    deferred_phones, rescheduled_phones = new_phones(3), new_phones(2)
    dags = tmp_path / "dags"
    dags.mkdir()
    out = tmp_path / "out"
    out.mkdir()
    dags.joinpath("sensor_dag.py").write_text(
        DAG_FILE.format(
            out=str(out),
            task_id=account.task_id,
            deferred_phones=deferred_phones,
            rescheduled_phones=rescheduled_phones,
        )
    )
    env = {**os.environ, "AIRFLOW__CORE__DAGS_FOLDER": str(dags)}
    # The deferrable sensor's batch is processed only once its trigger runs, the rescheduled
    # one's only once that sensor was rescheduled: neither could have found its outcome at once.
    log = run_dags_test_releasing_callbacks(
        account, env, releases=["running trigger in line", "up_for_reschedule"]
    )
    assert "state=success" in log
    assert json.loads(out.joinpath("deferrable").read_text()) == sorted(deferred_phones)
    assert json.loads(out.joinpath("reschedule").read_text()) == sorted(rescheduled_phones)
