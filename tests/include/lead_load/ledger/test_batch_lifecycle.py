"""A batch's post under one owner on every ledger database: each transition conditional, and
the loser of every race changes nothing."""

from __future__ import annotations

import time

import pytest

from lead_load.core.ledger_rules import BatchStatus, batch_lease_seconds
from lead_load.ledger import batch_lifecycle, planning, run_lifecycle, settling, staging
from lead_load.ledger.batch_lifecycle import LeaseLost
from lead_load.ledger.counts import batch_counts
from tests.include.lead_load.ledger.lifecycle_samples import (
    TASK,
    WINDOW,
    batch_status,
    five_leads,
    staged,
)
from tests.include.lead_load.samples import candidate, statuses


def test_a_batch_goes_planned_sending_submitted_processed(engine):
    staged(engine, "run-1", five_leads())
    plan = planning.plan(engine, "run-1", TASK, batch_size=2)
    assert plan.batches == [
        {"batch_no": 0, "rows": 2},
        {"batch_no": 1, "rows": 2},
        {"batch_no": 2, "rows": 1},
    ]
    assert plan.carried_over == {}

    claim = batch_lifecycle.claim(engine, "run-1", 0, "owner-a", seconds=60)
    assert [r["extra"] for r in claim.rows] == ["l0", "l1"]  # read after the claim
    assert batch_status(engine, "run-1", 0) == BatchStatus.SENDING
    batch_lifecycle.renew(engine, claim.lease)
    batch_lifecycle.mark_submitted(engine, claim.lease, "u-0")
    assert settling.awaiting_callback(engine, "run-1") == ["u-0"]

    assert settling.settle(engine, "u-0", {"13900000000"}) == {"imported": 1, "not_imported": 1}
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
    planning.plan(engine, "run-1", TASK, batch_size=5)
    first = batch_lifecycle.claim(engine, "run-1", 0, "owner-a", seconds=60)
    second = batch_lifecycle.claim(engine, "run-1", 0, "owner-b", seconds=60)
    assert first is not None and second is None
    state = batch_lifecycle.batch_state(engine, "run-1", 0)
    assert state["lease_owner"] == "owner-a" and state["lease_token"] == first.lease.token
    assert state["claims"] == 1


def test_a_writer_that_lost_its_lease_can_neither_post_nor_record(engine):
    staged(engine, "run-1", five_leads())
    planning.plan(engine, "run-1", TASK, batch_size=5)
    paused = batch_lifecycle.claim(engine, "run-1", 0, "paused", seconds=0.01).lease
    time.sleep(0.05)
    # Still live until it expires; then another process takes it over.
    assert batch_lifecycle.take_expired(engine, "run-1", 0, "new", seconds=60) is not None
    assert (
        batch_lifecycle.take_expired(engine, "run-1", 0, "third", seconds=60) is None
    )  # live again

    with pytest.raises(LeaseLost):
        batch_lifecycle.renew(engine, paused)  # the fence before a POST
    with pytest.raises(LeaseLost):
        batch_lifecycle.mark_submitted(engine, paused, "u-late")
    with pytest.raises(LeaseLost):
        batch_lifecycle.put_back_to_staged(engine, paused, error="late")
    with pytest.raises(LeaseLost):
        batch_lifecycle.mark_answer_lost(engine, paused, "late")
    state = batch_lifecycle.batch_state(engine, "run-1", 0)
    assert state["status"] == BatchStatus.SENDING and state["lease_owner"] == "new"
    assert set(statuses(engine).values()) == {"sending"}


def test_the_fence_counts_the_posts_that_started(engine):
    """``sends`` is what tells a reconciler whether the platform may have the batch."""
    staged(engine, "run-1", five_leads())
    planning.plan(engine, "run-1", TASK, batch_size=5)
    claim = batch_lifecycle.claim(engine, "run-1", 0, "a", seconds=60)
    assert batch_lifecycle.batch_state(engine, "run-1", 0)["sends"] == 0
    batch_lifecycle.renew(engine, claim.lease)
    batch_lifecycle.renew(engine, claim.lease)
    assert batch_lifecycle.batch_state(engine, "run-1", 0)["sends"] == 2


