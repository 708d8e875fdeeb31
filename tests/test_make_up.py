"""`make up` (python -m lead_load_devtools.local_airflow): a newcomer's Airflow comes up with
the DAGs parsed (the default load, and the example second load paused) and its connections
wired (airflow_api too: a run gets its note), answers a
login, and stops every process on SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from contextlib import suppress
from urllib.parse import quote

import pytest
import requests

from lead_load_devtools.demo import seed_demo_warehouse
from tests.distributed.stack import free_port, processes_with_home

pytestmark = pytest.mark.slow


def test_make_up_serves_the_dag_and_stops_cleanly(tmp_path):
    home = tmp_path / "airflow-home"
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")},
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__API__PORT": str(port),
        "AIRFLOW__CORE__DAGS_FOLDER": os.environ["AIRFLOW__CORE__DAGS_FOLDER"],
        "AIRFLOW__CORE__PLUGINS_FOLDER": os.environ["AIRFLOW__CORE__PLUGINS_FOLDER"],
    }
    log = (tmp_path / "up.log").open("wb")
    up = subprocess.Popen(
        [sys.executable, "-m", "lead_load_devtools.local_airflow"], env=env, stdout=log, stderr=log
    )
    try:
        deadline = time.monotonic() + 180
        dag = None
        while time.monotonic() < deadline and dag is None:
            assert up.poll() is None, (tmp_path / "up.log").read_text()[-3000:]
            time.sleep(2)
            with suppress(requests.RequestException, OSError, KeyError, ValueError):
                password = json.loads(
                    (home / "simple_auth_manager_passwords.json.generated").read_text()
                )["admin"]
                token = requests.post(
                    f"{url}/auth/token",
                    json={"username": "admin", "password": password},
                    timeout=5,
                ).json()["access_token"]
                answer = requests.get(
                    f"{url}/api/v2/dags/lead_load",
                    headers={"Authorization": f"Bearer {token}"},
                    timeout=5,
                )
                if answer.ok:
                    dag = answer.json()
        assert dag is not None, (tmp_path / "up.log").read_text()[-3000:]
        assert dag["is_paused"] is False
        # The second example load is there too, paused until someone sets its calling task.
        lapsed = requests.get(
            f"{url}/api/v2/dags/lapsed_customers",
            headers={"Authorization": f"Bearer {token}"},
            timeout=5,
        )
        assert lapsed.ok, lapsed.text[:2000]
        assert lapsed.json()["is_paused"] is True
        output = (tmp_path / "up.log").read_text()
        assert f"Airflow UI: http://localhost:{port}" in output

        # What the README tells a newcomer to do next: trigger a run for the demo's window.
        # Its posts and callback waits run in standalone's triggerer, against SQLite.
        headers = {"Authorization": f"Bearer {token}"}
        answer = requests.post(
            f"{url}/api/v2/dags/lead_load/dagRuns",
            headers=headers,
            json={
                "logical_date": None,
                "conf": {"window_start": "2026-11-24", "window_end": "2026-11-25"},
            },
            timeout=10,
        )
        assert answer.ok, f"creating the run: HTTP {answer.status_code}: {answer.text[:2000]}"
        run = answer.json()
        run_url = f"{url}/api/v2/dags/lead_load/dagRuns/{quote(run['dag_run_id'], safe='')}"
        deadline = time.monotonic() + 420
        while run.get("state") not in ("success", "failed") and time.monotonic() < deadline:
            time.sleep(3)
            answer = requests.get(run_url, headers=headers, timeout=10)
            # A busy api-server may answer an error now and then: ask again, but say it last.
            run = (
                answer.json() if answer.ok else {"answer": answer.status_code, "body": answer.text}
            )
        assert run.get("state") == "success", (
            f"the run: {run}\n" + (tmp_path / "up.log").read_text()[-3000:]
        )
        # The report wrote the summary on the run, through make up's airflow_api connection.
        assert (run.get("note") or "").startswith("imported"), run
        # The warehouse's ledger: every valid distinct number of the seed imported, once.
        _, _, leads = seed_demo_warehouse(tmp_path / "expected")
        ledger = sqlite3.connect(home / "up" / "warehouse.db")
        imported = ledger.execute(
            "SELECT COUNT(*), COUNT(DISTINCT phone) FROM lead_load_ledger WHERE status = 'imported'"
        ).fetchone()
        ledger.close()
        assert imported == (len(leads.valid_phones), len(leads.valid_phones))
    finally:
        up.send_signal(signal.SIGTERM)
        up.wait(120)
        log.close()
    assert up.returncode == 0
    time.sleep(1)
    assert processes_with_home(home) == [], "processes of make up outlived it"
