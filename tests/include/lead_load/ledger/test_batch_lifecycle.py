"""The batch lifecycle's transitions on SQLite and PostgreSQL: each one conditional, and the
loser of every race changes nothing."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from sqlalchemy import event, select, update

from lead_load.core.ledger_rules import BatchStatus, Status, batch_lease_seconds
from lead_load.ledger import batch_lifecycle as lifecycle
from lead_load.ledger import schema, staging
from lead_load.ledger.batch_lifecycle import LeaseLost
from lead_load.ledger.counts import batch_counts
from tests.include.lead_load.samples import candidate, statuses

TASK = "task-1"
WINDOW = ("2026-11-24T00:00:00+00:00", "2026-11-25T00:00:00+00:00")


def staged(engine, run_id: str, leads: dict[str, str]) -> None:
    lifecycle.start_run(engine, run_id, TASK, WINDOW)
    staging.add_candidates(
        engine, run_id, [candidate(lead, phone) for lead, phone in leads.items()]
    )
    staging.stage_candidates(engine, run_id, TASK)


def five_leads(prefix: str = "l") -> dict[str, str]:
    return {f"{prefix}{i}": f"1390000000{i}" for i in range(5)}


def batch_status(engine, run_id: str, batch_no: int) -> str:
    return lifecycle.batch_state(engine, run_id, batch_no)["status"]


def test_a_batch_goes_planned_sending_submitted_processed(engine):
    staged(engine, "run-1", five_leads())
    plan = lifecycle.plan(engine, "run-1", TASK, batch_size=2)
    assert plan.batches == [
        {"batch_no": 0, "rows": 2},
        {"batch_no": 1, "rows": 2},
        {"batch_no": 2, "rows": 1},
    ]
    assert plan.carried_over == {}

    claim = lifecycle.claim(engine, "run-1", 0, "owner-a", seconds=60)
    assert [r["extra"] for r in claim.rows] == ["l0", "l1"]  # read after the claim
    assert batch_status(engine, "run-1", 0) == BatchStatus.SENDING
    lifecycle.renew(engine, claim.lease)
    lifecycle.submitted(engine, claim.lease, "u-0")
    assert lifecycle.awaiting_callback(engine, "run-1") == ["u-0"]

    assert lifecycle.settle(engine, "u-0", {"13900000000"}) == {"imported": 1, "not_imported": 1}
    assert statuses(engine) == {
        "l0": "imported",
        "l1": "not_imported",
        "l2": "staged",
        "l3": "staged",
        "l4": "staged",
    }
    assert batch_counts(engine, "run-1") == {"processed": 1, "planned": 2}


def test_only_one_claim_wins_and_the_loser_changes_nothing(engine):
    staged(engine, "run-1", five_leads())
    lifecycle.plan(engine, "run-1", TASK, batch_size=5)
    first = lifecycle.claim(engine, "run-1", 0, "owner-a", seconds=60)
    second = lifecycle.claim(engine, "run-1", 0, "owner-b", seconds=60)
    assert first is not None and second is None
    state = lifecycle.batch_state(engine, "run-1", 0)
    assert state["lease_owner"] == "owner-a" and state["lease_token"] == first.lease.token
    assert state["claims"] == 1


def test_a_writer_that_lost_its_lease_can_neither_post_nor_record(engine):
    staged(engine, "run-1", five_leads())
    lifecycle.plan(engine, "run-1", TASK, batch_size=5)
    paused = lifecycle.claim(engine, "run-1", 0, "paused", seconds=0.01).lease
    time.sleep(0.05)
    # Still live until it expires; then another process takes it over.
    assert lifecycle.take_expired(engine, "run-1", 0, "new", seconds=60) is not None
    assert lifecycle.take_expired(engine, "run-1", 0, "third", seconds=60) is None  # live again

    with pytest.raises(LeaseLost):
        lifecycle.renew(engine, paused)  # the fence before a POST
    with pytest.raises(LeaseLost):
        lifecycle.submitted(engine, paused, "u-late")
    with pytest.raises(LeaseLost):
        lifecycle.back_to_staged(engine, paused, error="late")
    with pytest.raises(LeaseLost):
        lifecycle.answer_lost(engine, paused, "late")
    state = lifecycle.batch_state(engine, "run-1", 0)
    assert state["status"] == BatchStatus.SENDING and state["lease_owner"] == "new"
    assert set(statuses(engine).values()) == {"sending"}


def test_the_fence_counts_the_posts_that_started(engine):
    """``sends`` is what tells a reconciler whether the platform may have the batch."""
    staged(engine, "run-1", five_leads())
    lifecycle.plan(engine, "run-1", TASK, batch_size=5)
    claim = lifecycle.claim(engine, "run-1", 0, "a", seconds=60)
    assert lifecycle.batch_state(engine, "run-1", 0)["sends"] == 0
    lifecycle.renew(engine, claim.lease)
    lifecycle.renew(engine, claim.lease)
    assert lifecycle.batch_state(engine, "run-1", 0)["sends"] == 2


def test_a_lost_answer_keeps_the_rows_active_and_out_of_every_plan(engine):
    staged(engine, "run-1", five_leads())
    lifecycle.plan(engine, "run-1", TASK, batch_size=5)
    claim = lifecycle.claim(engine, "run-1", 0, "a", seconds=60)
    lifecycle.renew(engine, claim.lease)
    lifecycle.answer_lost(engine, claim.lease, "no answer within 30s")
    state = lifecycle.batch_state(engine, "run-1", 0)
    assert state["status"] == BatchStatus.SUBMITTED and state["unique_id"] is None
    assert state["answer_lost"] and state["lease_token"] is None
    assert set(statuses(engine).values()) == {"submitted"}
    assert lifecycle.maybe_accepted_rows(engine, "run-1") == 5
    # Neither a re-plan of the run nor a later run (after this one ended) sends them.
    assert lifecycle.plan(engine, "run-1", TASK, batch_size=5).batches == []
    lifecycle.finish_run(engine, "run-1", TASK, WINDOW, {}, failed=True)
    lifecycle.start_run(engine, "run-2", TASK, WINDOW)
    assert lifecycle.plan(engine, "run-2", TASK, batch_size=5).batches == []
    # ... and a staging of the same leads finds them in flight.
    staging.add_candidates(
        engine, "run-2", [candidate(lead, phone) for lead, phone in five_leads().items()]
    )
    staging.stage_candidates(engine, "run-2", TASK)
    assert set(statuses(engine).values()) == {"submitted"}
    assert [b["batch_no"] for b in lifecycle.left_open_by_ended_runs(engine, TASK, "run-2")] == [0]


def test_settling_from_the_task_imports_what_shows_and_restages_only_after_the_period(engine):
    staged(engine, "run-1", five_leads())
    lifecycle.plan(engine, "run-1", TASK, batch_size=5)
    claim = lifecycle.claim(engine, "run-1", 0, "a", seconds=60)
    lifecycle.answer_lost(engine, claim.lease, "no answer")

    # Within the settle period: found rows imported, absent ones stay maybe accepted.
    counts = lifecycle.settle_from_task(engine, "run-1", 0, {"13900000001"}, settle_seconds=3600)
    assert counts == {"imported": 1, "staged_again": 0, "awaiting": 4, "closed": 0}
    assert statuses(engine)["l1"] == "imported"
    assert batch_status(engine, "run-1", 0) == BatchStatus.SUBMITTED
    assert [b["settle_due"] for b in lifecycle.unsettled_batches(engine, TASK, 3600)] == [False]

    # A second copy finds nothing more to do.
    assert lifecycle.settle_from_task(engine, "run-1", 0, {"13900000001"})["imported"] == 0

    # After the period (by the database's clock): the absent rows go back to staged, the
    # batch is processed.
    time.sleep(0.05)
    assert [b["settle_due"] for b in lifecycle.unsettled_batches(engine, TASK, 0.01)] == [True]
    counts = lifecycle.settle_from_task(engine, "run-1", 0, {"13900000002"}, settle_seconds=0.01)
    assert counts == {"imported": 1, "staged_again": 3, "awaiting": 0, "closed": 1}
    assert statuses(engine) == {
        "l0": "staged",
        "l1": "imported",
        "l2": "imported",
        "l3": "staged",
        "l4": "staged",
    }
    state = lifecycle.batch_state(engine, "run-1", 0)
    assert state["status"] == BatchStatus.PROCESSED and state["imported"] == 2
    # The staged rows are planned again (the batch is closed).
    assert lifecycle.plan(engine, "run-1", TASK, batch_size=5).batches == [
        {"batch_no": 1, "rows": 3}
    ]


def test_a_batch_whose_rows_all_show_is_closed_without_waiting_for_the_period(engine):
    staged(engine, "run-1", five_leads())
    lifecycle.plan(engine, "run-1", TASK, batch_size=5)
    claim = lifecycle.claim(engine, "run-1", 0, "a", seconds=60)
    lifecycle.answer_lost(engine, claim.lease, "no answer")
    counts = lifecycle.settle_from_task(engine, "run-1", 0, set(five_leads().values()))
    assert counts == {"imported": 5, "staged_again": 0, "awaiting": 0, "closed": 1}
    assert batch_status(engine, "run-1", 0) == BatchStatus.PROCESSED


def test_a_batch_is_settled_once(engine):
    staged(engine, "run-1", five_leads())
    lifecycle.plan(engine, "run-1", TASK, batch_size=5)
    claim = lifecycle.claim(engine, "run-1", 0, "a", seconds=60)
    lifecycle.submitted(engine, claim.lease, "u-0")
    assert lifecycle.settle(engine, "u-0", set(five_leads().values())) == {
        "imported": 5,
        "not_imported": 0,
    }
    # A second copy of the callback (another run's recheck, a duplicate trigger) loses.
    assert lifecycle.settle(engine, "u-0", set()) is None
    assert set(statuses(engine).values()) == {"imported"}
    assert lifecycle.settled_counts(engine, "u-0") == {"imported": 5, "not_imported": 0}


def test_planning_leaves_a_live_run_alone_and_carries_over_a_finished_one(engine):
    staged(engine, "run-a", five_leads("a"))
    lifecycle.start_run(engine, "run-b", TASK, WINDOW)
    # run-a is live: run-b plans nothing of it.
    assert lifecycle.count_plannable(engine, "run-b", TASK) == (0, 0)
    assert lifecycle.plan(engine, "run-b", TASK, batch_size=2).batches == []
    assert {r for r in ledger_runs(engine, Status.STAGED)} == {"run-a"}

    # run-a plans and then finishes without sending: run-b takes its rows over, explicitly.
    lifecycle.plan(engine, "run-a", TASK, batch_size=2)
    lifecycle.finish_run(engine, "run-a", TASK, WINDOW, {"note": "failed"})
    assert lifecycle.count_plannable(engine, "run-b", TASK) == (5, 5)
    plan = lifecycle.plan(engine, "run-b", TASK, batch_size=2)
    assert plan.carried_over == {"run-a": 5}
    assert [b["rows"] for b in plan.batches] == [2, 2, 1]
    assert lifecycle.carried_over(engine, "run-b") == {"run-a": 5}
    # run-a's planned batches are marked, so a late claim of one finds it gone.
    assert batch_counts(engine, "run-a") == {"carried_over": 3}
    assert lifecycle.claim(engine, "run-a", 0, "late", seconds=60) is None


def test_a_run_whose_lease_expired_is_dead(engine, monkeypatch):
    staged(engine, "run-a", five_leads("a"))
    with engine.begin() as conn:
        conn.execute(
            update(schema.runs)
            .where(schema.runs.c.run_id == "run-a")
            .values(lease_expires_at=schema.now() - timedelta(seconds=1))
        )
    lifecycle.start_run(engine, "run-b", TASK, WINDOW)
    assert lifecycle.plan(engine, "run-b", TASK, batch_size=5).carried_over == {"run-a": 5}


def test_rows_of_a_sending_batch_are_never_taken_over(engine):
    staged(engine, "run-a", five_leads("a"))
    lifecycle.plan(engine, "run-a", TASK, batch_size=5)
    lifecycle.claim(engine, "run-a", 0, "a", seconds=60)
    lifecycle.finish_run(engine, "run-a", TASK, WINDOW, {})
    lifecycle.start_run(engine, "run-b", TASK, WINDOW)
    assert lifecycle.plan(engine, "run-b", TASK, batch_size=5).carried_over == {}
    assert set(statuses(engine).values()) == {"sending"}


def test_planning_takes_a_fixed_number_of_statements_and_a_replan_numbers_on(engine):
    """Planning once paged through the rows, a query (a scan, without statistics) per batch."""
    staged(engine, "run-1", {f"l{i:02d}": f"1390000{i:04d}" for i in range(30)})
    statements: list[str] = []
    record = lambda conn, cursor, sql, *_: statements.append(sql)  # noqa: E731
    event.listen(engine, "before_cursor_execute", record)
    plan = lifecycle.plan(engine, "run-1", TASK, batch_size=4)
    event.remove(engine, "before_cursor_execute", record)
    assert [r["rows"] for r in plan.batches] == [4] * 7 + [2]
    assert [r["batch_no"] for r in plan.batches] == list(range(8))
    # PostgreSQL adds two: ANALYZE of the ledger and no nested loops (see the test below).
    assert len(statements) <= (9 if engine.dialect.name == "postgresql" else 7)

    # Batch 0 goes out; a cleared re-run drops the unclaimed batches and plans what is still
    # staged, numbering on from 8.
    lifecycle.claim(engine, "run-1", 0, "a", seconds=60)
    staging.clear_run(engine, "run-1")
    again = lifecycle.plan(engine, "run-1", TASK, batch_size=10)
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


def test_the_lease_outlives_a_renewal_cycle():
    # Defaults of the agent_api connection: 30 s timeout, 60 s backoff cap.
    assert batch_lease_seconds(30, 60) == 2 * 90 + 30
    assert batch_lease_seconds(5, 2) > 5 + 2


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
        lifecycle.start_run(warehouse.engine, "run-big", "task-big", WINDOW)
        staging.add_candidates(
            warehouse.engine, "run-big", [candidate(lead, phone) for lead, phone in big.items()]
        )
        staging.stage_candidates(warehouse.engine, "run-big", "task-big")

        bounded = create_engine(
            warehouse.conn_uri, connect_args={"options": "-c statement_timeout=20000"}
        )
        plan = lifecycle.plan(bounded, "run-big", "task-big", batch_size=200)
        bounded.dispose()
        assert len(plan.batches) == 150
        assert {b["rows"] for b in plan.batches} == {200}
    finally:
        for step in warehouse.cleanup:
            step()


def test_the_run_context_is_its_settings_and_its_latest_plans_first_batch(engine):
    settings = {"run_id": "run-1", "api_task_id": TASK, "sub_user_id": "子账号-1"}
    lifecycle.start_run(engine, "run-1", TASK, WINDOW, settings=settings)
    assert lifecycle.run_context(engine, "run-1") is None  # not planned yet
    staging.add_candidates(engine, "run-1", [candidate(k, v) for k, v in five_leads().items()])
    staging.stage_candidates(engine, "run-1", TASK)
    first_plan = lifecycle.plan(engine, "run-1", TASK, 2).batches

    context = lifecycle.run_context(engine, "run-1")

    assert context == lifecycle.RunContext(settings, first_plan[0]["batch_no"])
    # A cleared re-run plans on with new numbers: its tasks find the new plan.
    staging.add_candidates(engine, "run-1", [candidate("l9", "13900000009")])
    staging.stage_candidates(engine, "run-1", TASK)
    (again,) = lifecycle.plan(engine, "run-1", TASK, 2).batches
    assert lifecycle.run_context(engine, "run-1").first_batch_no == again["batch_no"] > 2
    assert lifecycle.run_context(engine, "run-unknown") is None
