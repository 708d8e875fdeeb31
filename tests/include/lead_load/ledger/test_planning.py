"""Planning on every ledger database: a run numbers its own staged rows and takes over those
of dead runs, never a live run's or a sending batch's, in a fixed number of statements."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import event, select, update

from lead_load.core.ledger_rules import Status
from lead_load.ledger import batch_lifecycle, planning, run_lifecycle, schema, staging
from lead_load.ledger.counts import batch_counts
from tests.include.lead_load.ledger.lifecycle_samples import TASK, WINDOW, five_leads, staged
from tests.include.lead_load.samples import candidate, statuses


def test_planning_leaves_a_live_run_alone_and_carries_over_a_finished_one(engine):
    staged(engine, "run-a", five_leads("a"))
    run_lifecycle.start_run(engine, "run-b", TASK, WINDOW)
    # run-a is live: run-b plans nothing of it.
    assert planning.count_plannable(engine, "run-b", TASK) == (0, 0)
    assert planning.plan(engine, "run-b", TASK, batch_size=2).batches == []
    assert {r for r in ledger_runs(engine, Status.STAGED)} == {"run-a"}

    # run-a plans and then finishes without sending: run-b takes its rows over, explicitly.
    planning.plan(engine, "run-a", TASK, batch_size=2)
    run_lifecycle.finish_run(engine, "run-a", TASK, WINDOW, {"note": "failed"})
    assert planning.count_plannable(engine, "run-b", TASK) == (5, 5)
    plan = planning.plan(engine, "run-b", TASK, batch_size=2)
    assert plan.carried_over == {"run-a": 5}
    assert [b["rows"] for b in plan.batches] == [2, 2, 1]
    assert planning.carried_over(engine, "run-b") == {"run-a": 5}
    # run-a's planned batches are marked, so a late claim of one finds it gone.
    assert batch_counts(engine, "run-a") == {"carried_over": 3}
    assert batch_lifecycle.claim(engine, "run-a", 0, "late", seconds=60) is None


def test_a_run_whose_lease_expired_is_dead(engine, monkeypatch):
    staged(engine, "run-a", five_leads("a"))
    with engine.begin() as conn:
        conn.execute(
            update(schema.runs)
            .where(schema.runs.c.run_id == "run-a")
            .values(lease_expires_at=schema.now() - timedelta(seconds=1))
        )
    run_lifecycle.start_run(engine, "run-b", TASK, WINDOW)
    assert planning.plan(engine, "run-b", TASK, batch_size=5).carried_over == {"run-a": 5}


def test_rows_of_a_sending_batch_are_never_taken_over(engine):
    staged(engine, "run-a", five_leads("a"))
    planning.plan(engine, "run-a", TASK, batch_size=5)
    batch_lifecycle.claim(engine, "run-a", 0, "a", seconds=60)
    run_lifecycle.finish_run(engine, "run-a", TASK, WINDOW, {})
    run_lifecycle.start_run(engine, "run-b", TASK, WINDOW)
    assert planning.plan(engine, "run-b", TASK, batch_size=5).carried_over == {}
    assert set(statuses(engine).values()) == {"sending"}


def test_planning_takes_a_fixed_number_of_statements_and_a_replan_numbers_on(engine):
    """Planning once paged through the rows, a query (a scan, without statistics) per batch."""
    staged(engine, "run-1", {f"l{i:02d}": f"1390000{i:04d}" for i in range(30)})
    statements: list[str] = []
    record = lambda conn, cursor, sql, *_: statements.append(sql)  # noqa: E731
    event.listen(engine, "before_cursor_execute", record)
    plan = planning.plan(engine, "run-1", TASK, batch_size=4)
    event.remove(engine, "before_cursor_execute", record)
    assert [r["rows"] for r in plan.batches] == [4] * 7 + [2]
    assert [r["batch_no"] for r in plan.batches] == list(range(8))
    # PostgreSQL adds two: ANALYZE of the ledger and no nested loops (see the test below).
    assert len(statements) <= (9 if engine.dialect.name == "postgresql" else 7)

    # Batch 0 goes out; a cleared re-run drops the unclaimed batches and plans what is still
    # staged, numbering on from 8.
    batch_lifecycle.claim(engine, "run-1", 0, "a", seconds=60)
    staging.clear_run(engine, "run-1")
    again = planning.plan(engine, "run-1", TASK, batch_size=10)
    assert again.batches == [
        {"batch_no": 8, "rows": 10},
        {"batch_no": 9, "rows": 10},
        {"batch_no": 10, "rows": 6},
    ]
    with engine.connect() as conn:
        sending = conn.execute(
            select(schema.ledger.c.lead_id).where(schema.ledger.c.batch_no == 0)
        ).scalars()
        assert sorted(sending) == ["l00", "l01", "l02", "l03"]  # untouched


def ledger_runs(engine, status: Status) -> list[str]:
    with engine.connect() as conn:
        return list(
            conn.execute(
                select(schema.ledger.c.run_id).where(schema.ledger.c.status == status)
            ).scalars()
        )


@pytest.mark.postgres
def test_planning_a_large_run_for_a_task_the_statistics_never_saw_stays_set_based():
    """PostgreSQL's statistics, taken while the ledger held other tasks' rows, estimate one
    row for a new calling task; numbering 30,000 rows by that estimate (a nested loop over
    the window query) ran for minutes. Planning must not depend on fresh statistics: it
    finishes well within a statement timeout that the nested loop overran."""
    from sqlalchemy import create_engine

    from tests.dags.conftest import postgres_warehouse

    warehouse = postgres_warehouse()
    try:
        schema.create_tables(warehouse.engine)
        staged(warehouse.engine, "run-small", five_leads())
        with warehouse.engine.begin() as conn:
            conn.exec_driver_sql(f"ANALYZE {schema.ledger.name}")
        big = {f"b{i:06d}": f"139{i:08d}" for i in range(30_000)}
        run_lifecycle.start_run(warehouse.engine, "run-big", "task-big", WINDOW)
        staging.add_candidates(
            warehouse.engine, "run-big", [candidate(lead, phone) for lead, phone in big.items()]
        )
        staging.stage_candidates(warehouse.engine, "run-big", "task-big")

        bounded = create_engine(
            warehouse.conn_uri, connect_args={"options": "-c statement_timeout=20000"}
        )
        plan = planning.plan(bounded, "run-big", "task-big", batch_size=200)
        bounded.dispose()
        assert len(plan.batches) == 150
        assert {b["rows"] for b in plan.batches} == {200}
    finally:
        for step in warehouse.cleanup:
            step()
