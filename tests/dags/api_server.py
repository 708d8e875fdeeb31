"""A real `airflow api-server` on the tests' Airflow home (the metadata DB `airflow dags test`
writes), with two users of the simple auth manager: ``loader`` (role user: may edit DAG runs)
and ``watcher`` (role viewer: may not). For the run note, which the report task writes through
the api-server's REST API.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import time
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import requests

from tests.distributed.stack import free_port

USERS = {"loader": "user", "watcher": "viewer"}


@dataclass
class ApiServer:
    base_url: str
    passwords: dict[str, str]
    process: subprocess.Popen
    log: Path

    def conn_uri(self, user: str = "loader") -> str:
        """The ``airflow_api`` connection as an Airflow URI."""
        host = self.base_url.removeprefix("http://")
        return f"http://{user}:{quote(self.passwords[user], safe='')}@{host}"

    def token(self, user: str = "loader") -> str:
        answer = requests.post(
            f"{self.base_url}/auth/token",
            json={"username": user, "password": self.passwords[user]},
            timeout=10,
        )
        answer.raise_for_status()
        return answer.json()["access_token"]

    def request(self, method: str, path: str, **kwargs) -> requests.Response:
        headers = {"Authorization": f"Bearer {self.token()}"}
        return requests.request(
            method, f"{self.base_url}/api/v2{path}", headers=headers, timeout=30, **kwargs
        )

    def dag_run(self, dag_id: str, run_id: str) -> dict:
        answer = self.request("GET", f"/dags/{dag_id}/dagRuns/{quote(run_id, safe='')}")
        answer.raise_for_status()
        return answer.json()

    def dag_runs(self, dag_id: str) -> list[dict]:
        answer = self.request("GET", f"/dags/{dag_id}/dagRuns", params={"limit": 100})
        answer.raise_for_status()
        return answer.json()["dag_runs"]


def start_api_server(tmp: Path, timeout: float = 180) -> ApiServer:
    """Start it and wait until it answers; stop it with ``stop_api_server``."""
    passwords = {user: secrets.token_urlsafe(12) for user in USERS}
    passwords_file = tmp / "passwords.json"
    passwords_file.write_text(json.dumps(passwords))
    port = free_port()
    env = {
        **os.environ,
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": ",".join(f"{u}:{r}" for u, r in USERS.items()),
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords_file),
        "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_hex(16),
        "AIRFLOW__API__SECRET_KEY": secrets.token_hex(16),
        "AIRFLOW__API__WORKERS": "1",
    }
    log = tmp / "api-server.log"
    with log.open("ab") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "airflow", "api-server", "--port", str(port), "--workers", "1"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    server = ApiServer(f"http://127.0.0.1:{port}", passwords, process, log)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"api-server exited:\n{log.read_text()[-3000:]}")
        with suppress(requests.RequestException):
            if requests.get(f"{server.base_url}/api/v2/version", timeout=2).ok:
                return server
        time.sleep(1)
    stop_api_server(server)
    raise RuntimeError(f"api-server not answering after {timeout}s:\n{log.read_text()[-3000:]}")


def stop_api_server(server: ApiServer) -> None:
    with suppress(ProcessLookupError):
        os.killpg(server.process.pid, signal.SIGTERM)
    try:
        server.process.wait(30)
    except subprocess.TimeoutExpired:
        with suppress(ProcessLookupError):
            os.killpg(server.process.pid, signal.SIGKILL)
        server.process.wait()
