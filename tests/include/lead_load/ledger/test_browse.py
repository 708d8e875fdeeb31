"""What the ledger shows people, after two real loads into a simulator task (browse_samples),
on every ledger database."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import event, insert

from lead_load.core.reject_reasons import NO_REASON, RejectKind, RejectReason, parse
from lead_load.ledger import browse, counts, schema
from tests.full_numbers import full_numbers_in
from tests.include.lead_load.browse_samples import PHONES, ledger_rows, load_two_runs


@pytest.fixture
def loaded(engine, platform):
    return load_two_runs(engine, platform)


def test_loads_come_newest_first_with_their_reports_figures(engine, loaded):
    page = browse.list_loads(engine)
    assert [load.run_id for load in page.items] == ["run-1", "run-0"]
    run1, run0 = page.items
    # 9 rows extracted: a-e sent (e refused: already in the task), f g i invalid, h a's duplicate
    assert run1.reported
    assert (run1.extracted, run1.imported, run1.figures["not_imported"]) == (9, 6, 1)
    figures = run1.figures
    assert (figures["invalid"], figures["duplicates_in_run"], figures["carried_over"]) == (3, 1, 2)
    report = counts.recorded_summary(engine, "run-1")
    assert figures == {key: report[key] for key in figures}
    assert run1.state == "finished" and not run1.running
    assert run1.api_task_id == loaded.task_id
    assert run1.window_start == "2026-11-24T00:00:00+00:00"
    assert run1.started_at <= run1.finished_at and run1.started_at.utcoffset().total_seconds() == 0
    # run-0 died before its report: no extract count, its rows went to run-1
    assert (run0.state, run0.extracted, run0.imported) == ("failed", None, 0)
    assert not run0.reported
    assert browse.get_load(engine, "run-1") == run1
    assert browse.get_load(engine, "no-such-run") is None


def test_loads_are_paged(engine, loaded):
    first = browse.list_loads(engine, page=1, per_page=1)
    second = browse.list_loads(engine, page=2, per_page=1)
    assert (first.total, first.pages) == (2, 2)
    assert [first.items[0].run_id, second.items[0].run_id] == ["run-1", "run-0"]
    assert browse.list_loads(engine, page=3, per_page=1).items == []


def test_loads_are_filtered_in_sql_by_state_calling_task_and_window(engine, loaded):
    def ids(**filters) -> list[str]:
        return [load.run_id for load in browse.list_loads(engine, **filters).items]

    assert ids(state="failed") == ["run-0"]
    assert ids(state="finished") == ["run-1"]
    assert ids(state="running") == []
    assert ids(api_task_id=loaded.task_id) == ["run-1", "run-0"]
    assert ids(api_task_id=loaded.task_id[:-1]) == []  # exact, not a prefix
    # run-0 loaded [11-23, 11-24), run-1 [11-24, 11-25): a window touching a day's bound
    # only at its end does not overlap it.
    day = date.fromisoformat
    assert ids(window_from=day("2026-11-24")) == ["run-1"]
    assert ids(window_to=day("2026-11-23")) == ["run-0"]
    assert ids(window_from=day("2026-11-23"), window_to=day("2026-11-23")) == ["run-0"]
    assert ids(window_from=day("2026-11-23"), window_to=day("2026-11-24")) == ["run-1", "run-0"]
    assert ids(window_from=day("2026-11-25")) == []
    assert ids(window_to=day("2026-11-22")) == []
    assert ids(state="finished", window_to=day("2026-11-23")) == []
    paged = browse.list_loads(engine, page=2, per_page=1, window_from=day("2026-11-23"))
    assert (paged.total, paged.pages, [load.run_id for load in paged.items]) == (2, 2, ["run-0"])
    assert browse.calling_tasks(engine) == [loaded.task_id]


def test_a_window_filter_compares_what_the_project_writes_to_the_microsecond(engine, loaded):
    """Windows are stored as ``datetime.isoformat()`` in UTC, with ``.ffffff`` when they have
    microseconds: half a second past a day's start is inside that day."""
    half = timedelta(milliseconds=500)
    windows = {
        # ends half a second into 11-28: overlaps 11-28
        "run-a": (
            datetime(2026, 11, 27, 12, tzinfo=UTC),
            datetime(2026, 11, 28, tzinfo=UTC) + half,
        ),
        # starts half a second before 11-30: overlaps 11-29; ends at 11-30 00:00: not 11-30
        "run-b": (datetime(2026, 11, 30, tzinfo=UTC) - half, datetime(2026, 11, 30, tzinfo=UTC)),
    }
    with engine.begin() as conn:
        conn.execute(
            insert(schema.runs),
            [
                {
                    "run_id": run_id,
                    "api_task_id": loaded.task_id,
                    "window_start": start.isoformat(),
                    "window_end": end.isoformat(),
                    "state": "finished",
                    "started_at": end,
                }
                for run_id, (start, end) in windows.items()
            ],
        )

    def ids(first: str | None, last: str | None) -> list[str]:
        days = {"window_from": first, "window_to": last}
        found = browse.list_loads(
            engine, **{key: date.fromisoformat(v) if v else None for key, v in days.items()}
        )
        return sorted(load.run_id for load in found.items if load.run_id in windows)

    assert ids("2026-11-28", "2026-11-28") == ["run-a"]
    assert ids("2026-11-27", None) == ["run-a", "run-b"]
    assert ids(None, "2026-11-27") == ["run-a"]
    assert ids("2026-11-29", "2026-11-29") == ["run-b"]
    assert ids("2026-11-30", None) == []


