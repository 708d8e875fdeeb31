"""Fixtures of the Lead loads page's tests: the api-server's own app with the plugin mounted
the way Airflow mounts it, real JWTs from its auth manager, and a ledger after two real loads."""

from __future__ import annotations

import airflow  # noqa: F401 - puts the plugins folder on sys.path, as in every Airflow process
import pytest
from fastapi.testclient import TestClient

from agent_api import lookup_cache
from tests.dags.conftest import postgres_warehouse, sqlite_warehouse
from tests.include.lead_load.browse_samples import load_two_runs
from tests.include.lead_load.conftest import platform  # noqa: F401 - a fixture

READER = ("viewer", "viewer")  # the simple auth manager's role that may read every DAG
NOBODY = ("nobody", None)  # a user the auth manager knows but grants nothing


@pytest.fixture(scope="session")
def api_server(airflow_db):
    """``airflow api-server``'s FastAPI app (core apps): plugins loaded from the plugins
    folder by Airflow's plugins manager, the configured auth manager initialised."""
    from airflow.api_fastapi.app import create_app

    return create_app("core")


def token_for(user: tuple[str, str | None]) -> str:
    from airflow.api_fastapi.app import get_auth_manager
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser

    username, role = user
    return get_auth_manager().generate_jwt(SimpleAuthManagerUser(username=username, role=role))


@pytest.fixture
def anonymous(api_server) -> TestClient:
    return TestClient(api_server)


@pytest.fixture
def reader(api_server) -> TestClient:
    """Signed in as the UI signs in: the JWT in the ``_token`` cookie."""
    client = TestClient(api_server)
    client.cookies.set("_token", token_for(READER))
    return client


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def ledger(request, tmp_path, platform, monkeypatch):
    """The lead_warehouse connection's database (the ledger), after two real loads."""
    warehouse = {"sqlite": lambda: sqlite_warehouse(tmp_path), "postgres": postgres_warehouse}[
        request.param
    ]()
    load_two_runs(warehouse.engine, platform)
    monkeypatch.setenv("AIRFLOW_CONN_LEAD_WAREHOUSE", warehouse.conn_uri)
    lookup_cache.connections.clear()
    yield warehouse
    for step in warehouse.cleanup:
        step()
