"""The post and record steps as a mapped task calls them, on a worker or in the triggerer:
with the ledger engine and the platform hook built from Airflow's connections."""

from __future__ import annotations

import os
import socket
from typing import Any

from airflow.sdk.exceptions import AirflowFailException

from agent_api.exceptions import AgentApiError
from agent_api.hooks.agent_api import AgentApiHook
from agent_api.sensors.callback import BatchOutcome
from lead_load.core.settings import RunSettings
from lead_load.glue.connections import ledger_conn_id, shared_engine_for
from lead_load.ledger import batch_lifecycle
from lead_load.steps.post import LeaseHeld, post_batch
from lead_load.steps.settle import apply_outcome


def post_planned_batch(
    settings: dict[str, Any], batch: dict[str, Any], try_number: int | str
) -> dict[str, Any] | LeaseHeld:
    """Post one batch of ``plan_batches`` through the ledger; the same step on either path.

    The owner named in the batch's lease says which run, try and process posts it.
    """
    run_settings = RunSettings.from_dict(settings)
    owner = (
        f"run {run_settings.run_id} batch {batch['batch_no']} try {try_number} "
        f"on {socket.gethostname()}:{os.getpid()}"
    )
    return post_batch(
        run_settings, batch["batch_no"], shared_engine_for(ledger_conn_id()), AgentApiHook(), owner
    )


def posted_unique_id(settings: dict[str, Any], batch: dict[str, Any]) -> str:
    """The ``unique_id`` of a posted batch of ``plan_batches``, from the ledger."""
    run_settings = RunSettings.from_dict(settings)
    unique_id = batch_lifecycle.posted_unique_id(
        shared_engine_for(ledger_conn_id()), run_settings.run_id, batch["batch_no"]
    )
    if not unique_id:
        raise AirflowFailException(
            f"batch {batch['batch_no']} of run {run_settings.run_id} has no unique_id in the "
            "ledger: its post did not succeed, so there is no callback to wait for"
        )
    return unique_id


def record_outcome(
    settings: dict[str, Any], hook: AgentApiHook, outcome: BatchOutcome
) -> dict[str, Any]:
    """Write a processed batch's outcome to the ledger; returns counts (no phone numbers)."""
    counts = apply_outcome(
        RunSettings.from_dict(settings),
        shared_engine_for(ledger_conn_id()),
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
    hook = AgentApiHook()
    numbers = frozenset(hook.download_numbers(download_url))
    return record_outcome(settings, hook, BatchOutcome(unique_id, numbers, api_task_id))
