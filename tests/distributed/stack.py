"""A real, distributed Airflow on this machine: the same processes as docker-compose.yaml, native.

`airflow api-server`, `scheduler`, `dag-processor`, `triggerer` and `celery worker`, with
PostgreSQL as the metadata DB and Redis as the Celery broker, plus the platform simulator and
a PostgreSQL warehouse. Besides the repo's dags/ it loads the canary DAG (canary_dags/, read
by canary.py) as a second DAG bundle. Everything it creates is its own: fresh databases
(dropped on stop), its own Celery queue in Redis, its own AIRFLOW_HOME, free ports. Every
process runs in its own process group and is terminated on stop; their logs go to
`<workdir>/logs/`.

Used by the distributed tests, the browser test and the end-to-end benchmark.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import uuid
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path

import requests
from sqlalchemy import create_engine, text

from agent_api_simulator.testing import SimulatorProcess
from lead_load_devtools.synthetic import LEADS_DDL

REPO = Path(__file__).resolve().parents[2]
PG_SERVER = "postgres@127.0.0.1:5432"
PG_ADMIN_URL = f"postgresql://{PG_SERVER}/test"
REDIS_URL = "redis://127.0.0.1:6379"
# A Redis database number nothing else on this machine uses. Each stack also has a Celery
# queue of its own, so two stacks at once (two test sessions, a benchmark) never take each
# other's tasks.
REDIS_DB = 11
ADMIN_USER = "admin"
# A trivial DAG that shows how long Airflow keeps everybody else's DAGs waiting (canary.py);
# outside dags/ so that no deployment ever sees it.
CANARY_DAGS = REPO / "tests" / "distributed" / "canary_dags"
COMPONENTS = ("api-server", "scheduler", "dag-processor", "triggerer", "celery-worker")


class StackError(RuntimeError):
    """The stack could not start or an API call failed; the message says which and why."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def processes_with_home(home: Path) -> list[int]:
    """Pids of the processes running with AIRFLOW_HOME=home (what must not outlive a test)."""
    marker = f"AIRFLOW_HOME={home}".encode()
    pids = []
    for environ in Path("/proc").glob("[0-9]*/environ"):
        with suppress(OSError):
            if marker in environ.read_bytes().split(b"\0"):
                pids.append(int(environ.parent.name))
    return pids


def dag_bundles() -> str:
    """Two local DAG bundles: the repo's dags/ under Airflow's default bundle name, and the
    canary's folder."""
    bundles = {"dags-folder": REPO / "dags", "canary": CANARY_DAGS}
    return json.dumps(
        [
            {
                "name": name,
                "classpath": "airflow.dag_processing.bundles.local.LocalDagBundle",
                "kwargs": {"path": str(path)},
            }
            for name, path in bundles.items()
        ]
    )


def _create_database(prefix: str) -> str:
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return name


def _drop_database(name: str) -> None:
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def _delete_queue(queue: str) -> None:
    import redis

    client = redis.Redis.from_url(f"{REDIS_URL}/{REDIS_DB}")
    for key in client.scan_iter(f"*{queue}*"):
        client.delete(key)


