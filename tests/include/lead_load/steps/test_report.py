"""The run summary and its verdict (a real SQLite ledger)."""

from __future__ import annotations

import json

import pytest

from lead_load.core import run_summary
from lead_load.ledger import schema
from lead_load.steps import report
from tests.include.lead_load.samples import run_settings


def extract_counts(**overrides) -> dict[str, int]:
    """What extract_and_stage reports for the five staged leads of ``staged_ledger``."""
    return {
        "extracted": 5,
        "invalid": 0,
        "duplicates_in_run": 0,
        "staged": 5,
        "already_loaded": 0,
        "in_flight": 0,
        **overrides,
    }


def test_report_fails_above_the_reject_ratio_and_stores_the_summary(staged_ledger):
    counts = extract_counts(extracted=10, invalid=5)
    with pytest.raises(report.RunFailed, match="max_reject_ratio") as error:
        report.report(run_settings(dry_run=True, max_reject_ratio=0.2), staged_ledger, counts)
    assert error.value.note.startswith("Failed: 50.0% of the extracted rows were invalid")
    with staged_ledger.connect() as conn:
        run = conn.execute(schema.runs.select()).one()
    assert (run.run_id, run.state) == ("run-1", "failed")
    stored = json.loads(run.summary)
    assert stored["reject_ratio"] == 0.5
    assert "max_reject_ratio" in stored["problems"][0]


def test_a_dry_run_whose_planning_failed_fails(staged_ledger):
    counts = extract_counts()
    with pytest.raises(report.RunFailed, match="plan_batches did not finish"):
        report.report(run_settings(dry_run=True), staged_ledger, counts, planned=False)
    summary = report.report(run_settings(dry_run=True), staged_ledger, counts, planned=True).summary
    assert summary["staged"] == 5


def test_a_run_whose_extract_failed_is_recorded_as_failed(staged_ledger):
    with pytest.raises(report.RunFailed, match="extract step did not finish") as error:
        report.report(run_settings(), staged_ledger, None)
    assert error.value.note.startswith("Failed at extract_and_stage: the extract step")
    with staged_ledger.connect() as conn:
        run = conn.execute(schema.runs.select()).one()
    assert run.state == "failed"
    assert json.loads(run.summary)["failed_at"] == "extract_and_stage"


def test_problems_are_stored_with_phones_masked(staged_ledger):
    counts = extract_counts()
    landing = {"counts": {}, "unrepaired": ["lead l1 (13900000001): imported but absent"]}
    with pytest.raises(report.RunFailed) as error:
        report.report(run_settings(dry_run=True), staged_ledger, counts, landing)
    assert "13900000001" not in str(error.value) and "139****0001" in str(error.value)
    with staged_ledger.connect() as conn:
        stored = conn.execute(schema.runs.select()).one().summary
    assert "13900000001" not in stored and "139****0001" in stored


def test_a_clean_run_is_recorded_as_finished(staged_ledger):
    counts = extract_counts()
    result = report.report(run_settings(dry_run=True), staged_ledger, counts)
    assert "problems" not in result.summary
    assert result.note.startswith("Dry run: imported 0 of 5 extracted; invalid 0;")
    with staged_ledger.connect() as conn:
        assert conn.execute(schema.runs.select()).one().state == "finished"


def test_the_summary_is_flat_adds_up_and_is_stored_with_its_breakdown(staged_ledger):
    """The five staged leads of ``staged_ledger`` plus two invalid rows and a duplicate: the
    flat summary (the XCom) has one scalar per key, the stored row has the breakdown too."""
    from lead_load.ledger import staging

    staging.add_rejects(
        staged_ledger,
        "run-1",
        "task-1",
        [
            {"lead_id": "x1", "raw_phone": "12", "reason": "not_a_phone"},
            {"lead_id": "x2", "raw_phone": "", "reason": "missing_phone"},
            {"lead_id": "x3", "raw_phone": "139", "reason": "duplicate_in_run (kept lead l1)"},
        ],
    )
    counts = extract_counts(extracted=8, invalid=2, duplicates_in_run=1)
    result = report.report(run_settings(dry_run=True, max_reject_ratio=0.5), staged_ledger, counts)
    summary = result.summary
    assert all(not isinstance(value, dict | list) for value in summary.values()), summary
    assert (summary["invalid"], summary["duplicates_in_run"], summary["rejected"]) == (2, 1, 3)
    assert summary["extracted"] == (
        summary["invalid"]
        + summary["duplicates_in_run"]
        + summary["already_loaded"]
        + summary["in_flight"]
        + summary["suppressed"]
        + summary["staged"]
    )
    assert summary["staged"] + summary["carried_over"] == (
        summary["submitted"] + summary["not_sent"] + summary["suppressed_before_posting"]
    )
    assert result.breakdown["invalid_by_reason"] == {"missing_phone": 1, "not_a_phone": 1}
    with staged_ledger.connect() as conn:
        stored = json.loads(conn.execute(schema.runs.select()).one().summary)
    assert stored == {**summary, **result.breakdown}