def test_batches_count_their_rows_outcomes(engine, loaded):
    found = browse.batches_of(engine, "run-1")
    assert [b.batch_no for b in found] == [0, 1, 2, 3]  # batches of 2, 7 rows planned
    assert [b.rows for b in found] == [2, 2, 2, 1]
    assert all(b.status == "processed" and b.unique_id for b in found)
    assert sum(b.imported for b in found) == 6 and sum(b.not_imported for b in found) == 1
    by_row = {r["lead_id"]: r for r in ledger_rows(engine) if r["run_id"] == "run-1"}
    refused = next(b for b in found if b.not_imported)
    assert by_row["e"]["batch_no"] == refused.batch_no
    assert browse.get_batch(engine, "run-1", refused.batch_no) == refused
    assert browse.get_batch(engine, "run-1", 99) is None

    rows = browse.batch_rows(engine, "run-1", refused.batch_no)
    assert rows.total == refused.rows
    e = next(r for r in rows.items if r.lead_id == "e")
    assert (e.status, e.phone, e.unique_id) == ("not_imported", "139****0005", refused.unique_id)
    assert browse.batch_rows(engine, "run-1", refused.batch_no, page=2, per_page=1).items


def test_rejects_are_grouped_by_kind_and_paged(engine, loaded):
    assert browse.reject_kinds(engine, "run-1") == {
        "not_mobile": 2,
        "duplicate_in_run": 1,
        "missing_phone": 1,
    }
    not_mobile = browse.rejects_of(engine, "run-1", kind="not_mobile")
    assert [(r.lead_id, r.raw_phone) for r in not_mobile.items] == [
        ("f", "12345"),  # too short to be anyone's number
        ("g", "021*****2345"),  # its digits, masked like any phone
    ]
    duplicate = browse.rejects_of(engine, "run-1", kind="duplicate_in_run").items
    assert [(r.lead_id, r.raw_phone, r.reason) for r in duplicate] == [
        ("h", "139****0001", "duplicate_in_run (kept lead a)")  # stored normalised
    ]
    second = browse.rejects_of(engine, "run-1", page=2, per_page=3)
    assert (second.total, second.pages, [r.lead_id for r in second.items]) == (4, 2, ["i"])


