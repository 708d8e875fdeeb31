"""Post one planned batch, as its only owner (see ledger.batch_lifecycle)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine

from agent_api.exceptions import (
    AgentApiError,
    AgentApiTaskRunningError,
    AgentApiTransientError,
)
from agent_api.hooks.agent_api import AgentApiHook
from agent_api.masking import mask_phones_in
from lead_load.core.ledger_rules import (
    BatchStatus,
    batch_lease_seconds,
)
from lead_load.core.settings import RunSettings
from lead_load.ledger import batch_lifecycle
from lead_load.ledger.batch_lifecycle import Claim, LeaseLost

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LeaseHeld:
    """Another process holds the batch: ask again after ``seconds`` (nothing was posted)."""

    seconds: float
    holder: str


# How often a copy of the post step looks again at a batch that another process holds.
LEASE_POLL_SECONDS = 5.0


def lease_seconds(agent_api: AgentApiHook) -> float:
    s = agent_api.settings
    return batch_lease_seconds(
        s.request_timeout, s.lost_answer_grace_seconds, s.backoff_max_seconds
    )


def reconcile_interrupted(
    settings: RunSettings,
    ledger_engine: Engine,
    agent_api: AgentApiHook,
    run_id: str,
    batch_no: int,
    owner: str,
) -> bool:
    """A batch left ``sending`` by an owner whose lease expired: take the lease over, look its
    rows up in the task, mark what is there imported and re-stage the rest. Never re-posts
    blindly. False: another process took it first, or its owner renewed in time."""
    lease = batch_lifecycle.take_expired(
        ledger_engine, run_id, batch_no, owner, lease_seconds(agent_api)
    )
    if lease is None:
        log.info(
            "Batch %d of run %s is being reconciled or posted by another process", batch_no, run_id
        )
        return False
    phones = batch_lifecycle.sending_phones(ledger_engine, lease)
    state = batch_lifecycle.batch_state(ledger_engine, run_id, batch_no)
    present = (
        agent_api.numbers_in_task(
            settings.api_task_id,
            phones,
            since=state.get("posted_at"),
            sub_user_id=settings.sub_user_id,
        )
        if phones
        else set()
    )
    log.warning(
        "Batch %d of run %s was interrupted while posting (its owner's lease expired): %d of "
        "its %d numbers are in the task; the rest go back to staged",
        batch_no,
        run_id,
        len(present),
        len(phones),
    )
    batch_lifecycle.back_to_staged(ledger_engine, lease, found_in_task=present)
    return True


def _receipt(batch_no: int, unique_id: str | None, rows: int) -> dict[str, Any]:
    return {"batch_no": batch_no, "unique_id": unique_id, "rows": rows}


def post_batch(
    settings: RunSettings,
    batch_no: int,
    ledger_engine: Engine,
    agent_api: AgentApiHook,
    owner: str,
) -> dict[str, Any] | LeaseHeld:
    """Post one planned batch, as its only owner.

    Returns the receipt ``{"batch_no", "unique_id", "rows"}`` (no phones), or ``LeaseHeld``
    when another process holds the batch (the caller waits and asks again): only the process
    whose claim won posts, and a copy that arrives later ends with the winner's receipt.
    """
    run_id = settings.run_id
    for _ in range(3):  # a lost claim or a reconciliation changes the state: look again
        state = batch_lifecycle.batch_state(ledger_engine, run_id, batch_no)
        status = state["status"]
        if status in (BatchStatus.SUBMITTED, BatchStatus.PROCESSED):
            log.info(
                "Batch %d was posted already (unique_id %s); nothing to do",
                batch_no,
                state["unique_id"],
            )
            return _receipt(batch_no, state["unique_id"], state["rows"])
        if status == BatchStatus.CARRIED_OVER:
            log.warning(
                "Batch %d was taken over by run %s after this run stopped renewing its lease; "
                "that run sends its rows",
                batch_no,
                state["carried_to"],
            )
            return _receipt(batch_no, None, 0)
        if status == BatchStatus.SENDING:
            if batch_lifecycle.lease_is_live(state):
                return LeaseHeld(LEASE_POLL_SECONDS, state["lease_owner"] or "another process")
            reconcile_interrupted(settings, ledger_engine, agent_api, run_id, batch_no, owner)
            continue
        claim = batch_lifecycle.claim(
            ledger_engine, run_id, batch_no, owner, lease_seconds(agent_api)
        )
        if claim is None:
            log.info("Another process claimed batch %d first; looking again", batch_no)
            continue
        return _post_claimed(settings, ledger_engine, agent_api, claim)
    return LeaseHeld(LEASE_POLL_SECONDS, "another process")


def _post_claimed(
    settings: RunSettings, ledger_engine: Engine, agent_api: AgentApiHook, claim: Claim
) -> dict[str, Any] | LeaseHeld:
    lease = claim.lease
    if not claim.rows:  # its rows went elsewhere (found in the task, taken over)
        batch_lifecycle.submitted(ledger_engine, lease, None, answer_lost=False)
        return _receipt(lease.batch_no, None, 0)
    try:
        receipt = _import(
            settings,
            agent_api,
            claim.rows,
            before_send=lambda: batch_lifecycle.renew(ledger_engine, lease),
        )
    except LeaseLost as lost:
        log.warning("%s", lost)
        return LeaseHeld(LEASE_POLL_SECONDS, "another process")
    except AgentApiTransientError as error:
        if error.maybe_accepted:
            # Unknown whether the platform took it: the rows stay "sending", and the lease is
            # given up so that the next try reconciles at once (looks in the task first).
            batch_lifecycle.give_up(ledger_engine, lease)
            raise
        batch_lifecycle.back_to_staged(
            ledger_engine, lease, error=mask_phones_in(str(error))[:2000]
        )
        raise
    except AgentApiError as error:
        batch_lifecycle.back_to_staged(
            ledger_engine, lease, error=mask_phones_in(str(error))[:2000]
        )
        raise

    try:
        batch_lifecycle.submitted(
            ledger_engine,
            lease,
            receipt.unique_id,
            answer_lost=receipt.answer_lost,
            found_in_task=receipt.already_in_task,
        )
    except LeaseLost as lost:
        # Only a process paused for longer than the lease gets here; the new owner found the
        # batch in the task or re-posted it, which the platform refuses as duplicates.
        log.error("%s", lost)
        return LeaseHeld(LEASE_POLL_SECONDS, "another process")
    log.info(
        "Batch %d: %d rows posted, unique_id %s (%d attempts%s)",
        lease.batch_no,
        receipt.posted,
        receipt.unique_id,
        receipt.attempts,
        ", answer lost once" if receipt.answer_lost else "",
    )
    return _receipt(lease.batch_no, receipt.unique_id, receipt.posted)


def _import(
    settings: RunSettings,
    agent_api: AgentApiHook,
    rows: list[dict],
    before_send: Callable[[], None],
):
    options = {
        "sub_user_id": settings.sub_user_id,
        "ignore_crm": settings.ignore_crm,
        "encryption": settings.encryption,
        "before_send": before_send,
    }
    try:
        return agent_api.import_batch(settings.api_task_id, rows, **options)
    except AgentApiTaskRunningError:
        if not settings.stop_running_task:
            raise
        log.warning(
            "Task %s is a running 2.0 task; stopping it as stop_running_task=true asks",
            settings.api_task_id,
        )
        agent_api.stop_task(settings.api_task_id, sub_user_id=settings.sub_user_id)
        return agent_api.import_batch(settings.api_task_id, rows, **options)
