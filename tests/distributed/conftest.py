"""One distributed Airflow (see stack.py) shared by the distributed and browser tests."""

from __future__ import annotations

import os
import shutil
import signal
import sys

import pytest
from sqlalchemy import create_engine, text

from agent_api_simulator.testing import SimulatorProcess
from tests.distributed.stack import PG_ADMIN_URL, REPO, AirflowStack

OUTPUT = REPO / "test-output"


def _require_services() -> None:
    """PostgreSQL and Redis are part of the machine; in CI their absence is a failure."""
    import redis

    try:
        with create_engine(PG_ADMIN_URL).connect() as conn:
            conn.execute(text("SELECT 1"))
        redis.Redis(host="127.0.0.1", port=6379).ping()
    except Exception as error:
        if os.environ.get("CI") == "true":
            pytest.fail(f"PostgreSQL and Redis on 127.0.0.1 are required in CI: {error}")
        pytest.skip(f"PostgreSQL or Redis on 127.0.0.1 not reachable: {error}")


@pytest.fixture(scope="session")
def airflow_stack():
    _require_services()
    # A SIGTERM (a CI timeout, say) must still stop every process the stack started.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    workdir = OUTPUT / "distributed"
    shutil.rmtree(workdir, ignore_errors=True)
    with SimulatorProcess() as sim:
        with AirflowStack(workdir, sim) as stack:
            stack.wait_for_dag()
            yield stack
        assert stack.leftover_processes() == [], "processes of the stack outlived it"
        log = sim.stderr()
        assert "Traceback" not in log, log
