"""Two triggerers, and the one running posts freezes (SIGSTOP) in the middle of them.

The mapped post_batch tasks start and end in the triggerer. With a second triggerer running,
a frozen one stops heartbeating; after the health-check threshold (15 s in the stack) the other
adopts its triggers and starts the same post steps again, while the frozen one still holds
them half done. It is frozen when it has both kinds of unfinished post: one the platform has
accepted and not answered yet, and one the platform has not accepted yet (refused with a 429,
waiting to try again). The simulator makes that moment rather than the test waiting for it:
it holds the answer of the first accepted post and refuses every later one with a 429 until
released (``hold_accepted_answers``). Once the triggerer that sent the held post has a refused
one too, it is frozen; then the held answer is released into its socket, where it finds it on
waking up (SIGCONT), and the platform accepts posts again. Two copies of a batch's post step
have run at once, and still no phone may go to the platform twice; the run must succeed and
the ledger must match the task.
"""

from __future__ import annotations

import json
import signal
import time
from collections import Counter
from datetime import UTC, datetime

import pytest
from sqlalchemy import create_engine, inspect, text

from lead_load_devtools.synthetic import generate, write_leads

pytestmark = [pytest.mark.slow, pytest.mark.distributed]

WINDOW = (datetime(2026, 10, 28, tzinfo=UTC), datetime(2026, 10, 29, tzinfo=UTC))
BATCH_SIZE = 100
# Frozen longer than the stack's triggerer health-check threshold (15 s), and shorter than a
# batch's lease (about 45 s with the stack's connection settings): after a longer freeze the
# adopter may take over a post the frozen triggerer had claimed and not sent yet, which it
# sends on waking up; no lease can prevent that.
FROZEN_AT_LEAST, FROZEN_AT_MOST = 25, 40
# The answer of the next accepted post is held, and every later post is refused with a 429 to
# be tried again 2 s later (the stack's longest backoff): a refused post tries 5 times, over
# about 8 s, before it gives up. A held answer keeps the client reading (see docs/simulator.md),
# so it never counts as lost, however long it is held.
HOLD = {"hold_accepted_answers": 1, "retry_after": 2}
# How long the triggerer of a held post may take to have a refused one too. If it has none by
# then (it runs no other post), the held answer goes out and the next accepted post (one of
# the refused ones, trying again) is held instead, at most ROUNDS times: a refused post gives
# up after its 5 attempts and its task is retried, so the refusals must not last long.
REFUSED_WITHIN, ROUNDS = 4, 4


def _alive_triggerers(stack) -> set[int]:
    jobs = stack.api("GET", "/jobs", params={"job_type": "TriggererJob", "is_alive": True})
    return {job["id"] for job in jobs["jobs"]}


def _posts(stack, task_id: str, status: int | None = None) -> list[dict]:
    return [
        e
        for e in stack.simulator.journal()
        if e["path"].endswith(f"/{task_id}/async_number") and status in (None, e["status"])
    ]


KINDS = ("held", "refused", "other")


def _faults(entry: dict) -> list[str]:
    return (entry["fault"] or "").split("+")


