"""The triggers that run post_batch and wait_for_callback in the triggerer, against the simulator
and a real ledger.

The trigger is driven the way the triggerer drives it (``run()`` consumed in an event loop;
how its kwargs render is in test_operators and test_sensors); the outcome is read from the
simulator's journal and task and from the ledger's tables.
"""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
from airflow.sdk.exceptions import AirflowFailException
from airflow.triggers.base import TaskSuccessEvent, TriggerEvent

from agent_api.hooks.agent_api import AgentApiHook
from agent_api.triggers.callback import AgentApiCallbackTrigger
from lead_load.glue import batch_steps
from lead_load.glue.operators import PostBatchOperator
from lead_load.glue.triggers import LedgerCallbackTrigger, PostBatchTrigger
from lead_load.ledger import batch_lifecycle
from tests.include.lead_load.glue.conftest import RUN, events_of, ledger_status


def test_the_trigger_posts_its_batch_and_ends_the_task_with_the_receipt(ledger_env, account):
    engine, settings, batches, phones = ledger_env
    # As rendered in the triggerer: JSON text.
    trigger = PostBatchTrigger(json.dumps(settings), json.dumps(batches[1]))
    (event,) = events_of(trigger)

    assert isinstance(event, TaskSuccessEvent)
    receipt = event.xcoms["return_value"]
    (post,) = account.posts()
    posted = [row["phone"] for row in post["body"]["data"]]
    assert posted == phones[2:4]  # batch 1 of 2-row batches, in lead id order
    assert receipt["batch_no"] == batches[1]["batch_no"] and receipt["rows"] == 2
    (batch,) = account.sim.batches()
    assert receipt["unique_id"] == batch["unique_id"]
    assert ledger_status(engine, batches[1]["batch_no"]) == {"submitted"}
    assert ledger_status(engine, batches[0]["batch_no"]) == {"staged"}  # untouched
    assert not any(p in json.dumps(receipt) for p in phones)


def test_a_running_task_fails_without_retry_and_marks_nothing_sent(ledger_env, account):
    engine, settings, batches, phones = ledger_env
    account.sim.set_task_status(account.user_id, account.task_id, 2)
    (event,) = events_of(PostBatchTrigger(settings, batches[0]))

    assert event.payload["status"] == "error"
    assert event.payload["retryable"] is False
    assert "6007" in event.payload["message"]
    assert ledger_status(engine, batches[0]["batch_no"]) == {"staged"}
    assert not any(p in json.dumps(event.payload) for p in phones)
    with pytest.raises(AirflowFailException, match="6007"):
        PostBatchOperator(task_id="t", settings={}, batch={}).execute_complete({}, event.payload)


def test_a_5xx_leaves_the_batch_maybe_accepted_and_nothing_is_posted_again(
    ledger_env, account, monkeypatch
):
    engine, settings, batches, _ = ledger_env
    account.connect(monkeypatch, max_attempts=3)
    account.sim.set_faults(error_rate=1.0)
    try:
        (event,) = events_of(PostBatchTrigger(settings, batches[0]))
        # A retry of the task (or a second copy of the trigger) posts nothing either.
        (again,) = events_of(PostBatchTrigger(settings, batches[0]))
    finally:
        account.sim.set_faults()

    # A 5xx may come after the platform took the batch: the outcome is unknown, not "sent",
    # and not "refused" either. The post step ends; only the task's numbers can settle it.
    assert isinstance(event, TaskSuccessEvent)
    receipt = event.xcoms["return_value"]
    assert (receipt["unique_id"], receipt["maybe_accepted"]) == (None, True)
    assert again.xcoms["return_value"] == receipt
    assert len(account.posts()) == 1
    assert ledger_status(engine, batches[0]["batch_no"]) == {"submitted"}

    # Its wait finds nothing in the task (the platform had refused it after all) and times
    # out: the rows stay held, never posted again within the settle period.
    (waited,) = events_of(LedgerCallbackTrigger(settings, timeout=1, batch=batches[0]))
    assert waited.payload["status"] == "timeout"
    assert ledger_status(engine, batches[0]["batch_no"]) == {"submitted"}
    assert len(account.posts()) == 1


def test_a_trigger_run_again_after_success_does_not_post_twice(ledger_env, account):
    _, settings, batches, _ = ledger_env
    first = events_of(PostBatchTrigger(settings, batches[2]))[0].xcoms["return_value"]
    again = events_of(PostBatchTrigger(settings, batches[2]))[0].xcoms["return_value"]
    assert again == first
    assert len(account.posts()) == 1


def test_the_callback_trigger_records_the_outcome_and_ends_the_task(ledger_env, account):
    engine, settings, batches, phones = ledger_env
    receipt = events_of(PostBatchTrigger(settings, batches[0]))[0].xcoms["return_value"]
    account.sim.wait_until_processed()

    trigger = LedgerCallbackTrigger(
        json.dumps(settings), receipt["unique_id"], timeout=30, poll_interval=0.05
    )
    (event,) = events_of(trigger)

    assert isinstance(event, TaskSuccessEvent)
    counts = event.xcoms["return_value"]
    assert counts["unique_id"] == receipt["unique_id"]
    assert counts["imported"] == 2
    assert sorted(account.imported_phones()) == sorted(phones[:2])
    assert ledger_status(engine, batches[0]["batch_no"]) == {"imported"}
    assert not any(p in json.dumps(counts) for p in phones)


