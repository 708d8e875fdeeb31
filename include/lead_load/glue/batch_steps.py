"""The post and record steps as a mapped task calls them, on a worker or in the triggerer:
with the ledger engine and the platform hook built from Airflow's connections."""

from __future__ import annotations

import logging
import os
import socket
from typing import Any

from airflow.sdk.exceptions import AirflowFailException
from sqlalchemy import Engine

from agent_api.exceptions import AgentApiError
from agent_api.hooks.agent_api import AgentApiHook
from agent_api.masking import mask_phones_in
from agent_api.sensors.callback import BatchOutcome
from lead_load.core.ledger_rules import BatchStatus
from lead_load.core.run_settings import WAREHOUSE_CONN_ID, RunSettings
from lead_load.glue.connections import ledger_conn_id, run_ledger_conn_id, shared_engine_for
from lead_load.ledger import batch_lifecycle, counts, run_lifecycle
from lead_load.steps.post import LeaseHeld, post_batch
from lead_load.steps.settle import apply_outcome, settle_batch_from_number_list

log = logging.getLogger(__name__)


def log_which_batch(engine: Engine, run_id: str, batch_no: int) -> None:
    """Name the batch in the task's log by what a data engineer can look up: its number, its
    first and last lead id and its rows (Airflow shows a mapped task that runs in the
    triggerer by its bare map index)."""
    found = counts.lead_id_range(engine, run_id, batch_no)
    if found is None:
        log.info("Batch %s of run %s: no ledger rows", batch_no, run_id)
        return
    first, last, rows = found
    log.info(
        "Batch %s of run %s: %d rows, leads %s to %s",
        batch_no,
        run_id,
        rows,
        mask_phones_in(str(first)),
        mask_phones_in(str(last)),
    )


def planned_batch_of(
    run_id: str, map_index: int, ledger: tuple[str | None, str] = (None, WAREHOUSE_CONN_ID)
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The run's settings and the batch at ``map_index`` of its plan, read from the ledger:
    how a batch's task that starts in the triggerer finds its work. (Rendering XComs there
    costs two requests to the triggerer's supervisor per task, which a profile found to be
    a third of its time while 200 batches started.) ``run_id``: the ledger's
    (``loads.ledger_run_id``); ``ledger``: the load's configured ledger and warehouse
    connections (``connections.ledger_conn_id``)."""
    conn_id = ledger_conn_id(*ledger)
    context = run_lifecycle.run_context(shared_engine_for(conn_id), run_id)
    if context is None:
        raise AirflowFailException(
            f"run {run_id} has no settings or no plan in the ledger of connection "
            f"{conn_id!r}: recheck_earlier_batches and plan_batches write them there; was the "
            "Variable lead_load_ledger_conn_id changed during the run? Clear the run to "
            "start it again"
        )
    return context.settings, {"batch_no": context.first_batch_no + map_index}


def post_planned_batch(
    settings: dict[str, Any], batch: dict[str, Any], try_number: int | str
) -> dict[str, Any] | LeaseHeld:
    """Post one batch of ``plan_batches`` through the ledger; the same step on either path.

    The owner named in the batch's lease says which run, try and process posts it.
    """
    run_settings = RunSettings.from_dict(settings)
    # One look-up of the ledger's connection per step: in the triggerer each is a round trip
    # through its supervisor.
    engine = shared_engine_for(run_ledger_conn_id(run_settings))
    owner = (
        f"run {run_settings.run_id} batch {batch['batch_no']} try {try_number} "
        f"on {socket.gethostname()}:{os.getpid()}"
    )
    hook = AgentApiHook(run_settings.agent_api_conn_id)
    return post_batch(run_settings, batch["batch_no"], engine, hook, owner)


class FromNumberList:
    """The batch's post answer was lost: no ``unique_id``, so no callback to wait for; the
    calling task's number list settles its rows (``settle_lost_answer``)."""

    def __repr__(self) -> str:
        return "FROM_NUMBER_LIST"


FROM_NUMBER_LIST = FromNumberList()


