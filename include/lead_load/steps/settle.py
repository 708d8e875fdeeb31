"""Settle: a processed batch's outcome, or the open batches of earlier runs, into the ledger."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable
from datetime import UTC, timedelta
from typing import Any

from sqlalchemy import Engine

from agent_api.exceptions import AgentApiError
from agent_api.hooks.agent_api import AgentApiHook
from agent_api.masking import mask_phones_in
from lead_load.core.run_settings import RunSettings
from lead_load.ledger import batch_lifecycle, run_lifecycle, schema, settling
from lead_load.steps.post import lease_seconds, reconcile_interrupted

log = logging.getLogger(__name__)


def apply_outcome(
    settings: RunSettings,
    ledger_engine: Engine,
    agent_api: AgentApiHook,
    unique_id: str,
    imported: set[str],
) -> dict[str, int]:
    """Record a processed batch: its rows -> imported or not_imported, as its callback says
    (``settings`` and ``agent_api`` are the run's, for callers' symmetry with the other
    settle steps)."""
    counts = settling.settle(ledger_engine, unique_id, imported)
    if counts is None:
        counts = settling.settled_counts(ledger_engine, unique_id)
        log.info("Batch %s was settled by another process already: %s", unique_id, counts)
        return counts
    log.info(
        "Batch %s: %d imported, %d not imported",
        unique_id,
        counts["imported"],
        counts["not_imported"],
    )
    return counts


def settle_batch_from_number_list(
    settings: RunSettings,
    ledger_engine: Engine,
    agent_api: AgentApiHook,
    batch: dict[str, Any],
    *,
    settle_seconds: float | None = None,
) -> dict[str, int]:
    """One read of the calling task's number list, from shortly before the batch's post, for
    the rows of a submitted batch that await their outcome (see
    ``settling.settle_from_number_list``). An incomplete read raises: an absence is only
    trusted from a complete list."""
    run_id, batch_no = batch["run_id"], batch["batch_no"]
    phones = settling.submitted_rows_of_batch(ledger_engine, run_id, batch_no)
    posted_at = batch.get("posted_at")
    if posted_at is not None and posted_at.tzinfo is None:  # SQLite hands back naive UTC
        posted_at = posted_at.replace(tzinfo=UTC)
    present = (
        agent_api.numbers_in_calling_task(
            settings.api_task_id,
            phones,
            since=posted_at,
            sub_user_id=settings.sub_user_id,
            extras=phones,
        )
        if phones
        else set()
    )
    return settling.settle_from_number_list(
        ledger_engine, run_id, batch_no, present, settle_seconds=settle_seconds
    )


class CallbackUnavailable(str):
    """Why a batch's callback can no longer be read (the number list settles it instead)."""


def _callback_numbers(
    settings: RunSettings, agent_api: AgentApiHook, unique_id: str
) -> set[str] | CallbackUnavailable | None:
    """What a batch imported, None while the platform processes it, or CallbackUnavailable
    when the platform no longer answers for it (unknown unique_id, expired download link)."""
    try:
        payload = agent_api.get_callback(unique_id, sub_user_id=settings.sub_user_id)
        if payload is None:
            return None
        return set(agent_api.download_numbers(payload["data"]["url"]))
    except AgentApiError as error:
        if error.retryable:
            raise
        return CallbackUnavailable(mask_phones_in(str(error)))


def release_runs_ended_in_airflow(
    settings: RunSettings,
    ledger_engine: Engine,
    airflow_run_state: Callable[[str], str | None],
) -> int:
    """Runs the ledger holds for live but that Airflow has ended (a user marked them failed
    or success while their batches were in flight) are ended in the ledger too, so this run
    sends their unsent rows instead of counting them in flight. ``airflow_run_state`` gives
    a run's state in Airflow, None when Airflow does not know it (another DAG's run)."""
    released = 0
    for run_id in run_lifecycle.live_runs(ledger_engine, settings.api_task_id, settings.run_id):
        state = airflow_run_state(run_id)
        if state in ("failed", "success") and run_lifecycle.end_run(ledger_engine, run_id):
            log.warning(
                "Run %s is %s in Airflow but was still live in the ledger: its unsent rows "
                "are taken over by this run",
                run_id,
                state,
            )
            released += 1
    return released