def test_an_export_reads_the_rejects_a_page_per_query_in_lead_id_order(engine, loaded):
    with engine.begin() as conn:
        conn.execute(
            insert(schema.rejects),
            [_reject(f"l{n:02d}", "not_mobile", raw="139000000" + f"{n:02d}") for n in range(12)],
        )
    statements: list[str] = []
    listen = (engine, "before_cursor_execute")
    record = lambda *args: statements.append(args[2])  # noqa: E731
    event.listen(*listen, record)
    try:
        pages = browse.reject_pages(engine, "run-x", size=5)
        first = next(pages)
        assert len(statements) == 1  # one page read, the rest not yet
        rest = list(pages)
    finally:
        event.remove(*listen, record)
    assert [len(page) for page in [first, *rest]] == [5, 5, 2]
    assert [r.lead_id for page in [first, *rest] for r in page] == [f"l{n:02d}" for n in range(12)]
    assert all(r.raw_phone.startswith("139****") for r in first)
    assert len(statements) == 3  # a short last page ends it: no empty query after it
    # Of one kind; a run with none gives no page at all.
    only = browse.reject_pages(engine, "run-1", kind="not_mobile")
    assert [[(r.lead_id, r.raw_phone) for r in page] for page in only] == [
        [("f", "12345"), ("g", "021*****2345")]
    ]
    assert list(browse.reject_pages(engine, "no-such-run")) == []
    assert list(browse.reject_pages(engine, "run-x", size=6))[-1][-1].lead_id == "l11"
    assert browse.has_run(engine, "run-1") and not browse.has_run(engine, "run-x")


def test_a_reason_with_a_detail_counts_under_its_code_and_like_wildcards_are_literal(engine):
    with engine.begin() as conn:
        conn.execute(
            insert(schema.rejects),
            [
                _reject("l1", "invalid_field: name has a control character"),
                _reject("l2", "invalid_field: email has a control character"),
                _reject("l3", "invalidXfield"),
            ],
        )
    assert browse.reject_kinds(engine, "run-x") == {"invalid_field": 2, "invalidXfield": 1}
    found = browse.rejects_of(engine, "run-x", kind="invalid_field").items
    assert [r.lead_id for r in found] == ["l1", "l2"]


def test_rows_carried_over_from_a_dead_run_are_listed(engine, loaded):
    carried = browse.carried_into(engine, "run-1")
    assert [(r.lead_id, r.carried_from, r.status) for r in carried.items] == [
        ("y", "run-0", "imported"),
        ("z", "run-0", "imported"),
    ]
    assert [r.phone for r in carried.items] == ["139****0098", "139****0099"]


def test_a_lead_is_found_by_id_and_by_its_number_in_any_spelling(engine, loaded):
    by_id = browse.find_lead(engine, lead_id="h")
    assert [(r.lead_id, r.status) for r in by_id.rows] == [("h", "rejected")]
    assert [(r.run_id, r.reason) for r in by_id.rejects] == [
        ("run-1", "duplicate_in_run (kept lead a)")
    ]
    by_phone = browse.find_lead(engine, phone="+86 139-0000-0001")
    assert sorted((r.lead_id, r.status) for r in by_phone.rows) == [
        ("a", "imported"),
        ("h", "rejected"),
    ]
    assert {r.lead_id for r in by_phone.rejects} == {"h"}
    assert browse.find_lead(engine, phone="13911112222") == browse.LeadHistory([], [])
    assert browse.find_lead(engine) == browse.LeadHistory([], [])


def test_no_full_number_comes_out_of_any_query(engine, loaded):
    shown = [
        browse.list_loads(engine),
        browse.batches_of(engine, "run-1"),
        browse.rejects_of(engine, "run-1"),
        browse.carried_into(engine, "run-1"),
        browse.live_counts(engine, "run-1"),
        *(browse.batch_rows(engine, "run-1", n) for n in range(4)),
        *(browse.find_lead(engine, phone=p) for p in PHONES.values()),
    ]
    text = repr([dataclasses.asdict(v) if dataclasses.is_dataclass(v) else v for v in shown])
    assert "139****0001" in text
    assert not full_numbers_in(text)


def test_a_run_that_has_not_reported_is_counted_by_its_reports_rules(engine, loaded):
    report = counts.recorded_summary(engine, "run-1")
    with engine.begin() as conn:  # run-1 runs again, its extract's counts kept on its row
        conn.execute(
            schema.runs.update()
            .where(schema.runs.c.run_id == "run-1")
            .values(state="running", summary=json.dumps({"extract_counts": loaded.counts}))
        )
    live = browse.live_counts(engine, "run-1")
    assert live["state"] == "running" and live["reported"] is False
    assert live["figures"] == {key: report[key] for key in live["figures"]}
    assert live["batches"] == {"processed": 4}
    with engine.begin() as conn:  # before its extract has counted: those figures are unknown
        conn.execute(
            schema.runs.update().where(schema.runs.c.run_id == "run-1").values(summary=None)
        )
    figures = browse.get_load(engine, "run-1").figures
    assert figures["extracted"] is None and figures["invalid"] is None
    assert figures["imported"] == report["imported"]


