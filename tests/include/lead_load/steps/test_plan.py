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
