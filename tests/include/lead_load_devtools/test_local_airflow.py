"""What `make up` says the scheduler will start by itself."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from lead_load_devtools.local_airflow import (
    ADMIN_USER,
    NOTE_USER,
    PORT,
    SCHEDULE_ZONE,
    USERS,
    ensure_passwords,
    latest_interval,
    note_connection_env,
    scheduled_run_notice,
)


@pytest.mark.parametrize(
    ("now", "start"),
    [
        # 10:28 Asia/Shanghai: the last whole day began at 02:00 yesterday.
        (datetime(2026, 12, 2, 2, 28, tzinfo=UTC), datetime(2026, 12, 1, 2)),
        # 01:59 Asia/Shanghai: today's 02:00 has not come, so the day before yesterday's.
        (datetime(2026, 12, 1, 17, 59, tzinfo=UTC), datetime(2026, 11, 30, 2)),
        # 02:00 sharp: the day that just ended.
        (datetime(2026, 12, 1, 18, 0, tzinfo=UTC), datetime(2026, 12, 1, 2)),
    ],
)
def test_the_latest_interval_is_the_last_whole_shanghai_day(now, start):
    begin, end = latest_interval(now)
    assert begin == start.replace(tzinfo=SCHEDULE_ZONE)
    assert (end - begin).days == 1 and end <= now


def test_the_notice_names_the_window_in_both_zones_and_how_to_start_paused():
    notice = scheduled_run_notice(datetime(2026, 12, 2, 2, 28, tzinfo=UTC))
    assert (
        "[2026-12-01 02:00 Asia/Shanghai (2026-11-30 18:00 UTC), "
        "2026-12-02 02:00 Asia/Shanghai (2026-12-01 18:00 UTC))"
    ) in notice
    assert "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION=True" in notice
    assert "airflow dags unpause lead_load" in notice


def test_the_passwords_file_keeps_known_passwords_and_makes_the_missing_ones(tmp_path):
    passwords = tmp_path / "passwords.json"
    passwords.write_text(json.dumps({ADMIN_USER: "kept"}))
    made = ensure_passwords(passwords, (ADMIN_USER, NOTE_USER))
    assert list(made) == [NOTE_USER]
    assert json.loads(passwords.read_text()) == {ADMIN_USER: "kept", NOTE_USER: made[NOTE_USER]}
    assert ensure_passwords(passwords, (ADMIN_USER, NOTE_USER)) == {}
    fresh = tmp_path / "home" / "fresh.json"
    assert set(ensure_passwords(fresh, (ADMIN_USER,))) == {ADMIN_USER}
    assert fresh.stat().st_mode & 0o077 == 0  # readable by its owner only


def test_the_note_connection_logs_in_as_a_user_who_may_edit_dag_runs(tmp_path):
    passwords = tmp_path / "passwords.json"
    ensure_passwords(passwords, (ADMIN_USER, NOTE_USER))
    conn = json.loads(note_connection_env(passwords)["AIRFLOW_CONN_AIRFLOW_API"])
    assert conn["login"] == NOTE_USER
    assert conn["password"] == json.loads(passwords.read_text())[NOTE_USER]
    assert conn["host"] == f"http://localhost:{PORT}"
    # The simple auth manager's role "user" may edit DAG runs (docs/run-note.md).
    assert f"{NOTE_USER}:user" in USERS.split(",")