@pytest.mark.parametrize("stored", ["{not json", "[1, 2]"])
def test_a_stored_report_that_cannot_be_read_is_counted_live_and_said_unreadable(
    engine, loaded, stored
):
    with engine.begin() as conn:
        conn.execute(
            schema.runs.update().where(schema.runs.c.run_id == "run-1").values(summary=stored)
        )
    found = browse.get_load(engine, "run-1")
    assert found.report_unreadable and not found.reported
    assert found.imported == 6 and found.extracted is None
    assert not browse.get_load(engine, "run-0").report_unreadable


def test_every_reason_kind_is_grouped_alike_by_the_report_and_the_page(engine, loaded):
    """The summary (counts), the run note (its invalid_by_reason) and the Lead loads page
    (browse) group every kind the same way, details or not."""
    stamp = datetime(2026, 11, 25, tzinfo=UTC)
    reasons = [
        *(str(RejectReason(kind)) for kind in RejectKind),
        str(RejectReason.invalid_field("name contains a control character (U+0007)")),
        str(RejectReason.duplicate_in_run("x")),
        str(RejectReason.phone_already_loaded("y")),
        "component_invalid: 数字 must be an integer",
        "",
    ]
    with engine.begin() as conn:
        conn.execute(
            insert(schema.rejects),
            [
                {
                    "run_id": "run-k",
                    "lead_id": f"k{i}",
                    "api_task_id": loaded.task_id,
                    "raw_phone": None,
                    "reason": reason,
                    "rejected_at": stamp,
                }
                for i, reason in enumerate(reasons)
            ],
        )
    expected = {kind.value: 1 for kind in RejectKind} | {NO_REASON: 1}
    expected |= {"invalid_field": 2, "duplicate_in_run": 2, "phone_already_loaded": 2}
    expected |= {"component_invalid": 2}
    assert counts.reject_reasons(engine, "run-k") == expected
    assert browse.reject_kinds(engine, "run-k") == expected
    for kind, n in expected.items():
        assert browse.rejects_of(engine, "run-k", kind=kind).total == n, kind
    assert [parse(reason).kind for reason in reasons[:-1]] == [
        *(kind.value for kind in RejectKind),
        "invalid_field",
        "duplicate_in_run",
        "phone_already_loaded",
        "component_invalid",
    ]
    assert all(str(parse(reason)) == reason for reason in reasons[:-1])


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        ("13900000001", "139****0001"),
        # A raw value that normalises to a mobile number shows as that number, masked.
        ("+86 139 0000 0001", "139****0001"),
        ("139-0000-0001", "139****0001"),
        ("１３９０００００００１", "139****0001"),  # full-width
        ("13900000001.0", "139****0001"),
        # Any other value with 8 digits or more: its digits only, masked alike.
        ("021-5555-12345", "021*****2345"),
        ("+1 (415) 555-0132", "141****0132"),
        ("tel 139 0000 0001 ext 5", "139*****0015"),
        ("٠١٢٣٤٥٦٧٨٩", "012***6789"),  # Arabic-Indic digits are digits too
        # Fewer than 8 digits: no phone, shown as it is.
        ("１３９", "１３９"),
        ("1234567", "1234567"),
        ("12345", "12345"),
        ("", ""),
        (None, ""),
    ],
)
def test_raw_values_are_masked_in_the_one_style_of_every_phone(raw, shown):
    assert browse.mask_raw(raw) == shown
    assert not full_numbers_in(browse.mask_raw(raw))


def _reject(lead: str, reason: str, raw: str | None = None) -> dict:
    return {
        "run_id": "run-x",
        "lead_id": lead,
        "api_task_id": "t",
        "raw_phone": raw,
        "reason": reason,
        "rejected_at": schema.now(),
        "in_ledger": False,
    }
