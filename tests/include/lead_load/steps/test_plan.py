"""Planning: a run's staged rows numbered into batches (a real SQLite ledger)."""

from __future__ import annotations

import pytest

from lead_load.ledger.counts import batch_counts
from lead_load.steps import plan
from tests.include.lead_load.samples import run_settings, statuses


def test_dry_run_plans_nothing_and_leaves_the_leads_staged(staged_ledger):
    assert plan.plan(run_settings(dry_run=True), staged_ledger, max_map_length=1024) == []
    assert set(statuses(staged_ledger).values()) == {"staged"}
    assert batch_counts(staged_ledger, "run-1") == {}


def test_plan_refuses_more_batches_than_airflow_can_map(staged_ledger):
    with pytest.raises(ValueError, match="3 batches to send"):
        plan.plan(run_settings(), staged_ledger, max_map_length=2)
    assert batch_counts(staged_ledger, "run-1") == {}


def test_a_retry_after_the_plan_was_written_returns_the_same_plan(staged_ledger):
    from lead_load.ledger import batch_lifecycle, run_lifecycle

    run_lifecycle.start_run(staged_ledger, "run-1", "task-1", ("a", "b"))
    first = plan.plan(run_settings(batch_size=2), staged_ledger, max_map_length=1024)
    assert [b["rows"] for b in first] == [2, 2, 1]
    # The first try committed its plan and failed afterwards: the retry gets that plan.
    assert plan.plan(run_settings(batch_size=2), staged_ledger, max_map_length=1024) == first
    assert batch_counts(staged_ledger, "run-1") == {"planned": 3}

    # Once every batch of it was posted, a re-run with nothing new plans nothing.
    for batch in first:
        claim = batch_lifecycle.claim(staged_ledger, "run-1", batch["batch_no"], "a", 60)
        batch_lifecycle.mark_submitted(staged_ledger, claim.lease, f"u-{batch['batch_no']}")
    assert plan.plan(run_settings(batch_size=2), staged_ledger, max_map_length=1024) == []
