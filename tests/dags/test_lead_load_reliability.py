"""Reliability of the real lead_load DAG, run with `airflow dags test` against the simulator
over HTTP: injected platform faults, broken connections and schema, secrets in the output,
and SQL in the params.

Every assertion reads the simulator's own state and journal, the warehouse's tables or
Airflow's metadata DB, never what the DAG says about itself.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections import Counter

import pytest
from sqlalchemy import create_engine, inspect, text

from lead_load.ledger import schema
from lead_load_devtools.synthetic import generate, write_leads
from tests.conftest import TEST_AIRFLOW_HOME
from tests.dags.conftest import WINDOW

pytestmark = pytest.mark.slow

LEDGER_TABLES = {
    "lead_load_ledger",
    "lead_load_candidates",
    "lead_load_batches",
    "lead_load_rejects",
    "lead_load_runs",
}
SENT_STATUSES = {"sending", "submitted", "imported", "not_imported"}


def seeded(env, count: int, **kwargs):
    leads = generate(count, seed=5, start=WINDOW[0], end=WINDOW[1], **kwargs)
    write_leads(env.warehouse.engine, leads.frame)
    return leads


def output(result) -> str:
    return result.stdout + result.stderr


def tail(result) -> str:
    return output(result)[-4000:]


def phone_forms(leads) -> tuple[set[str], set[str]]:
    """(11-digit forms, verbatim spellings) of every seeded phone, valid or not."""
    digits_forms = set(leads.valid_phones)
    spellings = set()
    for raw in leads.frame["phone"]:
        if not raw:
            continue
        spelled = unicodedata.normalize("NFKC", str(raw)).strip()
        digits = re.sub(r"\D", "", spelled)
        for prefix in ("0086", "86"):
            if digits.startswith(prefix) and len(digits) == 11 + len(prefix):
                digits = digits[len(prefix) :]
        if len(digits) == 11:
            digits_forms.add(digits)
        if len(digits) >= 8:
            spellings.add(spelled)
            spellings.add(str(raw).strip())
    return digits_forms, spellings


def leaked_phones(text_: str, leads) -> set[str]:
    """Seeded phones that appear in ``text_`` (as a whole run of digits, or as spelled)."""
    digits_forms, spellings = phone_forms(leads)
    runs = set(re.findall(r"\d+", text_))
    return (digits_forms & runs) | {s for s in spellings if s in text_}


def assert_nothing_sent(env) -> None:
    """The platform holds none of the leads and the ledger marks none of them sent."""
    assert env.calling_task_phones() == []
    if "lead_load_ledger" in inspect(env.warehouse.engine).get_table_names():
        assert not SENT_STATUSES & env.ledger_counts().keys(), env.ledger_counts()


def assert_clean_output(result, env, leads) -> None:
    out = output(result)
    assert env.sim.token not in out
    assert not leaked_phones(out, leads)


# --- 1. faults of the platform -------------------------------------------------------------------

# The platform processes each batch 12 s after accepting it (slower than the client's timeout,
# 5 s, plus any lost-answer grace: 0.5 s here, 5 s by default), and answers 30% of imports
# only after the client's timeout: those posts are accepted,
# but the client cannot know. A load must post every phone in exactly one accepted import,
# end green, and record imported exactly what the task holds. The second set adds 429s.
SLOW_AND_FORGETFUL = {
    "seed": 1,
    "lost_answer_rate": 0.3,
    "lost_answer_delay": 6,
    "callback_delay": 12,
}
WITH_429S = {**SLOW_AND_FORGETFUL, "seed": 2, "rate_429": 0.3, "retry_after": 1}
# A number list capped at 100 a page that says nothing of its paging: the reads that settle
# the lost answers must still see every number (and the landing check too).
CAPPED_LIST = {**SLOW_AND_FORGETFUL, "seed": 4, "max_per_page": 100, "omit_page_fields": True}


@pytest.mark.parametrize(
    "faults", [SLOW_AND_FORGETFUL, WITH_429S, CAPPED_LIST], ids=["lost", "lost+429", "capped"]
)
def test_lost_answers_on_a_slow_platform_post_no_phone_twice_and_end_green(
    sqlite_lead_load_env, faults
):
    env = sqlite_lead_load_env
    # About 19 batches: the chance that a 30% fault meets none of them is under 0.1% (the
    # draws follow the request sequence, whose polls vary with timing).
    leads = seeded(env, 1000)
    env.sim.set_faults(**faults)

    result = env.run_dag(batch_size=50)
    assert result.returncode == 0, tail(result)

    # The platform's own state: every valid lead exactly once, nothing else.
    numbers = env.sim.task_numbers(env.user_id, env.task_id)
    phones = [n["phone"] for n in numbers]
    assert len(phones) == len(set(phones))
    assert {n["phone"]: n["extra"] for n in numbers} == leads.valid_phones

    # The ledger's imported rows are exactly the task's numbers; every row is settled.
    counts = env.ledger_counts()
    assert counts == {
        "imported": len(leads.valid_phones),
        "rejected": len(leads.invalid_leads) + len(leads.duplicate_leads),
    }
    imported = {
        row["phone"]
        for row in env.warehouse.rows(
            "SELECT phone FROM lead_load_ledger WHERE status = 'imported'"
        )
    }
    assert imported == set(phones)

    journal = env.sim.journal()
    faults_seen = Counter(n for e in journal for n in (e["fault"] or "").split("+") if n)
    assert faults_seen["lost_answer"] >= 1, faults_seen  # the faults really happened
    if faults.get("rate_429"):
        assert faults_seen["rate_429"] >= 1, faults_seen
    # Each phone went to the platform in exactly one accepted import (a lost answer's post
    # was accepted too: its journal code is 200), and nothing was posted after a lost answer.
    posts = [e for e in journal if e["path"].endswith(f"/task/{env.task_id}/async_number")]
    accepted = Counter(row["phone"] for e in posts if e["code"] == 200 for row in e["body"]["data"])
    twice = [f"{p[:3]}****{p[-4:]}" for p, n in accepted.items() if n > 1]
    assert not twice, f"{len(twice)} phones were accepted twice: {twice[:5]}"
    assert set(accepted) == set(leads.valid_phones)


def _accepted_once_each(env, leads) -> None:
    """The task holds every valid lead once, and the ledger's imported rows are exactly it."""
    numbers = env.sim.task_numbers(env.user_id, env.task_id)
    phones = [n["phone"] for n in numbers]
    assert len(phones) == len(set(phones))
    assert {n["phone"]: n["extra"] for n in numbers} == leads.valid_phones
    assert env.ledger_counts() == {
        "imported": len(leads.valid_phones),
        "rejected": len(leads.invalid_leads) + len(leads.duplicate_leads),
    }


