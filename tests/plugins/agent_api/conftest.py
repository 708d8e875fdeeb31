"""Fixtures for the agent_api tests: a reset simulator, an account on it, and log hygiene.

Every test here runs against the simulator over real HTTP, through an Airflow connection
set by environment variable, as a deployment would.
"""

from __future__ import annotations

import itertools
import json
import logging
import re
from dataclasses import dataclass

import pytest

from agent_api import lookup_cache
from agent_api_simulator.testing import SimulatorProcess

CONN_ID = "agent_api_default"
_phone_counter = itertools.count(1)
# Every phone a test here sends comes from `new_phones`, so the log check knows them all.
ISSUED_PHONES: set[str] = set()


def new_phones(count: int) -> list[str]:
    """Distinct valid mainland mobile numbers, never reused within the session."""
    phones = [f"139{next(_phone_counter):08d}" for _ in range(count)]
    ISSUED_PHONES.update(phones)
    return phones


def rows_for(phones: list[str]) -> list[dict]:
    return [{"phone": phone, "sort": 0, "extra": f"lead-{i}"} for i, phone in enumerate(phones)]


@dataclass
class Account:
    sim: SimulatorProcess
    user_id: str
    task_id: str

    def connect(self, monkeypatch: pytest.MonkeyPatch, **extra) -> None:
        """(Re)define the agent_api_default connection with these extras."""
        settings = {
            "user_id": self.user_id,
            "request_timeout": 2,
            "max_attempts": 4,
            "backoff_seconds": 0.05,
            "backoff_max_seconds": 0.2,
            "lost_answer_grace_seconds": 0.5,
            **extra,
        }
        conn = {
            "conn_type": "agent_api",
            "host": self.sim.base_url,
            "password": settings.pop("token", self.sim.token),
            "extra": settings,
        }
        monkeypatch.setenv(f"AIRFLOW_CONN_{CONN_ID.upper()}", json.dumps(conn))
        lookup_cache.connections.clear()  # hooks remember connections for a minute

    def posts(self) -> list[dict]:
        """Every async_number request the simulator received, in order."""
        return [
            e
            for e in self.sim.journal()
            if e["method"] == "POST" and e["path"].endswith("/async_number")
        ]

    def imported_phones(self) -> list[str]:
        return [n["phone"] for n in self.sim.task_numbers(self.user_id, self.task_id)]


@pytest.fixture
def account(simulator: SimulatorProcess, monkeypatch: pytest.MonkeyPatch) -> Account:
    simulator.reset()
    user_id = simulator.create_user()
    task_id = simulator.create_task(user_id)
    acct = Account(simulator, user_id, task_id)
    acct.connect(monkeypatch)
    return acct


def leaks_in(text: str, token: str, phones: set[str]) -> list[str]:
    """Secrets or unmasked phone numbers found in captured log text."""
    found = ["the API token"] if token and token in text else []
    digit_runs = set(re.findall(r"(?<!\d)\d{11}(?!\d)", text))
    found += sorted(f"phone {p[:3]}...{p[-2:]}" for p in digit_runs & phones)
    return found


@pytest.fixture(autouse=True)
def no_secrets_in_logs(request, caplog, capfd, simulator):
    """After every test here: no log line or output holds the token or an unmasked phone."""
    caplog.set_level(logging.DEBUG)
    yield
    out, err = capfd.readouterr()
    captured = "\n".join([caplog.text, out, err])
    leaks = leaks_in(captured, simulator.token, ISSUED_PHONES)
    assert not leaks, f"{request.node.name} leaked into its logs: {leaks}"
