"""The suppression list on every ledger database: added all or nothing, listed, removed, and
the numbers of a calling task suppressed after they were imported."""

from __future__ import annotations

from datetime import UTC

import pytest
from sqlalchemy import func, insert, select

from lead_load.ledger import schema, suppressions
from lead_load.ledger.suppressions import Added, Entry
from tests.include.lead_load.ledger.staging.staging_samples import ledger_row
from tests.include.lead_load.samples import TASK


def listed_phones(engine) -> dict[str, str | None]:
    return {entry.phone: entry.reason for entry in suppressions.listed(engine)}


def test_adding_reports_what_was_there_and_changes_nothing_of_it(engine):
    first = suppressions.add(
        engine, [Entry("13900000001", "asked"), Entry("13900000002")], added_by="ops"
    )
    assert first == Added(added=2, already=0)
    again = suppressions.add(
        engine,
        [
            Entry("13900000002", "another reason"),  # there already: left as it is
            Entry("13900000003", "complaint"),
            Entry("13900000003", "given twice: counts once, with its first reason"),
        ],
        added_by="someone else",
    )
    assert again == Added(added=1, already=1)
    assert listed_phones(engine) == {
        "13900000001": "asked",
        "13900000002": None,
        "13900000003": "complaint",
    }
    entry = next(e for e in suppressions.listed(engine) if e.phone == "13900000002")
    assert entry.added_by == "ops" and entry.added_at.tzinfo == UTC


def test_a_phone_that_is_not_normalised_adds_nothing(engine):
    with pytest.raises(ValueError, match="nothing added"):
        suppressions.add(engine, [Entry("13900000001"), Entry("139 0000 0002")])
    assert listed_phones(engine) == {}


def test_a_phone_added_by_another_process_meanwhile_is_counted_as_there(engine, monkeypatch):
    """The race between the look-up and the insert: the insert fails on the primary key, the
    transaction rolls back whole (the other phone is not added twice) and is tried again."""
    suppressions.add(engine, [Entry("13900000001")])
    real = suppressions._listed_among
    calls = []

    def blind_first(conn, phones):
        calls.append(phones)
        return set() if len(calls) == 1 else real(conn, phones)

    monkeypatch.setattr(suppressions, "_listed_among", blind_first)
    result = suppressions.add(engine, [Entry("13900000001"), Entry("13900000002")])
    assert result == Added(added=1, already=1)
    assert len(calls) == 2
    with engine.connect() as conn:
        rows = conn.execute(select(func.count()).select_from(schema.suppressions)).scalar_one()
    assert rows == 2


def test_removing_says_how_many_were_on_the_list(engine, monkeypatch):
    monkeypatch.setattr(schema, "CHUNK", 2)  # several slices of the list, each way
    phones = [f"1390000000{i}" for i in range(5)]
    suppressions.add(engine, [Entry(phone) for phone in phones])
    assert [e.phone for e in suppressions.listed(engine)] == phones
    assert suppressions.suppressed_among(engine, ["13900000001", "13800000000"]) == {"13900000001"}
    assert suppressions.remove(engine, ["13900000001", "13900000003", "13800000000"]) == 2
    assert list(listed_phones(engine)) == ["13900000000", "13900000002", "13900000004"]


def test_numbers_suppressed_after_their_import_are_found_in_their_calling_task(engine):
    with engine.begin() as conn:
        conn.execute(
            insert(schema.ledger),
            [
                ledger_row("a", "13900000001", "imported"),
                ledger_row("b", "13900000002", "submitted", unique_id="u-1"),
                ledger_row("c", "13900000003", "submitted"),  # maybe accepted
                ledger_row("d", "13900000004", "staged"),  # not sent: a claim takes it out
                ledger_row("e", "13900000005", "not_imported"),  # the platform refused it
                ledger_row("f", "13900000006", "rejected", reason="suppressed"),
                ledger_row("g", "13900000007", "imported"),  # not suppressed
                ledger_row("a", "13900000001", "imported", api_task_id="task-2"),
            ],
        )
    listed = [f"1390000000{i}" for i in range(1, 7)]
    suppressions.add(engine, [Entry(phone) for phone in listed])

    found = suppressions.imported_but_suppressed(engine, TASK, limit=2)

    assert found.count == 3
    assert found.first == [
        {"lead_id": "a", "phone": "13900000001", "status": "imported"},
        {"lead_id": "b", "phone": "13900000002", "status": "submitted"},
    ]
    assert suppressions.imported_but_suppressed(engine, "task-3").count == 0
