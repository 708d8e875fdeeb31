"""The real lead_load DAG, run with `airflow dags test`, against the simulator over HTTP and a
real warehouse (SQLite, and PostgreSQL on 127.0.0.1:5432).

Every assertion reads the simulator's own state or the warehouse's tables, never what the
DAG says about itself.
"""

from __future__ import annotations

import json

import pytest
from sqlalchemy import create_engine, text

from lead_load_devtools.synthetic import generate, write_leads
from tests.dags.conftest import WINDOW

pytestmark = pytest.mark.slow


def seeded(env, count: int, **kwargs):
    leads = generate(count, seed=5, start=WINDOW[0], end=WINDOW[1], **kwargs)
    write_leads(env.warehouse.engine, leads.frame)
    return leads


def asset_events(airflow_db, run_id: str) -> list[dict]:
    """The imported-leads asset events the run emitted, from Airflow's metadata DB."""
    metadata = create_engine(f"sqlite:///{airflow_db}")
    try:
        with metadata.connect() as conn:
            rows = conn.execute(
                text(
                    "SELECT e.extra FROM asset_event AS e JOIN asset AS a ON a.id = e.asset_id "
                    "WHERE a.uri = 'agent-api://calling-task/imported-leads' "
                    "AND e.source_dag_id = 'lead_load' AND e.source_run_id = :run_id"
                ),
                {"run_id": run_id},
            ).all()
    finally:
        metadata.dispose()
    return [json.loads(extra) if isinstance(extra, str) else extra for (extra,) in rows]


def latest_run(env) -> tuple[str, dict]:
    row = env.warehouse.rows(
        "SELECT run_id, summary FROM lead_load_runs ORDER BY finished_at DESC LIMIT 1"
    )[0]
    return row["run_id"], json.loads(row["summary"])


