"""Fixtures for running the real lead_load DAG against the simulator and a real warehouse."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlencode

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine

from agent_api_simulator.testing import SimulatorProcess

REPO = Path(__file__).resolve().parents[2]
PG_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/test"
MARIADB_ADMIN_URL = "mysql://root@127.0.0.1:3306/test"
WINDOW = (datetime(2026, 11, 24, tzinfo=UTC), datetime(2026, 11, 25, tzinfo=UTC))


@dataclass
class Warehouse:
    """A warehouse database as an Airflow connection URI plus an engine for assertions."""

    conn_uri: str
    engine: Engine
    cleanup: list = field(default_factory=list)

    def scalar(self, sql: str, **params):
        with self.engine.connect() as conn:
            return conn.execute(text(sql), params).scalar()

    def rows(self, sql: str, **params) -> list[dict]:
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(text(sql), params)]


def sqlite_warehouse(tmp_path: Path) -> Warehouse:
    path = tmp_path / "warehouse.db"
    return Warehouse(f"sqlite:///{path}", create_engine(f"sqlite:///{path}"))


def postgres_warehouse() -> Warehouse:
    """A fresh database on the local PostgreSQL, dropped afterwards.

    Under CI=true an unreachable server fails the test instead of skipping it.
    """
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            name = f"lead_load_test_{uuid.uuid4().hex[:10]}"
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as error:
        if os.environ.get("CI") == "true":
            pytest.fail(f"PostgreSQL on 127.0.0.1:5432 is required in CI: {error}")
        pytest.skip(f"PostgreSQL on 127.0.0.1:5432 is not reachable: {error}")
    url = f"postgresql://postgres@127.0.0.1:5432/{name}"
    engine = create_engine(url)

    def drop() -> None:
        engine.dispose()
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()

    return Warehouse(url, engine, [drop])


def mariadb_warehouse(init_command: str | None = None) -> Warehouse:
    """A fresh database on the local MariaDB (root, no password), dropped afterwards.

    The warehouse is an Airflow connection of type ``mysql`` (the MySQL provider, driver
    mysqlclient). ``init_command``, e.g. ``SET time_zone = '+08:00'``, runs at the start of
    every session of the DAG's connection: a server whose default zone is not UTC, without
    changing the shared server's global settings. Under CI=true an unreachable server fails
    the test instead of skipping it.
    """
    admin = create_engine(MARIADB_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            name = f"lead_load_test_{uuid.uuid4().hex[:10]}"
            conn.execute(text(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4"))
    except Exception as error:
        admin.dispose()
        if os.environ.get("CI") == "true":
            pytest.fail(f"MariaDB on 127.0.0.1:3306 is required in CI: {error}")
        pytest.skip(f"MariaDB on 127.0.0.1:3306 is not reachable: {error}")
    url = f"mysql://root@127.0.0.1:3306/{name}"
    engine = create_engine(url)

    def drop() -> None:
        engine.dispose()
        with admin.connect() as conn:
            conn.execute(text(f"DROP DATABASE IF EXISTS `{name}`"))
        admin.dispose()

    return Warehouse(mariadb_conn_uri(url, init_command), engine, [drop])


def mariadb_conn_uri(url: str, init_command: str | None = None) -> str:
    """The Airflow connection URI of a MariaDB database; ``init_command`` goes into the
    connection's extra, which the MySQL provider passes on to the driver."""
    if init_command is None:
        return url
    return f"{url}?{urlencode({'init_command': init_command})}"


@dataclass
class LeadLoadEnv:
    sim: SimulatorProcess
    user_id: str
    task_id: str
    warehouse: Warehouse
    env: dict[str, str]

    def run_dag(
        self, *, timeout: int = 600, dag_id: str = "lead_load", **conf
    ) -> subprocess.CompletedProcess:
        """`airflow dags test <load>` with this run conf, as a user would run it."""
        conf.setdefault("window_start", WINDOW[0].isoformat())
        conf.setdefault("window_end", WINDOW[1].isoformat())
        return subprocess.run(
            [sys.executable, "-m", "airflow", "dags", "test", dag_id, "-c", json.dumps(conf)],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def posts(self) -> list[dict]:
        return [e for e in self.sim.journal() if e["path"].endswith("/async_number")]

    def calling_task_phones(self) -> list[str]:
        return [n["phone"] for n in self.sim.task_numbers(self.user_id, self.task_id)]

    def ledger_counts(self) -> dict[str, int]:
        rows = self.warehouse.rows(
            "SELECT status, COUNT(*) AS n FROM lead_load_ledger WHERE api_task_id = :t "
            "GROUP BY status",
            t=self.task_id,
        )
        return {r["status"]: r["n"] for r in rows}


def make_env(simulator: SimulatorProcess, warehouse: Warehouse, **extra) -> LeadLoadEnv:
    simulator.reset()
    user_id = simulator.create_user()
    task_id = simulator.create_task(user_id)
    agent_api = {
        "conn_type": "agent_api",
        "host": simulator.base_url,
        "password": simulator.token,
        "extra": {
            "user_id": user_id,
            "request_timeout": 5,
            "backoff_seconds": 0.1,
            "backoff_max_seconds": 1,
            "lost_answer_grace_seconds": 0.5,
            **extra,
        },
    }
    env = {
        **os.environ,
        "AIRFLOW_CONN_AGENT_API_DEFAULT": json.dumps(agent_api),
        "AIRFLOW_CONN_LEAD_WAREHOUSE": warehouse.conn_uri,
        "AIRFLOW_VAR_LEAD_LOAD_API_TASK_ID": task_id,
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
        "LEAD_LOAD_RETRY_DELAY_SECONDS": "1",
    }
    return LeadLoadEnv(simulator, user_id, task_id, warehouse, env)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def lead_load_env(request, simulator, tmp_path, airflow_db):
    warehouse = sqlite_warehouse(tmp_path) if request.param == "sqlite" else postgres_warehouse()
    yield make_env(simulator, warehouse)
    for step in warehouse.cleanup:
        step()


@pytest.fixture
def sqlite_lead_load_env(simulator, tmp_path, airflow_db):
    """``lead_load_env`` on a SQLite warehouse only: for tests that gain nothing from a second
    database and are too slow to run twice."""
    return make_env(simulator, sqlite_warehouse(tmp_path))


@pytest.fixture
def postgres_lead_load_env(simulator, airflow_db):
    """``lead_load_env`` on a fresh PostgreSQL database only (skipped without a server,
    except under CI=true)."""
    warehouse = postgres_warehouse()
    yield make_env(simulator, warehouse)
    for step in warehouse.cleanup:
        step()


@pytest.fixture(scope="session")
def api_server(airflow_db, tmp_path_factory):
    """A real api-server on the tests' metadata DB (tests/dags/api_server.py)."""
    from tests.dags.api_server import start_api_server, stop_api_server

    server = start_api_server(tmp_path_factory.mktemp("api-server"))
    yield server
    stop_api_server(server)
