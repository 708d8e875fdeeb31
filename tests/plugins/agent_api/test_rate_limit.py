"""Client-side pacing: the pacer's arithmetic, its thread safety, and the hooks against a
simulator that answers 429 above its own rate limit."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest

from agent_api.exceptions import AgentApiError, AgentApiNotFoundError
from agent_api.hooks.agent_api import AgentApiAsyncHook, AgentApiHook
from agent_api.rate_limit import PacerBusy, RequestPacer, shared_pacer

UNKNOWN_ID = "00000000-0000-4000-8000-000000000000"


class FakeClock:
    def __init__(self, now: float = 100.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


# -- the pacer's arithmetic ------------------------------------------------------------------


def test_back_to_back_requests_are_spaced_one_interval_apart():
    pacer = RequestPacer(4, clock=FakeClock())
    assert [pacer.reserve() for _ in range(4)] == [0.0, 0.25, 0.5, 0.75]


def test_the_wait_shrinks_as_time_passes():
    clock = FakeClock()
    pacer = RequestPacer(4, clock=clock)
    assert pacer.reserve() == 0.0
    clock.now += 0.125
    assert pacer.reserve() == 0.125  # its slot is 0.25 after the first request
    clock.now += 1.0
    assert pacer.reserve() == 0.0


def test_an_idle_pacer_allows_no_burst():
    clock = FakeClock()
    pacer = RequestPacer(4, clock=clock)
    pacer.reserve()
    clock.now += 60.0
    assert [pacer.reserve() for _ in range(3)] == [0.0, 0.25, 0.5]


@pytest.mark.parametrize("limit", [0, -1.5])
def test_a_pacer_needs_a_positive_limit(limit):
    with pytest.raises(ValueError, match="must be > 0"):
        RequestPacer(limit)


def test_concurrent_threads_get_distinct_slots_one_interval_apart():
    threads, per_thread = 8, 25
    pacer = RequestPacer(8, clock=FakeClock())  # the clock stands still: every wait is a slot
    start = threading.Barrier(threads)

    def reserve_many() -> list[float]:
        start.wait()
        return [pacer.reserve() for _ in range(per_thread)]

    with ThreadPoolExecutor(threads) as pool:
        waits = [w for ws in pool.map(lambda _: reserve_many(), range(threads)) for w in ws]
    assert sorted(waits) == [k * 0.125 for k in range(threads * per_thread)]


def test_hooks_of_one_process_share_a_pacer_per_base_url_and_limit():
    pacer = shared_pacer("http://platform.example", 10)
    assert shared_pacer("http://platform.example/", 10) is pacer
    assert shared_pacer("http://platform.example", 10.0) is pacer
    assert shared_pacer("http://platform.example", 5) is not pacer
    assert shared_pacer("http://other.example", 10) is not pacer
    assert shared_pacer("http://platform.example", 0) is None


# -- the connection extra ----------------------------------------------------------------------


def test_max_requests_per_second_is_not_sent_as_a_header(account, monkeypatch):
    account.connect(monkeypatch, max_requests_per_second=10)
    assert "max_requests_per_second" not in AgentApiHook().get_conn().headers


# -- the hooks against the simulator's rate limit ------------------------------------------------


def _burst(threads: int, per_thread: int, async_polls: int = 0) -> None:
    """Requests from ``threads`` threads (a sync hook each) and, at the same time, async
    polls from the event loop of this thread; errors are the journal's business."""

    def sync_calls() -> None:
        hook = AgentApiHook()
        for _ in range(per_thread):
            with contextlib.suppress(AgentApiError):
                hook.all_tasks()

    async def poll() -> None:
        with contextlib.suppress(AgentApiNotFoundError):
            await AgentApiAsyncHook().get_callback(UNKNOWN_ID)

    async def polls() -> None:
        await asyncio.gather(*(poll() for _ in range(async_polls)))

    with ThreadPoolExecutor(threads) as pool:
        futures = [pool.submit(sync_calls) for _ in range(threads)]
        asyncio.run(polls())
        for future in futures:
            future.result()


def test_paced_hooks_stay_under_the_platform_rate_limit(account, monkeypatch):
    account.sim.set_faults(rate_limit_rps=10)
    account.connect(monkeypatch, max_requests_per_second=10)
    _burst(threads=8, per_thread=3, async_polls=16)

    statuses = Counter(e["status"] for e in account.sim.journal())
    assert statuses == {200: 24, 404: 16}, "some request went over the platform's rate limit"


def test_unpaced_hooks_exceed_the_platform_rate_limit(account):
    """The control case: without pacing the same burst is refused in part."""
    account.sim.set_faults(rate_limit_rps=10)
    _burst(threads=8, per_thread=5)

    journal = account.sim.journal()
    assert any(e["status"] == 429 and e["fault"] == "rate_limit" for e in journal)


# -- requests that yield to others (callback polls) ---------------------------------------


def test_a_yielding_request_takes_no_slot_while_a_post_is_queued():
    clock = FakeClock()
    pacer = RequestPacer(4, clock=clock)
    assert pacer.reserve_unless_first_come_queued() == 0.0  # idle: the poll goes now
    assert pacer.reserve(first_come=True) == 0.25  # and the next post waits one interval
    assert pacer.reserve_unless_first_come_queued() is None  # a post is queued: the poll yields
    clock.now += 0.25  # the post's slot has come: it is being sent
    assert pacer.reserve_unless_first_come_queued() == 0.25  # the poll takes the next slot


def test_a_yielding_request_queues_behind_other_requests_like_any_request():
    """Once posting is over, polls and downloads share the rate: a poll that yielded to
    every queued download too waited far longer than the rate asks (60 s instead of 20 s
    after the last post of the 40,000-lead benchmark)."""
    clock = FakeClock()
    pacer = RequestPacer(4, clock=clock)
    assert [pacer.reserve() for _ in range(3)] == [0.0, 0.25, 0.5]  # three downloads
    assert pacer.reserve_unless_first_come_queued() == 0.75  # the poll queues behind them
    assert pacer.reserve(first_come=True) == 1.0  # a post comes next, as before


def test_a_poll_yields_to_queued_posts_without_sending(account, monkeypatch):
    account.connect(monkeypatch, max_requests_per_second=2)
    hook = AgentApiAsyncHook()
    pacer = shared_pacer(account.sim.base_url, 2)
    # The pacer's clock stands still for this test: on a busy machine the hook took longer
    # to start than the queued posts' 1.5 s, and the poll then rightly went out.
    monkeypatch.setattr(pacer, "_clock", FakeClock(time.monotonic()))
    before = len(account.sim.journal())
    for _ in range(3):  # three posts of another thread are queued for the next 1.5 s
        pacer.reserve(first_come=True)

    async def poll():
        return await hook.get_callback(UNKNOWN_ID, yield_to_others=True)

    with pytest.raises(PacerBusy):
        asyncio.run(poll())
    assert len(account.sim.journal()) == before  # nothing went to the platform
