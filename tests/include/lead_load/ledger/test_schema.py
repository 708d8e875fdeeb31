"""The ledger's tables on real databases (SQLite file, and PostgreSQL over its socket)."""

from __future__ import annotations

import pytest
from sqlalchemy import insert, inspect, select, text
from sqlalchemy.exc import IntegrityError

from lead_load.core.ledger_rules import Status
from lead_load.ledger import schema
from tests.dags.conftest import postgres_warehouse, sqlite_warehouse
from tests.include.lead_load.samples import TASK


def test_database_refuses_a_second_active_row_for_a_phone(engine):
    row = {
        "api_task_id": TASK,
        "phone": "13900000001",
        "status": Status.STAGED.value,
        "created_at": schema.now(),
        "updated_at": schema.now(),
    }
    with engine.begin() as conn:
        conn.execute(insert(schema.ledger).values(lead_id="a", **row))
    with pytest.raises(IntegrityError), engine.begin() as conn:
        conn.execute(insert(schema.ledger).values(lead_id="b", **row))
    # A rejected row with the same phone is fine: it is not active.
    with engine.begin() as conn:
        conn.execute(insert(schema.ledger).values(lead_id="c", **{**row, "status": "rejected"}))


# The ledger and runs tables as a release before the renames and the leases made them.
OLD_RELEASE_DDL = [
    "CREATE TABLE lead_load_ledger (target_task_id VARCHAR(64) NOT NULL, "
    "lead_id VARCHAR(128) NOT NULL, phone VARCHAR(32) NOT NULL, status VARCHAR(16) NOT NULL, "
    "reason TEXT, run_id VARCHAR(250), batch_no INTEGER, unique_id VARCHAR(64), payload TEXT, "
    "created_at TIMESTAMP NOT NULL, updated_at TIMESTAMP NOT NULL, "
    "PRIMARY KEY (target_task_id, lead_id))",
    "CREATE UNIQUE INDEX ux_lead_load_ledger_active_phone ON lead_load_ledger "
    "(target_task_id, phone) WHERE status IN ('staged', 'sending', 'submitted', 'imported')",
    "CREATE TABLE lead_load_runs (run_id VARCHAR(250) PRIMARY KEY, "
    "target_task_id VARCHAR(64) NOT NULL, window_start VARCHAR(40), window_end VARCHAR(40), "
    "summary TEXT, finished_at TIMESTAMP)",
    "INSERT INTO lead_load_ledger VALUES ('task-1', 'a', '13900000001', 'imported', NULL, "
    "'run-0', 1, 'u-1', NULL, '2026-11-01 00:00:00', '2026-11-01 00:00:00')",
    "INSERT INTO lead_load_runs VALUES ('run-0', 'task-1', NULL, NULL, NULL, NULL)",
]


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def old_ledger(request, tmp_path):
    warehouse = sqlite_warehouse(tmp_path) if request.param == "sqlite" else postgres_warehouse()
    with warehouse.engine.begin() as conn:
        for statement in OLD_RELEASE_DDL:
            conn.execute(text(statement))
    yield warehouse.engine
    for step in warehouse.cleanup:
        step()


def _staged_row(lead_id: str, phone: str):
    stamp = schema.now()
    return insert(schema.ledger).values(
        api_task_id=TASK,
        lead_id=lead_id,
        phone=phone,
        status=Status.STAGED.value,
        created_at=stamp,
        updated_at=stamp,
    )


def test_an_older_ledger_is_upgraded_in_place_keeping_its_rows(old_ledger):
    schema.create_tables(old_ledger)
    schema.create_tables(old_ledger)  # a second upgrade, as every run starts with one, is a no-op
    columns = {c["name"] for c in inspect(old_ledger).get_columns("lead_load_ledger")}
    assert "api_task_id" in columns and "target_task_id" not in columns
    assert {"carried_from"} <= columns
    run_columns = {c["name"] for c in inspect(old_ledger).get_columns("lead_load_runs")}
    assert {"api_task_id", "state", "lease_expires_at"} <= run_columns
    # The suppression list comes with the upgrade, keyed on the (normalised) phone.
    listed = inspect(old_ledger).get_pk_constraint("lead_load_suppressions")
    assert listed["constrained_columns"] == ["phone"]
    with old_ledger.connect() as conn:
        row = conn.execute(select(schema.ledger)).one()
        assert (row.api_task_id, row.lead_id, row.status) == (TASK, "a", "imported")
    # The unique index moved with the column: the phone still has one active row per task.
    with pytest.raises(IntegrityError), old_ledger.begin() as conn:
        conn.execute(_staged_row("b", "13900000001"))
    # The key now has the phone: the lead's new number is a row of its own, next to the old.
    assert inspect(old_ledger).get_pk_constraint("lead_load_ledger")["constrained_columns"] == [
        "api_task_id",
        "lead_id",
        "phone",
    ]
    indexes = {i["name"] for i in inspect(old_ledger).get_indexes("lead_load_ledger")}
    assert {
        "ux_lead_load_ledger_active_phone",
        "ix_lead_load_ledger_run_batch",
        "ix_lead_load_ledger_unique_id",
    } <= indexes
    with old_ledger.begin() as conn:
        conn.execute(_staged_row("a", "13900000002"))
    with old_ledger.connect() as conn:
        phones = conn.execute(select(schema.ledger.c.phone, schema.ledger.c.status)).all()
    assert sorted(phones) == [("13900000001", "imported"), ("13900000002", "staged")]
