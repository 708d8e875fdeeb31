"""`make demo`: the real lead load, end to end, on the embedded default.

1. seeds a SQLite warehouse (``.airflow/demo/warehouse.db``) with synthetic leads: messy
   phone formats, duplicates and invalid rows included;
2. starts the platform simulator on a free local port;
3. runs ``airflow dags test lead_load`` for one day's window;
4. prints the run's summary and what the simulator received, then stops the simulator.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import create_engine, text

from agent_api_simulator.testing import SimulatorProcess
from lead_load.steps.report import format_summary
from lead_load_devtools.synthetic import generate, write_leads

DEMO_LEADS = 3000
WINDOW = (datetime(2026, 11, 24, tzinfo=UTC), datetime(2026, 11, 25, tzinfo=UTC))


def seed_demo_warehouse(home: Path):
    """A fresh SQLite warehouse in ``home`` with the demo's synthetic leads."""
    home.mkdir(parents=True, exist_ok=True)
    db = home / "warehouse.db"
    db.unlink(missing_ok=True)
    engine = create_engine(f"sqlite:///{db}")
    leads = generate(DEMO_LEADS, seed=42, start=WINDOW[0], end=WINDOW[1])
    write_leads(engine, leads.frame)
    print(
        f"Seeded {db} with {DEMO_LEADS} leads: {len(leads.valid_phones)} valid distinct "
        f"numbers, {len(leads.invalid_leads)} invalid rows, {len(leads.duplicate_leads)} "
        "duplicates.",
        flush=True,
    )
    return db, engine, leads


def connection_env(sim: SimulatorProcess, db: Path, user_id: str, api_task_id: str) -> dict:
    """The environment that points Airflow at the demo warehouse and the simulator."""
    return {
        "AIRFLOW_CONN_LEAD_WAREHOUSE": f"sqlite:///{db}",
        "AIRFLOW_CONN_AGENT_API_DEFAULT": json.dumps(
            {
                "conn_type": "agent_api",
                "host": sim.base_url,
                "password": sim.token,
                "extra": {"user_id": user_id},
            }
        ),
        "AIRFLOW_VAR_LEAD_LOAD_API_TASK_ID": api_task_id,
    }


def main() -> int:
    home = Path(os.environ.get("AIRFLOW_HOME", ".airflow")) / "demo"
    db, engine, leads = seed_demo_warehouse(home)

    with SimulatorProcess() as sim:
        user_id = sim.create_user()
        api_task_id = sim.create_task(user_id)
        print(f"Simulator listening on {sim.base_url} (calling task {api_task_id}).", flush=True)
        env = {**os.environ, **connection_env(sim, db, user_id, api_task_id)}
        conf = {"window_start": WINDOW[0].isoformat(), "window_end": WINDOW[1].isoformat()}
        print(f"Running `airflow dags test lead_load` for {conf} ...", flush=True)
        log = home / "dags-test.log"
        with log.open("w") as out:
            result = subprocess.run(  # noqa: S603 - our own interpreter and fixed arguments
                [
                    sys.executable,
                    "-m",
                    "airflow",
                    "dags",
                    "test",
                    "lead_load",
                    "-c",
                    json.dumps(conf),
                ],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                check=False,
            )
        in_calling_task = sim.task_numbers(user_id, api_task_id)
        posts = [e for e in sim.journal() if e["path"].endswith("/async_number")]

    with engine.connect() as conn:
        summary = conn.execute(text("SELECT summary FROM lead_load_runs")).scalar()
    if summary:
        print("\nRun summary (also in the lead_load_runs table):")
        print(format_summary(json.loads(summary)))
    print(
        f"\nThe simulator received {len(posts)} import calls and now holds {len(in_calling_task)} "
        f"numbers in the calling task (expected {len(leads.valid_phones)})."
    )
    if result.returncode != 0:
        print(f"The DAG run failed; its log is in {log}.")
        return result.returncode
    print(f"The DAG run succeeded; its log is in {log}. Rejected rows are in lead_load_rejects.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
