"""Two triggerers, and the one running posts freezes (SIGSTOP) in the middle of them.

The mapped post_batch tasks start and end in the triggerer. With a second triggerer running,
a frozen one stops heartbeating; after the health-check threshold (15 s in the stack) the other
adopts its triggers and starts the same post steps again, while the frozen one still holds
them half done. It is frozen at a moment when it has both kinds of unfinished post: one the
platform has accepted and not answered yet (answers come 3 s late), and one the platform has
not accepted yet (refused with a 429, waiting to try again). Then it wakes up (SIGCONT) and
carries on. Two copies of a batch's post step have run at once, and still no phone may go to
the platform twice; the run must succeed and the ledger must match the task.
"""

from __future__ import annotations

import json
import signal
import time
from collections import Counter
from datetime import UTC, datetime

import pytest
from sqlalchemy import create_engine, text

from lead_load_devtools.synthetic import generate, write_leads

pytestmark = [pytest.mark.slow, pytest.mark.distributed]

WINDOW = (datetime(2026, 10, 28, tzinfo=UTC), datetime(2026, 10, 29, tzinfo=UTC))
BATCH_SIZE = 100
# Frozen longer than the stack's triggerer health-check threshold (15 s), and shorter than a
# batch's lease (about 45 s with the stack's connection settings): after a longer freeze the
# adopter may take over a post the frozen triggerer had claimed and not sent yet, which it
# sends on waking up; no lease can prevent that.
FROZEN_AT_LEAST, FROZEN_AT_MOST = 25, 40


def _alive_triggerers(stack) -> set[int]:
    jobs = stack.api("GET", "/jobs", params={"job_type": "TriggererJob", "is_alive": True})
    return {job["id"] for job in jobs["jobs"]}


def _posts(stack, task_id: str, status: int | None = None) -> list[dict]:
    return [
        e
        for e in stack.simulator.journal()
        if e["path"].endswith(f"/{task_id}/async_number") and status in (None, e["status"])
    ]


def _posting(stack, run_id: str, task_id: str) -> dict[int, tuple[int, bool]]:
    """{map index: (triggerer job id, accepted)} of the post_batch tasks whose batch is being
    posted; ``accepted``: the platform has taken the batch (and not answered yet)."""
    engine = create_engine(stack.warehouse_url)
    try:
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
    if not sending:
        return {}
    taken = {row["phone"] for p in _posts(stack, task_id, 200) for row in p["body"]["data"]}
    accepted: dict[int, bool] = {}
    for batch_no, phone in sending:
        accepted[batch_no] = accepted.get(batch_no, False) or phone in taken
    ti = f"/dags/lead_load/dagRuns/{run_id}/taskInstances/plan_batches"
    plan = stack.api("GET", f"{ti}/xcomEntries/return_value")["value"]
    plan = json.loads(plan) if isinstance(plan, str) else plan
    batch_of = {i: batch["batch_no"] for i, batch in enumerate(plan)}
    return {
        ti["map_index"]: (ti["trigger"]["triggerer_id"], accepted[batch_of[ti["map_index"]]])
        for ti in stack.task_instances(run_id)
        if ti["task_id"] == "batches.post_batch"
        and ti["trigger"]
        and batch_of.get(ti["map_index"]) in accepted
    }


def _half_done(posting: dict[int, tuple[int, bool]]) -> dict[int, set[int]]:
    """{triggerer: map indexes} of the triggerers running an accepted and an unaccepted post."""
    by_job: dict[int, dict[int, bool]] = {}
    for index, (job, accepted) in posting.items():
        by_job.setdefault(job, {})[index] = accepted
    return {job: set(posts) for job, posts in by_job.items() if len(set(posts.values())) == 2}


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

        # Answers to posts come 3 s late (within the client's timeout), and a third of the
        # requests are refused with a 429 (retried after 1 s).
        stack.simulator.set_faults(
            lost_answer_rate=1.0, lost_answer_delay=3, rate_429=0.3, retry_after=1
        )
        run_id = stack.trigger(
            {
                "window_start": WINDOW[0].isoformat(),
                "window_end": WINDOW[1].isoformat(),
                "api_task_id": task_id,
                "batch_size": BATCH_SIZE,
            }
        )
        deadline = time.monotonic() + 300
        while frozen_name is None:
            assert time.monotonic() < deadline, "never an accepted and an unaccepted post at once"
            stack.check_alive()
            if not (candidates := _half_done(_posting(stack, run_id, task_id))):
                time.sleep(0.2)
                continue
            frozen = max(candidates, key=lambda job: len(candidates[job]))
            frozen_name = names[frozen]
            stack.signal_component(frozen_name, signal.SIGSTOP)
            stopped_at = time.monotonic()
            # Still both kinds now that it is frozen? Otherwise wake it and wait for another.
            frozen_posts = _half_done(_posting(stack, run_id, task_id)).get(frozen)
            if not frozen_posts:
                stack.signal_component(frozen_name, signal.SIGCONT)
                frozen_name = None
        posted_at_stop = len(_posts(stack, task_id, 200))

        # Frozen past the health-check threshold, until the other triggerer has adopted them.
        adopter = next(job for job in names if job != frozen)
        while True:
            frozen_for = time.monotonic() - stopped_at
            tis = [
                ti
                for ti in stack.task_instances(run_id)
                if ti["task_id"] == "batches.post_batch" and ti["map_index"] in frozen_posts
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
        stack.simulator.set_faults()

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
    run_logs = (
        stack.logs
        / "tasks"
        / "dag_id=lead_load"
        / f"run_id={run_id}"
        / "task_id=batches.post_batch"
    )
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
