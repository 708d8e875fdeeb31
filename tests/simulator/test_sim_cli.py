"""Command-line start-up options and clean shutdown of a separate simulator process."""

import signal
import subprocess
import sys

import pytest
import requests

from agent_api_simulator.testing import SimulatorProcess, SimulatorStartError

USER_ID = "4d99d91c-f5d9-49da-88da-758977cc58a9"
TASK_ID = "b15b7392-a83f-4e0e-9570-31dd2ec8f85c"


def test_start_options_create_user_task_and_faults():
    faults = {"error_rate": 0.0, "rate_429": 0.5, "retry_after": 2}
    with SimulatorProcess(
        token="cli-token", user_id=USER_ID, task_id=TASK_ID, seed=5, faults=faults
    ) as sim:
        assert sim.token == "cli-token"
        assert sim.base_url == f"http://127.0.0.1:{sim.port}"
        config = sim.faults()
        assert (config["seed"], config["rate_429"], config["retry_after"]) == (5, 0.5, 2)
        sim.set_faults()  # back to no faults, keeps seed 5
        response = requests.get(
            f"{sim.base_url}/agent-api/user/{USER_ID}/all_task", headers=sim.auth_headers, timeout=5
        )
        (task,) = response.json()["data"]
        assert (task["id"], task["status"], task["version"]) == (TASK_ID, 1, 2)
        assert sim.faults()["seed"] == 5


def test_process_delay_option():
    with SimulatorProcess(process_delay=0.0, user_id=USER_ID, task_id=TASK_ID) as sim:
        response = requests.post(
            f"{sim.base_url}/agent-api/user/{USER_ID}/task/{TASK_ID}/async_number",
            headers=sim.auth_headers,
            json={"data": [{"phone": "13012121211", "sort": 0}]},
            timeout=5,
        )
        assert response.json()["code"] == 200
        (batch,) = sim.wait_until_processed(timeout=2)
        assert batch["imported"] == 1


def test_sigterm_stops_the_server_cleanly():
    sim = SimulatorProcess().start()
    port = sim.port
    assert sim.stop() == 0
    with pytest.raises(requests.ConnectionError):
        requests.get(f"http://127.0.0.1:{port}/_sim/health", timeout=1)


def test_sigint_stops_the_server_cleanly():
    sim = SimulatorProcess().start()
    sim.popen.send_signal(signal.SIGINT)
    assert sim.popen.wait(timeout=10) == 0
    sim.stop()


def test_bad_faults_option_fails_start_with_a_clear_error():
    with pytest.raises(SimulatorStartError, match="rate_42"):
        SimulatorProcess(faults={"rate_42": 1}).start()


def test_listening_line_is_printed():
    process = subprocess.Popen(
        [sys.executable, "-m", "agent_api_simulator", "--port", "0", "--token", "t"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        line = process.stdout.readline()
        assert line.startswith("agent-api simulator listening on http://127.0.0.1:")
    finally:
        process.terminate()
        assert process.wait(timeout=10) == 0
        process.stdout.close()
