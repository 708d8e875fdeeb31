"""The ledger's tables on real databases (SQLite file, and PostgreSQL over its socket)."""

from __future__ import annotations

import pytest
from sqlalchemy import insert
from sqlalchemy.exc import IntegrityError

from lead_load.core.ledger_rules import Status
from lead_load.ledger import schema
from tests.include.lead_load.samples import TASK


def test_database_refuses_a_second_active_row_for_a_phone(engine):
    row = {
        "target_task_id": TASK,
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