def test_a_lost_answer_keeps_the_rows_active_and_out_of_every_plan(engine):
    staged(engine, "run-1", five_leads())
    planning.plan(engine, "run-1", TASK, batch_size=5)
    claim = batch_lifecycle.claim(engine, "run-1", 0, "a", seconds=60)
    batch_lifecycle.renew(engine, claim.lease)
    batch_lifecycle.mark_answer_lost(engine, claim.lease, "no answer within 30s")
    state = batch_lifecycle.batch_state(engine, "run-1", 0)
    assert state["status"] == BatchStatus.SUBMITTED and state["unique_id"] is None
    assert state["answer_lost"] and state["lease_token"] is None
    assert set(statuses(engine).values()) == {"submitted"}
    assert settling.maybe_accepted_rows(engine, "run-1") == 5
    # Neither a re-plan of the run nor a later run (after this one ended) sends them.
    assert planning.plan(engine, "run-1", TASK, batch_size=5).batches == []
    run_lifecycle.finish_run(engine, "run-1", TASK, WINDOW, {}, failed=True)
    run_lifecycle.start_run(engine, "run-2", TASK, WINDOW)
    assert planning.plan(engine, "run-2", TASK, batch_size=5).batches == []
    # ... and a staging of the same leads finds them in flight.
    staging.add_candidates(
        engine, "run-2", [candidate(lead, phone) for lead, phone in five_leads().items()]
    )
    staging.stage_candidates(engine, "run-2", TASK)
    assert set(statuses(engine).values()) == {"submitted"}
    assert [b["batch_no"] for b in settling.left_open_by_ended_runs(engine, TASK, "run-2")] == [0]


def test_the_lease_outlives_a_renewal_cycle():
    # Defaults of the agent_api connection: 30 s timeout, 60 s backoff cap.
    assert batch_lease_seconds(30, 60) == 2 * 90 + 30
    assert batch_lease_seconds(5, 2) > 5 + 2


def test_a_claim_takes_out_of_its_batch_the_rows_suppressed_after_staging(engine):
    from lead_load.ledger import counts, suppressions

    staged(engine, "run-1", five_leads())
    planning.plan(engine, "run-1", TASK, batch_size=5)
    suppressions.add(engine, [suppressions.Entry(p) for p in ("13900000001", "13900000003")])

    claim = batch_lifecycle.claim(engine, "run-1", 0, "owner-a", seconds=60)

    assert claim.suppressed == 2
    assert [r["extra"] for r in claim.rows] == ["l0", "l2", "l4"]
    assert claim.leads == ("l0", "l4")
    assert batch_lifecycle.batch_state(engine, "run-1", 0)["rows"] == 3
    assert statuses(engine) == {
        "l0": "sending",
        "l1": "rejected",
        "l2": "sending",
        "l3": "rejected",
        "l4": "sending",
    }
    assert counts.suppressed_before_posting(engine, "run-1") == 2
    # The rows that stayed are posted as ever; the ones taken out stay out.
    batch_lifecycle.mark_submitted(engine, claim.lease, "u-0")
    assert settling.settle(engine, "u-0", {"13900000000", "13900000002", "13900000004"}) == {
        "imported": 3,
        "not_imported": 0,
    }
    assert sorted(statuses(engine).values()) == ["imported"] * 3 + ["rejected"] * 2


def test_a_claim_of_a_batch_whose_every_row_is_suppressed_leaves_nothing_to_post(engine):
    from lead_load.ledger import suppressions

    staged(engine, "run-1", five_leads())
    planning.plan(engine, "run-1", TASK, batch_size=2)
    suppressions.add(engine, [suppressions.Entry(p) for p in ("13900000000", "13900000001")])

    claim = batch_lifecycle.claim(engine, "run-1", 0, "owner-a", seconds=60)
    assert (claim.rows, claim.leads, claim.suppressed) == ([], None, 2)
    batch_lifecycle.mark_submitted(engine, claim.lease, None)  # what the post step does then

    state = batch_lifecycle.batch_state(engine, "run-1", 0)
    assert (state["status"], state["rows"], state["unique_id"]) == ("processed", 0, None)
    assert settling.awaiting_callback(engine, "run-1") == []
    # The other batches are untouched: their phones are not on the list.
    other = batch_lifecycle.claim(engine, "run-1", 1, "owner-a", seconds=60)
    assert (len(other.rows), other.suppressed) == (2, 0)


def test_a_claim_that_loses_the_race_takes_nothing_out(engine):
    from lead_load.ledger import suppressions

    staged(engine, "run-1", five_leads())
    planning.plan(engine, "run-1", TASK, batch_size=5)
    first = batch_lifecycle.claim(engine, "run-1", 0, "owner-a", seconds=60)
    suppressions.add(engine, [suppressions.Entry("13900000001")])
    assert batch_lifecycle.claim(engine, "run-1", 0, "owner-b", seconds=60) is None
    assert first.suppressed == 0 and len(first.rows) == 5
    assert statuses(engine)["l1"] == "sending"  # the owner's post sends it: the list came late
