"""The landing check on real ledgers (SQLite, PostgreSQL) against the simulator over HTTP.

Each test lands real numbers in a simulator task, writes the ledger a run would have left
(``clean_ledger``), corrupts it on purpose and checks what the landing check finds, repairs
and leaves alone, reading the database afterwards.
"""

from __future__ import annotations

import io
import itertools
import json
import os
import subprocess
import sys
from dataclasses import dataclass

import pytest
from sqlalchemy import insert, select, update

from agent_api import lookup_cache
from agent_api.hooks.agent_api import AgentApiHook
from lead_load.__main__ import main
from lead_load.core.landing_rules import REASON_ABSENT, REASON_FOUND
from lead_load.core.ledger_rules import Status
from lead_load.ledger import schema
from lead_load.steps import landing_check
from tests.dags.conftest import REPO, sqlite_warehouse

RUN = "run-1"
_numbers = itertools.count(1)


@pytest.fixture
def sqlite_engine(tmp_path):
    warehouse = sqlite_warehouse(tmp_path)
    schema.create_tables(warehouse.engine)
    return warehouse


@dataclass
class Platform:
    sim: object
    user_id: str
    task_id: str
    conn_json: str

    @property
    def hook(self) -> AgentApiHook:
        return AgentApiHook()

    def land(self, phones: list[str]) -> str:
        """Really import ``phones`` into the task; returns the batch's unique_id."""
        rows = [{"phone": phone, "sort": 0} for phone in phones]
        unique_id = self.hook.post_async_number(self.task_id, rows)
        self.sim.process()
        return unique_id


@pytest.fixture
def platform(simulator, monkeypatch) -> Platform:
    simulator.reset()
    user_id = simulator.create_user()
    task_id = simulator.create_task(user_id)
    conn = {
        "conn_type": "agent_api",
        "host": simulator.base_url,
        "password": simulator.token,
        "extra": {"user_id": user_id, "request_timeout": 5, "max_attempts": 2},
    }
    conn_json = json.dumps(conn)
    monkeypatch.setenv("AIRFLOW_CONN_AGENT_API_DEFAULT", conn_json)
    lookup_cache.connections.clear()
    return Platform(simulator, user_id, task_id, conn_json)


def phones(count: int) -> list[str]:
    return [f"137{next(_numbers):08d}" for _ in range(count)]


def add_row(engine, task, lead, phone, status, run_id=RUN, batch_no=None, unique_id=None):
    stamp = schema.now()
    with engine.begin() as conn:
        conn.execute(
            insert(schema.ledger).values(
                api_task_id=task,
                lead_id=lead,
                phone=phone,
                status=status.value,
                run_id=run_id,
                batch_no=batch_no,
                unique_id=unique_id,
                payload=json.dumps({"phone": phone, "sort": 0, "extra": lead}),
                created_at=stamp,
                updated_at=stamp,
            )
        )


def set_row(engine, lead, **values):
    """A write by someone else: another connection, its own transaction."""
    values.setdefault("updated_at", schema.now())
    with engine.begin() as conn:
        conn.execute(update(schema.ledger).where(schema.ledger.c.lead_id == lead).values(**values))


def rows(engine) -> dict[str, dict]:
    with engine.connect() as conn:
        return {r.lead_id: dict(r._mapping) for r in conn.execute(select(schema.ledger))}


def clean_ledger(engine, platform: Platform) -> dict[str, str]:
    """What a finished run leaves: returns each lead's phone.

    a-d imported in one batch; e refused by the platform (absent); f staged for the next
    run; g rejected; h refused as a duplicate of a's number (a holds it); z imported by an
    earlier run.
    """
    ph = dict(zip("abcdefgz", phones(8), strict=True))
    ph["h"] = ph["a"]
    batch = platform.land([ph[lead] for lead in "abcd"])
    earlier = platform.land([ph["z"]])
    task = platform.task_id
    for lead in "abcd":
        add_row(engine, task, lead, ph[lead], Status.IMPORTED, batch_no=0, unique_id=batch)
    add_row(engine, task, "e", ph["e"], Status.NOT_IMPORTED, batch_no=0, unique_id=batch)
    add_row(engine, task, "f", ph["f"], Status.STAGED)
    add_row(engine, task, "g", ph["g"], Status.REJECTED)
    add_row(engine, task, "h", ph["h"], Status.NOT_IMPORTED, batch_no=0, unique_id=batch)
    add_row(engine, task, "z", ph["z"], Status.IMPORTED, "run-0", 0, earlier)
    with engine.begin() as conn:
        conn.execute(
            insert(schema.runs).values(
                run_id=RUN,
                api_task_id=task,
                window_start="2026-11-24T00:00:00+00:00",
                window_end="2026-11-25T00:00:00+00:00",
            )
        )
    return ph


def corrupt(engine) -> None:
    """The three corruptions: b present but not_imported, f imported but absent, e submitted
    but absent."""
    set_row(engine, "b", status=Status.NOT_IMPORTED.value, reason="absent from the callback")
    set_row(engine, "f", status=Status.IMPORTED.value, batch_no=0, unique_id="u-lost")
    set_row(engine, "e", status=Status.SUBMITTED.value)


def test_a_clean_run_finds_nothing(engine, platform):
    clean_ledger(engine, platform)
    before = rows(engine)
    report = landing_check.verify_run(RUN, platform.task_id, engine, platform.hook)
    assert report.ok
    # a-f and h (g was never sent; z belongs to another run); h agrees through a.
    assert report.counts() == {
        "checked": 7,
        "in_task": 5,
        "agree": 7,
        "repaired": {},
        "unrepaired": {},
    }
    assert report.unrepaired_lines() == []
    assert rows(engine) == before


