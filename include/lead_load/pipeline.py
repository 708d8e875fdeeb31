"""The steps of the lead_load DAG, written against hooks and engines passed in.

The DAG file only wires these to Airflow (context, params, XComs). Each step is safe to run
again: retries, cleared tasks and re-runs all go through the ledger's rules.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pandas as pd
from airflow.sdk.exceptions import AirflowFailException
from sqlalchemy import Engine, text
from sqlalchemy.exc import DBAPIError

from agent_api.exceptions import (
    AgentApiError,
    AgentApiTaskRunningError,
    AgentApiTransientError,
)
from agent_api.hooks.agent_api import AgentApiHook
from agent_api.masking import mask_phones_in
from lead_load import batch_lifecycle, landing_check, ledger
from lead_load.batch_lifecycle import Claim, LeaseLost
from lead_load.core.ledger_rules import (
    BatchStatus,
    Status,
    batch_count,
    batch_lease_seconds,
    check_map_limit,
)
from lead_load.core.mapping import FieldMapping, MappingError
from lead_load.core.transform import transform_leads

log = logging.getLogger(__name__)

EXTRACT_CHUNK_ROWS = 20_000


@dataclass(frozen=True)
class RunSettings:
    """What one run works on; built from params, passed between tasks as a small dict."""

    run_id: str
    api_task_id: str
    window_start: str
    window_end: str
    sub_user_id: str | None = None
    ignore_crm: bool | None = None
    encryption: bool | None = None
    dry_run: bool = False
    batch_size: int = 200
    stop_running_task: bool = False
    max_reject_ratio: float = 0.2

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> RunSettings:
        return cls(**values)


class SourceSchemaError(AirflowFailException):
    """The warehouse's leads table does not have the columns the load reads.

    A schema mismatch: retrying cannot help, so Airflow fails the task at once, and the
    message names the column and what to change.
    """


# The extract query named a column or table the warehouse does not have (SQLite, PostgreSQL
# and MySQL wording, and PostgreSQL's SQLSTATEs 42703/42P01).
_UNDEFINED_OBJECT = re.compile(
    r"no such (column|table)|(column|relation|table) \S+ does not exist|unknown column"
    r"|table \S+ doesn't exist",
    re.IGNORECASE,
)
_UNDEFINED_SQLSTATES = ("42703", "42P01")
_SCHEMA_HINT = (
    "the leads table must have the columns that include/sql/extract_leads.sql reads and "
    "include/lead_load/core/field_mapping.yaml maps: add or rename the column in the warehouse, "
    "or map another column in field_mapping.yaml"
)


def read_in_chunks(
    engine: Engine, sql: str, params: dict[str, Any], chunk_rows: int = EXTRACT_CHUNK_ROWS
) -> Iterator[pd.DataFrame]:
    """Stream the query's rows as DataFrames; the server-side cursor keeps memory bounded."""
    try:
        with engine.connect() as conn:
            streaming = conn.execution_options(stream_results=True, max_row_buffer=chunk_rows)
            yield from pd.read_sql(text(sql), streaming, params=params, chunksize=chunk_rows)
    except (DBAPIError, pd.errors.DatabaseError) as error:
        # A renamed or dropped column used to fail with the driver's error (SQL and all) and
        # be retried in vain; say which column is missing and fail without retries. Other
        # database errors (locks, lost connections) stay as they are, and are retried.
        # pandas wraps the driver's error in its own DatabaseError.
        cause = error if isinstance(error, DBAPIError) else error.__cause__
        if not isinstance(cause, DBAPIError):
            raise
        orig = cause.orig
        sqlstate = getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)
        reason = str(orig).strip().splitlines()[0] if str(orig).strip() else str(cause)
        if sqlstate in _UNDEFINED_SQLSTATES or _UNDEFINED_OBJECT.search(reason):
            raise SourceSchemaError(
                f"the extract query failed on the warehouse: {reason}; {_SCHEMA_HINT}"
            ) from None
        raise


def check_source_columns(mapping: FieldMapping, columns: Iterable[str]) -> None:
    """The extract has every column the mapping reads, or a SourceSchemaError naming them."""
    try:
        mapping.check_columns(columns)
    except MappingError as error:
        # A MappingError is a ValueError, which Airflow retried twice before failing the run;
        # no retry can add a column, so fail at once and say what to change.
        raise SourceSchemaError(
            f"{error} (the extract has: {', '.join(map(str, columns))}); {_SCHEMA_HINT}"
        ) from None


