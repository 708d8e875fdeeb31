"""The one trigger that waits for every batch of a run (``wait_for_callbacks``), against the
simulator over HTTP and a real ledger.

Airflow's own word on the posts (its task instance counts, asked through the triggerer's
supervisor) comes from ``posts_finished``; here a subclass answers for the post tasks so the
test can order posts and looks as it needs to.
"""

from __future__ import annotations

import asyncio
import json

from airflow.triggers.base import TaskSuccessEvent

from lead_load.glue import batch_steps
from lead_load.glue.callbacks_trigger import RunCallbacksTrigger, all_posts_finished
from lead_load.glue.triggers import PostBatchTrigger
from tests.include.lead_load.glue.conftest import (
    RUN,
    events_of,
    ledger_status,
    trigger_module_in_a_fresh_interpreter,
)


def post(settings, batch) -> dict:
    return events_of(PostBatchTrigger(settings, batch))[0].xcoms["return_value"]


def waiter(**kwargs) -> RunCallbacksTrigger:
    return RunCallbacksTrigger(
        **{"run_id": RUN, "dag_id": "lead_load", "timeout": 30, "poll_interval": 0.05, **kwargs}
    )


def test_one_trigger_records_every_batch_of_the_run_and_ends_the_task(ledger_env, account):
    engine, settings, batches, phones = ledger_env
    for batch in batches:
        post(settings, batch)

    (event,) = events_of(waiter())

    assert isinstance(event, TaskSuccessEvent)
    summary = event.xcoms["return_value"]
    assert summary == {
        "batches": 3,
        "recorded": 3,
        "imported": 5,
        "from_number_list": 0,
        "settled_elsewhere": 0,
        "not_posted": 0,
        "timed_out": [],
    }
    assert sorted(account.imported_phones()) == sorted(phones)
    for batch in batches:
        assert ledger_status(engine, batch["batch_no"]) == {"imported"}
    assert len(account.posts()) == 3  # the waiter posts nothing
    assert not any(p in json.dumps(summary) for p in phones)


class PostsLater(RunCallbacksTrigger):
    """The run's posts as Airflow sees them: the first time the waiter asks, batches 1 and 2
    are posted and their tasks not finished yet; after that all are."""

    settings: dict
    batches: list
    asked = 0

    async def posts_finished(self, planned: int) -> bool:
        self.asked += 1
        if self.asked == 1:
            for batch in self.batches[1:]:  # the same step the post tasks run
                await asyncio.to_thread(batch_steps.post_planned_batch, self.settings, batch, 1)
            return False
        return True


def test_batches_posted_while_it_waits_are_watched_from_their_post_on(ledger_env, account):
    engine, settings, batches, phones = ledger_env
    post(settings, batches[0])
    trigger = PostsLater(run_id=RUN, dag_id="lead_load", timeout=30, poll_interval=0.05)
    trigger.settings, trigger.batches = settings, batches

    (event,) = events_of(trigger)

    # Asked once, while batches 1 and 2 were being posted; then the ledger showed them posted.
    assert trigger.asked == 1
    assert event.xcoms["return_value"]["recorded"] == 3
    assert sorted(account.imported_phones()) == sorted(phones)
    for batch in batches:
        assert ledger_status(engine, batch["batch_no"]) == {"imported"}


class PostsFailed(RunCallbacksTrigger):
    async def posts_finished(self, planned: int) -> bool:
        return True


def test_batches_whose_posts_failed_for_good_do_not_keep_it_waiting(ledger_env, account):
    engine, settings, batches, _ = ledger_env
    post(settings, batches[0])  # batches 1 and 2: their post tasks failed, never posted

    (event,) = events_of(PostsFailed(run_id=RUN, dag_id="lead_load", poll_interval=0.05))

    summary = event.xcoms["return_value"]
    assert (summary["recorded"], summary["not_posted"]) == (1, 2)
    assert ledger_status(engine, batches[1]["batch_no"]) == {"staged"}


def test_a_second_copy_records_nothing_twice_and_says_what_was_settled_before(ledger_env, account):
    _, settings, batches, _ = ledger_env
    for batch in batches:
        post(settings, batch)
    events_of(waiter())
    imported_before = sorted(account.imported_phones())

    (again,) = events_of(waiter())

    summary = again.xcoms["return_value"]
    assert (summary["recorded"], summary["settled_elsewhere"]) == (0, 3)
    assert sorted(account.imported_phones()) == imported_before
    assert len(account.posts()) == 3