def _posting(stack, run_id: str, task_id: str) -> dict[int, tuple[int, str]]:
    """{map index: (triggerer job id, kind)} of the post_batch tasks whose batch is being
    posted (``sending`` in the ledger), while the simulator holds an answer. ``kind``: "held",
    the post the platform accepted and whose answer it holds; "refused", a post refused with a
    429 since then (waiting to try again); "other": neither (claimed, not sent yet)."""
    engine = create_engine(stack.warehouse_url)
    try:
        # The run creates the ledger's tables: before that, nothing is being sent.
        if not all(
            inspect(engine).has_table(table) for table in ("lead_load_ledger", "lead_load_batches")
        ):
            return {}
        with engine.connect() as conn:
            sending = conn.execute(
                text(
                    "SELECT l.batch_no, l.phone FROM lead_load_ledger l "
                    "JOIN lead_load_batches b USING (run_id, batch_no) "
                    "WHERE l.run_id = :r AND b.status = 'sending'"
                ),
                {"r": run_id},
            ).all()
    finally:
        engine.dispose()
    posts = _posts(stack, task_id)
    held = [p for p in posts if "hold_answer" in _faults(p)]
    if not sending or not held or stack.simulator.held() != 1:
        return {}
    held_phones = {row["phone"] for row in held[-1]["body"]["data"]}
    refused_phones = {
        row["phone"]
        for p in posts
        if p["seq"] > held[-1]["seq"] and "hold_429" in _faults(p)
        for row in p["body"]["data"]
    }
    kinds: dict[int, str] = {}
    for batch_no, phone in sending:  # a batch is of the first kind any of its phones is
        kind = "held" if phone in held_phones else "refused" if phone in refused_phones else "other"
        kinds[batch_no] = min(kinds.get(batch_no, "other"), kind, key=KINDS.index)
    ti = f"/dags/lead_load/dagRuns/{run_id}/taskInstances/plan_batches"
    plan = stack.api("GET", f"{ti}/xcomEntries/return_value")["value"]
    plan = json.loads(plan) if isinstance(plan, str) else plan
    batch_of = {i: batch["batch_no"] for i, batch in enumerate(plan)}
    return {
        ti["map_index"]: (ti["trigger"]["triggerer_id"], kinds[batch_of[ti["map_index"]]])
        for ti in stack.task_instances(run_id)
        if ti["task_id"] == "post_batch"
        and ti["trigger"]
        and batch_of.get(ti["map_index"]) in kinds
    }


def _half_done(posting: dict[int, tuple[int, str]]) -> dict[int, set[int]]:
    """{triggerer: map indexes of its posts} of the triggerers running the post whose answer
    is held (accepted, not answered) and a refused one (not accepted)."""
    by_job: dict[int, dict[int, str]] = {}
    for index, (job, kind) in posting.items():
        by_job.setdefault(job, {})[index] = kind
    return {
        job: set(posts)
        for job, posts in by_job.items()
        if {"held", "refused"} <= set(posts.values())
    }


def _hold_the_next(stack) -> None:
    """Send the held answer, and hold the answer of the next accepted post instead."""
    stack.simulator.set_faults(**HOLD)  # a new config sends the answers the old one held


