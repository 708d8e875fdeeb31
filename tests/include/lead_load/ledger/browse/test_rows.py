"""A run's rows as the ledger shows them to people, after two real loads into a simulator task
(browse_samples), on every ledger database: batches, rejects (paged and for an export),
carried-over rows and one lead's history, no full number among them."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

import pytest
from sqlalchemy import event, insert

from lead_load.core.reject_reasons import NO_REASON, RejectKind, RejectReason, parse
from lead_load.ledger import browse, counts, schema
from tests.full_numbers import full_numbers_in
from tests.include.lead_load.browse_samples import PHONES, ledger_rows


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