def test_callbacks_that_outlived_their_download_links_are_settled_by_the_next_run(
    sqlite_lead_load_env,
):
    env = sqlite_lead_load_env
    leads = seeded(env, 300)
    # The platform is slower than the run's wait (callback timeout 5 s): the run ends with
    # its batches awaiting their callbacks, and is not green.
    env.env["LEAD_LOAD_CALLBACK_TIMEOUT_SECONDS"] = "5"
    env.sim.set_faults(callback_delay=3600)  # processed below, after the first run
    first = env.run_dag(batch_size=50)
    assert first.returncode != 0
    assert re.search(r"still awaits? the platform's callback", output(first))
    posts_after_first = len(env.posts())

    # By the next run the platform has processed them, but their download links expired.
    env.sim.process()
    env.sim.set_faults(expire_download_links=True)
    second = env.run_dag(batch_size=50)
    assert second.returncode == 0, tail(second)
    assert "settling it from the calling task's numbers" in output(second)
    assert len(env.posts()) == posts_after_first  # nothing posted again
    _accepted_once_each(env, leads)


def test_batches_the_platform_never_processes_fail_every_run_until_the_settle_period_then_land(
    sqlite_lead_load_env,
):
    env = sqlite_lead_load_env
    # About 12 batches: the chance that a 40% fault meets none of them is under 0.3%.
    leads = seeded(env, 600)
    env.env["LEAD_LOAD_CALLBACK_TIMEOUT_SECONDS"] = "5"
    # Batches accepted and never processed: their rows are neither in the task nor staged.
    env.sim.set_faults(seed=3, callback_never_rate=0.4)
    first = env.run_dag(batch_size=50)
    assert first.returncode != 0
    never = [b for b in env.sim.batches() if b["callback_never"]]
    assert never, "the seed should leave some batches unprocessed"
    missing = set(leads.valid_phones) - set(env.calling_task_phones())
    assert missing

    # A run within the settle period (1 hour here) sends nothing again and is not green.
    env.env["LEAD_LOAD_SETTLE_SECONDS"] = "3600"
    env.sim.set_faults()
    second = env.run_dag(batch_size=50)
    assert second.returncode != 0
    assert "batches of earlier runs" in output(second)
    assert set(leads.valid_phones) - set(env.calling_task_phones()) == missing

    # After the settle period, the next run sends the absent rows once more, and they land.
    env.env["LEAD_LOAD_SETTLE_SECONDS"] = "5"
    third = env.run_dag(batch_size=50)
    assert third.returncode == 0, tail(third)
    _accepted_once_each(env, leads)