def callback_to_wait_for(
    settings: dict[str, Any], batch: dict[str, Any]
) -> str | FromNumberList | None:
    """The ``unique_id`` whose callback batch ``batch`` of ``plan_batches`` waits for, read
    from the ledger (which also knows what another copy of the post submitted).

    ``FROM_NUMBER_LIST``: the post's answer was lost, the calling task's number list settles
    the batch.
    None: the batch needs no callback, because no post of its own was accepted and none is
    due (another run took the rows over). Fails when the batch was never posted.
    """
    run_settings = RunSettings.from_dict(settings)
    engine = shared_engine_for(run_ledger_conn_id(run_settings))
    log_which_batch(engine, run_settings.run_id, batch["batch_no"])
    state = batch_lifecycle.batch_state(engine, run_settings.run_id, batch["batch_no"])
    status, unique_id = state["status"], state["unique_id"]
    if status in (BatchStatus.SUBMITTED, BatchStatus.PROCESSED) and unique_id:
        return unique_id
    if status == BatchStatus.SUBMITTED:
        log.warning(
            "Batch %s: its post's answer was lost, so the platform may have it; waiting for "
            "its rows in the calling task's number list instead of a callback",
            batch["batch_no"],
        )
        return FROM_NUMBER_LIST
    if status == BatchStatus.PROCESSED:
        log.info("Batch %s needs no callback: its rows were settled already", batch["batch_no"])
        return None
    if status == BatchStatus.CARRIED_OVER:
        log.info(
            "Batch %s needs no callback: run %s took its rows over",
            batch["batch_no"],
            state["carried_to"],
        )
        return None
    raise AirflowFailException(
        f"batch {batch['batch_no']} of run {run_settings.run_id} has no unique_id in the "
        f"ledger (it is {status}): its post did not succeed, so there is no callback to wait for"
    )


def settle_lost_answer(settings: dict[str, Any], batch: dict[str, Any]) -> dict[str, Any] | None:
    """One look at the calling task's number list for a batch whose post's answer was lost: the rows
    it shows become imported. Returns the wait's XCom once no row awaits, else None (look
    again later). Absent rows are never sent again from here: only a later run does, once the
    settle period has passed (``steps.settle.recheck_earlier_batches``)."""
    run_settings = RunSettings.from_dict(settings)
    engine = shared_engine_for(run_ledger_conn_id(run_settings))
    state = batch_lifecycle.batch_state(engine, run_settings.run_id, batch["batch_no"])
    hook = AgentApiHook(run_settings.agent_api_conn_id)
    counts = settle_batch_from_number_list(run_settings, engine, hook, state)
    if counts["awaiting"]:
        log.info(
            "Batch %s: %d of its rows are not in the calling task yet (found %d now)",
            batch["batch_no"],
            counts["awaiting"],
            counts["imported"],
        )
        return None
    state = batch_lifecycle.batch_state(engine, run_settings.run_id, batch["batch_no"])
    log.info(
        "Batch %s: every row found in the calling task's number list (%d imported)",
        batch["batch_no"],
        state["imported"] or 0,
    )
    return {
        "batch_no": batch["batch_no"],
        "unique_id": None,
        "imported": state["imported"] or 0,
        "waited": True,
        "from_task_list": True,
    }


def lost_answer_grace(settings: dict[str, Any]) -> float:
    """Seconds to let the platform process a batch whose answer was lost before the first
    look in the calling task (the connection's ``lost_answer_grace_seconds``)."""
    conn_id = RunSettings.from_dict(settings).agent_api_conn_id
    return AgentApiHook(conn_id).settings.lost_answer_grace_seconds


def no_callback_result(batch: dict[str, Any]) -> dict[str, Any]:
    """The wait's XCom for a batch that needs no callback (see ``callback_to_wait_for``)."""
    return {"batch_no": batch["batch_no"], "unique_id": None, "imported": 0, "waited": False}


def record_outcome(
    settings: dict[str, Any], hook: AgentApiHook, outcome: BatchOutcome
) -> dict[str, Any]:
    """Write a processed batch's outcome to the ledger; returns counts (no phone numbers)."""
    run_settings = RunSettings.from_dict(settings)
    counts = apply_outcome(
        run_settings,
        shared_engine_for(run_ledger_conn_id(run_settings)),
        hook,
        outcome.unique_id,
        set(outcome.imported_numbers),
    )
    return {**outcome.summary(), **counts}


def record_callback(
    settings: dict[str, Any], unique_id: str, download_url: str | None, api_task_id: str | None
) -> dict[str, Any]:
    """Download what a processed batch imported and record it (the triggerer's path)."""
    if not download_url:
        raise AgentApiError(f"callback of batch {unique_id} has no download URL")
    hook = AgentApiHook(RunSettings.from_dict(settings).agent_api_conn_id)
    numbers = frozenset(hook.download_numbers(download_url))
    return record_outcome(settings, hook, BatchOutcome(unique_id, numbers, api_task_id))
