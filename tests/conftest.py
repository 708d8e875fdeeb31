"""Test-wide set-up: an Airflow home of the tests' own, configured before Airflow is imported."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# Each pytest process beside the first (make test runs three) gets a home, and so a SQLite
# metadata DB, of its own: two processes migrating and writing one SQLite file would lock each
# other.
TEST_AIRFLOW_HOME = Path(
    os.environ.get("LEAD_LOAD_TEST_AIRFLOW_HOME") or REPO / ".airflow" / "tests"
)

# Tests own their Airflow home so they never touch the demo's metadata DB.
os.environ["AIRFLOW_HOME"] = str(TEST_AIRFLOW_HOME)
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(REPO / "dags")
os.environ["AIRFLOW__CORE__PLUGINS_FOLDER"] = str(REPO / "plugins")
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
os.environ["AIRFLOW__CORE__UNIT_TEST_MODE"] = "False"
TEST_AIRFLOW_HOME.mkdir(parents=True, exist_ok=True)


def _airflow(*args: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "airflow", *args],
        capture_output=True,
        text=True,
        env=os.environ.copy(),
        check=False,
    )
    if result.returncode != 0:
        pytest.fail(f"airflow {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")


@pytest.fixture(autouse=True)
def _fresh_lookups():
    """Each test defines its own connections and Variables: forget the ones looked up before."""
    from agent_api import lookup_cache

    lookup_cache.connections.clear()
    lookup_cache.variables.clear()


@pytest.fixture(scope="session")
def airflow_db() -> Path:
    """A migrated SQLite metadata DB (with the DAG's pool) for tests that run DAGs."""
    _airflow("db", "migrate")  # idempotent and fast
    _airflow("pools", "set", "agent_api", "4", "lead_load posts")
    # Register the DAG once, as a deployment's dag-processor does: two `airflow dags test`
    # started together on a fresh metadata DB both insert it, and one fails
    # ("UNIQUE constraint failed: dag.dag_id"), which the overlapping-runs tests did.
    _airflow("dags", "reserialize")
    return TEST_AIRFLOW_HOME / "airflow.db"


@pytest.fixture(scope="session")
def simulator():
    """One real simulator process (over HTTP on a free port) for the whole session."""
    from agent_api_simulator.testing import SimulatorProcess

    with SimulatorProcess() as sim:
        yield sim
        # A handler that crashed shows up only in the server's log: fail loudly on it.
        log = sim.stderr()
        assert "Traceback" not in log, log
