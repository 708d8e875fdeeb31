"""The compose stack's structure: no Docker engine runs here, so the file itself is checked."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlparse

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
COMPOSE = yaml.safe_load((REPO / "docker-compose.yaml").read_text())
SERVICES = COMPOSE["services"]
AIRFLOW_COMMANDS = {
    "airflow-apiserver": "api-server",
    "airflow-scheduler": "scheduler",
    "airflow-dag-processor": "dag-processor",
    "airflow-triggerer": "triggerer",
    "airflow-worker": "celery worker",
}


def env_of(service: str) -> dict[str, str]:
    return SERVICES[service]["environment"]


def test_every_component_of_the_stack_is_there():
    expected = {*AIRFLOW_COMMANDS, "airflow-init", "postgres", "redis", "simulator", "warehouse"}
    assert expected <= SERVICES.keys()
    for service, command in AIRFLOW_COMMANDS.items():
        assert SERVICES[service]["command"] == command
        assert "healthcheck" in SERVICES[service], service


def test_airflow_services_share_the_project_image_and_mounts():
    for service in (*AIRFLOW_COMMANDS, "airflow-init", "simulator"):
        spec = SERVICES[service]
        assert spec["image"] == "lead-load-airflow:latest" and spec["build"] == "."
        mounts = {m.rsplit(":", 1)[1] for m in spec["volumes"]}
        assert {"/opt/airflow/dags", "/opt/lead_load/plugins", "/opt/lead_load/include"} <= mounts
        for mount in spec["volumes"]:
            source = mount.rsplit(":", 1)[0].replace("${AIRFLOW_PROJ_DIR:-.}/", "")
            assert source == "logs" or (REPO / source).is_dir(), mount


def test_image_is_the_official_airflow_image_of_the_locked_version():
    dockerfile = (REPO / "Dockerfile").read_text()
    runtime_lock = (REPO / "requirements" / "runtime.lock").read_text()
    locked = re.search(r"^apache-airflow==(\S+)$", runtime_lock, re.M)
    assert f"FROM apache/airflow:{locked.group(1)}-python3.11" in dockerfile
    assert "requirements/runtime.lock" in dockerfile


def test_dependencies_name_existing_services():
    for name, spec in SERVICES.items():
        for dependency in spec.get("depends_on") or {}:
            assert dependency in SERVICES, f"{name} depends on unknown {dependency}"
    assert SERVICES["airflow-scheduler"]["depends_on"]["airflow-init"] == {
        "condition": "service_completed_successfully"
    }


def test_metadata_db_broker_and_connections_resolve_to_the_right_services():
    env = env_of("airflow-scheduler")
    assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    assert urlparse(env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]).hostname == "postgres"
    assert urlparse(env["AIRFLOW__CELERY__BROKER_URL"]).hostname == "redis"

    warehouse = urlparse(env["AIRFLOW_CONN_LEAD_WAREHOUSE"])
    assert warehouse.hostname == "warehouse"
    assert warehouse.username == SERVICES["warehouse"]["environment"]["POSTGRES_USER"]
    assert warehouse.path.lstrip("/") == SERVICES["warehouse"]["environment"]["POSTGRES_DB"]

    # Compose fills ${VAR:-default}; do the same to read the JSON connection.
    raw = re.sub(r"\$\{[A-Z_]+:-([^}]*)\}", r"\1", env["AIRFLOW_CONN_AGENT_API_DEFAULT"])
    agent_api = json.loads(raw)
    host = urlparse(agent_api["host"])
    assert agent_api["conn_type"] == "agent_api"
    assert host.hostname == "simulator"
    assert f"--port {host.port}" in SERVICES["simulator"]["command"]
    assert f"--token {agent_api['password']}" in re.sub(
        r"\$\{[A-Z_]+:-([^}]*)\}", r"\1", SERVICES["simulator"]["command"]
    )


def test_init_prepares_the_db_and_the_pool_the_dag_uses():
    script = "\n".join(SERVICES["airflow-init"]["command"])
    assert "airflow db migrate" in script
    assert "airflow pools set agent_api" in script


@pytest.mark.postgres
def test_the_warehouse_seed_command_loads_leads_into_postgresql():
    from tests.dags.conftest import postgres_warehouse

    warehouse = postgres_warehouse()
    try:
        command = SERVICES["warehouse-seed"]["command"].split()
        assert command[:3] == ["python", "-m", "lead_load_devtools.seed_warehouse"]
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "lead_load_devtools.seed_warehouse",
                "--url",
                warehouse.conn_uri,
                "--leads",
                "40",
            ],
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
        )
        assert result.returncode == 0, result.stderr
        assert warehouse.scalar("SELECT COUNT(*) FROM leads") == 40
    finally:
        for step in warehouse.cleanup:
            step()


# The Airflow settings a load's design needs (README, "How big a window one load takes"):
# every setup of the project ships them alike.
# ([triggerer] max_trigger_to_select_per_loop stays Airflow's: docs/scale.md says why.)
DESIGN_SETTINGS = ("AIRFLOW__CORE__MAX_MAP_LENGTH",)


@pytest.mark.parametrize("name", DESIGN_SETTINGS)
def test_every_setup_ships_the_airflow_settings_a_load_needs(name):
    """The compose stack, the Makefile's local Airflow and the distributed tests' stack (which
    the end-to-end benchmark uses too) carry the same value, and the README names it."""
    makefile = (REPO / "Makefile").read_text()
    (made,) = re.findall(rf"^export {name} := (\d+)$", makefile, re.M)
    stack = (REPO / "tests" / "distributed" / "stack.py").read_text()
    assert f'"{name}": "{made}"' in stack
    for service in ("airflow-scheduler", "airflow-triggerer", "airflow-apiserver"):
        assert env_of(service)[name] == made, service
    assert name in (REPO / "README.md").read_text()


def test_the_map_limit_takes_a_million_leads_in_one_load():
    makefile = (REPO / "Makefile").read_text()
    (made,) = re.findall(r"^export AIRFLOW__CORE__MAX_MAP_LENGTH := (\d+)$", makefile, re.M)
    assert int(made) * 200 >= 1_000_000


def test_the_run_note_connection_logs_in_as_a_user_whose_password_init_writes(tmp_path):
    """airflow_api (docs/run-note.md): the api-server, as a user of role user (may edit DAG
    runs), whose password airflow-init writes into the passwords file the api-server reads,
    keeping the admin's."""
    env = env_of("airflow-worker")
    conn = urlparse(re.sub(r"\$\{[A-Z_]+:-([^}]*)\}", r"\1", env["AIRFLOW_CONN_AIRFLOW_API"]))
    assert (conn.hostname, conn.port) == ("airflow-apiserver", 8080)
    assert "8080:8080" in SERVICES["airflow-apiserver"]["ports"]
    assert f"{conn.username}:user" in env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS"].split(",")
    passwords_file = env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"]
    assert passwords_file.startswith("/opt/airflow/logs/")  # a mount init and api-server share

    # Run init's line here, on a file that already holds the admin's password.
    script = "\n".join(SERVICES["airflow-init"]["command"]).replace("\\\n", " ")
    (line,) = [line for line in script.splitlines() if line.strip().startswith("python -c")]
    local = tmp_path / "passwords.json"
    local.write_text(json.dumps({"admin": "generated"}))
    line = line.replace("$${AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE}", str(local))
    args = shlex.split(re.sub(r"\$\{[A-Z_]+:-([^}]*)\}", r"\1", line))
    subprocess.run([sys.executable, *args[1:]], check=True, timeout=30)
    assert json.loads(local.read_text()) == {"admin": "generated", conn.username: conn.password}
    assert script.index("python -c") < script.index("chown -R")  # owned by the airflow user
