"""Settle: a processed batch's outcome into the ledger, and the batches that an earlier run left
open settled before a new run sends anything. On every ledger engine, against the simulator."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from agent_api.hooks.agent_api import AgentApiHook
from lead_load.ledger import batch_lifecycle, planning, run_lifecycle, schema, settling, staging
from lead_load.steps import settle
from lead_load.steps.post import post_batch
from tests.include.lead_load.samples import candidate, run_settings
from tests.plugins.agent_api.conftest import account, new_phones, rows_for  # noqa: F401

EARLIER, LATER = "run-earlier", "run-later"
SETTLE = timedelta(hours=1)
WINDOW = ("2026-11-24T00:00:00+00:00", "2026-11-25T00:00:00+00:00")


@pytest.fixture
def earlier_run(engine, account):
    """Six leads of an earlier run, planned in three batches of two; nothing posted yet."""
    phones = new_phones(6)
    run_lifecycle.start_run(engine, EARLIER, account.task_id, WINDOW)
    staging.add_candidates(
        engine, EARLIER, [candidate(f"l{i}", phone) for i, phone in enumerate(phones)]
    )
    staging.stage_candidates(engine, EARLIER, account.task_id)
    batches = planning.plan(engine, EARLIER, account.task_id, 2).batches
    assert [b["rows"] for b in batches] == [2, 2, 2]
    return [b["batch_no"] for b in batches], phones


def settings_for(account, run_id: str = EARLIER):
    return run_settings(run_id=run_id, api_task_id=account.task_id)


def ledger_rows(engine) -> dict[str, tuple[str, str | None]]:
    """phone -> (status, reason) of every ledger row."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(schema.ledger.c.phone, schema.ledger.c.status, schema.ledger.c.reason)
        )
        return {phone: (status, reason) for phone, status, reason in rows}


def posted(engine, account, batch_no: int) -> str:
    """Post a batch of the earlier run as its post step does; returns its unique_id."""
    receipt = post_batch(settings_for(account), batch_no, engine, AgentApiHook(), "earlier post")
    assert receipt["unique_id"]
    return receipt["unique_id"]


def callback_numbers(account, unique_id: str) -> set[str]:
    """What the platform says the batch imported, once it has processed it."""
    account.sim.wait_until_processed()
    hook = AgentApiHook()
    return set(hook.download_numbers(hook.get_callback(unique_id)["data"]["url"]))


def task_lookups(account) -> int:
    """How many times the task's number list was read."""
    return sum(
        1 for e in account.sim.journal() if e["method"] == "GET" and e["path"].endswith("/number")
    )


# -- apply_outcome ------------------------------------------------------------------------------


def test_a_processed_batch_records_each_row_as_the_callback_says(engine, account, earlier_run):
    batch_nos, phones = earlier_run
    # Another source put the second number into the task first: the platform skips it.
    AgentApiHook().import_batch(account.task_id, rows_for([phones[1]]))
    unique_id = posted(engine, account, batch_nos[0])
    imported = callback_numbers(account, unique_id)
    assert imported == {phones[0]}

    counts = settle.apply_outcome(
        settings_for(account), engine, AgentApiHook(), unique_id, imported
    )

    assert counts == {"imported": 1, "not_imported": 1}
    rows = ledger_rows(engine)
    assert rows[phones[0]] == ("imported", None)
    assert rows[phones[1]] == ("not_imported", "absent from the batch's callback")
    assert {rows[p][0] for p in phones[2:]} == {"staged"}  # other batches untouched
    state = batch_lifecycle.batch_state(engine, EARLIER, batch_nos[0])
    assert (state["status"], state["imported"]) == ("processed", 1)
    assert task_lookups(account) == 0  # the answer was not lost: the callback is trusted