# --- 2. clear errors, nothing marked sent -----------------------------------------------------


def test_an_unreachable_warehouse_fails_naming_the_connection_host_and_port(
    sqlite_lead_load_env,
):
    env = sqlite_lead_load_env
    leads = seeded(env, 50)
    env.env["AIRFLOW_CONN_LEAD_WAREHOUSE"] = "postgresql://postgres@127.0.0.1:1/x"

    result = env.run_dag()
    out = output(result)
    assert result.returncode != 0
    assert "cannot connect to the database of Airflow connection 'lead_warehouse'" in out
    assert "postgres at 127.0.0.1:1" in out
    assert "check that the database is up" in out
    assert env.posts() == []
    assert "lead_load_ledger" not in inspect(env.warehouse.engine).get_table_names()
    assert_nothing_sent(env)
    assert_clean_output(result, env, leads)


@pytest.mark.postgres
def test_a_refused_warehouse_login_fails_at_once_naming_what_to_fix(postgres_lead_load_env):
    env = postgres_lead_load_env
    leads = seeded(env, 50)
    database = env.warehouse.engine.url.database
    env.env["AIRFLOW_CONN_LEAD_WAREHOUSE"] = f"postgresql://no_such_user@127.0.0.1:5432/{database}"

    result = env.run_dag()
    out = output(result)
    assert result.returncode != 0
    assert "the database of Airflow connection 'lead_warehouse'" in out
    assert "127.0.0.1:5432" in out
    assert 'role "no_such_user" does not exist' in out
    assert "fix the login, password or database (schema) of connection 'lead_warehouse'" in out
    # Retrying cannot fix a login: one attempt only (the traceback's last line, once).
    assert out.count("lead_load.glue.connections.DatabaseLoginRefused:") == 1
    assert env.posts() == []
    assert "lead_load_ledger" not in inspect(env.warehouse.engine).get_table_names()
    assert_nothing_sent(env)
    assert_clean_output(result, env, leads)


@pytest.mark.parametrize(
    ("column", "explanation"),
    [
        # A mapped column: found missing in the extract's columns.
        ("phone", "source column(s) missing from the extract: phone"),
        # The window's column: the extract query itself fails.
        ("updated_at", "the extract query failed on the warehouse: no such column: updated_at"),
    ],
)
def test_a_missing_source_column_fails_at_once_naming_the_column(
    sqlite_lead_load_env, column, explanation
):
    env = sqlite_lead_load_env
    leads = seeded(env, 50)
    with env.warehouse.engine.begin() as conn:
        conn.execute(text(f"ALTER TABLE leads RENAME COLUMN {column} TO old_{column}"))

    result = env.run_dag()
    out = output(result)
    assert result.returncode != 0
    assert explanation in out
    assert "add or rename the column in the warehouse" in out
    assert out.count("lead_load.steps.extract.SourceSchemaError:") == 1  # not retried
    assert env.posts() == []
    assert env.ledger_counts() == {}
    assert_nothing_sent(env)
    assert_clean_output(result, env, leads)


@pytest.mark.parametrize("how", ["expired", "wrong"])
def test_a_rejected_token_fails_saying_to_update_the_connection(sqlite_lead_load_env, how):
    env = sqlite_lead_load_env
    leads = seeded(env, 50)
    wrong_token = "wrong-token-5ee7c0de"
    if how == "expired":
        env.sim.set_faults(expired_token=True)
    else:
        conn = json.loads(env.env["AIRFLOW_CONN_AGENT_API_DEFAULT"])
        conn["password"] = wrong_token
        env.env["AIRFLOW_CONN_AGENT_API_DEFAULT"] = json.dumps(conn)

    result = env.run_dag()
    out = output(result)
    assert result.returncode != 0
    assert "the platform rejected the token" in out
    assert "put a valid partner token in the password of the Airflow connection " in out
    assert "'agent_api_default'" in out
    assert wrong_token not in out
    # Refused by resolve_settings' look-up of the calling task, before anything was staged.
    assert "cannot check calling task" in out
    assert_nothing_sent(env)
    assert env.ledger_counts() == {}
    assert_clean_output(result, env, leads)


# --- 3. secrets and phones stay out of logs, XComs and rendered fields ------------------------


