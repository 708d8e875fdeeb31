"""LedgerCallbackSensor on a worker (the path it takes without start_from_trigger), against
the simulator and a real ledger."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from airflow.sdk.exceptions import AirflowException, AirflowFailException, AirflowSkipException

from agent_api.hooks.agent_api import AgentApiHook
from lead_load.glue.sensors import LedgerCallbackSensor, wait_in_triggerer
from lead_load.glue.triggers import LedgerCallbackTrigger, PostBatchTrigger
from lead_load.ledger import batch_lifecycle
from tests.include.lead_load.glue.conftest import (
    RUN,
    as_the_triggerer_starts_it,
    events_of,
    ledger_status,
    trigger_module_in_a_fresh_interpreter,
)


def _sensor(settings, batch) -> LedgerCallbackSensor:
    return LedgerCallbackSensor(
        task_id="wait_for_callback",
        settings=settings,
        batch=batch,
        deferrable=False,
        poll_interval=0.05,
        timeout=30,
    )


def test_the_sensor_waits_for_the_posted_batch_and_records_its_outcome(ledger_env, account):
    engine, settings, batches, phones = ledger_env
    (posted,) = events_of(PostBatchTrigger(settings, batches[0]))

    result = _sensor(settings, batches[0]).execute({})

    assert result["unique_id"] == posted.xcoms["return_value"]["unique_id"]
    assert result["imported"] == 2
    assert ledger_status(engine, batches[0]["batch_no"]) == {"imported"}
    assert sorted(account.imported_phones()) == sorted(phones[:2])


def test_a_maybe_accepted_batch_is_waited_for_in_the_task_list_without_a_callback(
    ledger_env, account
):
    engine, settings, batches, phones = ledger_env
    batch_no = batches[1]["batch_no"]
    frozen = batch_lifecycle.claim(engine, RUN, batch_no, "frozen worker", seconds=-1)
    batch_lifecycle.renew(engine, frozen.lease)  # the fence before its POST
    AgentApiHook().import_batch(account.task_id, frozen.rows)
    events_of(PostBatchTrigger(settings, batches[1]))  # maybe accepted: posts nothing

    result = _sensor(settings, batches[1]).execute({})

    assert result == {
        "batch_no": batch_no,
        "unique_id": None,
        "imported": 2,
        "waited": True,
        "from_task_list": True,
    }
    assert len(account.posts()) == 1
    assert ledger_status(engine, batch_no) == {"imported"}
    assert sorted(account.imported_phones()) == sorted(phones[2:4])


def test_a_wait_for_a_batch_that_was_never_posted_fails(ledger_env, account):
    _, settings, batches, _ = ledger_env
    with pytest.raises(AirflowFailException, match="is planned\\): its post did not succeed"):
        _sensor(settings, batches[2]).execute({})
    assert account.posts() == []


def test_started_as_the_dag_starts_it_the_wait_records_the_batch_at_its_map_index(
    ledger_env, account
):
    engine, _, batches, phones = ledger_env
    events_of(as_the_triggerer_starts_it(PostBatchTrigger(), map_index=2))
    args = wait_in_triggerer(timedelta(minutes=5), 0.05)
    # Nothing for the triggerer to render: no XCom request through its supervisor.
    assert args.trigger_kwargs == {"timeout": 300.0, "poll_interval": 0.05}
    trigger = as_the_triggerer_starts_it(LedgerCallbackTrigger(**args.trigger_kwargs), 2)

    (event,) = events_of(trigger)

    counts = event.xcoms["return_value"]
    assert counts["imported"] == 1  # the last batch of five leads in twos
    assert ledger_status(engine, batches[2]["batch_no"]) == {"imported"}
    assert account.imported_phones() == phones[4:]


def test_the_triggerer_imports_the_wait_trigger_without_the_dags_folder(tmp_path):
    args = wait_in_triggerer(timedelta(minutes=5), 2.0)
    module_file = Path(trigger_module_in_a_fresh_interpreter(args.trigger_cls, tmp_path))
    assert module_file == Path(__file__).resolve().parents[4] / "include/lead_load/glue/triggers.py"


def test_an_error_while_waiting_is_retried_not_skipped_by_soft_fail(ledger_env, account):
    """soft_fail skips a wait whose callback never came (the next run re-checks the batch);
    a download refused with 429 once the batch was processed must leave Airflow's retries to
    record it, not skip the task with the batch unrecorded."""
    engine, settings, batches, _ = ledger_env
    events_of(PostBatchTrigger(settings, batches[0]))
    account.sim.wait_until_processed()
    account.sim.set_faults(rate_429=1.0, retry_after=0)
    trigger = LedgerCallbackTrigger(settings, batch=batches[0], poll_interval=0.01, timeout=30)
    (event,) = events_of(trigger)
    assert event.payload["status"] == "error"
    sensor = LedgerCallbackSensor(
        task_id="wait_for_callback", settings=settings, batch=batches[0], soft_fail=True
    )

    with pytest.raises(AirflowException) as raised:
        sensor.resume_execution("execute_complete", {"event": event.payload}, {})

    assert not isinstance(raised.value, AirflowSkipException | AirflowFailException)
    assert "429" in str(raised.value)
    assert ledger_status(engine, batches[0]["batch_no"]) == {"submitted"}  # for the retry


def test_a_callback_that_never_came_is_skipped_by_soft_fail(ledger_env):
    _, settings, batches, _ = ledger_env
    sensor = LedgerCallbackSensor(
        task_id="wait_for_callback", settings=settings, batch=batches[0], soft_fail=True
    )
    timeout = {"status": "timeout", "unique_id": "u-1", "message": "batch u-1 not processed"}
    with pytest.raises(AirflowSkipException):
        sensor.resume_execution("execute_complete", {"event": timeout}, {})
