"""The staging tests' ledger: each database, and each driver of PostgreSQL, staging has an
engine or a way of copying rows for."""

from __future__ import annotations

import pytest
from sqlalchemy import create_engine

from lead_load.ledger import schema
from tests.dags.conftest import mariadb_warehouse, postgres_warehouse, sqlite_warehouse


@pytest.fixture(
    params=[
        "sqlite",
        pytest.param("postgres", marks=pytest.mark.postgres),
        pytest.param("postgres+psycopg", marks=pytest.mark.postgres),
        pytest.param("mariadb", marks=pytest.mark.mariadb),
    ]
)
def engine(request, tmp_path):
    """A ledger on each database and driver staging has an engine or a COPY for (the shared
    fixture's databases, plus PostgreSQL through psycopg 3)."""
    if request.param == "sqlite":
        warehouse = sqlite_warehouse(tmp_path)
    elif request.param == "mariadb":
        warehouse = mariadb_warehouse()
    else:
        warehouse = postgres_warehouse()
    engine = warehouse.engine
    if request.param == "postgres+psycopg":
        engine = create_engine(engine.url.set(drivername="postgresql+psycopg"))
        warehouse.cleanup.insert(0, engine.dispose)
    schema.create_tables(engine)
    yield engine
    for step in warehouse.cleanup:
        step()
