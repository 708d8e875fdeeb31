"""Settle: a processed batch's outcome, or the open batches of earlier runs, into the ledger."""

from __future__ import annotations

import logging

from sqlalchemy import Engine

from agent_api.hooks.agent_api import AgentApiHook
from lead_load.core.settings import RunSettings
from lead_load.ledger import batch_lifecycle, schema
from lead_load.steps.post import reconcile_interrupted

log = logging.getLogger(__name__)


def apply_outcome(
    settings: RunSettings,
    ledger_engine: Engine,
    agent_api: AgentApiHook,
    unique_id: str,
    imported: set[str],
) -> dict[str, int]:
    """Record a processed batch. After a lost answer, absent numbers are looked up in the task:
    the lost copy of the batch may have imported them."""
    found: set[str] = set()
    if batch_lifecycle.answer_was_lost(ledger_engine, unique_id):
        absent = [
            p
            for p in batch_lifecycle.submitted_phones(ledger_engine, unique_id)
            if p not in imported
        ]
        if absent:
            found = agent_api.numbers_in_task(
                settings.api_task_id, absent, sub_user_id=settings.sub_user_id
            )
    counts = batch_lifecycle.settle(ledger_engine, unique_id, imported, found)
    if counts is None:
        counts = batch_lifecycle.settled_counts(ledger_engine, unique_id)
        log.info("Batch %s was settled by another process already: %s", unique_id, counts)
        return counts
    log.info(
        "Batch %s: %d imported, %d not imported",
        unique_id,
        counts["imported"],
        counts["not_imported"],
    )
    return counts


def recheck_earlier_batches(
    settings: RunSettings, ledger_engine: Engine, agent_api: AgentApiHook
) -> dict[str, int]:
    """Before sending anything new: settle batches that earlier runs left open."""
    schema.create_tables(ledger_engine)
    batch_lifecycle.start_run(
        ledger_engine,
        settings.run_id,
        settings.api_task_id,
        (settings.window_start, settings.window_end),
        settings=settings.to_dict(),
    )
    settled = still_pending = interrupted = 0
    for batch in batch_lifecycle.pending_batches(ledger_engine, settings.api_task_id):
        payload = agent_api.get_callback(batch["unique_id"], sub_user_id=settings.sub_user_id)
        if payload is None:
            still_pending += 1
            continue
        numbers = set(agent_api.download_numbers(payload["data"]["url"]))
        apply_outcome(settings, ledger_engine, agent_api, batch["unique_id"], numbers)
        settled += 1
    owner = f"run {settings.run_id} (recheck_earlier_batches)"
    for batch in batch_lifecycle.expired_batches(ledger_engine, settings.api_task_id):
        interrupted += reconcile_interrupted(
            settings, ledger_engine, agent_api, batch["run_id"], batch["batch_no"], owner
        )
    in_flight = batch_lifecycle.live_sending_batches(ledger_engine, settings.api_task_id)
    if in_flight:
        log.info(
            "%d batches are being posted by other live runs right now; left to them", in_flight
        )
    counts = {
        "settled": settled,
        "still_pending": still_pending,
        "interrupted": interrupted,
        "posting_elsewhere": in_flight,
    }
    log.info("Batches left open by earlier runs: %s", counts)
    return counts
