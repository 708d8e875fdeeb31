"""The run summary and its verdict (a real SQLite ledger)."""

from __future__ import annotations

import pytest

from lead_load.ledger import schema
from lead_load.steps import report
from tests.include.lead_load.samples import run_settings


def test_report_fails_above_the_reject_ratio_and_stores_the_summary(staged_ledger):
    counts = {
        "extracted": 10,
        "rejected": 5,
        "duplicates_in_run": 0,
        "staged": 5,
        "already_loaded": 0,
        "in_flight": 0,
    }
    with pytest.raises(report.RunFailed, match="max_reject_ratio"):
        report.report(run_settings(dry_run=True, max_reject_ratio=0.2), staged_ledger, counts)
    with staged_ledger.connect() as conn:
        assert conn.execute(schema.runs.select()).one().run_id == "run-1"


def test_a_dry_run_whose_planning_failed_fails(staged_ledger):
    counts = {
        "extracted": 5,
        "rejected": 0,
        "duplicates_in_run": 0,
        "staged": 5,
        "already_loaded": 0,
        "in_flight": 0,
    }
    with pytest.raises(report.RunFailed, match="plan_batches did not finish"):
        report.report(run_settings(dry_run=True), staged_ledger, counts, planned=False)
    summary = report.report(run_settings(dry_run=True), staged_ledger, counts, planned=True)
    assert summary["staged"] == 5
