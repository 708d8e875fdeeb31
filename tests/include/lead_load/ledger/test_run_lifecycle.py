"""A run's row on every ledger database: started (again, for a retry), live until it ends,
and what its batches read of it."""

from __future__ import annotations

import json

from sqlalchemy import select

from lead_load.ledger import planning, run_lifecycle, schema, staging
from tests.include.lead_load.ledger.lifecycle_samples import TASK, WINDOW, five_leads, staged
from tests.include.lead_load.samples import candidate


def test_the_run_context_is_its_settings_and_its_latest_plans_first_batch(engine):
    settings = {"run_id": "run-1", "api_task_id": TASK, "sub_user_id": "子账号-1"}
    run_lifecycle.start_run(engine, "run-1", TASK, WINDOW, settings=settings)
    assert run_lifecycle.run_context(engine, "run-1") is None  # not planned yet
    staging.add_candidates(engine, "run-1", [candidate(k, v) for k, v in five_leads().items()])
    staging.stage_candidates(engine, "run-1", TASK)
    first_plan = planning.plan(engine, "run-1", TASK, 2).batches

    context = run_lifecycle.run_context(engine, "run-1")

    assert context == run_lifecycle.RunContext(settings, first_plan[0]["batch_no"])
    # A cleared re-run plans on with new numbers: its tasks find the new plan.
    staging.add_candidates(engine, "run-1", [candidate("l9", "13900000009")])
    staging.stage_candidates(engine, "run-1", TASK)
    (again,) = planning.plan(engine, "run-1", TASK, 2).batches
    assert run_lifecycle.run_context(engine, "run-1").first_batch_no == again["batch_no"] > 2
    assert run_lifecycle.run_context(engine, "run-unknown") is None


def run_row(engine, run_id: str):
    with engine.connect() as conn:
        return conn.execute(select(schema.runs).where(schema.runs.c.run_id == run_id)).one()


def test_a_retry_starts_its_run_again_on_the_same_row(engine):
    run_lifecycle.start_run(engine, "run-1", TASK, WINDOW)
    first = run_row(engine, "run-1")
    run_lifecycle.finish_run(engine, "run-1", TASK, WINDOW, {}, failed=True)

    run_lifecycle.start_run(engine, "run-1", TASK, WINDOW, settings={"batch_size": 2})

    again = run_row(engine, "run-1")
    assert (again.state, again.started_at) == ("running", first.started_at)
    assert json.loads(again.settings) == {"batch_size": 2}


def test_a_run_is_live_until_it_ends_and_then_keeps_no_counts(engine):
    for run_id in ("run-a", "run-b"):
        run_lifecycle.start_run(engine, run_id, TASK, WINDOW)
    assert run_lifecycle.live_runs(engine, TASK, "run-b") == ["run-a"]
    assert run_lifecycle.record_extract(engine, "run-a", {"extracted": 5})
    assert json.loads(run_row(engine, "run-a").summary) == {"extract_counts": {"extracted": 5}}

    assert run_lifecycle.end_run(engine, "run-a")
    assert not run_lifecycle.end_run(engine, "run-a")  # a second copy changes nothing
    assert run_row(engine, "run-a").state == "failed"
    assert run_lifecycle.live_runs(engine, TASK, "run-b") == []
    assert not run_lifecycle.record_extract(engine, "run-a", {"extracted": 6})
    assert json.loads(run_row(engine, "run-a").summary) == {"extract_counts": {"extracted": 5}}


def test_a_run_whose_first_steps_never_reached_the_ledger_is_finished_all_the_same(engine):
    run_lifecycle.finish_run(engine, "run-x", TASK, WINDOW, {"problems": ["x"]}, failed=True)

    row = run_row(engine, "run-x")
    assert (row.state, row.api_task_id, row.window_start) == ("failed", TASK, WINDOW[0])
    assert json.loads(row.summary) == {"problems": ["x"]}
    assert row.finished_at is not None and row.lease_expires_at is None


def test_the_latest_plan_lists_its_batches_with_their_status(engine):
    assert run_lifecycle.latest_plan(engine, "run-1") == []
    staged(engine, "run-1", five_leads())
    planning.plan(engine, "run-1", TASK, batch_size=2)
    assert run_lifecycle.latest_plan(engine, "run-1") == [
        {"batch_no": 0, "rows": 2, "status": "planned", "unique_id": None},
        {"batch_no": 1, "rows": 2, "status": "planned", "unique_id": None},
        {"batch_no": 2, "rows": 1, "status": "planned", "unique_id": None},
    ]