def recheck_earlier_batches(
    settings: RunSettings,
    ledger_engine: Engine,
    agent_api: AgentApiHook,
    settle_period: timedelta,
    airflow_run_state: Callable[[str], str | None] | None = None,
) -> dict[str, int]:
    """Before sending anything new: settle the batches that earlier runs left open.

    A batch with a callback is settled by it. One whose callback is gone (unknown
    ``unique_id``, expired link) or whose answer was lost is settled from the calling task's number
    list: found phones -> imported, and, once ``settle_period`` has passed since its post
    (the platform has surely processed it), absent ones -> staged, sent by this run. A batch
    that fails to settle is counted and reported, never stops the run.
    """
    schema.create_tables(ledger_engine)
    run_lifecycle.start_run(
        ledger_engine,
        settings.run_id,
        settings.api_task_id,
        (settings.window_start, settings.window_end),
        settings=settings.to_dict(),
    )
    found = Counter()
    if airflow_run_state is not None:
        found["runs_ended_in_airflow"] = release_runs_ended_in_airflow(
            settings, ledger_engine, airflow_run_state
        )
    settle_seconds = settle_period.total_seconds()
    owner = f"run {settings.run_id} (recheck_earlier_batches)"
    for batch in batch_lifecycle.expired_batches(ledger_engine, settings.api_task_id):
        found["interrupted"] += reconcile_interrupted(
            ledger_engine,
            batch["run_id"],
            batch["batch_no"],
            owner,
            lease_seconds(agent_api),
        )
    for batch in settling.unsettled_batches(ledger_engine, settings.api_task_id, settle_seconds):
        name = f"batch {batch['batch_no']} of run {batch['run_id']}"
        try:
            numbers = (
                _callback_numbers(settings, agent_api, batch["unique_id"])
                if batch["unique_id"]
                else CallbackUnavailable("its post's answer was lost")
            )
            if isinstance(numbers, set):
                apply_outcome(settings, ledger_engine, agent_api, batch["unique_id"], numbers)
                found["settled"] += 1
                continue
            if numbers is not None:
                log.warning("%s: %s; settling it from the calling task's numbers", name, numbers)
            elif not batch["settle_due"]:
                found["still_pending"] += 1
                continue
            counts = settle_batch_from_number_list(
                settings, ledger_engine, agent_api, batch, settle_seconds=settle_seconds
            )
        except AgentApiError as error:
            log.warning("%s could not be settled now: %s", name, mask_phones_in(str(error)))
            found["unsettled"] += 1
            continue
        found["found_in_task"] += counts["imported"]
        found["staged_again"] += counts["staged_again"]
        if counts["awaiting"]:
            found["unsettled"] += 1
            log.warning(
                "%s: %d rows may have been accepted and are not in the calling task yet; they are "
                "sent again only after the settle period (posted at %s)",
                name,
                counts["awaiting"],
                batch["posted_at"],
            )
        else:
            found["settled"] += 1
    in_flight = batch_lifecycle.live_sending_batches(ledger_engine, settings.api_task_id)
    if in_flight:
        log.info(
            "%d batches are being posted by other live runs right now; left to them", in_flight
        )
    counts = {
        key: found[key]
        for key in (
            "settled",
            "still_pending",
            "unsettled",
            "interrupted",
            "found_in_task",
            "staged_again",
        )
    }
    counts["posting_elsewhere"] = in_flight
    counts["runs_ended_in_airflow"] = found["runs_ended_in_airflow"]
    log.info(
        "Batches left open by earlier runs: %s",
        ", ".join(f"{key} {value}" for key, value in counts.items()),
    )
    return counts