def test_every_valid_lead_lands_exactly_once_and_every_row_is_accounted_for(
    lead_load_env, api_server, airflow_db
):
    env = lead_load_env
    env.env["AIRFLOW_CONN_AIRFLOW_API"] = api_server.conn_uri()
    leads = seeded(env, 1200)

    result = env.run_dag()
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]

    # The platform's own state: each valid phone exactly once, nothing else.
    phones = env.calling_task_phones()
    assert len(phones) == len(set(phones))
    assert set(phones) == set(leads.valid_phones)
    # Batches of at most 200 rows.
    posts = env.posts()
    assert all(1 <= len(p["body"]["data"]) <= 200 for p in posts)
    assert len(posts) == -(-len(leads.valid_phones) // 200)
    # Every number carries its lead id, so it can be traced back.
    extras = {n["phone"]: n["extra"] for n in env.sim.task_numbers(env.user_id, env.task_id)}
    assert extras == leads.valid_phones

    # Every invalid lead and every duplicate is in the reject table with its reason.
    rejects = {
        r["lead_id"]: r["reason"]
        for r in env.warehouse.rows("SELECT lead_id, reason FROM lead_load_rejects")
    }
    assert leads.invalid_leads <= rejects.keys()
    assert all(not rejects[lead].startswith("duplicate") for lead in leads.invalid_leads)
    assert {lead for lead, reason in rejects.items() if reason.startswith("duplicate_in_run")} == (
        leads.duplicate_leads
    )

    # The ledger accounts for every extracted row.
    counts = env.ledger_counts()
    assert counts == {
        "imported": len(leads.valid_phones),
        "rejected": len(leads.invalid_leads) + len(leads.duplicate_leads),
    }
    assert sum(counts.values()) == len(leads.frame)
    run_id, summary = latest_run(env)
    assert summary["extracted"] == len(leads.frame)
    assert summary["updated_at_missing_in_table"] == 0  # counted (this table has none)
    # The summary's figures, checked against the generator's truth, add up.
    assert summary["invalid"] == len(leads.invalid_leads)
    assert summary["duplicates_in_run"] == len(leads.duplicate_leads)
    assert summary["rejected"] == summary["invalid"] + summary["duplicates_in_run"]
    assert summary["imported"] == summary["staged"] == len(leads.valid_phones)
    assert summary["extracted"] == (
        summary["invalid"]
        + summary["duplicates_in_run"]
        + summary["already_loaded"]
        + summary["in_flight"]
        + summary["suppressed"]
        + summary["staged"]
    )
    assert sum(summary["invalid_by_reason"].values()) == summary["invalid"]
    # The run note, read back from the api-server.
    note = api_server.dag_run("lead_load", run_id)["note"]
    assert note.startswith(
        f"imported {len(leads.valid_phones)} of {len(leads.frame)} extracted; "
        f"invalid {len(leads.invalid_leads)} ("
    )
    assert f"duplicates {len(leads.duplicate_leads)};" in note
    # One imported-leads asset event, with the counts and the calling task.
    (extra,) = asset_events(airflow_db, run_id)
    assert extra["api_task_id"] == env.task_id
    assert extra["imported"] == len(leads.valid_phones)

    # A second run over the same window sends nothing, and emits no asset event.
    before = len(posts)
    again = env.run_dag()
    assert again.returncode == 0, (again.stdout + again.stderr)[-4000:]
    assert len(env.posts()) == before
    assert sorted(env.calling_task_phones()) == sorted(phones)
    again_id, again_summary = latest_run(env)
    assert again_id != run_id
    assert again_summary["imported"] == 0
    assert again_summary["already_loaded"] == len(leads.valid_phones)
    assert asset_events(airflow_db, again_id) == []
    assert "nothing was imported: no imported-leads asset event" in again.stdout + again.stderr


def test_a_manual_run_without_a_window_loads_its_inferred_interval_and_says_so(
    sqlite_lead_load_env, api_server, airflow_db
):
    """`airflow dags test` without a window is a manual run whose data interval Airflow infers
    from its logical date (now): the last whole day, not the seeded one. It is accepted, and
    the log and the run note say where the window came from; 0 rows extracted is a warning."""
    env = sqlite_lead_load_env
    env.env["AIRFLOW_CONN_AIRFLOW_API"] = api_server.conn_uri()
    seeded(env, 20)
    result = env.run_dag(window_start=None, window_end=None)
    log = result.stdout + result.stderr
    assert result.returncode == 0, log[-4000:]
    assert "No window_start/window_end: this manual run loads the data interval" in log
    assert "Asia/Shanghai" in log
    assert "0 rows extracted" in log
    assert env.posts() == []
    run_id, summary = latest_run(env)
    assert (
        summary["extracted"] == 0 and "inferred from its logical date" in summary["window_source"]
    )
    note = api_server.dag_run("lead_load", run_id)["note"]
    assert note.startswith("imported 0 of 0 extracted;")
    assert "manual run's data interval, inferred from its logical date" in note
    assert asset_events(airflow_db, run_id) == []


def test_more_batches_than_max_map_length_fails_up_front_and_sends_nothing(
    sqlite_lead_load_env,
):
    """1,100 one-row batches exceed Airflow's default limit of 1,024 mapped tasks (in an
    Airflow that did not raise it, as the project's own setups do): the run must stop before
    posting anything, name the setting, and leave the leads staged. (The plan's count on each
    database: tests/include/lead_load/steps/test_plan.py.)"""
    env = sqlite_lead_load_env
    env.env["AIRFLOW__CORE__MAX_MAP_LENGTH"] = "1024"
    seeded(env, 1100, invalid_share=0, duplicate_share=0)
    result = env.run_dag(batch_size=1)
    log = result.stdout + result.stderr
    assert result.returncode != 0
    assert "1100 batches to send" in log
    assert "[core] max_map_length" in log
    assert env.posts() == []
    assert env.ledger_counts() == {"staged": 1100}

    # A dry run that cannot plan fails too; the rows the first run left staged are counted
    # as carried over, and the message does not advise a shorter window.
    dry = env.run_dag(batch_size=1, dry_run=True)
    log = dry.stdout + dry.stderr
    assert dry.returncode != 0
    assert "carried over" in log and "shorter window does not shrink" in log
    assert "plan_batches did not finish" in log
    assert env.posts() == []


def test_a_running_2_0_task_fails_clearly_then_stop_running_task_loads_it(
    sqlite_lead_load_env,
):
    """The platform's refusal (code 6007) and the stop it allows: nothing here depends on
    the warehouse's database."""
    env = sqlite_lead_load_env
    leads = seeded(env, 150)
    env.sim.set_task_status(env.user_id, env.task_id, 2)

    refused = env.run_dag()
    assert refused.returncode != 0
    assert "stop_running_task" in refused.stdout + refused.stderr
    assert env.calling_task_phones() == []
    assert env.ledger_counts()["staged"] == len(leads.valid_phones)  # nothing marked sent

    loaded = env.run_dag(stop_running_task=True)
    assert loaded.returncode == 0, (loaded.stdout + loaded.stderr)[-4000:]
    assert sorted(env.calling_task_phones()) == sorted(leads.valid_phones)
    assert any(e["path"].endswith(f"/task_stop/{env.task_id}") for e in env.sim.journal())


def test_a_late_callback_is_settled_by_the_next_run_without_sending_again(
    postgres_lead_load_env,
):
    """On PostgreSQL, the ledger's real home (settling on each database:
    tests/include/lead_load/ledger/test_settling.py)."""
    env = postgres_lead_load_env
    leads = seeded(env, 300)
    env.sim.set_faults(callback_delay=3600)  # processed below, after the first run gave up
    env.env["LEAD_LOAD_CALLBACK_TIMEOUT_SECONDS"] = "2"

    first = env.run_dag()
    assert first.returncode != 0
    assert "await the platform's callback" in first.stdout + first.stderr
    assert env.ledger_counts() == {
        "submitted": len(leads.valid_phones),
        "rejected": len(leads.invalid_leads) + len(leads.duplicate_leads),
    }
    posts = len(env.posts())

    env.sim.process()
    second = env.run_dag()
    assert second.returncode == 0, (second.stdout + second.stderr)[-4000:]
    assert len(env.posts()) == posts
    assert env.ledger_counts()["imported"] == len(leads.valid_phones)
    assert sorted(env.calling_task_phones()) == sorted(leads.valid_phones)
