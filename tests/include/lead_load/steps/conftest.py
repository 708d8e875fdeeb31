"""Fixtures of the step tests."""

from __future__ import annotations

import pytest

from lead_load.ledger import schema, staging
from tests.dags.conftest import sqlite_warehouse
from tests.include.lead_load.samples import TASK, candidate


@pytest.fixture
def staged_ledger(tmp_path):
    """A SQLite ledger with five leads of run-1 staged."""
    engine = sqlite_warehouse(tmp_path).engine
    schema.create_tables(engine)
    staging.add_candidates(
        engine, "run-1", [candidate(f"l{i}", f"1390000000{i}") for i in range(5)]
    )
    staging.stage_candidates(engine, "run-1", TASK)
    return engine