def test_finds_and_repairs_each_corruption(engine, platform):
    clean_ledger(engine, platform)
    corrupt(engine)
    before = rows(engine)

    report = landing_check.verify_run(RUN, platform.task_id, engine, platform.hook)

    assert report.counts() == {
        "checked": 7,
        "in_task": 5,
        "agree": 4,
        "repaired": {"imported_but_absent": 1, "not_imported_but_present": 1},
        "unrepaired": {"submitted_but_absent": 1},
    }
    assert not report.ok
    [line] = report.unrepaired_lines()
    assert line.startswith("submitted_but_absent: lead e, phone 137****")
    assert "awaiting the platform" in line
    after = rows(engine)
    assert after["b"]["status"] == Status.IMPORTED and after["b"]["reason"] == REASON_FOUND
    f = after["f"]
    assert (f["status"], f["batch_no"], f["unique_id"]) == (Status.STAGED, None, None)
    assert f["reason"] == REASON_ABSENT
    assert f["payload"] == before["f"]["payload"]  # what a later run sends
    assert after["e"] == before["e"]  # unproven: left as it was
    for lead in "acdghz":
        assert after[lead] == before[lead]

    again = landing_check.verify_run(RUN, platform.task_id, engine, platform.hook)
    assert again.counts()["repaired"] == {}
    assert again.counts()["unrepaired"] == {"submitted_but_absent": 1}


def test_a_report_only_check_changes_nothing(engine, platform):
    clean_ledger(engine, platform)
    corrupt(engine)
    before = rows(engine)
    scope = landing_check.run_scope(engine, RUN)
    report = landing_check.check(engine, platform.hook, [scope])
    assert report.counts()["unrepaired"] == {
        "imported_but_absent": 1,
        "not_imported_but_present": 1,
        "submitted_but_absent": 1,
    }
    assert rows(engine) == before


def test_a_row_changed_after_it_was_read_is_not_overwritten(engine, platform):
    ph = clean_ledger(engine, platform)
    corrupt(engine)
    report = landing_check.inspect_scope(
        engine, platform.hook, landing_check.task_scope(platform.task_id)
    )
    assert len(report.pending) == 2
    # Between the read and the repairs: a callback records b again, and a later run plans
    # f into a batch of its own (both through other connections).
    set_row(engine, "b", status=Status.IMPORTED.value, reason="from its callback")
    set_row(engine, "f", batch_no=7)

    landing_check.apply_repairs(engine, report)

    assert report.counts()["repaired"] == {}
    assert report.counts()["unrepaired"] == {"changed_during_check": 2, "submitted_but_absent": 1}
    after = rows(engine)
    assert (after["b"]["status"], after["b"]["reason"]) == ("imported", "from its callback")
    assert (after["f"]["status"], after["f"]["batch_no"]) == ("imported", 7)
    assert all("changed during the check" in line for line in report.unrepaired_lines()[1:])
    assert ph["b"] not in " ".join(report.unrepaired_lines())


def test_a_found_number_is_not_repaired_over_a_lead_that_took_it_meanwhile(engine, platform):
    ph = clean_ledger(engine, platform)
    set_row(engine, "b", status=Status.NOT_IMPORTED.value)
    report = landing_check.inspect_scope(
        engine, platform.hook, landing_check.run_scope(engine, RUN)
    )
    assert [f.row.lead_id for f in report.pending] == ["b"]
    # A new lead with b's number is staged (b was not active): the unique index now refuses
    # a second active row, so the repair must step back.
    add_row(engine, platform.task_id, "y", ph["b"], Status.STAGED, run_id="run-2")

    landing_check.apply_repairs(engine, report)

    assert report.counts()["unrepaired"] == {"changed_during_check": 1}
    after = rows(engine)
    assert (after["b"]["status"], after["y"]["status"]) == ("not_imported", "staged")


def test_scopes_from_the_runs_table_the_ledger_and_a_window(engine, platform, monkeypatch):
    monkeypatch.setattr(landing_check, "CHUNK", 2)  # page through the rows in small chunks
    clean_ledger(engine, platform)
    task = platform.task_id
    assert landing_check.run_scope(engine, RUN) == landing_check.Scope(task, (RUN,))
    # run-0 wrote no summary: its task comes from its ledger rows.
    assert landing_check.run_scope(engine, "run-0") == landing_check.Scope(task, ("run-0",))
    with pytest.raises(landing_check.ScopeError, match="pass --api-task-id"):
        landing_check.run_scope(engine, "run-unknown")
    with pytest.raises(landing_check.ScopeError, match="not 'other-task'"):
        landing_check.run_scope(engine, RUN, "other-task")
    assert landing_check.window_scopes(engine, "2026-11-24T12:00:00Z", "2026-11-26") == [
        landing_check.Scope(task, (RUN,))
    ]
    assert landing_check.window_scopes(engine, "2026-11-25", "2026-11-26") == []
    with pytest.raises(landing_check.ScopeError, match="before it starts"):
        landing_check.window_scopes(engine, "2026-11-25", "2026-11-24")
    report = landing_check.check(engine, platform.hook, [landing_check.task_scope(task)])
    assert report.ok and report.counts()["checked"] == 8  # every run's rows, paged by 2


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
    set_row(engine, "f", status=Status.IMPORTED.value)
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