def test_a_batch_settled_already_reports_what_the_ledger_holds(engine, account, earlier_run):
    batch_nos, phones = earlier_run
    unique_id = posted(engine, account, batch_nos[0])
    first = settle.apply_outcome(
        settings_for(account), engine, AgentApiHook(), unique_id, {phones[0]}
    )
    assert first == {"imported": 1, "not_imported": 1}

    # A second copy of the wait (another triggerer, a retry) comes with another view.
    again = settle.apply_outcome(
        settings_for(account), engine, AgentApiHook(), unique_id, set(phones[:2])
    )

    assert again == first
    assert ledger_rows(engine)[phones[1]][0] == "not_imported"  # the first outcome stands


def test_a_lost_answers_batch_is_settled_from_the_task_and_absent_rows_wait_for_the_period(
    engine, account, earlier_run
):
    batch_nos, phones = earlier_run
    # The platform takes the batch and answers after the client's timeout (2 s).
    account.sim.set_faults(lost_answer_rate=1.0, lost_answer_delay=3, callback_delay=60)
    try:
        receipt = post_batch(settings_for(account), batch_nos[0], engine, AgentApiHook(), "poster")
    finally:
        account.sim.set_faults()
    assert receipt == {
        "batch_no": batch_nos[0],
        "unique_id": None,
        "rows": 2,
        "maybe_accepted": True,
    }
    assert len(account.posts()) == 1  # never posted again
    state = batch_lifecycle.batch_state(engine, EARLIER, batch_nos[0])
    assert (state["status"], state["unique_id"], state["answer_lost"]) == ("submitted", None, True)

    # Not processed yet (slow platform): nothing shows, nothing is re-staged, even by a
    # later run whose settle period has not passed.
    counts = settle.recheck_earlier_batches(
        settings_for(account, LATER), engine, AgentApiHook(), SETTLE
    )
    assert counts["unsettled"] == 1 and counts["staged_again"] == 0
    assert {ledger_rows(engine)[p][0] for p in phones[:2]} == {"submitted"}

    account.sim.process()
    counts = settle.settle_batch_from_number_list(
        settings_for(account), engine, AgentApiHook(), state
    )
    assert counts == {"imported": 2, "staged_again": 0, "awaiting": 0, "closed": 1}
    assert {ledger_rows(engine)[p] for p in phones[:2]} == {
        ("imported", "found in the task's number list")
    }
    assert sorted(account.imported_phones()) == sorted(phones[:2])


# -- recheck_earlier_batches --------------------------------------------------------------------


def test_a_new_run_settles_the_callbacks_an_earlier_run_left_waiting(engine, account, earlier_run):
    batch_nos, phones = earlier_run
    posted(engine, account, batch_nos[0])
    account.sim.set_faults(callback_never_rate=1.0)  # the platform never reports the second
    try:
        never = posted(engine, account, batch_nos[1])
    finally:
        account.sim.set_faults()
    account.sim.wait_until_processed()

    # Batches of another calling task are none of this run's business.
    elsewhere = run_settings(run_id=LATER, api_task_id="another-task")
    assert set(
        settle.recheck_earlier_batches(elsewhere, engine, AgentApiHook(), SETTLE).values()
    ) == {0}
    assert batch_lifecycle.batch_state(engine, EARLIER, batch_nos[0])["status"] == "submitted"

    counts = settle.recheck_earlier_batches(
        settings_for(account, LATER), engine, AgentApiHook(), SETTLE
    )

    assert (counts["settled"], counts["still_pending"], counts["staged_again"]) == (1, 1, 0)
    rows = ledger_rows(engine)
    assert {rows[p][0] for p in phones[:2]} == {"imported"}
    assert {rows[p][0] for p in phones[2:4]} == {"submitted"}  # still waited for
    assert {rows[p][0] for p in phones[4:]} == {"staged"}  # never posted: not a settle's job
    assert settling.awaiting_callback(engine, EARLIER) == [never]

    # Once the settle period has passed, the batch the platform never processed is settled
    # from the task's list: its absent rows are staged to be sent again.
    counts = settle.recheck_earlier_batches(
        settings_for(account, LATER), engine, AgentApiHook(), timedelta(0)
    )
    assert (counts["settled"], counts["staged_again"]) == (1, 2)
    assert {ledger_rows(engine)[p][0] for p in phones[2:4]} == {"staged"}
    assert settling.awaiting_callback(engine, EARLIER) == []
    with engine.connect() as conn:
        later = conn.execute(schema.runs.select().where(schema.runs.c.run_id == LATER)).one()
    assert (later.state, later.api_task_id) == ("running", account.task_id)


