"""The landing check's rules: ledger rows and the task's phones in, disagreements out."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from lead_load.core.landing_rules import (
    ACTIVE,
    CHANGED,
    REASON_ABSENT,
    REASON_FOUND,
    Kind,
    LandingReport,
    Row,
    compare,
    disagreement,
    judge,
)
from lead_load.core.ledger_rules import ACTIVE_STATUSES, Status

READ_AT = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
BEFORE = READ_AT - timedelta(minutes=5)


def row(lead: str, status: Status, phone: str = "13900000001", at=BEFORE) -> Row:
    return Row("task", lead, phone, status.value, at)


def test_active_statuses_match_the_ledgers_unique_index():
    assert set(ACTIVE) == set(ACTIVE_STATUSES)


@pytest.mark.parametrize(
    ("status", "present", "kind"),
    [
        (Status.IMPORTED, True, None),
        (Status.IMPORTED, False, Kind.IMPORTED_BUT_ABSENT),
        (Status.SUBMITTED, True, None),  # its callback will say so
        (Status.SUBMITTED, False, Kind.SUBMITTED_BUT_ABSENT),
        (Status.NOT_IMPORTED, True, Kind.NOT_IMPORTED_BUT_PRESENT),
        (Status.NOT_IMPORTED, False, None),
        (Status.STAGED, True, Kind.IN_FLIGHT_BUT_PRESENT),
        (Status.STAGED, False, None),
        (Status.SENDING, True, Kind.IN_FLIGHT_BUT_PRESENT),
        (Status.SENDING, False, None),
        (Status.REJECTED, True, None),
        (Status.REJECTED, False, None),
    ],
)
def test_each_status_against_presence_in_the_task(status, present, kind):
    assert disagreement(status.value, present) == kind


def test_compare_returns_only_the_rows_that_disagree():
    rows = [
        row("a", Status.IMPORTED, "13900000001"),
        row("b", Status.IMPORTED, "13900000002"),
        row("c", Status.NOT_IMPORTED, "13900000003"),
    ]
    found = list(compare(rows, {"13900000001", "13900000003"}))
    assert found == [(rows[1], Kind.IMPORTED_BUT_ABSENT), (rows[2], Kind.NOT_IMPORTED_BUT_PRESENT)]


def test_a_number_found_in_the_task_is_repaired_to_imported():
    finding = judge(row("a", Status.NOT_IMPORTED), Kind.NOT_IMPORTED_BUT_PRESENT, [], READ_AT)
    assert finding.repair.status == Status.IMPORTED
    assert finding.repair.reason == REASON_FOUND


def test_a_refusal_explained_by_another_imported_lead_is_no_disagreement():
    others = [row("b", Status.IMPORTED)]
    assert (
        judge(row("a", Status.NOT_IMPORTED), Kind.NOT_IMPORTED_BUT_PRESENT, others, READ_AT) is None
    )


def test_a_number_found_in_the_task_is_not_repaired_over_another_active_lead():
    others = [row("b", Status.STAGED)]
    finding = judge(row("a", Status.NOT_IMPORTED), Kind.NOT_IMPORTED_BUT_PRESENT, others, READ_AT)
    assert finding.repair is None
    assert "held by lead b (staged)" in finding.note


def test_two_refused_leads_with_the_found_number_are_not_guessed_between():
    others = [row("b", Status.NOT_IMPORTED)]
    finding = judge(row("a", Status.NOT_IMPORTED), Kind.NOT_IMPORTED_BUT_PRESENT, others, READ_AT)
    assert finding.repair is None
    assert "which lead the task holds is not known" in finding.note


def test_an_imported_number_missing_from_the_task_is_staged_again():
    finding = judge(row("a", Status.IMPORTED), Kind.IMPORTED_BUT_ABSENT, [], READ_AT)
    assert finding.repair.status == Status.STAGED
    assert finding.repair.reason == REASON_ABSENT
    assert finding.repair.clear_batch


@pytest.mark.parametrize("at", [READ_AT, READ_AT + timedelta(seconds=1), None])
def test_a_row_imported_after_the_list_was_read_is_not_judged_by_it(at):
    finding = judge(row("a", Status.IMPORTED, at=at), Kind.IMPORTED_BUT_ABSENT, [], READ_AT)
    assert finding.repair is None
    assert "check again" in finding.note


def test_a_naive_timestamp_is_read_as_utc():
    naive = BEFORE.replace(tzinfo=None)
    finding = judge(row("a", Status.IMPORTED, at=naive), Kind.IMPORTED_BUT_ABSENT, [], READ_AT)
    assert finding.repair is not None


@pytest.mark.parametrize(
    ("status", "kind", "note"),
    [
        (Status.SUBMITTED, Kind.SUBMITTED_BUT_ABSENT, "awaiting the platform"),
        (Status.STAGED, Kind.IN_FLIGHT_BUT_PRESENT, "staged but already in the task"),
        (Status.SENDING, Kind.IN_FLIGHT_BUT_PRESENT, "sending but already in the task"),
    ],
)
def test_what_the_list_cannot_prove_is_only_reported(status, kind, note):
    finding = judge(row("a", status), kind, [], READ_AT)
    assert finding.repair is None
    assert note in finding.note


def test_report_counts_and_masked_lines():
    repaired = judge(
        row("a", Status.IMPORTED, "13900000001"), Kind.IMPORTED_BUT_ABSENT, [], READ_AT
    )
    pending = judge(
        row("b", Status.NOT_IMPORTED, "13900000002"), Kind.NOT_IMPORTED_BUT_PRESENT, [], READ_AT
    )
    waiting = judge(
        row("c", Status.SUBMITTED, "13900000003"), Kind.SUBMITTED_BUT_ABSENT, [], READ_AT
    )
    changed = judge(row("d", Status.IMPORTED, "13900000004"), Kind.IMPORTED_BUT_ABSENT, [], READ_AT)
    report = LandingReport(["run r"], 10, 7, [repaired], [pending], [waiting], [changed])
    assert report.counts() == {
        "checked": 10,
        "in_task": 7,
        "agree": 6,
        "repaired": {"imported_but_absent": 1},
        "unrepaired": {
            CHANGED: 1,
            "not_imported_but_present": 1,
            "submitted_but_absent": 1,
        },
    }
    assert not report.ok
    lines = report.unrepaired_lines()
    assert len(lines) == 3
    assert lines[0].startswith("not_imported_but_present: lead b, phone 139****0002")
    assert "awaiting the platform" in lines[1]
    assert "changed during the check" in lines[2]
    assert report.repaired_lines() == [
        "imported_but_absent: lead a, phone 139****0001, imported: set to staged"
    ]
    text = "\n".join(lines + report.repaired_lines() + [str(report.items())])
    assert "1390000000" not in text
    assert report.unrepaired_lines(limit=1)[1:] == ["... and 2 more"]


def test_a_clean_report_is_ok():
    report = LandingReport(["run r"], 3, 3)
    assert report.ok
    assert report.counts() == {
        "checked": 3,
        "in_task": 3,
        "agree": 3,
        "repaired": {},
        "unrepaired": {},
    }
