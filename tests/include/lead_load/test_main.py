"""``python -m lead_load verify``: the landing check from a shell, on a real SQLite ledger
against the simulator, run as a data engineer runs it."""

import io
import json
import os
import subprocess
import sys
from datetime import timedelta

import pytest

from agent_api import lookup_cache
from lead_load.__main__ import main
from lead_load.core.ledger_rules import Status
from lead_load.ledger import schema
from tests.dags.conftest import REPO
from tests.include.lead_load.landing_samples import (
    RUN,
    Platform,
    clean_ledger,
    corrupt,
    rows,
    set_row,
)

HOUR_AGO = timedelta(hours=1)  # imported well before the list read: beyond its margin

# -- the command ----------------------------------------------------------------------------
# It looks the Variable lead_load_ledger_conn_id up as any Airflow process does, so the tests
# that run it whole get the migrated metadata DB a deployment has (airflow_db).


def run_cli(platform: Platform, *args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "lead_load", "verify", *args],
        env={**os.environ, "AIRFLOW_CONN_AGENT_API_DEFAULT": platform.conn_json, **env},
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_command_reports_with_masked_phones_and_exit_1(sqlite_engine, platform, airflow_db):
    """As a data engineer runs it: a subprocess, the ledger found through the DAG's
    Airflow connection, machine output on standard output (Airflow's logs kept off it)."""
    engine = sqlite_engine.engine
    ph = clean_ledger(engine, platform)
    corrupt(engine)
    set_row(engine, "f", updated_at=schema.now() - HOUR_AGO)
    before = rows(engine)

    found = run_cli(
        platform, "--run-id", RUN, "--json", AIRFLOW_CONN_LEAD_WAREHOUSE=sqlite_engine.conn_uri
    )

    assert found.returncode == 1, found.stderr
    answer = json.loads(found.stdout)
    assert answer["counts"]["unrepaired"] == {
        "imported_but_absent": 1,
        "not_imported_but_present": 1,
        "submitted_but_absent": 1,
    }
    assert {f["lead_id"]: f["outcome"] for f in answer["findings"]} == {
        "b": "pending",
        "f": "pending",
        "e": "unrepairable",
    }
    assert rows(engine) == before
    output = found.stdout + found.stderr
    assert "Traceback" not in output
    assert not [phone for phone in ph.values() if phone in output]
    assert ph["b"][:3] + "****" + ph["b"][-4:] in found.stdout


def test_command_repairs_then_finds_nothing_and_exits_0(sqlite_engine, platform, airflow_db):
    engine = sqlite_engine.engine
    ph = clean_ledger(engine, platform)
    set_row(engine, "b", status=Status.NOT_IMPORTED.value)
    set_row(engine, "f", status=Status.IMPORTED.value, updated_at=schema.now() - HOUR_AGO)
    window = ["--window-start", "2026-11-24", "--window-end", "2026-11-25"]
    args = ["verify", *window, "--ledger-url", sqlite_engine.conn_uri]

    out = io.StringIO()
    assert main([*args, "--repair"], out) == 0
    text = out.getvalue()
    assert "repaired  not_imported_but_present: lead b, phone 137****" in text
    assert "repaired  imported_but_absent: lead f" in text
    assert not [phone for phone in ph.values() if phone in text]
    assert rows(engine)["b"]["status"] == "imported"

    again = io.StringIO()
    assert main(args, again) == 0
    assert "repaired none; left none" in again.getvalue()


def test_command_exits_2_and_changes_nothing_when_the_list_read_is_incomplete(
    sqlite_engine, platform, capsys
):
    engine = sqlite_engine.engine
    clean_ledger(engine, platform)
    corrupt(engine)
    set_row(engine, "f", updated_at=schema.now() - HOUR_AGO)
    before = rows(engine)
    platform.sim.set_faults(max_per_page=2, empty_page_at=2)

    out = io.StringIO()
    args = ["verify", "--run-id", RUN, "--repair", "--ledger-url", sqlite_engine.conn_uri]
    assert main(args, out) == 2

    [line] = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("python -m lead_load verify: error: the number list of run run-1")
    assert "could not be read whole, so nothing was changed" in line
    assert "incomplete read" in line
    assert out.getvalue() == ""
    assert rows(engine) == before


def test_command_exits_2_and_changes_nothing_when_the_list_read_is_not_trusted(
    sqlite_engine, platform, capsys
):
    """The task was recreated empty: every imported row of the run looks absent."""
    engine = sqlite_engine.engine
    ph = clean_ledger(engine, platform)
    set_row(engine, "b", status=Status.NOT_IMPORTED.value)
    for lead in "acd":
        set_row(engine, lead, updated_at=schema.now() - HOUR_AGO)
    platform.sim.reset()
    platform.sim.create_user(platform.user_id)
    platform.sim.create_task(platform.user_id, task_id=platform.task_id)
    platform.land([ph["b"]])
    before = rows(engine)

    args = ["verify", "--run-id", RUN, "--repair", "--ledger-url", sqlite_engine.conn_uri]
    assert main(args, io.StringIO()) == 2

    [line] = capsys.readouterr().err.strip().splitlines()
    assert "the number list read of run run-1" in line and "is not to be trusted" in line
    assert "nothing was changed" in line
    assert not [phone for phone in ph.values() if phone in line]
    assert rows(engine) == before


def test_command_fails_on_one_line_when_the_ledger_is_unreachable(platform, capsys):
    out = io.StringIO()
    unreachable = "postgresql://postgres@127.0.0.1:9/x"
    code = main(["verify", "--api-task-id", platform.task_id, "--ledger-url", unreachable], out)
    assert code == 2
    [line] = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("python -m lead_load verify: error:")
    assert "127.0.0.1" in line and "port 9" in line
    assert out.getvalue() == ""


def test_command_names_a_missing_connection(sqlite_engine, platform, monkeypatch, capsys):
    monkeypatch.delenv("AIRFLOW_CONN_AGENT_API_DEFAULT")
    lookup_cache.connections.clear()
    args = ["verify", "--api-task-id", platform.task_id, "--ledger-url", sqlite_engine.conn_uri]
    assert main(args, io.StringIO()) == 2
    [line] = capsys.readouterr().err.strip().splitlines()
    assert "agent_api_default" in line and "isn't defined" in line


def test_command_with_no_run_in_the_window_checks_nothing(sqlite_engine, platform, airflow_db):
    out = io.StringIO()
    args = ["--window-start", "2030-01-01", "--window-end", "2030-01-02", "--json"]
    assert main(["verify", *args, "--ledger-url", sqlite_engine.conn_uri], out) == 0
    assert json.loads(out.getvalue())["counts"]["checked"] == 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "say what to check"),
        (["--window-start", "2026-11-24"], "go together"),
        (["--run-id", "r", "--window-start", "a", "--window-end", "b"], "not both"),
    ],
)
def test_command_usage_errors_exit_2_on_one_line(args, message, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["verify", *args])
    assert exit_.value.code == 2
    [line] = capsys.readouterr().err.strip().splitlines()
    assert message in line


def test_command_keeps_what_writes_to_file_descriptor_1_off_its_results():
    """Airflow's logging writes to descriptor 1 directly; --json must stay parseable."""
    script = (
        "import os; from lead_load.__main__ import _results_stream; out = _results_stream(); "
        "os.write(1, b'a log line'); print('{}', file=out, flush=True)"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=30, check=True
    )
    assert (result.stdout, result.stderr) == ("{}\n", "a log line")