def test_a_step_that_recorded_its_failure_keeps_its_words_in_the_report(staged_ledger):
    from lead_load.glue.failures import record

    settings = run_settings()
    window = (settings.window_start, settings.window_end)
    record(
        "extract_and_stage",
        "run-1",
        settings.api_task_id,
        window,
        "OperationalError: connection refused",
        lambda: staged_ledger,
    )
    with pytest.raises(report.RunFailed, match="extract_and_stage failed: OperationalError"):
        report.report(settings, staged_ledger, None)
    with staged_ledger.connect() as conn:
        run = conn.execute(schema.runs.select()).one()
    stored = json.loads(run.summary)
    assert (run.state, stored["failed_at"]) == ("failed", "extract_and_stage")
    assert stored["problems"] == ["extract_and_stage failed: OperationalError: connection refused"]

    # A planning failure's own words come first, then the report's.
    record(
        "plan_batches",
        "run-1",
        settings.api_task_id,
        window,
        "ValueError: 2000 batches",
        lambda: staged_ledger,
    )
    with pytest.raises(report.RunFailed) as error:
        report.report(settings, staged_ledger, extract_counts(), planned=False)
    assert str(error.value).startswith("plan_batches failed: ValueError: 2000 batches; ")


def _summary(not_sent: int) -> dict:
    return {"not_sent": not_sent, "awaiting_callback": 0, "reject_ratio": 0.0}


def test_batches_refused_for_good_are_reported_once_with_their_cause_not_run_again():
    refusal = "agent-api error (HTTP 404): task not found - check the api_task_id param"
    refused = [{"batch_no": n, "rows": 200, "error": refusal} for n in range(1, 14)]
    problems = report._problems(_summary(2600), run_settings(), {}, True, refused)
    assert problems == [
        "2600 staged rows of 13 batches (1, 2, 3, 4, 5 and 8 more) were refused by the "
        f"platform, which no retry changes, and none was sent: {refusal}"
    ]
    assert "clear them or run again" not in problems[0]


def test_rows_not_sent_for_another_reason_keep_the_advice_to_run_again():
    refused = [{"batch_no": 3, "rows": 10, "error": "HTTP 401 - put a valid partner token"}]
    problems = report._problems(_summary(25), run_settings(), {}, True, refused)
    assert problems[0].startswith("10 staged rows of 1 batch (3) were refused")
    assert problems[1].startswith("15 staged rows were not sent")
    assert "clear them or run again" in problems[1]


def test_suppressed_rows_are_counted_and_numbers_suppressed_after_import_are_named(
    staged_ledger, caplog, monkeypatch
):
    """One lead rejected as suppressed by staging, one taken out of its batch at the claim
    (suppressed after staging), and two numbers of the calling task the platform has from
    earlier runs that are on the list now: counted, and the latter named in a warning with
    their phones masked (the platform has no delete call)."""
    from sqlalchemy import insert

    from lead_load.ledger import batch_lifecycle, planning, settling, staging, suppressions
    from tests.include.lead_load.ledger.staging.staging_samples import ledger_row

    with staged_ledger.begin() as conn:
        conn.execute(
            insert(schema.ledger),
            [
                ledger_row("old", "13900000099", "imported"),
                ledger_row("sub", "13900000098", "submitted", unique_id="u-0"),
            ],
        )
    staging.add_rejects(
        staged_ledger,
        "run-1",
        "task-1",
        [{"lead_id": "x", "raw_phone": "139", "reason": "suppressed"}],
    )
    listed = ["13900000099", "13900000098", "13900000001"]
    suppressions.add(staged_ledger, [suppressions.Entry(phone) for phone in listed])
    planning.plan(staged_ledger, "run-1", "task-1", batch_size=5)
    claim = batch_lifecycle.claim(staged_ledger, "run-1", 0, "owner", seconds=60)
    batch_lifecycle.mark_submitted(staged_ledger, claim.lease, "u-1")
    settling.settle(staged_ledger, "u-1", {f"1390000000{i}" for i in (0, 2, 3, 4)})
    monkeypatch.setattr(report, "SUPPRESSED_AFTER_IMPORT_LISTED", 1)

    counts = extract_counts(extracted=6, suppressed=1)
    landing = {"counts": {"checked": 4, "agree": 4}}
    with caplog.at_level("WARNING", logger="lead_load.steps.report"):
        result = report.report(run_settings(), staged_ledger, counts, landing)

    summary = result.summary
    assert (summary["suppressed"], summary["staged"], summary["imported"]) == (1, 5, 4)
    assert summary["suppressed_before_posting"] == 1
    assert summary["suppressed_after_import"] == 2
    assert run_summary.broken_identities(summary) == []
    assert "problems" not in summary  # none of it fails the run
    assert result.breakdown["invalid_by_reason"] == {}
    assert "suppressed 1; suppressed before posting 1; suppressed after import" in result.note
    warning = next(r.getMessage() for r in caplog.records if "suppression list" in r.getMessage())
    assert warning.startswith(
        "2 numbers of calling task task-1 are on the suppression list but in the calling task "
        "already (imported, or submitted): lead old (139****0099, imported) and 1 more."
    )
    assert "The platform has no delete call: remove them from the calling task by hand" in warning
    assert not any(phone in caplog.text for phone in listed)