def extract_and_stage(
    settings: RunSettings,
    sql: str,
    bounds: dict[str, Any],
    warehouse: Engine,
    ledger_engine: Engine,
    agent_api: AgentApiHook,
    mapping: FieldMapping,
    chunk_rows: int = EXTRACT_CHUNK_ROWS,
) -> dict[str, int]:
    """Extract the window in chunks, transform each, and stage the valid leads exactly once."""
    ledger.create_tables(ledger_engine)
    ledger.clear_run(ledger_engine, settings.run_id)  # a retry starts this step afresh
    template = agent_api.get_template() if mapping.components else None
    totals = {"extracted": 0, "rejected": 0, "duplicates_in_chunk": 0}
    for number, chunk in enumerate(read_in_chunks(warehouse, sql, bounds, chunk_rows), start=1):
        if number == 1:
            check_source_columns(mapping, chunk.columns)
        result = transform_leads(chunk, mapping, template)
        ledger.add_candidates(
            ledger_engine,
            settings.run_id,
            (
                {"lead_id": lead, "phone": phone, "updated_at": updated, "payload": payload}
                for (lead, phone, updated), payload in zip(
                    result.valid[["lead_id", "phone", "updated_at"]].itertuples(index=False),
                    result.payloads,
                    strict=True,
                )
            ),
        )
        ledger.add_rejects(
            ledger_engine,
            settings.run_id,
            settings.api_task_id,
            result.rejects.to_dict("records"),
        )
        ledger.add_rejects(
            ledger_engine,
            settings.run_id,
            settings.api_task_id,
            (
                {
                    "lead_id": row.lead_id,
                    "raw_phone": row.phone,
                    "reason": f"duplicate_in_run (kept lead {row.kept_lead_id})",
                }
                for row in result.duplicates.itertuples(index=False)
            ),
        )
        totals["extracted"] += len(chunk)
        batch_lifecycle.renew_run(ledger_engine, settings.run_id)  # long extracts stay live
        totals["rejected"] += len(result.rejects)
        totals["duplicates_in_chunk"] += len(result.duplicates)
        log.info(
            "Chunk %d: %d rows (%d valid, %d rejected, %d duplicates); %d rows so far",
            number,
            len(chunk),
            len(result.valid),
            len(result.rejects),
            len(result.duplicates),
            totals["extracted"],
        )
    staged = ledger.stage_candidates(ledger_engine, settings.run_id, settings.api_task_id)
    counts = {
        "extracted": totals["extracted"],
        "rejected": totals["rejected"],
        "duplicates_in_run": totals["duplicates_in_chunk"] + staged.duplicates_in_run,
        "staged": staged.staged,
        "already_loaded": staged.already_loaded,
        "in_flight": staged.in_flight,
    }
    log.info("Extract and staging done: %s", counts)
    return counts


def plan(settings: RunSettings, ledger_engine: Engine, max_map_length: int) -> list[dict]:
    """Batch references for the mapped post_batch task (small: numbers, no rows).

    The run plans its own staged rows and takes over those of finished or dead runs
    (reported as carried over); rows of other live runs are theirs to send.
    """
    rows, carried = batch_lifecycle.count_plannable(
        ledger_engine, settings.run_id, settings.api_task_id
    )
    batches = batch_count(rows, settings.batch_size)
    check_map_limit(batches, max_map_length)
    if settings.dry_run:
        log.info(
            "Dry run: %d staged rows (%d of them left by earlier runs) would go out in %d "
            "batches; nothing is sent",
            rows,
            carried,
            batches,
        )
        return []
    planned = batch_lifecycle.plan(
        ledger_engine, settings.run_id, settings.api_task_id, settings.batch_size
    )
    log.info(
        "Planned %d batches for %d staged rows (carried over from earlier runs: %s)",
        len(planned.batches),
        sum(b["rows"] for b in planned.batches),
        planned.carried_over or "none",
    )
    return planned.batches


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


