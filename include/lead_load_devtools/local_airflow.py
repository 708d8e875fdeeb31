"""`make up`: Airflow on this machine (`airflow standalone`: api-server, scheduler,
dag-processor and triggerer on the repo's SQLite home), wired to the demo's warehouse and a
simulator of the platform, so a newcomer can trigger lead_load from the UI at once.

The report task writes the run note through the api-server (docs/run-note.md): `make up`
defines the ``airflow_api`` connection for it, as the simple auth manager's user ``lead_load``
(role ``user``: may edit DAG runs), whose password it keeps beside the admin's.

The DAG starts unpaused, so the scheduler at once starts one scheduled run of the latest whole
interval by itself (catchup is off); `make up` prints that window at start-up. The simulator
and the seeded warehouse live as long as this command; Ctrl-C stops all.
Against a real warehouse and platform, run `airflow standalone` yourself with the two
connections defined (see the README).
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from agent_api_simulator.testing import SimulatorProcess
from lead_load_devtools.demo import WINDOW, connection_env, seed_demo_warehouse

PORT = os.environ.get("AIRFLOW__API__PORT", "8080")
URL = f"http://localhost:{PORT}"
# The DAG's schedule: every day at 02:00 in this zone (dags/lead_load_dag.py).
SCHEDULE_ZONE = ZoneInfo("Asia/Shanghai")
SCHEDULE_HOUR = 2
# The simple auth manager's users: the admin a newcomer logs in as, and the user the report
# task writes run notes as (the airflow_api connection).
ADMIN_USER = "admin"
NOTE_USER = "lead_load"
USERS = f"{ADMIN_USER}:admin,{NOTE_USER}:user"


def latest_interval(now: datetime) -> tuple[datetime, datetime]:
    """The last whole [02:00, 02:00) Asia/Shanghai day before ``now``: the run the scheduler
    starts on its own when it first sees the unpaused DAG (catchup is off)."""
    local = now.astimezone(SCHEDULE_ZONE)
    end = local.replace(hour=SCHEDULE_HOUR, minute=0, second=0, microsecond=0)
    if end > local:
        end -= timedelta(days=1)
    return end - timedelta(days=1), end


def scheduled_run_notice(now: datetime) -> str:
    """What the scheduler will do by itself, in both zones, and how to avoid it."""
    start, end = latest_interval(now)

    def both(moment: datetime) -> str:
        utc = moment.astimezone(UTC)
        return f"{moment:%Y-%m-%d %H:%M} Asia/Shanghai ({utc:%Y-%m-%d %H:%M} UTC)"

    return (
        "lead_load starts unpaused: as soon as the scheduler parses it, it starts one "
        "scheduled run by itself (catchup is off: only the latest whole interval), loading "
        f"the leads updated in [{both(start)}, {both(end)}). The seeded leads are dated "
        f"{WINDOW[0].date()}, so unless that is the window it finds none and succeeds with 0 "
        "imported. To start it paused instead, run "
        "`AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION=True make up` on a fresh .airflow/ "
        "(the paused state is kept in the metadata DB) and unpause it in the UI or with "
        "`airflow dags unpause lead_load`."
    )


def ensure_passwords(path: Path, users: tuple[str, ...]) -> dict[str, str]:
    """The simple auth manager's passwords file with a password for each of ``users``: kept
    when the file has one, generated otherwise (as Airflow does). Returns the users whose
    password was generated now, with it."""
    try:
        passwords = json.loads(path.read_text() or "{}")
    except FileNotFoundError:
        passwords = {}
    made = {user: secrets.token_urlsafe(12) for user in users if user not in passwords}
    if made:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as file:
            file.write(json.dumps({**passwords, **made}) + "\n")
    return made


def note_connection_env(passwords_file: Path) -> dict[str, str]:
    """The ``airflow_api`` connection: this api-server, as the note's user."""
    password = json.loads(passwords_file.read_text())[NOTE_USER]
    return {
        "AIRFLOW_CONN_AIRFLOW_API": json.dumps(
            {
                "conn_type": "http",
                "host": f"http://localhost:{PORT}",
                "login": NOTE_USER,
                "password": password,
            }
        )
    }


def _interrupt(*_) -> None:
    raise KeyboardInterrupt


def main() -> int:
    airflow_home = Path(os.environ.get("AIRFLOW_HOME", ".airflow"))
    db, _, _ = seed_demo_warehouse(airflow_home / "up")
    passwords_file = Path(
        os.environ.get("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE")
        or airflow_home / "simple_auth_manager_passwords.json.generated"
    ).absolute()
    made = ensure_passwords(passwords_file, (ADMIN_USER, NOTE_USER))
    with SimulatorProcess() as sim:
        user_id = sim.create_user()
        api_task_id = sim.create_task(user_id)
        bin_dir = str(Path(sys.executable).parent)
        env = {
            # A trial, not production: no example DAGs, and lead_load runs when triggered.
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
            # Task processes find the execution API through the base URL, which otherwise
            # assumes port 8080 whatever AIRFLOW__API__PORT says.
            "AIRFLOW__API__BASE_URL": f"http://localhost:{PORT}",
            # The admin, and the user the report task sets run notes as (airflow_api).
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": USERS,
            **note_connection_env(passwords_file),
            **os.environ,
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords_file),
            **connection_env(sim, db, user_id, api_task_id),
            # standalone starts its components as `airflow ...`: the venv's must come first.
            "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
        }
        password = (
            f"password {made[ADMIN_USER]} (new), kept in"
            if ADMIN_USER in made
            else "password kept in"
        )
        print(
            f"\nSimulator on {sim.base_url} (calling task {api_task_id}).\n"
            f"Airflow UI: {URL}  user {ADMIN_USER}, {password} {passwords_file}.\n"
            f"Run notes are written through the connection airflow_api as user {NOTE_USER}.\n"
            f"{scheduled_run_notice(datetime.now(UTC))}\n"
            f"Trigger lead_load with window_start {WINDOW[0].date()} and window_end "
            f"{WINDOW[1].date()} to load the seeded leads. Ctrl-C stops everything.\n",
            flush=True,
        )
        # A SIGTERM (not only Ctrl-C) must stop standalone and its components too.
        signal.signal(signal.SIGTERM, _interrupt)
        standalone = subprocess.Popen(  # noqa: S603 - our own venv's airflow, fixed arguments
            [os.path.join(bin_dir, "airflow"), "standalone"],
            env=env,
            start_new_session=True,  # its components share its process group: stop them all
            preexec_fn=_default_sigint,
        )
        try:
            return standalone.wait()
        except KeyboardInterrupt:
            return _stop(standalone)


def _default_sigint() -> None:
    # Started from a background shell, SIGINT arrives ignored, and Python then never raises
    # KeyboardInterrupt: standalone would not stop its components on our SIGINT.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _stop(standalone: subprocess.Popen) -> int:
    """SIGINT lets standalone stop its components; whatever is left after a minute is killed."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    standalone.send_signal(signal.SIGINT)
    try:
        standalone.wait(60)
    except subprocess.TimeoutExpired:
        print("standalone did not stop within 60 s: killing its processes", flush=True)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(standalone.pid, signal.SIGKILL)
    standalone.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
