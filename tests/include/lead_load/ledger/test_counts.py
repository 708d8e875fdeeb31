"""What a run summary counts, read from a real ledger (SQLite file, and PostgreSQL)."""

from __future__ import annotations

from lead_load.ledger import planning, run_lifecycle, staging
from lead_load.ledger.counts import batch_counts, lead_id_range, reject_reasons, status_counts
from tests.include.lead_load.samples import TASK, candidate


def test_counts_of_one_run_leave_other_runs_and_tasks_out(engine):
    run_lifecycle.start_run(engine, "run-1", TASK, ("a", "b"))
    staging.add_candidates(
        engine, "run-1", [candidate(f"l{i}", f"1390000000{i}") for i in range(5)]
    )
    staging.add_rejects(
        engine,
        "run-1",
        TASK,
        [
            {"lead_id": "x", "raw_phone": "12", "reason": "not_a_phone"},
            {"lead_id": "y", "raw_phone": "", "reason": "missing_phone"},
            {"lead_id": "z", "raw_phone": "34", "reason": "not_a_phone"},
        ],
    )
    staging.stage_candidates(engine, "run-1", TASK)
    # Another run, on another task, must not show up in run-1's counts.
    staging.add_candidates(engine, "run-2", [candidate("other", "13800000009")])
    staging.stage_candidates(engine, "run-2", "task-2")
    planning.plan(engine, "run-1", TASK, 2)

    assert status_counts(engine, TASK, "run-1") == {"staged": 5, "rejected": 3}
    assert reject_reasons(engine, "run-1") == {"not_a_phone": 2, "missing_phone": 1}
    assert batch_counts(engine, "run-1") == {"planned": 3}
    assert batch_counts(engine, "run-2") == {}


def test_a_batchs_lead_id_range_names_its_first_and_last_lead(engine):
    staging.add_candidates(
        engine, "run-1", [candidate(f"l{i}", f"1390000000{i}") for i in range(5)]
    )
    staging.stage_candidates(engine, "run-1", TASK)
    planning.plan(engine, "run-1", TASK, 2)

    assert lead_id_range(engine, "run-1", 0) == ("l0", "l1", 2)
    assert lead_id_range(engine, "run-1", 2) == ("l4", "l4", 1)
    assert lead_id_range(engine, "run-1", 3) is None
