"""AgentApiCallbackTrigger against the simulator: fires on completion, on timeout, on errors."""

from __future__ import annotations

import asyncio
import importlib
import time

import pytest

from agent_api.hooks.agent_api import AgentApiHook
from agent_api.triggers.callback import AgentApiCallbackTrigger, event_api_task_id
from tests.plugins.agent_api.conftest import new_phones, rows_for


def first_event(trigger: AgentApiCallbackTrigger) -> dict:
    async def run() -> dict:
        async for event in trigger.run():
            return event.payload
        raise AssertionError("the trigger ended without an event")

    return asyncio.run(asyncio.wait_for(run(), timeout=30))


def polls_of(account, unique_id: str) -> list[dict]:
    return [e for e in account.sim.journal() if e["path"].endswith(f"/identification/{unique_id}")]


def test_serialize_round_trip_rebuilds_an_equal_trigger():
    trigger = AgentApiCallbackTrigger(
        unique_id="u-1",
        deadline=1_900_000_000.5,
        agent_api_conn_id="other_conn",
        sub_user_id="sub-1",
        poll_interval=3,
        backoff=2,
        max_poll_interval=30,
    )
    classpath, kwargs = trigger.serialize()
    module_name, class_name = classpath.rsplit(".", 1)
    rebuilt = getattr(importlib.import_module(module_name), class_name)(**kwargs)
    assert type(rebuilt) is AgentApiCallbackTrigger
    assert rebuilt.serialize() == (classpath, kwargs)
    assert kwargs["deadline"] == 1_900_000_000.5 and kwargs["sub_user_id"] == "sub-1"


def test_fires_success_once_the_batch_is_processed(account):
    # Nothing is processed until the trigger has polled once and seen "pending" (forced, not
    # left to timing on a loaded machine).
    account.sim.set_faults(callback_delay=3600)
    receipt = AgentApiHook().import_batch(account.task_id, rows_for(new_phones(3)))
    trigger = AgentApiCallbackTrigger(
        receipt.unique_id, deadline=time.time() + 20, poll_interval=0.1
    )

    async def process_after_the_first_poll() -> None:
        while not await asyncio.to_thread(polls_of, account, receipt.unique_id):
            await asyncio.sleep(0.05)
        await asyncio.to_thread(account.sim.process)

    async def run() -> dict:
        release = asyncio.ensure_future(process_after_the_first_poll())
        async for fired in trigger.run():
            await release
            return fired.payload
        raise AssertionError("the trigger ended without an event")

    event = asyncio.run(asyncio.wait_for(run(), timeout=30))
    assert event["status"] == "success"
    assert event["unique_id"] == receipt.unique_id
    # The calling task under our own name; the callback data's ``task_id`` is not passed on.
    assert event["api_task_id"] == account.task_id
    assert "task_id" not in event
    assert event["download_url"].startswith(account.sim.base_url)
    assert len(polls_of(account, receipt.unique_id)) >= 2, "it should have seen 'pending' first"


@pytest.mark.parametrize(
    ("event", "expected"),
    [
        ({"status": "success", "api_task_id": "t-new"}, "t-new"),
        # What a trigger of an older release fired, or one it serialized fires after an upgrade.
        ({"status": "success", "task_id": "t-old"}, "t-old"),
        ({"status": "success", "api_task_id": "t-new", "task_id": "t-old"}, "t-new"),
        ({"status": "success"}, None),
    ],
)
def test_the_calling_task_of_an_event_is_read_under_its_new_and_its_old_key(event, expected):
    assert event_api_task_id(event) == expected


def test_fires_timeout_at_the_deadline_with_a_growing_interval(account):
    account.sim.set_faults(callback_never_rate=1.0)
    receipt = AgentApiHook().import_batch(account.task_id, rows_for(new_phones(1)))
    event = first_event(
        AgentApiCallbackTrigger(
            receipt.unique_id, deadline=time.time() + 1.6, poll_interval=0.1, backoff=2
        )
    )
    assert event["status"] == "timeout"
    polls = polls_of(account, receipt.unique_id)
    # A fixed 0.1 s interval would poll 16 times; doubling polls at 0, .1, .3, .7, 1.5, 1.6.
    assert 3 <= len(polls) <= 8


def test_keeps_polling_through_transient_errors(account):
    receipt = AgentApiHook().import_batch(account.task_id, rows_for(new_phones(1)))
    account.sim.set_faults(seed=11, error_rate=0.5)
    event = first_event(
        AgentApiCallbackTrigger(receipt.unique_id, deadline=time.time() + 20, poll_interval=0.05)
    )
    assert event["status"] == "success"


def test_fires_error_for_an_unknown_batch(account):
    event = first_event(
        AgentApiCallbackTrigger(
            "00000000-0000-4000-8000-000000000000", deadline=time.time() + 20, poll_interval=0.05
        )
    )
    assert event["status"] == "error"
    assert "404" in event["message"]


def test_polls_wait_while_posts_fill_the_rate_limit(account, monkeypatch):
    """Under max_requests_per_second, a poll that would delay queued posts is skipped, not
    sent, and not counted against the backoff: the first poll goes once the queue is gone."""
    from agent_api.rate_limit import shared_pacer

    account.connect(monkeypatch, max_requests_per_second=4)
    receipt = AgentApiHook().import_batch(account.task_id, rows_for(new_phones(2)))
    account.sim.wait_until_processed()
    queued_until = time.monotonic() + 2.0
    pacer = shared_pacer(account.sim.base_url, 4)
    for _ in range(8):  # 2 s of posts queued by other threads of this process
        pacer.reserve(first_come=True)

    event = first_event(
        AgentApiCallbackTrigger(receipt.unique_id, deadline=time.time() + 20, poll_interval=0.1)
    )
    assert event["status"] == "success"
    assert time.monotonic() >= queued_until - 0.3  # it waited for the posts' slots
    assert len(polls_of(account, receipt.unique_id)) == 1  # and sent one poll, which was enough
