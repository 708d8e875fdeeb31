"""Extract and stage: the window's rows, transformed chunk by chunk, become ledger rows once."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Iterator
from typing import Any

import pandas as pd
from airflow.sdk.exceptions import AirflowFailException
from sqlalchemy import Engine, text
from sqlalchemy.exc import DBAPIError, IntegrityError

from agent_api.hooks.agent_api import AgentApiHook
from agent_api.masking import mask_phones_in
from lead_load.core.mapping import FieldMapping, MappingError
from lead_load.core.settings import RunSettings
from lead_load.core.transform import (
    DUPLICATE_LEAD_ID,
    MISSING_LEAD_ID,
    TransformResult,
    lead_id_texts,
    transform_leads,
)
from lead_load.ledger import batch_lifecycle, schema, staging

log = logging.getLogger(__name__)

EXTRACT_CHUNK_ROWS = 20_000


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


# Per dialect, how a session reads and compares time-zone-aware values in UTC.
_UTC_SESSION = {
    "postgresql": "SET TIME ZONE 'UTC'",
    "mysql": "SET time_zone = '+00:00'",
    "mariadb": "SET time_zone = '+00:00'",
}


def read_in_chunks(
    engine: Engine, sql: str, params: dict[str, Any], chunk_rows: int = EXTRACT_CHUNK_ROWS
) -> Iterator[pd.DataFrame]:
    """Stream the query's rows as DataFrames; the server-side cursor keeps memory bounded.

    The session runs in UTC where the database has a session time zone, so that the window's
    UTC bounds select exactly [start, end) from ``timestamp`` columns (documented as UTC) and
    from ``timestamptz``/``TIMESTAMP`` columns alike, whatever the server's default zone.
    """
    try:
        if engine.dialect.name == "sqlite":
            # SQLite lets nobody write to the file while a read is open, and the ledger is
            # written between chunks (in the same file by default): read the window whole.
            with engine.connect() as conn:
                whole = pd.read_sql(text(sql), conn, params=params)
            for start in range(0, len(whole), chunk_rows):
                yield whole.iloc[start : start + chunk_rows].reset_index(drop=True)
            return
        with engine.connect() as conn:
            if statement := _UTC_SESSION.get(engine.dialect.name):
                conn.execute(text(statement))
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
    missing_updated_at_sql: str | None = None,
) -> dict[str, int | None]:
    """Extract the window in chunks, transform each, and stage the valid leads exactly once.

    ``missing_updated_at_sql`` counts the table's rows without ``updated_at`` (in no window,
    never loaded); the count goes into the summary.
    """
    schema.create_tables(ledger_engine)
    staging.clear_run(ledger_engine, settings.run_id)  # a retry starts this step afresh
    template = agent_api.get_template() if mapping.components else None
    totals = {"extracted": 0, "rejected": 0, "duplicates_in_chunk": 0, "sex_unknown": 0}
    previous_leads: set[str] = set()
    for number, chunk in enumerate(read_in_chunks(warehouse, sql, bounds, chunk_rows), start=1):
        if number == 1:
            check_source_columns(mapping, chunk.columns)
        # The extract is ordered by lead id, so a lead's rows are adjacent: one that spills
        # over from the previous chunk is the only repeat the transform cannot see.
        chunk_leads = lead_id_texts(chunk[mapping.lead_id])
        spilled = [lead in previous_leads for lead in chunk_leads]
        previous_leads = {lead for lead in chunk_leads if lead is not None}
        repeats = chunk[spilled]
        fresh = chunk[[not s for s in spilled]]
        result = transform_leads(fresh, mapping, template, first_row=totals["extracted"] + 1)
        try:
            _store(settings, ledger_engine, mapping, result, repeats)
        except IntegrityError as error:
            raise SourceDataError(
                "a lead id appears more than once in the window, in rows that are not next to "
                "each other: keep ORDER BY on the lead id column in "
                f"include/sql/extract_leads.sql ({_first_line(error)})"
            ) from None
        totals["extracted"] += len(chunk)
        batch_lifecycle.renew_run(ledger_engine, settings.run_id)  # long extracts stay live
        totals["rejected"] += len(result.rejects) + len(repeats)
        totals["duplicates_in_chunk"] += len(result.duplicates)
        totals["sex_unknown"] += result.sex_unknown
        log.info(
            "Chunk %d: %d rows (%d valid, %d rejected, %d duplicates); %d rows so far",
            number,
            len(chunk),
            len(result.valid),
            len(result.rejects) + len(repeats),
            len(result.duplicates),
            totals["extracted"],
        )
    staged = staging.stage_candidates(ledger_engine, settings.run_id, settings.api_task_id)
    counts = {
        "extracted": totals["extracted"],
        "rejected": totals["rejected"],
        "duplicates_in_run": totals["duplicates_in_chunk"] + staged.duplicates_in_run,
        "staged": staged.staged,
        "already_loaded": staged.already_loaded,
        "in_flight": staged.in_flight,
        "sex_unknown": totals["sex_unknown"],
    }
    if missing_updated_at_sql:
        counts["updated_at_missing_in_table"] = count_missing_updated_at(
            warehouse, missing_updated_at_sql
        )
    log.info("Extract and staging done: %s", counts)
    return counts


def count_missing_updated_at(warehouse: Engine, sql: str) -> int | None:
    """How many rows of the table have no ``updated_at``; None (and a warning) when the count
    fails: it informs the summary and must not fail the load."""
    try:
        with warehouse.connect() as conn:
            missing = int(conn.execute(text(sql)).scalar() or 0)
    except DBAPIError as error:
        reason = str(error.orig).strip().splitlines()[0] if error.orig else str(error)
        log.warning("Could not count the rows without updated_at: %s", reason)
        return None
    if missing:
        log.warning(
            "%d rows of the leads table have no updated_at: they fall in no window and are "
            "never loaded. Set their updated_at in the warehouse to load them.",
            missing,
        )
    return missing


class SourceDataError(AirflowFailException):
    """The warehouse's rows break an assumption the load cannot work around; the message
    says which and what to change. Retrying cannot help."""


def _first_line(error: Exception) -> str:
    text = str(getattr(error, "orig", None) or error).strip()
    return mask_phones_in(text.splitlines()[0] if text else type(error).__name__)


def _store(
    settings: RunSettings,
    ledger_engine: Engine,
    mapping: FieldMapping,
    result: TransformResult,
    repeats: pd.DataFrame,
) -> None:
    """A chunk's candidates and rejects into the ledger's tables."""
    staging.add_candidates(
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
    staging.add_rejects(
        ledger_engine,
        settings.run_id,
        settings.api_task_id,
        (
            {**row, "in_ledger": not _stands_for_no_lead(row["reason"])}
            for row in result.rejects.to_dict("records")
        ),
    )
    staging.add_rejects(
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
    staging.add_rejects(
        ledger_engine,
        settings.run_id,
        settings.api_task_id,
        (
            {
                "lead_id": lead,
                "raw_phone": None if pd.isna(phone) else str(phone),
                "reason": f"{DUPLICATE_LEAD_ID} (an earlier row of the window has it)",
                "in_ledger": False,
            }
            for lead, phone in zip(
                lead_id_texts(repeats[mapping.lead_id]),
                repeats[mapping.fields["phone"]],
                strict=True,
            )
        ),
    )


def _stands_for_no_lead(reason: str) -> bool:
    """A reject that is no lead of its own: no lead id, or a repeat of one."""
    return reason.startswith((MISSING_LEAD_ID, DUPLICATE_LEAD_ID))