def test_callbacks_that_never_come_end_it_with_a_timeout_naming_the_batches(ledger_env, account):
    engine, settings, batches, _ = ledger_env
    account.sim.set_faults(callback_never_rate=1.0)
    try:
        for batch in batches[:2]:
            post(settings, batch)
    finally:
        account.sim.set_faults()
    post(settings, batches[2])

    (event,) = events_of(waiter(timeout=0.5, end_task=False, post_task_id="p"))

    assert event.payload["status"] == "timeout"
    assert event.payload["summary"]["timed_out"] == [b["batch_no"] for b in batches[:2]]
    assert event.payload["summary"]["recorded"] == 1
    assert event.payload["message"].startswith("2 batches had no outcome within 0.5s of their post")
    assert ledger_status(engine, batches[0]["batch_no"]) == {"submitted"}
    assert ledger_status(engine, batches[2]["batch_no"]) == {"imported"}


def test_a_lost_answer_is_settled_from_the_number_list(ledger_env, account, monkeypatch):
    from agent_api.hooks.agent_api import AgentApiHook
    from lead_load.ledger import batch_lifecycle

    engine, settings, batches, phones = ledger_env
    batch_no = batches[1]["batch_no"]
    frozen = batch_lifecycle.claim(engine, RUN, batch_no, "frozen triggerer", seconds=-1)
    batch_lifecycle.renew(engine, frozen.lease)
    AgentApiHook().import_batch(account.task_id, frozen.rows)  # accepted; its owner froze
    for batch in batches:
        post(settings, batch)  # batch 1: taken over as maybe accepted, not posted again

    (event,) = events_of(waiter())

    summary = event.xcoms["return_value"]
    assert (summary["recorded"], summary["from_number_list"]) == (3, 1)
    assert sorted(account.imported_phones()) == sorted(phones)
    assert len(account.posts()) == 3


def test_a_non_retryable_poll_error_ends_it_with_an_error_for_the_worker(
    ledger_env, account, monkeypatch
):
    _, settings, batches, _ = ledger_env
    post(settings, batches[0])
    account.connect(monkeypatch, token="wrong-token")

    (event,) = events_of(waiter(end_task=False))

    assert event.payload["status"] == "error"
    assert event.payload["retryable"] is False


def test_all_posts_finished_only_when_every_planned_post_is_mapped_and_finished():
    def counts(total, finished):
        return lambda states=None, **_: finished if states else total

    assert all_posts_finished(counts(3, 3), "d", "r", "post_batch", planned=3)
    assert not all_posts_finished(counts(3, 2), "d", "r", "post_batch", planned=3)
    assert not all_posts_finished(counts(0, 0), "d", "r", "post_batch", planned=3)  # unmapped
    assert all_posts_finished(counts(0, 0), "d", "r", "post_batch", planned=0)


def test_the_triggerer_imports_it_without_the_dags_folder(tmp_path):
    path = trigger_module_in_a_fresh_interpreter(
        "lead_load.glue.callbacks_trigger.RunCallbacksTrigger", tmp_path
    )
    assert path.endswith("lead_load/glue/callbacks_trigger.py")


def test_a_run_with_nothing_planned_ends_at_once(ledger_env, account):
    """A window with no new lead: the run has settings in the ledger but no plan."""
    from lead_load.ledger import run_lifecycle

    engine, settings, _, _ = ledger_env
    window = (settings["window_start"], settings["window_end"])
    empty = {**settings, "run_id": "run-empty"}
    run_lifecycle.start_run(engine, "run-empty", account.task_id, window, settings=empty)

    (event,) = events_of(waiter(run_id="run-empty"))

    assert event.xcoms["return_value"]["batches"] == 0
    assert account.posts() == []


def test_the_triggers_read_airflow_variables_off_the_event_loop(ledger_env, account, monkeypatch):
    """In the triggerer a Variable's look-up is a request to its supervisor, whose answer the
    event loop itself must read: looked up on the loop, it waits for ever (a deadlocked
    triggerer). The ledger's Variable is read in the triggers' threads."""
    from airflow.sdk import Variable

    _, settings, batches, _ = ledger_env
    real = Variable.get.__func__
    read_in_threads: list[str] = []

    def get(cls, key, *args, **kwargs):
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            read_in_threads.append(key)
            return real(cls, key, *args, **kwargs)
        raise AssertionError(f"Variable {key} read on the event loop")

    monkeypatch.setattr(Variable, "get", classmethod(get))
    from agent_api import lookup_cache

    for batch in batches:
        post(settings, batch)
    lookup_cache.variables.clear()  # the wait looks the Variable up afresh, as a new process
    read_in_threads.clear()
    (event,) = events_of(waiter())
    assert isinstance(event, TaskSuccessEvent), event
    assert "lead_load_ledger_conn_id" in read_in_threads
