"""The steps of the lead_load DAG, written against hooks and engines passed in.

The DAG file only wires these to Airflow (context, params, XComs). Each step is safe to run
again: retries, cleared tasks and re-runs all go through the ledger's rules.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Iterator
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
from lead_load import ledger
from lead_load.ledger_rules import Status, batch_count, check_map_limit
from lead_load.mapping import FieldMapping, MappingError
from lead_load.transform import transform_leads

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
    "include/lead_load/field_mapping.yaml maps: add or rename the column in the warehouse, "
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
    """Batch references for the mapped post_batch task (small: numbers, no rows)."""
    staged = ledger.count_staged(ledger_engine, settings.api_task_id)
    batches = batch_count(staged, settings.batch_size)
    check_map_limit(batches, max_map_length)
    if settings.dry_run:
        log.info(
            "Dry run: %d staged rows would go out in %d batches; nothing is sent", staged, batches
        )
        return []
    refs = ledger.plan_batches(
        ledger_engine, settings.run_id, settings.api_task_id, settings.batch_size
    )
    log.info("Planned %d batches for %d staged rows", len(refs), staged)
    return refs


def _reconcile_interrupted(
    settings: RunSettings,
    ledger_engine: Engine,
    agent_api: AgentApiHook,
    run_id: str,
    batch_no: int,
) -> None:
    """Rows left ``sending`` by a dead worker: look in the task before posting anything again."""
    phones = ledger.sending_phones(ledger_engine, run_id, batch_no)
    if not phones:
        return
    state = ledger.batch_state(ledger_engine, run_id, batch_no)
    present = agent_api.numbers_in_task(
        settings.api_task_id, phones, since=state.get("posted_at"), sub_user_id=settings.sub_user_id
    )
    log.warning(
        "Batch %d of run %s was interrupted while posting: %d of its %d numbers are in the task; "
        "the rest go back to staged",
        batch_no,
        run_id,
        len(present),
        len(phones),
    )
    if present:
        _mark_found_in_task(
            ledger_engine, run_id, batch_no, present, "found in the task after an interrupted post"
        )
    ledger.set_batch_status(
        ledger_engine,
        run_id,
        batch_no,
        rows_from=Status.SENDING,
        rows_to=Status.STAGED,
        batch_status="planned",
    )


def post_batch(
    settings: RunSettings, batch_no: int, ledger_engine: Engine, agent_api: AgentApiHook
) -> dict[str, Any]:
    """Post one planned batch. Returns ``{"batch_no", "unique_id", "rows"}`` (no phones)."""
    run_id = settings.run_id
    state = ledger.batch_state(ledger_engine, run_id, batch_no)
    if state["status"] in ("submitted", "processed"):
        log.info(
            "Batch %d was posted by an earlier try (unique_id %s)", batch_no, state["unique_id"]
        )
        return {"batch_no": batch_no, "unique_id": state["unique_id"], "rows": state["rows"]}
    _reconcile_interrupted(settings, ledger_engine, agent_api, run_id, batch_no)

    rows = ledger.batch_rows(ledger_engine, run_id, batch_no, Status.STAGED)
    if not rows:
        ledger.set_batch_status(
            ledger_engine,
            run_id,
            batch_no,
            rows_from=Status.STAGED,
            rows_to=Status.STAGED,
            batch_status="processed",
        )
        return {"batch_no": batch_no, "unique_id": None, "rows": 0}
    ledger.set_batch_status(
        ledger_engine,
        run_id,
        batch_no,
        rows_from=Status.STAGED,
        rows_to=Status.SENDING,
        batch_status="sending",
        posted_at=ledger.now(),
    )
    try:
        receipt = _import(settings, agent_api, rows)
    except AgentApiTransientError as error:
        if error.maybe_accepted:
            # Unknown whether the platform took it: the rows stay "sending" and the next try
            # checks the task before posting again.
            raise
        _back_to_staged(ledger_engine, run_id, batch_no, error)
        raise
    except AgentApiError as error:
        _back_to_staged(ledger_engine, run_id, batch_no, error)
        raise

    if receipt.already_in_task:
        _mark_found_in_task(
            ledger_engine,
            run_id,
            batch_no,
            receipt.already_in_task,
            "found in the task after a lost answer",
        )
    ledger.set_batch_status(
        ledger_engine,
        run_id,
        batch_no,
        rows_from=Status.SENDING,
        rows_to=Status.SUBMITTED,
        batch_status="submitted" if receipt.unique_id else "processed",
        unique_id=receipt.unique_id,
        answer_lost=receipt.answer_lost,
    )
    log.info(
        "Batch %d: %d rows posted, unique_id %s (%d attempts%s)",
        batch_no,
        receipt.posted,
        receipt.unique_id,
        receipt.attempts,
        ", answer lost once" if receipt.answer_lost else "",
    )
    return {"batch_no": batch_no, "unique_id": receipt.unique_id, "rows": receipt.posted}


def _import(settings: RunSettings, agent_api: AgentApiHook, rows: list[dict]):
    options = {
        "sub_user_id": settings.sub_user_id,
        "ignore_crm": settings.ignore_crm,
        "encryption": settings.encryption,
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


def _mark_found_in_task(
    ledger_engine: Engine, run_id: str, batch_no: int, phones: Iterable[str], reason: str
) -> None:
    """Rows in flight whose numbers the task's own list shows: they are imported."""
    ledger.set_batch_status(
        ledger_engine,
        run_id,
        batch_no,
        rows_from=Status.SENDING,
        rows_to=Status.IMPORTED,
        batch_status="sending",
        phones=sorted(phones),
        reason=reason,
    )


def _back_to_staged(ledger_engine: Engine, run_id: str, batch_no: int, error: Exception) -> None:
    """The platform certainly did not take the batch: its rows wait for the next try."""
    ledger.set_batch_status(
        ledger_engine,
        run_id,
        batch_no,
        rows_from=Status.SENDING,
        rows_to=Status.STAGED,
        batch_status="planned",
        error=mask_phones_in(str(error))[:2000],
    )


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
    if ledger.answer_was_lost(ledger_engine, unique_id):
        absent = [p for p in ledger.submitted_phones(ledger_engine, unique_id) if p not in imported]
        if absent:
            found = agent_api.numbers_in_task(
                settings.api_task_id, absent, sub_user_id=settings.sub_user_id
            )
    counts = ledger.record_outcome(ledger_engine, unique_id, imported, found)
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
    settled = still_pending = interrupted = 0
    for batch in ledger.pending_batches(ledger_engine, settings.api_task_id):
        payload = agent_api.get_callback(batch["unique_id"], sub_user_id=settings.sub_user_id)
        if payload is None:
            still_pending += 1
            continue
        numbers = set(agent_api.download_numbers(payload["data"]["url"]))
        apply_outcome(settings, ledger_engine, agent_api, batch["unique_id"], numbers)
        settled += 1
    for batch in ledger.interrupted_batches(ledger_engine, settings.api_task_id):
        _reconcile_interrupted(
            settings, ledger_engine, agent_api, batch["run_id"], batch["batch_no"]
        )
        interrupted += 1
    counts = {"settled": settled, "still_pending": still_pending, "interrupted": interrupted}
    log.info("Batches left open by earlier runs: %s", counts)
    return counts


class RunFailed(RuntimeError):
    """The run's outcome is not acceptable; the message says why and what to do."""


def report(
    settings: RunSettings, ledger_engine: Engine, extract_counts: dict[str, int] | None
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
        "batches": ledger.batch_counts(ledger_engine, settings.run_id),
    }
    ledger.save_run_summary(
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