def test_a_frozen_triggerer_whose_posts_another_adopted_posts_no_phone_twice(airflow_stack):
    stack = airflow_stack
    task_id = stack.simulator.create_task(stack.user_id)
    leads = generate(2400, seed=44, start=WINDOW[0], end=WINDOW[1], id_prefix="TF-")
    engine = create_engine(stack.warehouse_url)
    write_leads(engine, leads.frame)
    engine.dispose()
    batches = -(-len(leads.valid_phones) // BATCH_SIZE)

    # A second triggerer; its job is the one that was not alive before.
    first = _alive_triggerers(stack)
    assert len(first) == 1, first
    stack.start_component("triggerer-2")
    frozen_name = None
    try:
        deadline = time.monotonic() + 180
        while len(second := _alive_triggerers(stack) - first) != 1:
            assert time.monotonic() < deadline, stack.log_tail("triggerer-2")
            stack.check_alive()
            time.sleep(1)
        names = {first.pop(): "triggerer", second.pop(): "triggerer-2"}

        # The run's first accepted post has its answer held, and the posts after it are refused.
        stack.simulator.set_faults(**HOLD)
        run_id = stack.trigger(
            {
                "window_start": WINDOW[0].isoformat(),
                "window_end": WINDOW[1].isoformat(),
                "api_task_id": task_id,
                "batch_size": BATCH_SIZE,
            }
        )
        deadline = time.monotonic() + 300
        held_since = None
        rounds = 1
        while frozen_name is None:
            assert time.monotonic() < deadline, "no post was held"
            assert rounds <= ROUNDS, f"{ROUNDS} held posts, none with a refused one beside it"
            stack.check_alive()
            if stack.simulator.held() != 1:
                time.sleep(0.2)
                continue
            held_since = held_since or time.monotonic()
            # Only one answer is held, so only its triggerer can have both kinds.
            if not (candidates := _half_done(_posting(stack, run_id, task_id))):
                if time.monotonic() - held_since > REFUSED_WITHIN:
                    _hold_the_next(stack)
                    rounds += 1
                    held_since = None
                else:
                    time.sleep(0.2)
                continue
            (frozen,) = candidates
            frozen_name = names[frozen]
            stack.signal_component(frozen_name, signal.SIGSTOP)
            stopped_at = time.monotonic()
            # Frozen, it changes nothing any more. Still both kinds (a refused post may have
            # given up just before)? Otherwise wake it up and hold another post.
            frozen_posts = _half_done(_posting(stack, run_id, task_id)).get(frozen)
            if not frozen_posts:
                stack.signal_component(frozen_name, signal.SIGCONT)
                frozen_name = None
                _hold_the_next(stack)
                rounds += 1
                held_since = None
        posted_at_stop = len(_posts(stack, task_id, 200))
        # The held answer goes into the frozen triggerer's socket now (it reads it on waking
        # up), and the platform accepts posts again, so the other triggerer carries on.
        assert stack.simulator.release() == 1
        stack.simulator.set_faults()

        # Frozen past the health-check threshold, until the other triggerer has adopted them.
        adopter = next(job for job in names if job != frozen)
        while True:
            frozen_for = time.monotonic() - stopped_at
            tis = [
                ti
                for ti in stack.task_instances(run_id)
                if ti["task_id"] == "post_batch" and ti["map_index"] in frozen_posts
            ]
            adopted = all(
                ti["trigger"] is None or ti["trigger"]["triggerer_id"] == adopter for ti in tis
            )
            if (adopted and frozen_for >= FROZEN_AT_LEAST) or frozen_for >= FROZEN_AT_MOST:
                break
            stack.check_alive()
            time.sleep(1)
        stack.signal_component(frozen_name, signal.SIGCONT)
        frozen_name = None

        (run,) = stack.wait_for_runs([run_id], timeout=600)
    finally:
        if frozen_name:
            stack.signal_component(frozen_name, signal.SIGCONT)
        stack.simulator.set_faults()
        stack.stop_component("triggerer-2")
    assert posted_at_stop < batches, "the freeze came after the posting phase"
    assert adopted, f"{names[adopter]} had not adopted the frozen triggers after {frozen_for:.0f} s"

    # Each valid phone went to the platform in exactly one accepted post.
    sent = Counter(row["phone"] for p in _posts(stack, task_id, 200) for row in p["body"]["data"])
    twice = sorted(f"{phone[:3]}****{phone[-4:]}" for phone, n in sent.items() if n > 1)
    assert not twice, f"{len(twice)} phones posted more than once: {twice[:5]}..."
    assert set(sent) == set(leads.valid_phones)

    assert run["state"] == "success", stack.explain(run_id)

    # Both triggerers ran the frozen one's post steps.
    run_logs = stack.logs / "tasks" / "dag_id=lead_load" / f"run_id={run_id}" / "task_id=post_batch"
    for index in frozen_posts:
        folder = run_logs / f"map_index={index}"
        assert list(folder.glob(f"attempt=*.log.trigger.{frozen}.log")), folder
        assert list(folder.glob(f"attempt=*.log.trigger.{adopter}.log")), folder

    # The task holds each valid lead once, and the ledger says exactly that.
    numbers = stack.simulator.task_numbers(stack.user_id, task_id)
    assert len(numbers) == len({n["phone"] for n in numbers})
    assert {n["phone"]: n["extra"] for n in numbers} == leads.valid_phones
    engine = create_engine(stack.warehouse_url)
    with engine.connect() as conn:
        rows = conn.execute(
            text("SELECT phone, status FROM lead_load_ledger WHERE api_task_id = :t"),
            {"t": task_id},
        ).all()
    engine.dispose()
    assert Counter(status for _, status in rows) == {
        "imported": len(leads.valid_phones),
        "rejected": len(leads.invalid_leads) + len(leads.duplicate_leads),
    }
    assert {phone for phone, status in rows if status == "imported"} == set(leads.valid_phones)
