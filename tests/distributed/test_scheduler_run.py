"""lead_load run by Airflow's own scheduler, on Celery, with a PostgreSQL metadata DB.

The same guarantees as the `dags test` end-to-end tests, now with every component a separate
process: the run is triggered and backfilled through the REST API, tasks execute on a Celery
worker, and the callback sensors wait in the triggerer. Assertions read the simulator's state,
the warehouse's tables and the components' own logs.
"""

from __future__ import annotations

import json
import re
import time
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import create_engine, text

from lead_load_devtools.synthetic import generate, write_leads
from tests.dags.test_lead_load_reliability import leaked_phones

pytestmark = [pytest.mark.slow, pytest.mark.distributed]

RUN_WINDOW = (datetime(2026, 10, 5, tzinfo=UTC), datetime(2026, 10, 6, tzinfo=UTC))
# The nightly schedule runs at 02:00 Asia/Shanghai = 18:00 UTC; each run loads the day before.
BACKFILL_FIRST = datetime(2026, 10, 11, 18, tzinfo=UTC)
BACKFILL_DAYS = 3
# The overlap test's three days: after the DAG's start_date (2026-11-01), see its docstring.
OVERLAP_FIRST = datetime(2026, 11, 9, 18, tzinfo=UTC)
DAY, HALF = timedelta(days=1), timedelta(hours=12)


def _rows(stack, sql: str, **params) -> list[dict]:
    engine = create_engine(stack.warehouse_url)
    try:
        with engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(text(sql), params)]
    finally:
        engine.dispose()


def _backfill_runs_of(runs: list[dict], task_id: str) -> list[dict]:
    """The backfill runs that load ``task_id`` (their conf names it)."""
    return [
        r
        for r in runs
        if r["run_type"] == "backfill" and (r.get("conf") or {}).get("api_task_id") == task_id
    ]


def _posts(stack, task_id: str) -> list[dict]:
    return [e for e in stack.simulator.journal() if e["path"].endswith(f"/{task_id}/async_number")]


def _task_phones(stack, task_id: str) -> list[str]:
    return [n["phone"] for n in stack.simulator.task_numbers(stack.user_id, task_id)]


