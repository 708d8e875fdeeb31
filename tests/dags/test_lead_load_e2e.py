"""The real lead_load DAG, run with `airflow dags test`, against the simulator over HTTP and a
real warehouse (SQLite, and PostgreSQL on 127.0.0.1:5432).

Every assertion reads the simulator's own state or the warehouse's tables, never what the
DAG says about itself.
"""

from __future__ import annotations

import pytest

from lead_load_devtools.synthetic import generate, write_leads
from tests.dags.conftest import WINDOW

pytestmark = pytest.mark.slow


def seeded(env, count: int, **kwargs):
    leads = generate(count, seed=5, start=WINDOW[0], end=WINDOW[1], **kwargs)
    write_leads(env.warehouse.engine, leads.frame)
    return leads


def test_every_valid_lead_lands_exactly_once_and_every_row_is_accounted_for(lead_load_env):
    env = lead_load_env
    leads = seeded(env, 1200)

    result = env.run_dag()
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]

    # The platform's own state: each valid phone exactly once, nothing else.
    phones = env.task_phones()
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
    summary = env.warehouse.scalar("SELECT summary FROM lead_load_runs")
    assert f'"extracted": {len(leads.frame)}' in summary
    assert '"updated_at_missing_in_table": 0' in summary  # counted (this table has none)

    # A second run over the same window sends nothing.
    before = len(posts)
    again = env.run_dag()
    assert again.returncode == 0, (again.stdout + again.stderr)[-4000:]
    assert len(env.posts()) == before
    assert sorted(env.task_phones()) == sorted(phones)


def test_a_malformed_window_fails_at_once_with_a_clear_message(lead_load_env):
    env = lead_load_env
    seeded(env, 10)
    result = env.run_dag(window_start="2026-11-24", window_end=None)
    assert result.returncode != 0
    assert "set both window_start and window_end" in result.stdout + result.stderr
    assert env.posts() == []
    # The run is in the ledger although it never got past its first step.
    run = env.warehouse.rows("SELECT state, window_start, summary FROM lead_load_runs")
    assert [(r["state"], r["window_start"]) for r in run] == [("failed", "2026-11-24")]
    assert '"failed_at": "resolve_settings"' in run[0]["summary"]
    assert "set both window_start and window_end" in run[0]["summary"]


def test_more_batches_than_max_map_length_fails_up_front_and_sends_nothing(lead_load_env):
    """1,100 one-row batches exceed Airflow's default limit of 1,024 mapped tasks (in an
    Airflow that did not raise it, as the project's own setups do): the run must stop before
    posting anything, name the setting, and leave the leads staged."""
    env = lead_load_env
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


def test_a_running_2_0_task_fails_clearly_then_stop_running_task_loads_it(lead_load_env):
    env = lead_load_env
    leads = seeded(env, 150)
    env.sim.set_task_status(env.user_id, env.task_id, 2)

    refused = env.run_dag()
    assert refused.returncode != 0
    assert "stop_running_task" in refused.stdout + refused.stderr
    assert env.task_phones() == []
    assert env.ledger_counts()["staged"] == len(leads.valid_phones)  # nothing marked sent

    loaded = env.run_dag(stop_running_task=True)
    assert loaded.returncode == 0, (loaded.stdout + loaded.stderr)[-4000:]
    assert sorted(env.task_phones()) == sorted(leads.valid_phones)
    assert any(e["path"].endswith(f"/task_stop/{env.task_id}") for e in env.sim.journal())


def test_a_late_callback_is_settled_by_the_next_run_without_sending_again(lead_load_env):
    env = lead_load_env
    leads = seeded(env, 300)
    env.sim.set_faults(callback_delay=15)
    env.env["LEAD_LOAD_CALLBACK_TIMEOUT_SECONDS"] = "2"

    first = env.run_dag()
    assert first.returncode != 0
    assert "await the platform's callback" in first.stdout + first.stderr
    assert env.ledger_counts() == {
        "submitted": len(leads.valid_phones),
        "rejected": len(leads.invalid_leads) + len(leads.duplicate_leads),
    }
    posts = len(env.posts())

    env.sim.wait_until_processed(timeout=30)
    second = env.run_dag()
    assert second.returncode == 0, (second.stdout + second.stderr)[-4000:]
    assert len(env.posts()) == posts
    assert env.ledger_counts()["imported"] == len(leads.valid_phones)
    assert sorted(env.task_phones()) == sorted(leads.valid_phones)