def test_a_success_event_of_the_older_release_is_still_recorded(ledger_env, account, monkeypatch):
    # A trigger serialized by the release before the rename fires its success event with the
    # calling task under "task_id"; the trigger's recording must still pass it on.
    engine, settings, batches, phones = ledger_env
    receipt = events_of(PostBatchTrigger(settings, batches[0]))[0].xcoms["return_value"]
    account.sim.wait_until_processed()
    url = AgentApiHook().get_callback(receipt["unique_id"])["data"]["url"]

    async def old_release_run(self):
        old_event = {"status": "success", "unique_id": self.unique_id, "download_url": url}
        yield TriggerEvent({**old_event, "task_id": account.task_id})

    monkeypatch.setattr(AgentApiCallbackTrigger, "run", old_release_run)
    recorded = []

    def record_callback(settings, unique_id, download_url, api_task_id):
        recorded.append(api_task_id)
        return batch_steps.record_callback(settings, unique_id, download_url, api_task_id)

    monkeypatch.setattr("lead_load.glue.triggers.record_callback", record_callback)
    (event,) = events_of(LedgerCallbackTrigger(settings, receipt["unique_id"], timeout=30))

    assert isinstance(event, TaskSuccessEvent)
    assert event.xcoms["return_value"]["imported"] == 2
    assert recorded == [account.task_id]
    assert sorted(account.imported_phones()) == sorted(phones[:2])
    assert ledger_status(engine, batches[0]["batch_no"]) == {"imported"}


def test_a_callback_that_never_comes_times_out_and_leaves_the_rows_submitted(ledger_env, account):
    engine, settings, batches, _ = ledger_env
    account.sim.set_faults(callback_never_rate=1.0)
    try:
        receipt = events_of(PostBatchTrigger(settings, batches[0]))[0].xcoms["return_value"]
        trigger = LedgerCallbackTrigger(settings, receipt["unique_id"], timeout=0.3)
        trigger.poll_interval = 0.05
        (event,) = events_of(trigger)
    finally:
        account.sim.set_faults()

    # Not a success: the sensor's execute_complete on a worker turns it into a timeout.
    assert event.payload["status"] == "timeout"
    assert ledger_status(engine, batches[0]["batch_no"]) == {"submitted"}


def test_a_wait_started_by_batch_reads_its_unique_id_from_the_ledger(ledger_env, account):
    """How the DAG starts it: with the batch of the plan, not the post's XCom (which a post
    that ended in the triggerer stores as JSON text)."""
    engine, settings, batches, _ = ledger_env
    receipt = events_of(PostBatchTrigger(settings, batches[1]))[0].xcoms["return_value"]
    account.sim.wait_until_processed()

    trigger = LedgerCallbackTrigger(
        json.dumps(settings), timeout=30, poll_interval=0.05, batch=json.dumps(batches[1])
    )
    (event,) = events_of(trigger)

    assert isinstance(event, TaskSuccessEvent)
    assert event.xcoms["return_value"]["unique_id"] == receipt["unique_id"]
    assert ledger_status(engine, batches[1]["batch_no"]) == {"imported"}


def test_a_wait_for_a_batch_that_was_never_posted_fails_without_retries(ledger_env, account):
    _, settings, batches, _ = ledger_env
    trigger = LedgerCallbackTrigger(settings, timeout=30, batch=batches[0])
    (event,) = events_of(trigger)
    assert event.payload["status"] == "error"
    assert event.payload["retryable"] is False
    assert f"batch {batches[0]['batch_no']} of run" in event.payload["message"]
    assert "has no unique_id in the ledger" in event.payload["message"]
    assert account.posts() == []


def test_a_batch_whose_interrupted_post_had_landed_is_settled_from_the_task_list(
    ledger_env, account
):
    """A post whose owner froze past its lease after a POST started: the next copy takes
    the batch as maybe accepted and posts nothing; its wait finds the rows in the task's
    number list and ends green, with no callback to wait for."""
    from agent_api.hooks.agent_api import AgentApiHook

    engine, settings, batches, phones = ledger_env
    batch_no = batches[1]["batch_no"]
    frozen = batch_lifecycle.claim(engine, RUN, batch_no, "frozen triggerer", seconds=-1)
    batch_lifecycle.renew(engine, frozen.lease)  # the fence before its POST
    AgentApiHook().import_batch(account.task_id, frozen.rows)  # accepted; its owner froze

    (posted,) = events_of(PostBatchTrigger(settings, batches[1]))
    assert posted.xcoms["return_value"]["maybe_accepted"] is True
    assert len(account.posts()) == 1  # the adopter sent nothing
    assert ledger_status(engine, batch_no) == {"submitted"}

    (waited,) = events_of(LedgerCallbackTrigger(settings, timeout=30, batch=batches[1]))
    assert isinstance(waited, TaskSuccessEvent)
    assert waited.xcoms["return_value"] == {
        "batch_no": batch_no,
        "unique_id": None,
        "imported": 2,
        "waited": True,
        "from_task_list": True,
    }
    assert ledger_status(engine, batch_no) == {"imported"}
    assert sorted(account.imported_phones()) == sorted(phones[2:4])


def test_the_post_names_the_try_of_the_task_instance_the_triggerer_attached(ledger_env, account):
    engine, settings, batches, _ = ledger_env
    trigger = PostBatchTrigger(json.dumps(settings), json.dumps(batches[0]))
    # As the triggerer attaches it (the parts of it that the trigger reads).
    trigger.task_instance = SimpleNamespace(task_id="batches.post_batch", try_number=4)
    (event,) = events_of(trigger)

    assert isinstance(event, TaskSuccessEvent)
    owner = batch_lifecycle.batch_state(engine, RUN, batches[0]["batch_no"])["lease_owner"]
    assert owner.startswith(f"run {RUN} batch {batches[0]['batch_no']} try 4 on ")
