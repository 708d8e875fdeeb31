"""RunCallbacksSensor (``wait_for_callbacks``) on a worker: how it ends from its trigger's
events, and how it waits for the posts where tasks run one at a time (``airflow dags test``).
The events come from the real trigger against the simulator and a real ledger."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from airflow.sdk.exceptions import (
    AirflowException,
    AirflowFailException,
    AirflowRescheduleException,
    AirflowSkipException,
    TaskDeferred,
)

from lead_load.glue.callbacks_trigger import FINISHED_STATES, RunCallbacksTrigger
from lead_load.glue.sensors import RunCallbacksSensor
from lead_load.glue.triggers import PostBatchTrigger
from tests.include.lead_load.glue.conftest import RUN, events_of, ledger_status


def sensor() -> RunCallbacksSensor:
    return RunCallbacksSensor(task_id="wait_for_callbacks", callback_timeout=30, poke_interval=3)


def waiter(**kwargs) -> RunCallbacksTrigger:
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
        (event,) = events_of(waiter(post_task_id="p"))
    finally:
        account.sim.set_faults()
    assert event.payload["status"] == "error"

    with pytest.raises(AirflowException) as raised:
        sensor().resume_execution("execute_complete", {"event": event.payload}, {})

    assert not isinstance(raised.value, AirflowSkipException | AirflowFailException)
    assert "429" in str(raised.value)
    assert ledger_status(engine, batches[0]["batch_no"]) == {"submitted"}  # for the retry


def test_a_rejected_token_fails_without_retry(ledger_env, account, monkeypatch):
    _, settings, batches, _ = ledger_env
    events_of(PostBatchTrigger(settings, batches[0]))
    account.connect(monkeypatch, token="not-the-token")
    (event,) = events_of(waiter())

    with pytest.raises(AirflowFailException):
        sensor().resume_execution("execute_complete", {"event": event.payload}, {})


def test_callbacks_that_never_came_skip_naming_the_batches(ledger_env, account):
    _, settings, batches, _ = ledger_env
    account.sim.set_faults(callback_never_rate=1.0)
    try:
        for batch in batches:
            events_of(PostBatchTrigger(settings, batch))
    finally:
        account.sim.set_faults()
    (event,) = events_of(waiter(timeout=0.2))

    named = ", ".join(str(b["batch_no"]) for b in batches)
    with pytest.raises(AirflowSkipException, match=rf"\(batches {named}\)"):
        sensor().resume_execution("execute_complete", {"event": event.payload}, {})


def test_the_counts_of_a_wait_that_ended_well_are_its_result(ledger_env, account):
    _, settings, batches, _ = ledger_env
    for batch in batches:
        events_of(PostBatchTrigger(settings, batch))
    (event,) = events_of(waiter())

    result = sensor().resume_execution("execute_complete", {"event": event.payload}, {})

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
        sensor().execute(context)

    posts.finished = 3
    with pytest.raises(TaskDeferred) as deferred:
        sensor().execute(context)
    trigger = deferred.value.trigger
    assert isinstance(trigger, RunCallbacksTrigger)
    assert (trigger.run_id, trigger.timeout, trigger.end_task) == (RUN, 30.0, False)


def test_finished_means_no_retry_is_coming():
    assert "up_for_retry" not in FINISHED_STATES and "deferred" not in FINISHED_STATES
    assert {"success", "failed", "skipped", "upstream_failed"} <= set(FINISHED_STATES)