@dataclass
class AirflowStack:
    workdir: Path
    simulator: SimulatorProcess
    celery_concurrency: int = 4
    extra_env: dict[str, str] = field(default_factory=dict)
    # Merged into the agent_api_default connection's extra (e.g. max_requests_per_second).
    agent_api_extra: dict = field(default_factory=dict)
    api_port: int = field(default_factory=free_port)
    password: str = field(default_factory=lambda: secrets.token_urlsafe(12))
    queue: str = field(default_factory=lambda: f"lead_load_it_{secrets.token_hex(4)}")
    processes: dict[str, subprocess.Popen] = field(default_factory=dict)
    databases: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    user_id: str = ""
    task_id: str = ""
    warehouse_url: str = ""
    _token: str | None = None

    # --- set-up -------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    @property
    def logs(self) -> Path:
        return self.workdir / "logs"

    def start(self) -> AirflowStack:
        home = self.workdir / "airflow-home"
        home.mkdir(parents=True, exist_ok=True)
        self.logs.mkdir(parents=True, exist_ok=True)
        metadata_db = _create_database("lead_load_it_airflow")
        self.databases.append(metadata_db)
        warehouse_db = _create_database("lead_load_it_warehouse")
        self.databases.append(warehouse_db)
        self.warehouse_url = f"postgresql://{PG_SERVER}/{warehouse_db}"
        # The documented leads table, empty: the nightly run the scheduler starts on its own
        # (catchup is off, so only the latest interval) then succeeds with nothing to load.
        warehouse = create_engine(self.warehouse_url)
        with warehouse.begin() as conn:
            conn.execute(text(LEADS_DDL))
        warehouse.dispose()

        # The simple auth manager reads the admin's password from this file.
        passwords = home / "passwords.json"
        passwords.write_text(json.dumps({ADMIN_USER: self.password}))
        self.user_id = self.simulator.create_user()
        self.task_id = self.simulator.create_task(self.user_id)
        metadata_url = f"postgresql+psycopg2://{PG_SERVER}/{metadata_db}"
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")},
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
            "AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST": dag_bundles(),
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{ADMIN_USER}:admin",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords),
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.base_url}/execution/",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": metadata_url,
            "AIRFLOW__CELERY__BROKER_URL": f"{REDIS_URL}/{REDIS_DB}",
            "AIRFLOW__CELERY__RESULT_BACKEND": f"db+postgresql://{PG_SERVER}/{metadata_db}",
            "AIRFLOW__CELERY__WORKER_CONCURRENCY": str(self.celery_concurrency),
            "AIRFLOW__OPERATORS__DEFAULT_QUEUE": self.queue,
            "AIRFLOW__API__PORT": str(self.api_port),
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API__BASE_URL": self.base_url,
            "AIRFLOW__API__WORKERS": "1",
            "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_hex(16),
            "AIRFLOW__API__SECRET_KEY": secrets.token_hex(16),
            "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(self.logs / "tasks"),
            # Pick up the DAG file quickly and keep scheduling loops short.
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
            "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "2",
            # A killed triggerer's triggers move to a live one after this many seconds.
            "AIRFLOW__TRIGGERER__TRIGGERER_HEALTH_CHECK_THRESHOLD": "15",
            # As the project ships it (README, "How big a window one load takes").
            "AIRFLOW__CORE__MAX_MAP_LENGTH": "10000",
            "AIRFLOW_CONN_LEAD_WAREHOUSE": self.warehouse_url,
            "AIRFLOW_CONN_AGENT_API_DEFAULT": json.dumps(
                {
                    "conn_type": "agent_api",
                    "host": self.simulator.base_url,
                    "password": self.simulator.token,
                    "extra": {
                        "user_id": self.user_id,
                        "request_timeout": 5,
                        "backoff_seconds": 0.2,
                        "backoff_max_seconds": 2,
                        "lost_answer_grace_seconds": 0.5,
                        **self.agent_api_extra,
                    },
                }
            ),
            # The report writes the run note through the REST API (docs/run-note.md).
            "AIRFLOW_CONN_AIRFLOW_API": json.dumps(
                {
                    "conn_type": "http",
                    "host": self.base_url,
                    "login": ADMIN_USER,
                    "password": self.password,
                }
            ),
            "AIRFLOW_VAR_LEAD_LOAD_API_TASK_ID": self.task_id,
            "LEAD_LOAD_RETRY_DELAY_SECONDS": "2",
            **self.extra_env,
        }
        self._airflow("db", "migrate")
        self._airflow("pools", "set", "agent_api", "4", "lead_load: concurrent posts")
        for name in COMPONENTS:
            self.start_component(name)
        self._wait_for_api()
        return self

    def start_component(self, name: str) -> subprocess.Popen:
        """Start one of COMPONENTS; ``<component>-<n>`` (e.g. "triggerer-2") starts another
        instance of it, with the same command and a log of its own."""
        component = name.rsplit("-", 1)[0] if name.rsplit("-", 1)[-1].isdigit() else name
        if component not in COMPONENTS:
            raise StackError(f"unknown component {name!r}")
        args = {
            "api-server": ["api-server", "--port", str(self.api_port), "--workers", "1"],
            "celery-worker": [
                *("celery", "worker", "--queues", self.queue),
                *("--concurrency", str(self.celery_concurrency)),
            ],
        }.get(component, [component])
        log = (self.logs / f"{name}.log").open("ab")
        # Own process group, so stop() also reaches the task processes each component forks.
        process = subprocess.Popen(
            [sys.executable, "-m", "airflow", *args],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        self.processes[name] = process
        return process

    def _airflow(self, *args: str) -> str:
        result = subprocess.run(
            [sys.executable, "-m", "airflow", *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        if result.returncode != 0:
            raise StackError(f"airflow {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
        return result.stdout

    def _wait_for_api(self, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.check_alive()
            with suppress(requests.RequestException):
                if requests.get(f"{self.base_url}/api/v2/version", timeout=2).ok:
                    return
            time.sleep(1)
        raise StackError(f"api-server not answering on {self.base_url} after {timeout}s")

    def check_alive(self) -> None:
        for name, process in self.processes.items():
            if process.poll() is not None:
                raise StackError(f"{name} exited with {process.returncode}:\n{self.log_tail(name)}")

    def log_tail(self, name: str, chars: int = 3000) -> str:
        path = self.logs / f"{name}.log"
        return path.read_text(errors="replace")[-chars:] if path.exists() else "(no log)"

    def log(self, name: str) -> str:
        return (self.logs / f"{name}.log").read_text(errors="replace")

    # --- tear-down ----------------------------------------------------------------------

    def signal_component(self, name: str, sig: int) -> None:
        """Send ``sig`` to the component's whole process group (SIGSTOP freezes it, children
        included, until SIGCONT)."""
        os.killpg(self.processes[name].pid, sig)

    def stop_component(self, name: str, sig: int = signal.SIGTERM, grace: float = 30) -> None:
        process = self.processes.pop(name, None)
        if process is None:
            return
        with suppress(ProcessLookupError):
            os.killpg(process.pid, sig)
            os.killpg(process.pid, signal.SIGCONT)  # a frozen component must see the signal too
        try:
            process.wait(grace)
        except subprocess.TimeoutExpired:
            with suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)
        # Children that outlived their parent (task processes) go too.
        with suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)

    def stop(self) -> None:
        for name in reversed(list(self.processes)):
            self.stop_component(name)
        for name in self.databases:
            with suppress(Exception):
                _drop_database(name)
        self.databases.clear()
        with suppress(Exception):
            _delete_queue(self.queue)

    def leftover_processes(self) -> list[int]:
        """Pids of any process still running with this stack's AIRFLOW_HOME."""
        return processes_with_home(Path(self.env["AIRFLOW_HOME"]))

    def __enter__(self) -> AirflowStack:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc) -> None:
        self.stop()

    # --- the REST API -------------------------------------------------------------------

    def token(self) -> str:
        if self._token is None:
            answer = requests.post(
                f"{self.base_url}/auth/token",
                json={"username": ADMIN_USER, "password": self.password},
                timeout=10,
            )
            if not answer.ok:
                raise StackError(f"login failed: {answer.status_code} {answer.text}")
            self._token = answer.json()["access_token"]
        return self._token

    def api(self, method: str, path: str, **kwargs) -> dict:
        answer = requests.request(
            method,
            f"{self.base_url}/api/v2{path}",
            headers={"Authorization": f"Bearer {self.token()}"},
            timeout=30,
            **kwargs,
        )
        if not answer.ok:
            raise StackError(f"{method} {path}: {answer.status_code} {answer.text[:2000]}")
        return answer.json() if answer.content else {}

    def wait_for_dag(self, dag_id: str = "lead_load", timeout: float = 180) -> dict:
        """Until the dag-processor has parsed the DAG and the API serves it."""
        deadline = time.monotonic() + timeout
        last = ""
        while time.monotonic() < deadline:
            self.check_alive()
            try:
                return self.api("GET", f"/dags/{dag_id}")
            except StackError as error:
                last = str(error)
            errors = self.api("GET", "/importErrors")["import_errors"]
            if errors:
                raise StackError(f"the dag-processor could not import the DAGs: {errors}")
            time.sleep(2)
        raise StackError(f"DAG {dag_id} not parsed after {timeout}s: {last}")

    def trigger(self, conf: dict, dag_id: str = "lead_load", **body) -> str:
        """Create a run; ``body`` may add e.g. logical_date, data_interval_start/_end."""
        run = self.api(
            "POST", f"/dags/{dag_id}/dagRuns", json={"logical_date": None, "conf": conf, **body}
        )
        return run["dag_run_id"]

    def dag_runs(self, dag_id: str = "lead_load") -> list[dict]:
        return self.api("GET", f"/dags/{dag_id}/dagRuns", params={"limit": 100})["dag_runs"]

    def wait_for_runs(
        self, run_ids: list[str] | None = None, dag_id: str = "lead_load", timeout: float = 600
    ) -> list[dict]:
        """Until the given runs (default: all runs) are finished; returns them."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.check_alive()
            runs = [
                r for r in self.dag_runs(dag_id) if run_ids is None or r["dag_run_id"] in run_ids
            ]
            if (run_ids is None or len(runs) == len(run_ids)) and all(
                r["state"] in ("success", "failed") for r in runs
            ):
                return runs
            time.sleep(3)
        raise StackError(f"runs not finished after {timeout}s: {self.dag_runs(dag_id)}")

    def start_backfill(self, **body) -> dict:
        """Create a backfill (POST /backfills) and return it at once, its runs just created."""
        return self.api("POST", "/backfills", json=body)

    def backfill(self, timeout: float = 900, **body) -> dict:
        """Create a backfill and wait until the scheduler marks it completed; returns it."""
        backfill = self.start_backfill(**body)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.check_alive()
            backfill = self.api("GET", f"/backfills/{backfill['id']}")
            if backfill["completed_at"]:
                return backfill
            time.sleep(3)
        raise StackError(f"backfill not completed after {timeout}s: {backfill}")

    def task_instances(self, run_id: str, dag_id: str = "lead_load") -> list[dict]:
        """Every task instance of the run (the API pages at 100 at most)."""
        found: list[dict] = []
        while True:
            page = self.api(
                "GET",
                f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances",
                params={"limit": 100, "offset": len(found)},
            )
            found += page["task_instances"]
            if not page["task_instances"] or len(found) >= page["total_entries"]:
                return found

    def explain(self, run_id: str, dag_id: str = "lead_load", shown: int = 4) -> str:
        """Why a run is not green: the task instances that did not succeed, the end of the
        newest logs of the first few (their trigger logs included), and the scheduler's."""
        lines: list[str] = []
        failed = [
            ti
            for ti in self.task_instances(run_id, dag_id)
            if ti["state"] not in ("success", "skipped")
        ]
        for ti in failed:
            lines.append(f"{ti['task_id']}[{ti['map_index']}]: {ti['state']}")
        for ti in failed[:shown]:
            folder = self.logs / "tasks" / f"dag_id={dag_id}" / f"run_id={run_id}"
            folder /= f"task_id={ti['task_id']}"
            if ti["map_index"] >= 0:
                folder /= f"map_index={ti['map_index']}"
            for log in sorted(folder.glob("attempt=*"))[-3:]:
                text = log.read_text(errors="replace")[-1500:]
                lines.append(f"--- {ti['task_id']}[{ti['map_index']}] {log.name}:\n{text}")
        lines.append(f"--- scheduler:\n{self.log_tail('scheduler', 1500)}")
        return "\n".join(lines)