def test_scheduler_runs_lead_load_on_celery_exactly_once_with_sensors_in_the_triggerer(
    airflow_stack,
):
    stack = airflow_stack
    engine = create_engine(stack.warehouse_url)
    leads = generate(900, seed=21, start=RUN_WINDOW[0], end=RUN_WINDOW[1], id_prefix="S")
    write_leads(engine, leads.frame)
    engine.dispose()
    # Callbacks arrive only after the sensors' first check, so each one must defer.
    stack.simulator.set_faults(callback_delay=15)

    # A calling task of this test's own, passed as the api_task_id param.
    task_id = stack.simulator.create_task(stack.user_id)
    run_id = stack.trigger(
        {
            "window_start": RUN_WINDOW[0].isoformat(),
            "window_end": RUN_WINDOW[1].isoformat(),
            "api_task_id": task_id,
        }
    )
    (run,) = stack.wait_for_runs([run_id], timeout=600)
    stack.simulator.set_faults()
    assert run["state"] == "success", stack.explain(run_id)
    # The report wrote the summary on the run, through the stack's airflow_api connection.
    assert (run["note"] or "").startswith(f"imported {len(leads.valid_phones)} of "), run["note"]

    # The platform holds every valid phone exactly once, in batches of at most 200.
    phones = _task_phones(stack, task_id)
    assert len(phones) == len(set(phones))
    assert set(phones) == set(leads.valid_phones)
    posts = _posts(stack, task_id)
    assert len(posts) == -(-len(leads.valid_phones) // 200)
    assert all(1 <= len(p["body"]["data"]) <= 200 for p in posts)

    # The ledger accounts for every extracted row.
    counts = {
        r["status"]: r["n"]
        for r in _rows(
            stack,
            "SELECT status, COUNT(*) AS n FROM lead_load_ledger WHERE api_task_id = :t "
            "GROUP BY status",
            t=task_id,
        )
    }
    assert counts == {
        "imported": len(leads.valid_phones),
        "rejected": len(leads.invalid_leads) + len(leads.duplicate_leads),
    }

    # One mapped post per batch and one deferred sensor for the run, all successful.
    tis = stack.task_instances(run_id)
    by_task: dict[str, list[dict]] = {}
    for ti in tis:
        by_task.setdefault(ti["task_id"], []).append(ti)
    assert len(by_task["post_batch"]) == len(posts)
    assert [ti["map_index"] for ti in by_task["wait_for_callbacks"]] == [-1]
    assert {ti["state"] for ti in tis} == {"success"}, stack.explain(run_id)

    # The sensor really waited in the triggerer, started there and ended there: its trigger
    # recorded every batch and fired, and no worker ran it (no task log).
    # (The triggerer writes each trigger's log next to its task's, as *.log.trigger.<job>.log.)
    run_logs = stack.logs / "tasks" / "dag_id=lead_load" / f"run_id={run_id}"
    folder = run_logs / "task_id=wait_for_callbacks"
    trigger_logs = [p.read_text() for p in folder.glob("attempt=*.log.trigger.*.log")]
    assert trigger_logs, f"no trigger ran for {folder}"
    assert any(
        f"{len(posts)} of {len(posts)} batches recorded here" in t and "Trigger fired event" in t
        for t in trigger_logs
    ), trigger_logs[-1][-3000:]
    assert not [p for p in folder.glob("attempt=*.log") if ".trigger." not in p.name]

    # The posts started and ended in the triggerer (start_from_trigger): each post_batch has a
    # trigger log that shows the post, and no task log, which only a worker would write.
    for ti in by_task["post_batch"]:
        folder = run_logs / "task_id=post_batch" / f"map_index={ti['map_index']}"
        trigger_logs = [p.read_text() for p in folder.glob("attempt=*.log.trigger.*.log")]
        assert any("rows posted (leads " in t for t in trigger_logs), folder
        task_logs = [p for p in folder.glob("attempt=*.log") if ".trigger." not in p.name]
        assert not task_logs, f"a worker ran {folder}"

    # No log of the run (task logs and trigger logs) holds the token or a lead's phone number.
    logs = "\n".join(p.read_text(errors="replace") for p in run_logs.rglob("*.log*"))
    assert stack.simulator.token not in logs
    assert not leaked_phones(logs, leads)

    # Every other task ran on the Celery worker, not in the scheduler.
    worker = stack.log("celery-worker")
    received = len(re.findall(r"Task \S*execute_workload\[[0-9a-f-]+\] received", worker))
    assert received >= len(tis) - len(by_task["post_batch"]) - 1, worker[-3000:]


def test_a_three_day_backfill_through_the_rest_api_loads_each_day_once(airflow_stack):
    stack = airflow_stack
    engine = create_engine(stack.warehouse_url)
    days = []
    for day in range(BACKFILL_DAYS):
        start = BACKFILL_FIRST + timedelta(days=day)
        leads = generate(
            150 + 50 * day,
            seed=100 + day,
            start=start,
            end=start + timedelta(days=1),
            id_prefix=f"B{day}-",
        )
        days.append((start, leads))
        write_leads(engine, leads.frame)
    # Leads just outside the backfilled days must stay untouched.
    outside = [
        generate(
            40,
            seed=200,
            start=BACKFILL_FIRST - timedelta(hours=6),
            end=BACKFILL_FIRST,
            id_prefix="O1-",
        ),
        generate(
            40,
            seed=201,
            start=BACKFILL_FIRST + timedelta(days=BACKFILL_DAYS),
            end=BACKFILL_FIRST + timedelta(days=BACKFILL_DAYS, hours=6),
            id_prefix="O2-",
        ),
    ]
    for leads in outside:
        write_leads(engine, leads.frame)
    engine.dispose()
    all_phones = [p for _, leads in days for p in leads.valid_phones]
    assert len(all_phones) == len(set(all_phones)), "synthetic days must not share phones"
    task_id = stack.simulator.create_task(stack.user_id)

    days_range = {
        "dag_id": "lead_load",
        "from_date": BACKFILL_FIRST.isoformat(),
        "to_date": (BACKFILL_FIRST + timedelta(days=BACKFILL_DAYS - 1)).isoformat(),
        "max_active_runs": 1,
        "dag_run_conf": {"api_task_id": task_id},
    }
    stack.backfill(**days_range, reprocess_behavior="none")
    runs = stack.wait_for_runs(timeout=900)
    backfilled = _backfill_runs_of(runs, task_id)  # other tests of the stack backfill too
    assert len(backfilled) == BACKFILL_DAYS, runs
    for run in backfilled:
        assert run["state"] == "success", stack.explain(run["dag_run_id"])

    # Each run's data interval is one of the three days, and each day was loaded once.
    windows = sorted(
        (
            datetime.fromisoformat(r["data_interval_start"]),
            datetime.fromisoformat(r["data_interval_end"]),
        )
        for r in backfilled
    )
    assert windows == [(start, start + timedelta(days=1)) for start, _ in days]
    new_phones = _task_phones(stack, task_id)
    assert len(new_phones) == len(set(new_phones))
    assert set(new_phones) == set(all_phones)
    for leads in outside:
        assert not set(leads.valid_phones) & set(new_phones)
    # The ledger's run log shows one run per day with that day's extracted count.
    logged = {
        r["window_start"]: json.loads(r["summary"])["extracted"]
        for r in _rows(
            stack,
            "SELECT window_start, summary FROM lead_load_runs "
            "WHERE run_id LIKE 'backfill%' AND api_task_id = :t",
            t=task_id,
        )
    }
    assert sorted(logged.values()) == sorted(len(leads.frame) for _, leads in days), logged

    # Backfilling the same days again (reprocessing completed runs) sends nothing new.
    posts_after = len(_posts(stack, task_id))
    assert posts_after == sum(-(-len(lv.valid_phones) // 200) for _, lv in days)
    finished_sql = (
        "SELECT run_id, finished_at FROM lead_load_runs "
        "WHERE run_id LIKE 'backfill%' AND api_task_id = :t"
    )
    first_finish = {r["run_id"]: r["finished_at"] for r in _rows(stack, finished_sql, t=task_id)}
    stack.backfill(**days_range, reprocess_behavior="completed")
    rerun = _backfill_runs_of(stack.wait_for_runs(timeout=900), task_id)
    assert len(rerun) == BACKFILL_DAYS and {r["state"] for r in rerun} == {"success"}
    second_finish = {r["run_id"]: r["finished_at"] for r in _rows(stack, finished_sql, t=task_id)}
    assert all(second_finish[run] > first_finish[run] for run in first_finish)  # really re-ran
    assert len(_posts(stack, task_id)) == posts_after
    assert sorted(_task_phones(stack, task_id)) == sorted(new_phones)


def test_a_post_that_fails_in_the_triggerer_fails_its_try_on_a_worker_and_the_retry_loads_once(
    airflow_stack,
):
    stack = airflow_stack
    window = (datetime(2026, 10, 8, tzinfo=UTC), datetime(2026, 10, 9, tzinfo=UTC))
    engine = create_engine(stack.warehouse_url)
    leads = generate(500, seed=23, start=window[0], end=window[1], id_prefix="F")
    write_leads(engine, leads.frame)
    engine.dispose()
    task_id = stack.simulator.create_task(stack.user_id)

    # The platform refuses every request with a 429 until a post_batch try has failed (a
    # certain refusal: a 5xx would leave the batch maybe accepted, never posted again).
    stack.simulator.set_faults(rate_429=1.0, retry_after=0)
    try:
        run_id = stack.trigger(
            {
                "window_start": window[0].isoformat(),
                "window_end": window[1].isoformat(),
                "api_task_id": task_id,
                "batch_size": 100,
            }
        )
        deadline = time.monotonic() + 300
        while not any(
            ti["task_id"] == "post_batch" and ti["try_number"] >= 2
            for ti in stack.task_instances(run_id)
        ):
            assert time.monotonic() < deadline, stack.explain(run_id)
            stack.check_alive()
            time.sleep(1)
    finally:
        stack.simulator.set_faults()
    (run,) = stack.wait_for_runs([run_id], timeout=600)
    assert run["state"] == "success", stack.explain(run_id)

    # Exactly once, each phone in one accepted post.
    phones = _task_phones(stack, task_id)
    assert len(phones) == len(set(phones))
    assert set(phones) == set(leads.valid_phones)
    assert any(e["status"] == 429 for e in _posts(stack, task_id))
    accepted = [
        row["phone"]
        for e in _posts(stack, task_id)
        if e["status"] == 200
        for row in e["body"]["data"]
    ]
    assert sorted(accepted) == sorted(leads.valid_phones)

    # A failed try went through a worker, which failed it with the platform's error; the
    # retry started in the triggerer again and posted there.
    run_logs = stack.logs / "tasks" / "dag_id=lead_load" / f"run_id={run_id}"
    retried = [
        ti
        for ti in stack.task_instances(run_id)
        if ti["task_id"] == "post_batch" and ti["try_number"] >= 2
    ]
    assert retried
    for ti in retried:
        folder = run_logs / "task_id=post_batch" / f"map_index={ti['map_index']}"
        first_try = (folder / "attempt=1.log").read_text()
        assert "HTTP 429" in first_try
        last = ti["try_number"]
        last_trigger = "\n".join(
            p.read_text() for p in folder.glob(f"attempt={last}.log.trigger.*")
        )
        assert "rows posted (leads " in last_trigger


def _wait_for_task(stack, run_id: str, task_id: str, states: set[str], timeout: float = 300):
    deadline = time.monotonic() + timeout
    while not any(
        ti["task_id"] == task_id and ti["state"] in states for ti in stack.task_instances(run_id)
    ):
        assert time.monotonic() < deadline, f"{task_id} of {run_id} not {states} in {timeout} s"
        stack.check_alive()
        time.sleep(1)


def test_a_scheduled_run_created_during_a_backfill_of_the_same_days_loads_each_lead_once(
    airflow_stack,
):
    """The backfill (POST /api/v2/backfills) loads three days, one run at a time. When its
    first run stages its leads, a run for a window overlapping two of those days is created
    through the REST API the way the scheduler creates a scheduled run: with a logical date
    and a one-day data interval and no window params, so the DAG loads its data interval into
    the same calling task. (The scheduler cannot be made to create it on its own: catchup is
    off, so it only ever creates the latest interval. Airflow allows one run per logical date,
    so the stand-in's interval is the backfill's days shifted by 12 hours, [day 1 12:00,
    day 2 12:00) UTC; and the days lie after the DAG's start_date, or Airflow would create
    the run without tasks.) Backfill runs do not count against the DAG's max_active_runs, so
    the stand-in runs alongside them, a step or two behind the first one: it plans its
    batches while that one still has staged rows. Answers to posts come 3 s late, so posts
    stay unfinished for a while.

    Every run succeeds, each valid phone of the three days reaches the task in exactly one
    post, no run sends leads outside its window (rows a live run staged are that run's), and
    the ledger agrees with the platform.
    """
    stack = airflow_stack
    overlap = (OVERLAP_FIRST + HALF, OVERLAP_FIRST + DAY + HALF)
    # Each half day is generated on its own, so every duplicate pair lies within one half and
    # each run's window, whole days or the shifted one, sees both leads of a pair.
    halves = [
        generate(
            200,
            seed=300 + half,
            start=OVERLAP_FIRST + half * HALF,
            end=OVERLAP_FIRST + (half + 1) * HALF,
            id_prefix=f"V{half}-",
        )
        for half in range(6)
    ]
    engine = create_engine(stack.warehouse_url)
    for leads in halves:
        write_leads(engine, leads.frame)
    engine.dispose()
    valid = [phone for leads in halves for phone in leads.valid_phones]
    assert len(valid) == len(set(valid)), "synthetic halves must not share phones"
    rejected = set().union(*(leads.invalid_leads | leads.duplicate_leads for leads in halves))
    task_id = stack.simulator.create_task(stack.user_id)
    conf = {"api_task_id": task_id, "batch_size": 25}

    stack.simulator.set_faults(lost_answer_rate=1.0, lost_answer_delay=3)
    try:
        stack.start_backfill(
            dag_id="lead_load",
            from_date=OVERLAP_FIRST.isoformat(),
            to_date=(OVERLAP_FIRST + 2 * DAY).isoformat(),
            max_active_runs=1,
            dag_run_conf=conf,
            reprocess_behavior="none",
        )
        days = {OVERLAP_FIRST + d * DAY for d in range(3)}
        backfilled = [
            r
            for r in stack.dag_runs()
            if r["run_type"] == "backfill" and datetime.fromisoformat(r["logical_date"]) in days
        ]
        assert len(backfilled) == 3, backfilled
        first = min(backfilled, key=lambda r: r["logical_date"])["dag_run_id"]
        _wait_for_task(stack, first, "extract_and_stage", {"running", "success"})
        scheduled = stack.trigger(
            conf,
            logical_date=overlap[0].isoformat(),
            data_interval_start=overlap[0].isoformat(),
            data_interval_end=overlap[1].isoformat(),
        )
        runs = stack.wait_for_runs([r["dag_run_id"] for r in backfilled] + [scheduled], timeout=900)
    finally:
        stack.simulator.set_faults()

    # Each valid phone of the three days went out in exactly one accepted post.
    sent = Counter(
        row["phone"]
        for p in _posts(stack, task_id)
        if p["status"] == 200
        for row in p["body"]["data"]
    )
    twice = sorted(f"{phone[:3]}****{phone[-4:]}" for phone, n in sent.items() if n > 1)
    assert not twice, f"{len(twice)} phones posted more than once: {twice[:5]}..."
    assert set(sent) == set(valid)

    for run in runs:
        assert run["state"] == "success", stack.explain(run["dag_run_id"])
    # The stand-in loaded its own window, while a backfill run was running.
    span = {
        r["dag_run_id"]: [datetime.fromisoformat(r[k]) for k in ("start_date", "end_date")]
        for r in runs
    }
    mine = span.pop(scheduled)
    assert any(start < mine[1] and mine[0] < end for start, end in span.values()), runs
    (run,) = [r for r in runs if r["dag_run_id"] == scheduled]
    interval = tuple(
        datetime.fromisoformat(run[k]) for k in ("data_interval_start", "data_interval_end")
    )
    assert interval == overlap
    (summary,) = _rows(stack, "SELECT summary FROM lead_load_runs WHERE run_id = :r", r=scheduled)
    extracted = json.loads(summary["summary"])["extracted"]
    assert extracted == len(halves[1].frame) + len(halves[2].frame)

    # The task holds each of them once; the ledger has one settled row per lead, and its
    # imported rows are exactly the task's numbers.
    phones = _task_phones(stack, task_id)
    assert sorted(phones) == sorted(valid)
    rows = _rows(
        stack,
        "SELECT lead_id, phone, status, run_id FROM lead_load_ledger WHERE api_task_id = :t",
        t=task_id,
    )
    assert Counter(row["status"] for row in rows) == {
        "imported": len(valid),
        "rejected": len(rejected),
    }
    assert {row["phone"] for row in rows if row["status"] == "imported"} == set(phones)
    assert {row["lead_id"] for row in rows if row["status"] == "rejected"} == rejected

    # No run sent leads outside its window: none took over rows a live run had staged.
    halves_of = {scheduled: {1, 2}}
    for run in backfilled:
        day = (datetime.fromisoformat(run["logical_date"]) - OVERLAP_FIRST) // DAY
        halves_of[run["dag_run_id"]] = {2 * day, 2 * day + 1}
    strays = Counter(
        row["run_id"]
        for row in rows
        if row["status"] == "imported"
        and int(row["lead_id"][1]) not in halves_of.get(row["run_id"], ())
    )
    assert not strays, f"leads posted by a run whose window does not hold them: {strays}"
