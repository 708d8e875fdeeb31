"""The ledger on real databases (SQLite file, and PostgreSQL over its socket)."""

from __future__ import annotations

import pytest
from sqlalchemy import insert
from sqlalchemy.exc import IntegrityError

from lead_load import ledger
from lead_load.ledger_rules import Status
from tests.dags.conftest import postgres_warehouse, sqlite_warehouse

TASK = "task-1"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def engine(request, tmp_path):
    warehouse = sqlite_warehouse(tmp_path) if request.param == "sqlite" else postgres_warehouse()
    ledger.create_tables(warehouse.engine)
    yield warehouse.engine
    for step in warehouse.cleanup:
        step()


def candidate(lead_id: str, phone: str, updated_at: str = "2026-11-24 10:00:00") -> dict:
    return {
        "lead_id": lead_id,
        "phone": phone,
        "updated_at": updated_at,
        "payload": {"phone": phone, "sort": 0, "extra": lead_id},
    }


def statuses(engine) -> dict[str, str]:
    with engine.connect() as conn:
        rows = conn.execute(ledger.ledger.select().where(ledger.ledger.c.target_task_id == TASK))
        return {r.lead_id: r.status for r in rows}


def test_database_refuses_a_second_active_row_for_a_phone(engine):
    row = {
        "target_task_id": TASK,
        "phone": "13900000001",
        "status": Status.STAGED.value,
        "created_at": ledger.now(),
        "updated_at": ledger.now(),
    }
    with engine.begin() as conn:
        conn.execute(insert(ledger.ledger).values(lead_id="a", **row))
    with pytest.raises(IntegrityError), engine.begin() as conn:
        conn.execute(insert(ledger.ledger).values(lead_id="b", **row))
    # A rejected row with the same phone is fine: it is not active.
    with engine.begin() as conn:
        conn.execute(insert(ledger.ledger).values(lead_id="c", **{**row, "status": "rejected"}))


def test_staging_keeps_the_latest_lead_per_phone_across_chunks(engine):
    ledger.add_candidates(engine, "run-1", [candidate("a", "13900000001", "2026-11-24 10:00:00")])
    ledger.add_candidates(engine, "run-1", [candidate("b", "13900000001", "2026-11-24 11:00:00")])
    ledger.add_candidates(engine, "run-1", [candidate("c", "13900000002")])
    counts = ledger.stage_candidates(engine, "run-1", TASK)
    assert counts.as_dict() == {
        "staged": 2,
        "duplicates_in_run": 1,
        "already_loaded": 0,
        "in_flight": 0,
    }
    assert statuses(engine) == {"a": "rejected", "b": "staged", "c": "staged"}
    assert ledger.reject_reasons(engine, "run-1") == {"duplicate_in_run": 1}


def test_a_later_run_does_not_stage_what_is_in_flight_or_loaded(engine):
    ledger.add_candidates(engine, "run-1", [candidate("a", "13900000001")])
    ledger.stage_candidates(engine, "run-1", TASK)
    # Same lead again, and another lead with the same phone, in a second run.
    ledger.add_candidates(
        engine,
        "run-2",
        [candidate("a", "13900000001"), candidate("z", "13900000001", "2026-11-23 00:00:00")],
    )
    counts = ledger.stage_candidates(engine, "run-2", TASK)
    assert counts.staged == 0
    assert counts.in_flight == 1 and counts.duplicates_in_run == 1


def test_plan_then_outcome_moves_rows_through_their_statuses(engine):
    ledger.add_candidates(engine, "run-1", [candidate(f"l{i}", f"1390000000{i}") for i in range(5)])
    ledger.stage_candidates(engine, "run-1", TASK)
    refs = ledger.plan_batches(engine, "run-1", TASK, batch_size=2)
    assert refs == [
        {"batch_no": 0, "rows": 2},
        {"batch_no": 1, "rows": 2},
        {"batch_no": 2, "rows": 1},
    ]
    rows = ledger.batch_rows(engine, "run-1", 0, Status.STAGED)
    assert [r["extra"] for r in rows] == ["l0", "l1"]

    ledger.set_batch_status(
        engine, "run-1", 0, rows_from=Status.STAGED, rows_to=Status.SENDING, batch_status="sending"
    )
    ledger.set_batch_status(
        engine,
        "run-1",
        0,
        rows_from=Status.SENDING,
        rows_to=Status.SUBMITTED,
        batch_status="submitted",
        unique_id="u-0",
        answer_lost=False,
    )
    assert ledger.record_outcome(engine, "u-0", {"13900000000"}) == {
        "imported": 1,
        "not_imported": 1,
    }
    assert statuses(engine) == {
        "l0": "imported",
        "l1": "not_imported",
        "l2": "staged",
        "l3": "staged",
        "l4": "staged",
    }
    assert ledger.batch_counts(engine, "run-1") == {"processed": 1, "planned": 2}
