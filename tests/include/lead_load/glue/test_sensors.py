"""The sensors on a worker (the path they take without start_from_trigger), against the
simulator and a real ledger: LedgerCallbackSensor (a batch's wait, of runs started before the
run-wide wait), then RunCallbacksSensor (``wait_for_callbacks``), how it ends from its
trigger's real events and how it waits for the posts where tasks run one at a time
(``airflow dags test``)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace

import pytest
from airflow.sdk.exceptions import (
    AirflowException,
    AirflowFailException,
    AirflowRescheduleException,
    AirflowSkipException,
    TaskDeferred,
)

from agent_api.hooks.agent_api import AgentApiHook
from lead_load.glue.callbacks_trigger import FINISHED_STATES, RunCallbacksTrigger
from lead_load.glue.sensors import LedgerCallbackSensor, RunCallbacksSensor, wait_in_triggerer
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


# --- RunCallbacksSensor (wait_for_callbacks) ---------------------------------------------


def run_sensor() -> RunCallbacksSensor:
    return RunCallbacksSensor(task_id="wait_for_callbacks", callback_timeout=30, poke_interval=3)


def run_waiter(**kwargs) -> RunCallbacksTrigger:
    return RunCallbacksTrigger(
        **{"run_id": RUN, "dag_id": "lead_load", "poll_interval": 0.01, "end_task": False, **kwargs}
    )


def test_a_refused_download_fails_the_try_for_a_retry_instead_of_skipping(ledger_env, account):
    """soft_fail skips for callbacks that never came (the next run re-checks them); a
    download refused with 429 after the batch was processed must leave Airflow's retries to
    record it, not skip the task with the batch unrecorded."""
    engine, settings, batches, _ = ledger_env
    events_of(PostBatchTrigger(settings, batches[0]))
    account.sim.wait_until_processed()
    account.sim.set_faults(rate_429=1.0, retry_after=0)
    try:
        (event,) = events_of(run_waiter(post_task_id="p"))
    finally:
        account.sim.set_faults()
    assert event.payload["status"] == "error"

    with pytest.raises(AirflowException) as raised:
        run_sensor().resume_execution("execute_complete", {"event": event.payload}, {})

    assert not isinstance(raised.value, AirflowSkipException | AirflowFailException)
    assert "429" in str(raised.value)
    assert ledger_status(engine, batches[0]["batch_no"]) == {"submitted"}  # for the retry


def test_a_rejected_token_fails_without_retry(ledger_env, account, monkeypatch):
    _, settings, batches, _ = ledger_env
    events_of(PostBatchTrigger(settings, batches[0]))
    account.connect(monkeypatch, token="not-the-token")
    (event,) = events_of(run_waiter())

    with pytest.raises(AirflowFailException):
        run_sensor().resume_execution("execute_complete", {"event": event.payload}, {})


def test_callbacks_that_never_came_skip_naming_the_batches(ledger_env, account):
    _, settings, batches, _ = ledger_env
    account.sim.set_faults(callback_never_rate=1.0)
    try:
        for batch in batches:
            events_of(PostBatchTrigger(settings, batch))
    finally:
        account.sim.set_faults()
    (event,) = events_of(run_waiter(timeout=0.2))

    named = ", ".join(str(b["batch_no"]) for b in batches)
    with pytest.raises(AirflowSkipException, match=rf"\(batches {named}\)"):
        run_sensor().resume_execution("execute_complete", {"event": event.payload}, {})


def test_the_counts_of_a_wait_that_ended_well_are_its_result(ledger_env, account):
    _, settings, batches, _ = ledger_env
    for batch in batches:
        events_of(PostBatchTrigger(settings, batch))
    (event,) = events_of(run_waiter())

    result = run_sensor().resume_execution("execute_complete", {"event": event.payload}, {})

    assert (result["recorded"], result["imported"], result["timed_out"]) == (3, 5, [])


class Posts:
    """Airflow's task instance counts of the run's post_batch, as a worker's ti gives them."""

    def __init__(self, total: int, finished: int) -> None:
        self.total, self.finished = total, finished

    def get_ti_count(self, dag_id, task_ids, run_ids, states=None) -> int:
        assert (dag_id, task_ids, run_ids) == ("lead_load", ["post_batch"], [RUN])
        return self.total if states is None else self.finished


def test_on_a_worker_it_waits_rescheduled_until_every_post_ran_then_defers(ledger_env):
    posts = Posts(total=3, finished=2)
    context = {
        "ti": SimpleNamespace(run_id=RUN, dag_id="lead_load", get_ti_count=posts.get_ti_count)
    }

    with pytest.raises(AirflowRescheduleException):
        run_sensor().execute(context)

    posts.finished = 3
    with pytest.raises(TaskDeferred) as deferred:
        run_sensor().execute(context)
    trigger = deferred.value.trigger
    assert isinstance(trigger, RunCallbacksTrigger)
    assert (trigger.run_id, trigger.timeout, trigger.end_task) == (RUN, 30.0, False)


def test_finished_means_no_retry_is_coming():
    assert "up_for_retry" not in FINISHED_STATES and "deferred" not in FINISHED_STATES
    assert {"success", "failed", "skipped", "upstream_failed"} <= set(FINISHED_STATES)
