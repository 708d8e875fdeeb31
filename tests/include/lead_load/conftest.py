"""Fixtures of the lead_load tests: real ledger databases, and a simulator account."""

from __future__ import annotations

import json

import pytest

from agent_api import lookup_cache
from lead_load.ledger import schema
from tests.dags.conftest import mariadb_warehouse, postgres_warehouse, sqlite_warehouse
from tests.include.lead_load.landing_samples import Platform


@pytest.fixture(
    params=[
        "sqlite",
        pytest.param("postgres", marks=pytest.mark.postgres),
        pytest.param("mariadb", marks=pytest.mark.mariadb),
    ]
)
def engine(request, tmp_path):
    """A ledger database of each engine the ledger supports."""
    warehouse = {
        "sqlite": lambda: sqlite_warehouse(tmp_path),
        "postgres": postgres_warehouse,
        "mariadb": mariadb_warehouse,
    }[request.param]()
    schema.create_tables(warehouse.engine)
    yield warehouse.engine
    for step in warehouse.cleanup:
        step()


@pytest.fixture
def sqlite_engine(tmp_path):
    warehouse = sqlite_warehouse(tmp_path)
    schema.create_tables(warehouse.engine)
    return warehouse


@pytest.fixture
def platform(simulator, monkeypatch) -> Platform:
    simulator.reset()
    user_id = simulator.create_user()
    task_id = simulator.create_task(user_id)
    conn = {
        "conn_type": "agent_api",
        "host": simulator.base_url,
        "password": simulator.token,
        "extra": {"user_id": user_id, "request_timeout": 5, "max_attempts": 2},
    }
    conn_json = json.dumps(conn)
    monkeypatch.setenv("AIRFLOW_CONN_AGENT_API_DEFAULT", conn_json)
    lookup_cache.connections.clear()
    return Platform(simulator, user_id, task_id, conn_json)
