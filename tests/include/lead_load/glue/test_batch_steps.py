"""The post and record steps as the mapped tasks call them: the ledger found through the
``lead_warehouse`` connection (SQLite and PostgreSQL), the platform through agent_api_default
(the simulator)."""

from __future__ import annotations

import json
import logging
import os
import socket
from datetime import datetime

import pytest
from airflow.sdk.exceptions import AirflowFailException
from sqlalchemy import update

from agent_api.exceptions import AgentApiError
from agent_api.hooks.agent_api import AgentApiHook
from lead_load.glue.batch_steps import (
    FROM_NUMBER_LIST,
    callback_to_wait_for,
    no_callback_result,
    planned_batch_of,
    post_planned_batch,
    record_callback,
    settle_lost_answer,
)
from lead_load.ledger import batch_lifecycle, planning, run_lifecycle, schema
from tests.include.lead_load.glue.conftest import RUN, ledger_status


def test_a_batch_is_posted_once_under_an_owner_that_names_run_try_and_process(
    any_ledger_env, account
):
    engine, settings, batches, phones = any_ledger_env
    batch_no = batches[2]["batch_no"]

    receipt = post_planned_batch(settings, batches[2], "2")
    again = post_planned_batch(settings, batches[2], "3")  # a retry after the post went out

    (accepted,) = account.sim.batches()
    assert (
        receipt
        == again
        == {
            "batch_no": batch_no,
            "unique_id": accepted["unique_id"],
            "rows": 1,
            "maybe_accepted": False,
        }
    )
    assert [row["phone"] for row in account.posts()[0]["body"]["data"]] == phones[4:]
    assert ledger_status(engine, batch_no) == {"submitted"}
    owner = batch_lifecycle.batch_state(engine, RUN, batch_no)["lease_owner"]
    assert owner == f"run {RUN} batch {batch_no} try 2 on {socket.gethostname()}:{os.getpid()}"


def test_the_callback_to_wait_for_is_the_accepted_posts(any_ledger_env, account):
    _, settings, batches, _ = any_ledger_env
    receipt = post_planned_batch(settings, batches[0], 1)
    assert callback_to_wait_for(settings, batches[0]) == receipt["unique_id"]


def test_the_post_and_the_wait_name_their_batch_by_number_and_lead_ids(
    any_ledger_env, account, caplog
):
    _, settings, batches, _ = any_ledger_env
    caplog.set_level(logging.INFO, logger="lead_load")
    receipt = post_planned_batch(settings, batches[1], 1)
    posted = [r.getMessage() for r in caplog.records]
    callback_to_wait_for(settings, batches[1])
    waited = [r.getMessage() for r in caplog.records][len(posted) :]

    # The fixture's leads l0..l4 in batches of two: batch 1 holds l2 and l3. The post says
    # it in one line (each line costs the triggerer a trip through its log pipe).
    number = batches[1]["batch_no"]
    assert posted == [
        f"Batch {number}: 2 rows posted (leads l2 to l3), unique_id {receipt['unique_id']} "
        "(1 attempt)"
    ]
    assert f"Batch {number} of run {RUN}: 2 rows, leads l2 to l3" in waited


def test_a_batch_never_posted_has_no_callback_to_wait_for(any_ledger_env, account):
    _, settings, batches, _ = any_ledger_env
    with pytest.raises(
        AirflowFailException, match=r"has no unique_id in the ledger \(it is planned"
    ):
        callback_to_wait_for(settings, batches[1])


def test_a_batch_whose_interrupted_post_landed_is_settled_from_the_task_list(
    any_ledger_env, account
):
    engine, settings, batches, _ = any_ledger_env
    frozen = batch_lifecycle.claim(engine, RUN, batches[0]["batch_no"], "frozen", seconds=-1)
    batch_lifecycle.renew(engine, frozen.lease)  # the fence before its POST
    AgentApiHook().import_batch(account.task_id, frozen.rows)  # landed; its owner froze
    receipt = post_planned_batch(settings, batches[0], 2)
    assert (receipt["unique_id"], receipt["maybe_accepted"]) == (None, True)  # not sent again
    assert len(account.posts()) == 1

    assert callback_to_wait_for(settings, batches[0]) is FROM_NUMBER_LIST
    account.sim.wait_until_processed()
    assert settle_lost_answer(settings, batches[0]) == {
        "batch_no": batches[0]["batch_no"],
        "unique_id": None,
        "imported": 2,
        "waited": True,
        "from_task_list": True,
    }
    assert callback_to_wait_for(settings, batches[0]) is None  # settled: nothing to wait for
    assert no_callback_result(batches[0]) == {
        "batch_no": batches[0]["batch_no"],
        "unique_id": None,
        "imported": 0,
        "waited": False,
    }


def test_a_batch_another_run_took_over_needs_no_callback(any_ledger_env, account):
    engine, settings, batches, _ = any_ledger_env
    # The run's lease ran out (it is dead to others): the next run plans its rows.
    with engine.begin() as conn:
        conn.execute(
            update(schema.runs)
            .where(schema.runs.c.run_id == RUN)
            .values(lease_expires_at=datetime(2026, 1, 1))
        )
    run_lifecycle.start_run(engine, "run-next", account.task_id, ("a", "b"))
    taken = planning.plan(engine, "run-next", account.task_id, 2)
    assert taken.carried_over == {RUN: 5}

    assert callback_to_wait_for(settings, batches[1]) is None
    assert account.posts() == []


def test_a_callback_is_downloaded_and_recorded_with_counts_only(any_ledger_env, account):
    engine, settings, batches, phones = any_ledger_env
    unique_id = post_planned_batch(settings, batches[0], 1)["unique_id"]
    account.sim.wait_until_processed()
    payload = AgentApiHook().get_callback(unique_id)

    counts = record_callback(settings, unique_id, payload["data"]["url"], account.task_id)

    assert counts == {"unique_id": unique_id, "imported": 2, "not_imported": 0}
    assert ledger_status(engine, batches[0]["batch_no"]) == {"imported"}
    assert not any(phone in json.dumps(counts) for phone in phones)


def test_a_callback_without_a_download_url_is_an_error_and_records_nothing(any_ledger_env, account):
    engine, settings, batches, _ = any_ledger_env
    unique_id = post_planned_batch(settings, batches[0], 1)["unique_id"]
    with pytest.raises(AgentApiError, match=f"callback of batch {unique_id} has no download URL"):
        record_callback(settings, unique_id, None, account.task_id)
    assert ledger_status(engine, batches[0]["batch_no"]) == {"submitted"}


def test_a_batch_is_found_from_its_run_and_map_index_in_the_ledger(any_ledger_env):
    _, settings, batches, _ = any_ledger_env
    for map_index, batch in enumerate(batches):
        assert planned_batch_of(RUN, map_index) == (
            settings,
            {"batch_no": batch["batch_no"]},
        )


def test_a_run_the_ledger_does_not_know_fails_saying_what_to_check(any_ledger_env):
    with pytest.raises(AirflowFailException, match="lead_load_ledger_conn_id"):
        planned_batch_of("run-elsewhere", 0)
