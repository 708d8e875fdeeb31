"""Fixtures of the lead_load tests: a real ledger database."""

from __future__ import annotations

import pytest

from lead_load.ledger import schema
from tests.dags.conftest import postgres_warehouse, sqlite_warehouse


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def engine(request, tmp_path):
    warehouse = sqlite_warehouse(tmp_path) if request.param == "sqlite" else postgres_warehouse()
    schema.create_tables(warehouse.engine)
    yield warehouse.engine
    for step in warehouse.cleanup:
        step()
