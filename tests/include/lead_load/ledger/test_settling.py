"""A submitted batch settled by its callback or from the task's number list, on every ledger
database: each write conditional, a second copy changes nothing."""

from __future__ import annotations

import time

from lead_load.core.ledger_rules import BatchStatus
from lead_load.ledger import batch_lifecycle, planning, settling
from tests.include.lead_load.ledger.lifecycle_samples import (
    TASK,
    batch_status,
    five_leads,
    staged,
)
from tests.include.lead_load.samples import statuses


def test_settling_from_the_task_imports_what_shows_and_restages_only_after_the_period(engine):
    staged(engine, "run-1", five_leads())
    planning.plan(engine, "run-1", TASK, batch_size=5)
    claim = batch_lifecycle.claim(engine, "run-1", 0, "a", seconds=60)
    batch_lifecycle.mark_answer_lost(engine, claim.lease, "no answer")

    # Within the settle period: found rows imported, absent ones stay maybe accepted.
    counts = settling.settle_from_number_list(
        engine, "run-1", 0, {"13900000001"}, settle_seconds=3600
    )
    assert counts == {"imported": 1, "staged_again": 0, "awaiting": 4, "closed": 0}
    assert statuses(engine)["l1"] == "imported"
    assert batch_status(engine, "run-1", 0) == BatchStatus.SUBMITTED
    assert [b["settle_due"] for b in settling.unsettled_batches(engine, TASK, 3600)] == [False]

    # A second copy finds nothing more to do.
    assert settling.settle_from_number_list(engine, "run-1", 0, {"13900000001"})["imported"] == 0

    # After the period (by the database's clock): the absent rows go back to staged, the
    # batch is processed.
    time.sleep(0.05)
    assert [b["settle_due"] for b in settling.unsettled_batches(engine, TASK, 0.01)] == [True]
    counts = settling.settle_from_number_list(
        engine, "run-1", 0, {"13900000002"}, settle_seconds=0.01
    )
    assert counts == {"imported": 1, "staged_again": 3, "awaiting": 0, "closed": 1}
    assert statuses(engine) == {
        "l0": "staged",
        "l1": "imported",
        "l2": "imported",
        "l3": "staged",
        "l4": "staged",
    }
    state = batch_lifecycle.batch_state(engine, "run-1", 0)
    assert state["status"] == BatchStatus.PROCESSED and state["imported"] == 2
    # The staged rows are planned again (the batch is closed).
    assert planning.plan(engine, "run-1", TASK, batch_size=5).batches == [
        {"batch_no": 1, "rows": 3}
    ]


def test_a_batch_whose_rows_all_show_is_closed_without_waiting_for_the_period(engine):
    staged(engine, "run-1", five_leads())
    planning.plan(engine, "run-1", TASK, batch_size=5)
    claim = batch_lifecycle.claim(engine, "run-1", 0, "a", seconds=60)
    batch_lifecycle.mark_answer_lost(engine, claim.lease, "no answer")
    counts = settling.settle_from_number_list(engine, "run-1", 0, set(five_leads().values()))
    assert counts == {"imported": 5, "staged_again": 0, "awaiting": 0, "closed": 1}
    assert batch_status(engine, "run-1", 0) == BatchStatus.PROCESSED


def test_a_batch_is_settled_once(engine):
    staged(engine, "run-1", five_leads())
    planning.plan(engine, "run-1", TASK, batch_size=5)
    claim = batch_lifecycle.claim(engine, "run-1", 0, "a", seconds=60)
    batch_lifecycle.mark_submitted(engine, claim.lease, "u-0")
    assert settling.settle(engine, "u-0", set(five_leads().values())) == {
        "imported": 5,
        "not_imported": 0,
    }
    # A second copy of the callback (another run's recheck, a duplicate trigger) loses.
    assert settling.settle(engine, "u-0", set()) is None
    assert set(statuses(engine).values()) == {"imported"}
    assert settling.settled_counts(engine, "u-0") == {"imported": 5, "not_imported": 0}
