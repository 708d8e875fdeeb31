"""The landing check's rules: ledger rows and the task's phones in, disagreements out."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from lead_load.core.landing_rules import (
    ACTIVE,
    CHANGED,
    IMPORT_MARGIN,
    REASON_ABSENT,
    REASON_FOUND,
    REASON_MAYBE_FOUND,
    Kind,
    LandingReport,
    ListRead,
    Row,
    Tally,
    compare,
    disagreement,
    judge,
    untrusted,
)
from lead_load.core.ledger_rules import ACTIVE_STATUSES, Status

READ_AT = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
READ = ListRead(READ_AT)  # unbounded
BEFORE = READ_AT - timedelta(hours=1)  # well before the read: beyond the margin


def row(
    lead: str,
    status: Status,
    phone: str = "13900000001",
    at=BEFORE,
    unique_id: str | None = "u-1",
    posted_at=None,
) -> Row:
    return Row("task", lead, phone, status.value, at, unique_id, posted_at)


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


@pytest.mark.parametrize(
    ("present", "kind"),
    [(True, Kind.MAYBE_ACCEPTED_BUT_PRESENT), (False, Kind.SUBMITTED_BUT_ABSENT)],
)
def test_a_maybe_accepted_row_against_presence_in_the_task(present, kind):
    assert disagreement(Status.SUBMITTED.value, present, maybe_accepted=True) == kind
    assert row("a", Status.SUBMITTED, unique_id=None).maybe_accepted
    assert not row("a", Status.SUBMITTED).maybe_accepted
    assert not row("a", Status.IMPORTED, unique_id=None).maybe_accepted


def test_compare_returns_only_the_rows_that_disagree():
    rows = [
        row("a", Status.IMPORTED, "13900000001"),
        row("b", Status.IMPORTED, "13900000002"),
        row("c", Status.NOT_IMPORTED, "13900000003"),
    ]
    found = list(compare(rows, {"13900000001", "13900000003"}))
    assert found == [(rows[1], Kind.IMPORTED_BUT_ABSENT), (rows[2], Kind.NOT_IMPORTED_BUT_PRESENT)]


def test_a_number_found_in_the_task_is_repaired_to_imported():
    finding = judge(row("a", Status.NOT_IMPORTED), Kind.NOT_IMPORTED_BUT_PRESENT, [], READ)
    assert finding.repair.status == Status.IMPORTED
    assert finding.repair.reason == REASON_FOUND


def test_a_refusal_explained_by_another_imported_lead_is_no_disagreement():
    others = [row("b", Status.IMPORTED)]
    assert judge(row("a", Status.NOT_IMPORTED), Kind.NOT_IMPORTED_BUT_PRESENT, others, READ) is None


def test_a_number_found_in_the_task_is_not_repaired_over_another_active_lead():
    others = [row("b", Status.STAGED)]
    finding = judge(row("a", Status.NOT_IMPORTED), Kind.NOT_IMPORTED_BUT_PRESENT, others, READ)
    assert finding.repair is None
    assert "held by lead b (staged)" in finding.note


def test_two_refused_leads_with_the_found_number_are_not_guessed_between():
    others = [row("b", Status.NOT_IMPORTED)]
    finding = judge(row("a", Status.NOT_IMPORTED), Kind.NOT_IMPORTED_BUT_PRESENT, others, READ)
    assert finding.repair is None
    assert "which lead the calling task holds is not known" in finding.note


def test_an_imported_number_missing_from_the_task_is_staged_again():
    finding = judge(row("a", Status.IMPORTED), Kind.IMPORTED_BUT_ABSENT, [], READ)
    assert finding.repair.status == Status.STAGED
    assert finding.repair.reason == REASON_ABSENT
    assert finding.repair.clear_batch


@pytest.mark.parametrize(
    ("before_the_read", "repaired"),
    [
        (IMPORT_MARGIN + timedelta(seconds=1), True),
        (IMPORT_MARGIN - timedelta(seconds=1), False),
        (timedelta(minutes=1), False),
    ],
)
def test_an_absent_row_is_staged_again_only_if_imported_a_margin_before_the_read(
    before_the_read, repaired
):
    at = READ_AT - before_the_read
    finding = judge(row("a", Status.IMPORTED, at=at), Kind.IMPORTED_BUT_ABSENT, [], READ)
    assert (finding.repair is not None) is repaired
    if not repaired:
        assert "imported less than 10 minutes before" in finding.note
        assert "check again" in finding.note


def test_a_maybe_accepted_row_found_in_the_task_is_repaired_to_imported():
    maybe = row("a", Status.SUBMITTED, unique_id=None)
    finding = judge(maybe, Kind.MAYBE_ACCEPTED_BUT_PRESENT, [], READ)
    assert finding.repair.status == Status.IMPORTED
    assert finding.repair.reason == REASON_MAYBE_FOUND
    assert not finding.repair.clear_batch


def test_a_maybe_accepted_row_absent_from_the_task_is_only_reported():
    maybe = row("a", Status.SUBMITTED, unique_id=None, at=READ_AT - timedelta(days=30))
    finding = judge(maybe, Kind.SUBMITTED_BUT_ABSENT, [], READ)
    assert finding.repair is None
    assert "maybe accepted" in finding.note and "never sent again" in finding.note


def test_a_bounded_read_covers_only_rows_posted_within_it():
    bounded = ListRead(READ_AT, start_at=READ_AT - timedelta(hours=2), end_at=READ_AT)
    assert bounded.covers(row("a", Status.IMPORTED, posted_at=READ_AT - timedelta(hours=2)))
    assert bounded.covers(row("a", Status.IMPORTED, posted_at=READ_AT - timedelta(minutes=1)))
    assert not bounded.covers(row("a", Status.IMPORTED, posted_at=READ_AT - timedelta(hours=3)))
    assert not bounded.covers(row("a", Status.IMPORTED))  # no batch: when it landed is unknown
    naive = (READ_AT - timedelta(hours=1)).replace(tzinfo=None)  # SQLite's
    assert bounded.covers(row("a", Status.IMPORTED, posted_at=naive))
    assert READ.covers(row("a", Status.IMPORTED))  # an unbounded read covers every row


def test_the_tally_leaves_out_absent_rows_a_bounded_read_could_not_include():
    bounded = ListRead(READ_AT, start_at=READ_AT - timedelta(hours=2))
    posted = READ_AT - timedelta(hours=2)
    rows = [
        row("a", Status.IMPORTED, "13900000001", posted_at=posted),  # present
        row("b", Status.IMPORTED, "13900000002", posted_at=posted),  # absent, covered
        row("c", Status.IMPORTED, "13900000003"),  # absent, no batch
        row("d", Status.IMPORTED, "13900000004", posted_at=posted - timedelta(days=2)),
        row("e", Status.IMPORTED, "13900000005", at=READ_AT, posted_at=posted),  # after read
    ]
    tally = Tally()
    suspects = tally.add(rows, {"13900000001"}, bounded)
    assert [(r.lead_id, kind) for r, kind in suspects] == [
        ("b", Kind.IMPORTED_BUT_ABSENT),
        ("e", Kind.IMPORTED_BUT_ABSENT),
    ]
    assert (tally.checked, tally.in_calling_task, tally.not_checked) == (5, 1, 2)
    # The share counts rows imported before the read that it covers: a and b.
    assert (tally.imported, tally.absent) == (2, 1)


@pytest.mark.parametrize(
    ("absent", "imported", "trusted"),
    [
        (0, 0, True),
        (2, 2, True),  # fewer than 3 rows: a few lost numbers, repaired
        (3, 60, True),  # exactly 5%
        (3, 59, False),
        (40, 40, False),  # the task recreated empty
        (50, 10_000, True),
    ],
)
def test_a_read_missing_more_than_a_small_share_is_not_trusted(absent, imported, trusted):
    reason = untrusted(absent, imported)
    assert (reason is None) is trusted
    if not trusted:
        assert f"{absent} of the {imported} imported rows" in reason


@pytest.mark.parametrize("at", [READ_AT, READ_AT + timedelta(seconds=1), None])
def test_a_row_imported_after_the_list_was_read_is_not_judged_by_it(at):
    finding = judge(row("a", Status.IMPORTED, at=at), Kind.IMPORTED_BUT_ABSENT, [], READ)
    assert finding.repair is None
    assert "check again" in finding.note


def test_a_naive_timestamp_is_read_as_utc():
    naive = BEFORE.replace(tzinfo=None)
    finding = judge(row("a", Status.IMPORTED, at=naive), Kind.IMPORTED_BUT_ABSENT, [], READ)
    assert finding.repair is not None


@pytest.mark.parametrize(
    ("status", "kind", "note"),
    [
        (Status.SUBMITTED, Kind.SUBMITTED_BUT_ABSENT, "awaiting the platform"),
        (Status.STAGED, Kind.IN_FLIGHT_BUT_PRESENT, "staged but already in the calling task"),
        (Status.SENDING, Kind.IN_FLIGHT_BUT_PRESENT, "sending but already in the calling task"),
    ],
)
def test_what_the_list_cannot_prove_is_only_reported(status, kind, note):
    finding = judge(row("a", status), kind, [], READ)
    assert finding.repair is None
    assert note in finding.note


def test_report_counts_and_masked_lines():
    repaired = judge(row("a", Status.IMPORTED, "13900000001"), Kind.IMPORTED_BUT_ABSENT, [], READ)
    pending = judge(
        row("b", Status.NOT_IMPORTED, "13900000002"), Kind.NOT_IMPORTED_BUT_PRESENT, [], READ
    )
    waiting = judge(row("c", Status.SUBMITTED, "13900000003"), Kind.SUBMITTED_BUT_ABSENT, [], READ)
    changed = judge(row("d", Status.IMPORTED, "13900000004"), Kind.IMPORTED_BUT_ABSENT, [], READ)
    report = LandingReport(["run r"], 10, 7, [repaired], [pending], [waiting], [changed], 2)
    assert report.counts() == {
        "checked": 10,
        "in_task": 7,
        "agree": 4,
        "not_checked": 2,
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
        "not_checked": 0,
        "repaired": {},
        "unrepaired": {},
    }