def test_a_new_run_reconciles_posts_whose_owner_died_and_leaves_live_ones(
    engine, account, earlier_run
):
    batch_nos, phones = earlier_run
    hook = AgentApiHook()
    # Batch 0: its owner posted it and died before recording the answer (lease expired).
    landed = batch_lifecycle.claim(engine, EARLIER, batch_nos[0], "died after", seconds=-1)
    batch_lifecycle.renew(engine, landed.lease)  # the fence before its POST
    hook.import_batch(account.task_id, landed.rows)
    account.sim.wait_until_processed()
    # Batch 1: its owner died before the request went out.
    batch_lifecycle.claim(engine, EARLIER, batch_nos[1], "died before", seconds=-1)
    # Batch 2: its owner is alive and posting right now.
    batch_lifecycle.claim(engine, EARLIER, batch_nos[2], "alive", seconds=60)

    counts = settle.recheck_earlier_batches(
        settings_for(account, LATER), engine, AgentApiHook(), SETTLE
    )

    assert counts == {
        "settled": 1,
        "still_pending": 0,
        "unsettled": 0,
        "interrupted": 2,
        "found_in_task": 2,
        "staged_again": 0,
        "posting_elsewhere": 1,
        "runs_ended_in_airflow": 0,
    }
    rows = ledger_rows(engine)
    assert {rows[p] for p in phones[:2]} == {("imported", "found in the task's number list")}
    assert {rows[p][0] for p in phones[2:4]} == {"staged"}  # for a later post to send
    assert batch_lifecycle.batch_state(engine, EARLIER, batch_nos[1])["status"] == "planned"
    assert {rows[p][0] for p in phones[4:]} == {"sending"}  # left to its live owner
    assert len(account.posts()) == 1  # the recheck looked in the task and posted nothing


def test_a_run_ended_in_airflow_while_live_in_the_ledger_gives_its_unsent_rows_up_at_once(
    engine, account, earlier_run
):
    """A user marked the earlier run failed in the UI while its batches were planned: the
    next run hears so from Airflow and sends those rows, instead of counting them in flight
    for the two hours of the earlier run's lease."""
    asked: list[str] = []

    def airflow_run_state(run_id: str) -> str | None:
        asked.append(run_id)
        return "failed" if run_id == EARLIER else None

    later = settings_for(account, LATER)
    counts = settle.recheck_earlier_batches(
        later, engine, AgentApiHook(), SETTLE, airflow_run_state=airflow_run_state
    )
    assert counts["runs_ended_in_airflow"] == 1 and asked == [EARLIER]
    planned = planning.plan(engine, LATER, account.task_id, 2)
    assert planned.carried_over == {EARLIER: 6}
    assert sum(b["rows"] for b in planned.batches) == 6
    # Asked again, the run is no longer live in the ledger: nothing to release.
    again = settle.recheck_earlier_batches(
        later, engine, AgentApiHook(), SETTLE, airflow_run_state=airflow_run_state
    )
    assert again["runs_ended_in_airflow"] == 0 and asked == [EARLIER]


def test_a_run_airflow_still_runs_keeps_its_rows(engine, account, earlier_run):
    counts = settle.recheck_earlier_batches(
        settings_for(account, LATER),
        engine,
        AgentApiHook(),
        SETTLE,
        airflow_run_state=lambda run_id: "running",
    )
    assert counts["runs_ended_in_airflow"] == 0
    assert planning.plan(engine, LATER, account.task_id, 2).batches == []
