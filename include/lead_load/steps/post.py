"""Post one planned batch, as its only owner (see ledger.batch_lifecycle)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine

from agent_api.exceptions import (
    AgentApiAnswerLost,
    AgentApiAuthError,
    AgentApiCallingTaskRunningError,
    AgentApiError,
    AgentApiNotFoundError,
)
from agent_api.hooks.agent_api import AgentApiHook
from agent_api.masking import mask_phones_in
from lead_load.core.ledger_rules import (
    BatchStatus,
    batch_lease_seconds,
)
from lead_load.core.run_settings import RunSettings
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
    return batch_lease_seconds(s.request_timeout, s.backoff_max_seconds)


def reconcile_interrupted(
    ledger_engine: Engine, run_id: str, batch_no: int, owner: str, seconds: float
) -> bool:
    """A batch left ``sending`` by an owner whose lease expired: take the lease over. If no
    POST of it ever started, its rows go back to staged; otherwise the platform may have it,
    and its rows become "maybe accepted" (settled from the calling task's numbers, never re-posted
    blindly). False: another process took it first, or its owner renewed in time."""
    lease = batch_lifecycle.take_expired(ledger_engine, run_id, batch_no, owner, seconds)
    if lease is None:
        log.info(
            "Batch %d of run %s is being reconciled or posted by another process", batch_no, run_id
        )
        return False
    sends = batch_lifecycle.batch_state(ledger_engine, run_id, batch_no).get("sends")
    if sends == 0:
        log.warning(
            "Batch %d of run %s was interrupted before any post of it started (its owner's "
            "lease expired): its rows go back to staged",
            batch_no,
            run_id,
        )
        batch_lifecycle.put_back_to_staged(
            ledger_engine, lease, error="its owner stopped before posting it"
        )
        return True
    log.warning(
        "Batch %d of run %s was interrupted while posting (its owner's lease expired after a "
        "post started): the platform may have it, so its rows wait for the calling task's numbers",
        batch_no,
        run_id,
    )
    batch_lifecycle.mark_answer_lost(
        ledger_engine, lease, "its owner stopped after a post started: maybe accepted"
    )
    return True


def _receipt(
    batch_no: int, unique_id: str | None, rows: int, maybe_accepted: bool = False
) -> dict[str, Any]:
    return {
        "batch_no": batch_no,
        "unique_id": unique_id,
        "rows": rows,
        "maybe_accepted": maybe_accepted,
    }


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
                state["unique_id"] or "unknown: its answer was lost",
            )
            return _receipt(batch_no, state["unique_id"], state["rows"], bool(state["answer_lost"]))
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
            reconcile_interrupted(ledger_engine, run_id, batch_no, owner, lease_seconds(agent_api))
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
    _log_taken_out(lease.batch_no, claim)
    if not claim.rows:  # every row suppressed, or gone elsewhere (taken over by another run)
        batch_lifecycle.mark_submitted(ledger_engine, lease, None)  # processed, nothing posted
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
    except AgentApiAnswerLost as error:
        # The platform may have the batch: its rows stay held from every post until the
        # calling task's number list shows them (the batch's wait) or the settle period has passed.
        message = mask_phones_in(str(error))[:2000]
        try:
            batch_lifecycle.mark_answer_lost(ledger_engine, lease, message)
        except LeaseLost as lost:
            log.error("%s", lost)
            return LeaseHeld(LEASE_POLL_SECONDS, "another process")
        log.warning(
            "Batch %d: %s. Its %d rows are kept as maybe accepted: wait_for_callbacks looks "
            "for them in the calling task's number list",
            lease.batch_no,
            message,
            len(claim.rows),
        )
        return _receipt(lease.batch_no, None, len(claim.rows), maybe_accepted=True)
    except AgentApiError as error:
        # A certain refusal: the platform has none of the rows. One that no retry can change
        # (the calling task or user unknown, the token rejected) ends the batch failed.
        final = isinstance(error, AgentApiAuthError | AgentApiNotFoundError)
        batch_lifecycle.put_back_to_staged(
            ledger_engine,
            lease,
            error=refusal_text(error, settings) if final else mask_phones_in(str(error))[:2000],
            final=final,
        )
        raise

    try:
        batch_lifecycle.mark_submitted(ledger_engine, lease, receipt.unique_id)
    except LeaseLost as lost:
        # Only a process paused for longer than the lease gets here; the new owner took the
        # batch as maybe accepted (a POST had started), so nothing is sent again.
        log.error("%s", lost)
        return LeaseHeld(LEASE_POLL_SECONDS, "another process")
    # One line per post, naming the batch by what a data engineer can look up: in the
    # triggerer every log line of a post is a round trip through its supervisor's log pipe,
    # which sets the pace of a big load (docs/scale.md).
    first, last = claim.leads or ("?", "?")
    log.info(
        "Batch %d: %d rows posted (leads %s to %s), unique_id %s (%d %s)",
        lease.batch_no,
        receipt.posted,
        mask_phones_in(str(first)),
        mask_phones_in(str(last)),
        receipt.unique_id,
        receipt.attempts,
        "attempt" if receipt.attempts == 1 else "attempts",
    )
    return _receipt(lease.batch_no, receipt.unique_id, receipt.posted)


def _log_taken_out(batch_no: int, claim: Claim) -> None:
    """One line for a batch whose claim took rows out because their phones were put on the
    suppression list after staging (counts only: no phone in a log); none for the others,
    whose one line is the post's (in the triggerer every line costs a round trip)."""
    if not claim.suppressed:
        return
    if claim.rows:
        log.warning(
            "Batch %d: %d rows taken out before posting, their phones were suppressed after "
            "staging (rejected as suppressed); %d rows left to post",
            batch_no,
            claim.suppressed,
            len(claim.rows),
        )
    else:
        log.warning(
            "Batch %d: all %d rows taken out before posting, their phones were suppressed "
            "after staging (rejected as suppressed); nothing to post, the batch ends "
            "processed with nothing posted",
            batch_no,
            claim.suppressed,
        )


def refusal_text(error: AgentApiError, settings: RunSettings) -> str:
    """A refusal no retry can change, as the batch keeps it and the report shows it: the
    platform's answer and what to fix (phones masked)."""
    text = mask_phones_in(str(error))
    if isinstance(error, AgentApiNotFoundError):
        sub = f", sub-account {settings.sub_user_id}" if settings.sub_user_id else ""
        text += (
            f" - the platform does not know calling task {settings.api_task_id} (or its user"
            f"{sub}): check the api_task_id param or the Variable lead_load_api_task_id, the "
            "connection's extra.user_id and the sub-account, then run again with the right "
            "calling task (its leads are staged again under it)"
        )
    return text[:2000]


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
    except AgentApiCallingTaskRunningError:
        if not settings.stop_running_task:
            raise
        log.warning(
            "Calling task %s is running (a 2.0 one); stopping it as stop_running_task=true asks",
            settings.api_task_id,
        )
        agent_api.stop_task(settings.api_task_id, sub_user_id=settings.sub_user_id)
        return agent_api.import_batch(settings.api_task_id, rows, **options)
