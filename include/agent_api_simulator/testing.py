"""Run the simulator as a real subprocess from tests and benchmarks, and drive its /_sim routes.

    with SimulatorProcess() as sim:
        user_id = sim.create_user()
        task_id = sim.create_task(user_id)
        requests.post(f"{sim.base_url}/agent-api/...", headers=sim.auth_headers, json=...)

The process is started with --port 0 and reports its real port on stdout, so parallel test
runs never race for a port.
"""

import json
import queue
import secrets
import subprocess
import sys
import tempfile
import threading
import time

import requests

STARTUP_TIMEOUT_S = 20.0
LISTENING_PREFIX = "agent-api simulator listening on http://"


class SimulatorStartError(RuntimeError):
    pass


class SimulatorProcess:
    def __init__(
        self,
        token: str | None = None,
        host: str = "127.0.0.1",
        user_id: str | None = None,
        task_id: str | None = None,
        seed: int | None = None,
        process_delay: float | None = None,
        faults: dict | None = None,
        startup_timeout: float = STARTUP_TIMEOUT_S,
    ) -> None:
        self.token = token or f"test-token-{secrets.token_hex(8)}"
        self.host = host
        self.port: int | None = None
        self.startup_timeout = startup_timeout
        self.args = ["--host", host, "--port", "0", "--token", self.token]
        for flag, value in (
            ("--user-id", user_id),
            ("--task-id", task_id),
            ("--seed", seed),
            ("--process-delay", process_delay),
            ("--faults", None if faults is None else json.dumps(faults)),
        ):
            if value is not None:
                self.args += [flag, str(value)]
        self.popen: subprocess.Popen | None = None
        self.session = requests.Session()
        self._stderr = None
        self._stdout_lines: queue.Queue[str] = queue.Queue()
        self._reader: threading.Thread | None = None

    # --- lifecycle ------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def auth_headers(self) -> dict:
        return {"Authorization": f"Bearer {self.token}"}

    def start(self) -> "SimulatorProcess":
        # stderr goes to a file: a pipe nobody reads could fill up and stall the server.
        # It lives as long as the process, so no `with`; stop() closes it.
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115
        # The argv is this interpreter plus our own options: no untrusted input.
        self.popen = subprocess.Popen(  # noqa: S603
            [sys.executable, "-m", "agent_api_simulator", *self.args],
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            text=True,
        )
        self._reader = threading.Thread(target=self._drain_stdout, daemon=True)
        self._reader.start()
        try:
            self._wait_until_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def _drain_stdout(self) -> None:
        for line in self.popen.stdout:
            self._stdout_lines.put(line)

    def _wait_until_ready(self) -> None:
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self.popen.poll() is not None:
                raise SimulatorStartError(
                    f"simulator exited with code {self.popen.returncode} during start-up; "
                    f"stderr:\n{self.stderr()}"
                )
            if self.port is None:
                try:
                    line = self._stdout_lines.get(timeout=0.1)
                except queue.Empty:
                    continue
                if line.startswith(LISTENING_PREFIX):
                    self.port = int(line.strip().rsplit(":", 1)[1])
                continue
            try:
                if self.session.get(f"{self.base_url}/_sim/health", timeout=1).ok:
                    return
            except requests.ConnectionError:
                pass
            time.sleep(0.05)
        raise SimulatorStartError(
            f"simulator not healthy after {self.startup_timeout} s; stderr:\n{self.stderr()}"
        )

    def stderr(self) -> str:
        if self._stderr is None:
            return ""
        self._stderr.seek(0)
        return self._stderr.read().decode("utf-8", "replace")

    def stop(self, timeout: float = 10.0) -> int | None:
        """Terminate (SIGTERM) and wait; kill if it does not stop. Return the exit code."""
        if self.popen is None:
            return None
        if self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()
        self.session.close()
        if self._reader is not None:
            self._reader.join(timeout=1)  # reaches EOF now that the process is gone
        self.popen.stdout.close()
        if self._stderr is not None:
            self._stderr.close()
            self._stderr = None
        return self.popen.returncode

    def __enter__(self) -> "SimulatorProcess":
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()

    # --- admin routes ---------------------------------------------------------------------

    def _admin(self, method: str, path: str, payload=None, timeout: float = 10, **params):
        response = self.session.request(
            method,
            f"{self.base_url}/_sim{path}",
            json=payload,
            params=params or None,
            timeout=timeout,
        )
        if not response.ok:
            raise RuntimeError(f"{method} /_sim{path} -> {response.status_code}: {response.text}")
        return response.json()

    def reset(self) -> None:
        self._admin("POST", "/reset")

    def create_user(self, user_id: str | None = None, sub_user_ids=()) -> str:
        payload = {"sub_user_ids": list(sub_user_ids)}
        if user_id is not None:
            payload["user_id"] = user_id
        return self._admin("POST", "/users", payload)["user_id"]

    def create_task(
        self,
        user_id: str,
        task_id: str | None = None,
        version: int = 2,
        status: int = 1,
        sub_user_id: str | None = None,
        name: str | None = None,
    ) -> str:
        payload = {"version": version, "status": status}
        for key, value in (("task_id", task_id), ("sub_user_id", sub_user_id), ("name", name)):
            if value is not None:
                payload[key] = value
        return self._admin("POST", f"/users/{user_id}/tasks", payload)["task_id"]

    def set_task_status(self, user_id: str, task_id: str, status: int) -> None:
        self._admin("PATCH", f"/users/{user_id}/tasks/{task_id}", {"status": status})

    def set_template(self, user_id: str, components: list[dict]) -> list[dict]:
        return self._admin("PUT", f"/users/{user_id}/template", components)

    def task_numbers(self, user_id: str, task_id: str) -> list[dict]:
        # A million numbers take the simulator longer than any other admin answer.
        path = f"/users/{user_id}/tasks/{task_id}/numbers"
        return self._admin("GET", path, timeout=300)["numbers"]

    def batches(self) -> list[dict]:
        return self._admin("GET", "/batches")

    def process(self) -> int:
        return self._admin("POST", "/process")["processed"]

    def journal(self, since: int = 0) -> list[dict]:
        return self._admin("GET", "/journal", since=since)["entries"]

    def set_faults(self, **config) -> dict:
        return self._admin("PUT", "/faults", config)

    def faults(self) -> dict:
        return self._admin("GET", "/faults")

    def held(self) -> int:
        """How many answers of accepted imports ``hold_accepted_answers`` holds right now."""
        return self._admin("GET", "/held")["held"]

    def release(self) -> int:
        """Send the held answers and stop refusing imports; return how many were held."""
        return self._admin("POST", "/release")["released"]

    def wait_until_processed(self, timeout: float = 10.0) -> list[dict]:
        """Poll until no batch is pending (ignoring "callback_never" ones, which never will).

        Return the batch list; raise TimeoutError if batches are still pending at the deadline.
        """
        deadline = time.monotonic() + timeout
        while True:
            batches = self.batches()
            waiting = [b for b in batches if b["status"] == "pending" and not b["callback_never"]]
            if not waiting:
                return batches
            if time.monotonic() >= deadline:
                raise TimeoutError(f"{len(waiting)} batches still pending after {timeout} s")
            time.sleep(0.05)