def test_no_token_and_no_phone_in_logs_xcoms_or_rendered_fields(sqlite_lead_load_env, airflow_db):
    env = sqlite_lead_load_env
    leads = seeded(env, 300)

    result = env.run_dag()
    assert result.returncode == 0, tail(result)
    run_id = env.warehouse.scalar("SELECT run_id FROM lead_load_runs")

    # `airflow dags test` writes the task logs to its own output; files, where a setting
    # makes it write any, are read too.
    logs = output(result)
    log_dir = TEST_AIRFLOW_HOME / "logs" / "dag_id=lead_load"
    for path in log_dir.glob(f"run_id={run_id}/**/*"):
        if path.is_file():
            logs += path.read_text(errors="replace")

    metadata = create_engine(f"sqlite:///{airflow_db}")
    with metadata.connect() as conn:
        xcoms = conn.execute(
            text(
                "SELECT task_id, map_index, key, value FROM xcom "
                "WHERE dag_id = 'lead_load' AND run_id = :run_id"
            ),
            {"run_id": run_id},
        ).all()
        rendered = conn.execute(
            text(
                "SELECT task_id, map_index, rendered_fields FROM rendered_task_instance_fields "
                "WHERE dag_id = 'lead_load' AND run_id = :run_id"
            ),
            {"run_id": run_id},
        ).all()
    metadata.dispose()
    xcom_text = "\n".join(str(tuple(row)) for row in xcoms)
    rendered_text = "\n".join(str(tuple(row)) for row in rendered)

    # Reading the right things: the counts are there.
    extracted = len(leads.frame)
    assert f"Chunk 1: {extracted} rows" in logs
    assert re.search(rf"extracted\s+{extracted}\b", logs)
    assert f'"extracted": {extracted}' in xcom_text
    assert {row.task_id for row in xcoms} >= {"extract_and_stage", "post_batch", "report"}
    assert {row.task_id for row in rendered} >= {"extract_and_stage", "post_batch"}

    for where, content in (("logs", logs), ("xcom", xcom_text), ("rendered", rendered_text)):
        assert env.sim.token not in content, where
        assert not leaked_phones(content, leads), where


# --- 4. SQL in the params ---------------------------------------------------------------------

INJECTION = "2026-11-24'; DROP TABLE leads; --"


def assert_tables_intact(env, leads) -> None:
    tables = set(inspect(env.warehouse.engine).get_table_names())
    assert {"leads", *LEDGER_TABLES} <= tables
    lead_ids = {r["lead_id"] for r in env.warehouse.rows("SELECT lead_id FROM leads")}
    assert lead_ids == set(leads.frame["lead_id"])


def test_sql_in_a_window_param_is_refused_clearly(sqlite_lead_load_env):
    """The trigger form's schema refuses it before the run starts; window_end has the same
    schema, and resolve_settings' parser refuses it too (tests/include/lead_load/test_window.py)."""
    env = sqlite_lead_load_env
    leads = seeded(env, 50)
    schema.create_tables(env.warehouse.engine)

    result = env.run_dag(window_start=INJECTION)
    assert result.returncode != 0
    out = output(result)
    assert "Invalid input for param window_start" in out
    assert INJECTION in out and "does not match" in out
    assert env.posts() == []
    assert_tables_intact(env, leads)
    assert env.ledger_counts() == {}


def test_sql_in_the_task_and_sub_user_params_is_bound_as_a_value(lead_load_env):
    env = lead_load_env
    leads = seeded(env, 50)
    task = "x'; DROP TABLE leads; --"
    sub_user = "y'); DELETE FROM lead_load_ledger; --"
    schema.create_tables(env.warehouse.engine)

    # The trigger form refuses a calling task that is not a UUID.
    result = env.run_dag(api_task_id=task)
    assert result.returncode != 0
    assert "Invalid input for param api_task_id" in output(result)
    assert_tables_intact(env, leads)

    # A sub-account is free text: resolve_settings asks the platform for its tasks with it,
    # as a value, and the platform knows no such sub-account.
    result = env.run_dag(sub_user_id=sub_user)
    out = output(result)
    assert result.returncode != 0
    assert f"(sub-account {sub_user})" in out and "sub user not found" in out
    assert_tables_intact(env, leads)
    asked = [e for e in env.sim.journal() if e["path"].endswith("/all_task")]
    assert [e["query"].get("sub_user_id") for e in asked] == [sub_user]
    # Refused before anything was staged or sent: nothing was executed.
    assert env.ledger_counts() == {}
    assert env.posts() == []
    assert env.calling_task_phones() == []