def _reconcile_interrupted(
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
            _reconcile_interrupted(settings, ledger_engine, agent_api, run_id, batch_no, owner)
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
    ledger.create_tables(ledger_engine)
    batch_lifecycle.start_run(
        ledger_engine,
        settings.run_id,
        settings.api_task_id,
        (settings.window_start, settings.window_end),
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
        interrupted += _reconcile_interrupted(
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


class RunFailed(RuntimeError):
    """The run's outcome is not acceptable; the message says why and what to do."""


def verify_landing(
    settings: RunSettings, ledger_engine: Engine, agent_api: AgentApiHook
) -> dict[str, Any]:
    """The landing check of this run's rows, repairing what the platform's list proves.

    Returns ``{"counts", "unrepaired"}`` (masked lines), or ``{"skipped": reason}``.
    """
    if settings.dry_run:
        return {"skipped": "dry run: nothing was sent"}
    if settings.encryption:
        # The ledger holds the ciphertext the warehouse gave; the task's list cannot be
        # compared with it, and a "missing" number would be staged again.
        return {"skipped": "encryption=true: the ledger's phones cannot be compared"}
    found = landing_check.verify_run(
        settings.run_id,
        settings.api_task_id,
        ledger_engine,
        agent_api,
        settings.sub_user_id,
        repair=True,
    )
    return {"counts": found.counts(), "unrepaired": found.unrepaired_lines(50)}


def report(
    settings: RunSettings,
    ledger_engine: Engine,
    extract_counts: dict[str, int] | None,
    landing: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Summarise the run from the ledger, store it, and fail the run when it went wrong."""
    if extract_counts is None:
        raise RunFailed(
            "the extract step did not finish (it or a task before it failed); see the log "
            "of the first failed task"
        )
    statuses = ledger.status_counts(ledger_engine, settings.api_task_id, settings.run_id)
    summary: dict[str, Any] = {
        "window": [settings.window_start, settings.window_end],
        "api_task_id": settings.api_task_id,
        "dry_run": settings.dry_run,
        **extract_counts,
        "rejected_by_reason": ledger.reject_reasons(ledger_engine, settings.run_id),
        "submitted": sum(
            statuses.get(s, 0) for s in (Status.SUBMITTED, Status.IMPORTED, Status.NOT_IMPORTED)
        ),
        "imported": statuses.get(Status.IMPORTED, 0),
        "not_imported": statuses.get(Status.NOT_IMPORTED, 0),
        "awaiting_callback": statuses.get(Status.SUBMITTED, 0),
        "not_sent": statuses.get(Status.STAGED, 0) + statuses.get(Status.SENDING, 0),
        "carried_over": batch_lifecycle.carried_over(ledger_engine, settings.run_id),
        "batches": ledger.batch_counts(ledger_engine, settings.run_id),
        "landing_check": (landing or {}).get("counts")
        or (landing or {}).get("skipped")
        or "did not run",
    }
    batch_lifecycle.finish_run(
        ledger_engine,
        settings.run_id,
        settings.api_task_id,
        (settings.window_start, settings.window_end),
        summary,
    )
    log.info("Run summary:\n%s", format_summary(summary))

    problems = []
    if summary["not_sent"] and not settings.dry_run:
        problems.append(
            f"{summary['not_sent']} staged rows were not sent (see the failed post_batch "
            "tasks); clear them or run again: nothing already sent will be sent twice"
        )
    if summary["awaiting_callback"]:
        problems.append(
            f"{summary['awaiting_callback']} rows still await the platform's callback; the "
            "next run re-checks their batches by unique_id first"
        )
    if landing is None and not settings.dry_run:
        problems.append("the landing check did not finish; see the verify_landing log")
    elif landing and landing.get("unrepaired"):
        problems.append(
            "the landing check found disagreements it cannot repair: "
            + "; ".join(landing["unrepaired"])
        )
    # Duplicates within the run are not failures: one row per phone is the rule.
    failed = summary["not_imported"] + summary["rejected"]
    ratio = failed / summary["extracted"] if summary["extracted"] else 0.0
    summary["reject_ratio"] = round(ratio, 4)
    if ratio > settings.max_reject_ratio:
        problems.append(
            f"{ratio:.1%} of the extracted rows were rejected or not imported, above "
            f"max_reject_ratio={settings.max_reject_ratio:.1%}; see the lead_load_rejects table"
        )
    if problems:
        raise RunFailed("; ".join(problems))
    return summary


def format_summary(summary: dict[str, Any]) -> str:
    """The summary as an aligned two-column table for the task log."""
    lines = []
    for key, value in summary.items():
        if isinstance(value, dict):
            lines.append(f"{key:<22} {'-' if not value else ''}")
            lines += [f"  {sub:<20} {count}" for sub, count in sorted(value.items())]
        else:
            lines.append(f"{key:<22} {value}")
    return "\n".join(lines)


def iso(moment: datetime) -> str:
    return moment.isoformat()
