"""Pipeline steps that need only the ledger (a real SQLite file)."""

from __future__ import annotations

import pytest

from lead_load.core.settings import RunSettings
from lead_load.ledger import schema, staging
from lead_load.ledger.counts import batch_counts
from lead_load.steps import extract, plan, report
from tests.dags.conftest import sqlite_warehouse
from tests.include.lead_load.test_ledger import TASK, candidate, statuses


def settings(**overrides) -> RunSettings:
    values = {
        "run_id": "run-1",
        "api_task_id": TASK,
        "window_start": "2026-11-24T00:00:00+00:00",
        "window_end": "2026-11-25T00:00:00+00:00",
        "batch_size": 2,
        **overrides,
    }
    return RunSettings(**values)


@pytest.fixture
def engine(tmp_path):
    engine = sqlite_warehouse(tmp_path).engine
    schema.create_tables(engine)
    staging.add_candidates(
        engine, "run-1", [candidate(f"l{i}", f"1390000000{i}") for i in range(5)]
    )
    staging.stage_candidates(engine, "run-1", TASK)
    return engine


def test_dry_run_plans_nothing_and_leaves_the_leads_staged(engine):
    assert plan.plan(settings(dry_run=True), engine, max_map_length=1024) == []
    assert set(statuses(engine).values()) == {"staged"}
    assert batch_counts(engine, "run-1") == {}


def test_plan_refuses_more_batches_than_airflow_can_map(engine):
    with pytest.raises(ValueError, match="3 batches to send"):
        plan.plan(settings(), engine, max_map_length=2)
    assert batch_counts(engine, "run-1") == {}


def test_report_fails_above_the_reject_ratio_and_stores_the_summary(engine):
    counts = {
        "extracted": 10,
        "rejected": 5,
        "duplicates_in_run": 0,
        "staged": 5,
        "already_loaded": 0,
        "in_flight": 0,
    }
    with pytest.raises(report.RunFailed, match="max_reject_ratio"):
        report.report(settings(dry_run=True, max_reject_ratio=0.2), engine, counts)
    with engine.connect() as conn:
        assert conn.execute(schema.runs.select()).one().run_id == "run-1"


def test_a_column_missing_from_the_extract_query_fails_at_once_naming_it(tmp_path):
    from airflow.sdk.exceptions import AirflowFailException
    from sqlalchemy import text

    warehouse = sqlite_warehouse(tmp_path).engine
    with warehouse.begin() as conn:
        conn.execute(text("CREATE TABLE leads (lead_id TEXT, modified TEXT)"))
    sql = "SELECT * FROM leads WHERE updated_at >= :window_start"
    with pytest.raises(extract.SourceSchemaError, match="no such column: updated_at") as error:
        list(extract.read_in_chunks(warehouse, sql, {"window_start": "2026-11-24"}))
    assert isinstance(error.value, AirflowFailException)  # not retried
    # Other database errors are left alone (and retried).
    with pytest.raises(Exception, match="syntax error") as other:
        list(extract.read_in_chunks(warehouse, "SELEC 1", {}))
    assert not isinstance(other.value, extract.SourceSchemaError)
