"""Fixtures for the simulator tests: one real simulator process per session, reset per test."""

from dataclasses import dataclass

import pytest
import requests

from agent_api_simulator.testing import SimulatorProcess

# Default for `token`: send the simulator's valid bearer token.
SIM_TOKEN = object()


@dataclass
class SimEnv:
    """A freshly reset simulator with one user and one stopped 2.0 task, plus HTTP helpers."""

    sim: SimulatorProcess
    user_id: str
    task_id: str

    def url(self, path: str) -> str:
        return self.sim.base_url + path

    def request(self, method: str, path: str, token=SIM_TOKEN, timeout=10, **kwargs):
        """HTTP call with the valid token, another `token`, or none (token=None)."""
        headers = kwargs.pop("headers", {})
        if token is SIM_TOKEN:
            headers.update(self.sim.auth_headers)
        elif token is not None:
            headers["Authorization"] = f"Bearer {token}"
        return requests.request(method, self.url(path), headers=headers, timeout=timeout, **kwargs)

    def get(self, path: str, **kwargs):
        return self.request("GET", path, **kwargs)

    def post_numbers(
        self, rows, task_id=None, user_id=None, token=SIM_TOKEN, timeout=10, **top_level
    ):
        """POST async_number with `rows` as data plus any top-level body keys."""
        path = f"/agent-api/user/{user_id or self.user_id}/task/{task_id or self.task_id}"
        body = {**top_level, "data": rows}
        return self.request("POST", path + "/async_number", token=token, json=body, timeout=timeout)

    def callback(self, unique_id: str, user_id=None, headers=None, **params):
        """GET the callback data of a batch; keyword arguments become query parameters."""
        path = f"/agent-api/user/{user_id or self.user_id}/identification/{unique_id}"
        return self.get(path, params=params, headers=headers or {})

    def accepted_unique_id(self, rows, **kwargs) -> str:
        response = self.post_numbers(rows, **kwargs)
        assert response.status_code == 200, response.text
        assert response.json()["code"] == 200, response.text
        return response.json()["data"]["unique_id"]

    @staticmethod
    def rows(*phones, **fields):
        return [{"phone": phone, "sort": 0, **fields} for phone in phones]


@pytest.fixture
def sim_env(simulator) -> SimEnv:
    simulator.reset()
    user_id = simulator.create_user()
    return SimEnv(simulator, user_id, simulator.create_task(user_id))
