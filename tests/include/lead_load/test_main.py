"""``python -m lead_load``: the landing check from a shell (``verify``, on a real SQLite ledger
against the simulator, run as a data engineer runs it) and the suppression list
(``suppress``)."""

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
        timeout=240,  # a hang guard: the command imports Airflow, slow on a loaded machine
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
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=240, check=True
    )
    assert (result.stdout, result.stderr) == ("{}\n", "a log line")


# -- python -m lead_load suppress -----------------------------------------------------------


def suppress(uri: str, *args: str) -> tuple[int, str]:
    """Run ``suppress`` on the ledger at ``uri``: its exit code and its results."""
    out = io.StringIO()
    action, *rest = args
    code = main(["suppress", action, "--ledger-url", uri, *rest], out)
    return code, out.getvalue()


def listed(engine) -> dict[str, tuple]:
    from lead_load.ledger import suppressions

    return {e.phone: (e.reason, e.added_by) for e in suppressions.listed(engine)}


def test_suppress_add_reads_a_csv_with_a_header_row(sqlite_engine, tmp_path):
    csv_file = tmp_path / "dnc.csv"
    csv_file.write_text(
        "\ufeffName,Phone,Reason\n"  # as a spreadsheet saves it: a byte order mark
        'Li,139 0000 0001,"asked, twice"\n'
        "Wang,+86 139-0000-0002,\n"
        "Li again,13900000001,repeated\n",
        encoding="utf-8",
    )
    code, said = suppress(
        sqlite_engine.conn_uri, "add", "--reason", "complaint", "--added-by", "ops", str(csv_file)
    )
    assert code == 0
    assert said == (
        "Added 2 phones to the suppression list; 0 were on it already "
        "(1 line repeated a phone given above).\n"
    )
    assert listed(sqlite_engine.engine) == {
        "13900000001": ("asked, twice", "ops"),
        "13900000002": ("complaint", "ops"),
    }


def test_suppress_add_reads_one_phone_per_line_from_standard_input(sqlite_engine, monkeypatch):
    monkeypatch.setattr(sys, "stdin", io.StringIO("13900000001\n\n+8613900000002\n"))
    assert suppress(sqlite_engine.conn_uri, "add") == (
        0,
        "Added 2 phones to the suppression list; 0 were on it already.\n",
    )
    monkeypatch.setattr(sys, "stdin", io.StringIO("13900000002\n13900000003\n"))
    assert suppress(sqlite_engine.conn_uri, "add", "-") == (
        0,
        "Added 1 phone to the suppression list; 1 was on it already.\n",
    )
    assert sorted(listed(sqlite_engine.engine)) == ["13900000001", "13900000002", "13900000003"]


def test_a_bad_line_refuses_the_whole_file_and_adds_nothing(sqlite_engine, tmp_path, capsys):
    phones_file = tmp_path / "phones.txt"
    phones_file.write_text("13900000001\n13900000002\n021-12345678\n\n1390000000\n")
    code, said = suppress(sqlite_engine.conn_uri, "add", str(phones_file))
    assert (code, said) == (2, "")
    err = capsys.readouterr().err
    assert err.splitlines() == [
        "python -m lead_load suppress add: line 3: not_mobile (021*****5678)",
        "python -m lead_load suppress add: line 5: not_mobile (139***0000)",
        "python -m lead_load suppress add: error: 2 bad lines; nothing added (a list is never "
        "half-applied): fix them and run again",
    ]
    assert listed(sqlite_engine.engine) == {}


def test_suppress_list_masks_the_phones_unless_asked_not_to(sqlite_engine, monkeypatch):
    monkeypatch.setattr(sys, "stdin", io.StringIO("phone,reason\n13900000001,asked\n"))
    suppress(sqlite_engine.conn_uri, "add", "--added-by", "ops")

    code, text = suppress(sqlite_engine.conn_uri, "list")
    assert code == 0
    header, line = text.splitlines()
    assert header == "1 phone on the suppression list"
    assert line.split()[0] == "139****0001" and line.endswith(" ops              asked")
    assert "13900000001" not in text

    [entry] = json.loads(suppress(sqlite_engine.conn_uri, "list", "--json")[1])
    assert (entry["phone"], entry["reason"], entry["added_by"]) == ("139****0001", "asked", "ops")
    assert entry["added_at"].endswith("+00:00")
    [full] = json.loads(suppress(sqlite_engine.conn_uri, "list", "--json", "--unmasked")[1])
    assert full["phone"] == "13900000001"


def test_suppress_remove_says_how_many_were_removed(sqlite_engine, tmp_path, capsys):
    uri = sqlite_engine.conn_uri
    phones_file = tmp_path / "listed.txt"
    phones_file.write_text("13900000001\n13900000002\n13900000003\n")
    suppress(uri, "add", str(phones_file))

    # A phone that is no mobile number: nothing removed.
    assert suppress(uri, "remove", "13900000001", "12345") == (2, "")
    assert "argument 2: not_mobile (*****)" in capsys.readouterr().err
    assert len(listed(sqlite_engine.engine)) == 3

    # One of two not on the list: the other is removed, exit code 1.
    assert suppress(uri, "remove", "139 0000 0001", "13900000009") == (
        1,
        "Removed 1 phone from the suppression list; 1 was not on it.\n",
    )
    rest = tmp_path / "rest.csv"
    rest.write_text("phone\n13900000002\n13900000003\n")
    assert suppress(uri, "remove", "--file", str(rest)) == (
        0,
        "Removed 2 phones from the suppression list; 0 were not on it.\n",
    )
    assert listed(sqlite_engine.engine) == {}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["suppress"], "the following arguments are required: action"),
        (["suppress", "remove"], "give the phones to remove, or --file"),
        (["suppress", "list", "--nope"], "unrecognized arguments: --nope"),
    ],
)
def test_suppress_usage_errors_exit_2_on_one_line(args, message, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(args)
    assert exit_.value.code == 2
    [line] = capsys.readouterr().err.strip().splitlines()
    assert message in line


def test_suppress_add_as_an_operator_runs_it(sqlite_engine):
    """A subprocess reading standard input, the ledger named by --ledger-url."""
    command = ["suppress", "add", "--ledger-url", sqlite_engine.conn_uri, "--reason", "asked"]
    found = subprocess.run(
        [sys.executable, "-m", "lead_load", *command],
        input="13900000001\n13900000002\n",
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=240,  # a hang guard: the command imports Airflow, slow on a loaded machine
        check=False,
    )
    assert found.returncode == 0, found.stderr
    assert found.stdout == "Added 2 phones to the suppression list; 0 were on it already.\n"
    assert listed(sqlite_engine.engine)["13900000002"][0] == "asked"
