"""Extract and stage: the window's rows, transformed chunk by chunk, become ledger rows once.

Before a row is read, one look at the columns the extract query returns (the query wrapped in
``WHERE 1 = 0``, so it works for any customised query) checks the warehouse contract
(``lead_load.core.warehouse_contract``): a missing or misspelt column, or an ``updated_at``
that is no date-time, fails the run at once with what to change.

The pure parts live in the core: a column's type from the driver's type code
(``lead_load.core.column_types``), the rows read into a DataFrame
(``lead_load.core.row_frames``), and the transform (``lead_load.core.transform``).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import numpy as np
import pandas as pd
from airflow.sdk.exceptions import AirflowFailException
from sqlalchemy import Engine, text
from sqlalchemy.exc import DBAPIError, IntegrityError

from agent_api.hooks.agent_api import AgentApiHook
from agent_api.masking import mask_phones_in
from lead_load.core.column_types import described_columns, type_words
from lead_load.core.lead_ids import (
    DUPLICATE_LEAD_ID,
    lead_id_texts,
    repeat_key,
    stands_for_no_lead,
)
from lead_load.core.mapping import FieldMapping
from lead_load.core.reject_reasons import RejectReason
from lead_load.core.row_frames import rows_to_frame
from lead_load.core.run_settings import RunSettings
from lead_load.core.transform import (
    TransformResult,
    raw_phone_text,
    sortable_times,
    transform_leads,
)
from lead_load.core.warehouse_contract import (
    DEFAULT_SOURCES,
    ContractVerdict,
    ExtractColumn,
    Sources,
    check_contract,
)
from lead_load.core.window import text_bounds
from lead_load.ledger import run_lifecycle, schema, staging

log = logging.getLogger(__name__)

EXTRACT_CHUNK_ROWS = 20_000


class SourceSchemaError(AirflowFailException):
    """The warehouse's leads table does not have the columns the load reads.

    A schema mismatch: retrying cannot help, so Airflow fails the task at once, and the
    message names the column and what to change.
    """


class SourceDataError(AirflowFailException):
    """The warehouse's rows break an assumption the load cannot work around; the message
    says which and what to change. Retrying cannot help."""


# The extract query named a column or table the warehouse does not have (SQLite, PostgreSQL
# and MySQL wording, and PostgreSQL's SQLSTATEs 42703/42P01).
_UNDEFINED_OBJECT = re.compile(
    r"no such (column|table)|(column|relation|table) \S+ does not exist|unknown column"
    r"|table \S+ doesn't exist",
    re.IGNORECASE,
)
_UNDEFINED_SQLSTATES = ("42703", "42P01")


def _schema_hint(sources: Sources) -> str:
    return (
        f"the leads table must have the columns that {sources.extract_sql} reads and "
        f"{sources.mapping} maps: add or rename the column in the warehouse, or map another "
        "column in the field mapping"
    )


# Per dialect, how a session reads and compares time-zone-aware values in UTC.
_UTC_SESSION = {
    "postgresql": "SET TIME ZONE 'UTC'",
    "mysql": "SET time_zone = '+00:00'",
    "mariadb": "SET time_zone = '+00:00'",
}


# An extract query that reads SQLite's text date-times as instants (include/sql/sqlite/).
_SQLITE_TIME_FUNCTION = re.compile(r"\b(julianday|datetime|unixepoch|strftime)\s*\(", re.I)


def _first_line(error: Exception) -> str:
    text = str(getattr(error, "orig", None) or error).strip()
    return mask_phones_in(text.splitlines()[0] if text else type(error).__name__)


def _one_statement(sql: str) -> str:
    """The query without a trailing semicolon (and the comments after it): a subquery."""
    return re.sub(r";(\s|--[^\n]*)*\Z", "", sql.strip())


def _schema_error(
    error: DBAPIError, sources: Sources = DEFAULT_SOURCES
) -> SourceSchemaError | None:
    """A SourceSchemaError when the database says a column or table does not exist."""
    orig = error.orig
    sqlstate = getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)
    lines = str(orig).strip().splitlines()
    reason = lines[0] if lines else str(error)
    if not (sqlstate in _UNDEFINED_SQLSTATES or _UNDEFINED_OBJECT.search(reason)):
        return None
    # PostgreSQL's hint names a column of another case: "Perhaps you meant ... "UpdatedAt"".
    hints = [line.strip() for line in lines[1:] if line.strip().startswith("HINT:")]
    said = "; ".join([reason, *hints])
    return SourceSchemaError(
        mask_phones_in(
            f"the extract query failed on the warehouse: {said}; {_schema_hint(sources)}"
        )
    )


def _breach(verdict: ContractVerdict, sources: Sources) -> SourceSchemaError:
    hint = f"; {_schema_hint(sources)}" if verdict.missing else ""
    return SourceSchemaError(
        mask_phones_in(
            f"the warehouse breaks the contract: {verdict.explained()}{hint} "
            "(docs/warehouse-contract.md)"
        )
    )


def check_warehouse_contract(
    warehouse: Engine,
    sql: str,
    bounds: Mapping[str, Any],
    mapping: FieldMapping,
    sources: Sources = DEFAULT_SOURCES,
) -> ContractVerdict | None:
    """Look once at the columns ``sql`` returns and judge them (``core.warehouse_contract``).

    The query runs wrapped as ``SELECT * FROM (<sql>) WHERE 1 = 0``: the database plans it,
    reads no row, and says what the columns are and (except SQLite) of which type, however
    the query was customised. Raises ``SourceSchemaError`` for what the load cannot work
    with; logs the warnings. None when the wrapped query cannot run (e.g. a query that cannot
    be a subquery): the columns are then checked on the first chunk, the types not at all.
    """
    # The operator's own query as a subquery; the window stays bound, nothing is pasted in.
    query = _one_statement(sql)
    probe = f"SELECT * FROM (\n{query}\n) lead_load_contract WHERE 1 = 0"  # noqa: S608
    # An updated_at of another type than the bounds' (text, a number) on PostgreSQL refuses
    # the comparison ("operator does not exist"): NULL bounds compare with any type, and
    # text ones, which every database also reads as a timestamp, with most.
    attempts = [dict(bounds), dict.fromkeys(bounds), text_bounds(bounds)]
    description, failure = None, None
    for params in [p for i, p in enumerate(attempts) if p not in attempts[:i]]:
        try:
            with warehouse.connect() as conn:
                result = conn.execute(text(probe), params)
                description = result.cursor.description
                result.close()
            break
        except DBAPIError as error:
            if schema_error := _schema_error(error, sources):
                raise schema_error from None
            failure = error
    if description is None:
        log.warning(
            "Could not look at the extract's columns before reading them (%s); the columns "
            "are checked on the first chunk, the type of updated_at is not checked",
            _first_line(failure),
        )
        return None
    dialect = warehouse.dialect
    columns = described_columns(description, dialect.name, dialect.dbapi)
    verdict = check_contract(mapping, columns, sources)
    if verdict.problems:
        raise _breach(verdict, sources)
    for warning in verdict.warnings:
        log.warning("Warehouse contract: %s", mask_phones_in(warning))
    if dialect.name == "sqlite" and not _SQLITE_TIME_FUNCTION.search(sql):
        log.warning(
            "Warehouse contract: this extract compares updated_at as text on SQLite, so only "
            "YYYY-MM-DD HH:MM:SS in UTC selects exactly; include/sql/sqlite/extract_leads.sql "
            "reads every documented format"
        )
    log.info(
        "Warehouse contract: the extract returns the %d columns the load reads (%s); "
        "updated_at is %s. Rows repeating a lead id are rejected one by one (%s): the latest "
        "row stands for the lead.",
        len(verdict.checked),
        mask_phones_in(", ".join(verdict.checked)),
        type_words(verdict.updated_at),
        DUPLICATE_LEAD_ID,
    )
    return verdict


def check_source_columns(
    mapping: FieldMapping, columns: Iterable[str], sources: Sources = DEFAULT_SOURCES
) -> None:
    """The columns the extract returned (its first chunk) have every column the mapping
    reads, each once, or a SourceSchemaError naming them: the contract's rules on names, for
    when the look before reading could not run, and for what it could not see (SQLite
    renames a column a subquery returns twice)."""
    verdict = check_contract(mapping, [ExtractColumn(str(c)) for c in columns], sources)
    if verdict.problems:
        # No retry can add a column (a MappingError, a ValueError, used to be retried twice):
        # fail at once and say what to change.
        raise _breach(verdict, sources)


def read_in_chunks(
    engine: Engine,
    sql: str,
    params: dict[str, Any],
    chunk_rows: int = EXTRACT_CHUNK_ROWS,
    sources: Sources = DEFAULT_SOURCES,
) -> Iterator[pd.DataFrame]:
    """Stream the query's rows as DataFrames; the server-side cursor keeps memory bounded.

    The session runs in UTC where the database has a session time zone, so that the window's
    UTC bounds select exactly [start, end) from ``timestamp`` columns (documented as UTC) and
    from ``timestamptz``/``TIMESTAMP`` columns alike, whatever the server's default zone.
    Frames are built as pandas.read_sql builds them, but an integer a float cannot hold
    stays exact (``rows_to_frame``).
    """
    try:
        if engine.dialect.name == "sqlite":
            # SQLite lets nobody write to the file while a read is open, and the ledger is
            # written between chunks (in the same file by default): read the window whole.
            with engine.connect() as conn:
                result = conn.execute(text(sql), params)
                whole = rows_to_frame(result.fetchall(), list(result.keys()))
            for start in range(0, len(whole), chunk_rows):
                yield whole.iloc[start : start + chunk_rows].reset_index(drop=True)
            return
        with engine.connect() as conn:
            if statement := _UTC_SESSION.get(engine.dialect.name):
                conn.execute(text(statement))
            streaming = conn.execution_options(stream_results=True, max_row_buffer=chunk_rows)
            result = streaming.execute(text(sql), params)
            columns = list(result.keys())
            read_any = False
            while rows := result.fetchmany(chunk_rows):
                read_any = True
                yield rows_to_frame(rows, columns)
            if not read_any:
                yield rows_to_frame([], columns)  # the columns, for the check on them
    except DBAPIError as error:
        # A renamed or dropped column used to fail with the driver's error (SQL and all) and
        # be retried in vain; say which column is missing and fail without retries. Other
        # database errors (locks, lost connections) stay as they are, and are retried.
        if schema_error := _schema_error(error, sources):
            raise schema_error from None
        raise


def updated_at_gaps(warehouse: Engine, sql: str) -> dict[str, int | None]:
    """The rows of the table that no window ever loads, for the summary, from ``sql``'s one
    row: ``updated_at_missing_in_table`` (first column: no ``updated_at``) and, when the query
    has a second column, ``updated_at_unreadable_in_table`` (an ``updated_at`` the database
    cannot read as a time: SQLite's text in a format it does not know). Each is logged when
    not 0. A count that fails is None, and a warning: it informs, it must not fail the load."""
    try:
        with warehouse.connect() as conn:
            row = conn.execute(text(sql)).first()
    except DBAPIError as error:
        log.warning("Could not count the rows without updated_at: %s", _first_line(error))
        return {"updated_at_missing_in_table": None}
    values = [int(value or 0) for value in (row or (0,))]
    gaps: dict[str, int | None] = {"updated_at_missing_in_table": values[0]}
    if values[0]:
        log.warning(
            "%d rows of the leads table have no updated_at: they fall in no window and are "
            "never loaded. Set their updated_at in the warehouse to load them.",
            values[0],
        )
    if len(values) > 1:
        gaps["updated_at_unreadable_in_table"] = values[1]
        if values[1]:
            log.warning(
                "%d rows of the leads table have an updated_at the database cannot read as a "
                "time: they fall in no window and are never loaded. Write them in a format of "
                "the README's Warehouse contract (e.g. 2026-11-24 10:00:00, in UTC).",
                values[1],
            )
    return gaps


def _store(
    settings: RunSettings,
    ledger_engine: Engine,
    mapping: FieldMapping,
    result: TransformResult,
    repeats: pd.DataFrame,
    repeat_rows: np.ndarray,
) -> None:
    """A chunk's candidates and rejects into the ledger's tables. ``repeats``: the rows of
    leads an earlier chunk had (``repeat_rows``: their numbers in the window)."""
    # The ledger orders a run's candidates by updated_at across chunks: as one spelling
    # (UTC text), since SQLite's text may spell two instants in ways that sort otherwise.
    staging.add_candidates(
        ledger_engine,
        settings.run_id,
        (
            {"lead_id": lead, "phone": phone, "updated_at": updated, "payload": payload}
            for lead, phone, updated, payload in zip(
                result.valid["lead_id"],
                result.valid["phone"],
                sortable_times(result.valid["updated_at"]),
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
            {**row, "in_ledger": not stands_for_no_lead(row["reason"])}
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
                "reason": str(RejectReason.duplicate_in_run(row.kept_lead_id)),
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
                "lead_id": repeat_key(lead, row),
                "raw_phone": raw_phone_text(phone),
                "reason": f"{DUPLICATE_LEAD_ID} (an earlier row of the window has it)",
                "in_ledger": False,
            }
            for lead, phone, row in zip(
                lead_id_texts(repeats[mapping.lead_id]),
                repeats[mapping.fields["phone"]].to_numpy(dtype=object),
                repeat_rows.tolist(),
                strict=True,
            )
        ),
    )


def queries_for(dialect: str, rendered: Mapping[str, str]) -> tuple[str, str | None]:
    """(extract query, count query) for a warehouse of ``dialect``, from the DAG task's
    rendered ``templates_dict``: the dialect's own (key ``<dialect>_sql``, e.g. ``sqlite_sql``
    from include/sql/sqlite/) where there is one, else the portable ``sql`` and
    ``missing_updated_at_sql``."""

    def pick(key: str) -> str | None:
        return rendered.get(f"{dialect}_{key}") or rendered.get(key)

    sql = pick("sql")
    if not sql:
        raise ValueError("templates_dict has no extract query (key 'sql')")
    return sql, pick("missing_updated_at_sql")


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
    sources: Sources = DEFAULT_SOURCES,
) -> dict[str, int | None]:
    """Extract the window in chunks, transform each, and stage the valid leads exactly once.

    The warehouse contract is checked first (``check_warehouse_contract``), so a table the
    load cannot read fails before anything is read or staged. ``missing_updated_at_sql``
    counts the table's rows without ``updated_at`` (in no window, never loaded) and, when it
    returns a second column, those whose ``updated_at`` cannot be read (SQLite's text); the
    counts go into the summary. ``sources``: where the load's query and mapping are, named by
    the errors.
    """
    schema.create_tables(ledger_engine)
    staging.clear_run(ledger_engine, settings.run_id)  # a retry starts this step afresh
    contract = check_warehouse_contract(warehouse, sql, bounds, mapping, sources)
    if contract is not None and contract.compares_as_text:
        bounds = text_bounds(bounds)  # text compared with a timestamp fails on PostgreSQL
    template = agent_api.get_template() if mapping.components else None
    totals = {"extracted": 0, "invalid": 0, "duplicates_in_chunk": 0, "sex_unknown": 0}
    # The extract is ordered by lead id, so a lead's rows are adjacent: one that spills over
    # from the previous chunk is the only repeat the transform cannot see. Except on SQLite,
    # whose column of no type may hold 5001 and '5001' (one lead to us) sorted apart: there
    # the window is in memory anyway, and every lead id seen so far is remembered.
    remember_all = warehouse.dialect.name == "sqlite"
    seen: set[str] = set()
    chunks = read_in_chunks(warehouse, sql, bounds, chunk_rows, sources)
    for number, chunk in enumerate(chunks, start=1):
        if number == 1:
            check_source_columns(mapping, chunk.columns, sources)
        chunk_leads = lead_id_texts(chunk[mapping.lead_id])
        spilled = np.fromiter((lead in seen for lead in chunk_leads), bool, len(chunk_leads))
        if not remember_all:
            seen = set()
        seen.update(lead for lead in chunk_leads if lead is not None)
        rows = np.arange(totals["extracted"] + 1, totals["extracted"] + 1 + len(chunk))
        repeats = chunk[spilled]
        fresh = chunk[~spilled]
        result = transform_leads(fresh, mapping, template, row_numbers=rows[~spilled])
        try:
            _store(settings, ledger_engine, mapping, result, repeats, rows[spilled])
        except IntegrityError as error:
            raise SourceDataError(
                "a lead id appears more than once in the window, in rows that are not next to "
                "each other: keep ORDER BY on the lead id column in "
                f"include/sql/extract_leads.sql ({_first_line(error)})"
            ) from None
        totals["extracted"] += len(chunk)
        run_lifecycle.renew_run(ledger_engine, settings.run_id)  # long extracts stay live
        totals["invalid"] += len(result.rejects) + len(repeats)
        totals["duplicates_in_chunk"] += len(result.duplicates)
        totals["sex_unknown"] += result.sex_unknown
        log.info(
            "Chunk %d: %d rows (%d valid, %d invalid, %d duplicates); %d rows so far",
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
        "invalid": totals["invalid"],
        "duplicates_in_run": totals["duplicates_in_chunk"] + staged.duplicates_in_run,
        "staged": staged.staged,
        "already_loaded": staged.already_loaded,
        "in_flight": staged.in_flight,
        "suppressed": staged.suppressed,
        "sex_unknown": totals["sex_unknown"],
    }
    if missing_updated_at_sql:
        counts.update(updated_at_gaps(warehouse, missing_updated_at_sql))
    log.info("Extract and staging done: %s", counts)
    if not run_lifecycle.record_extract(ledger_engine, settings.run_id, counts):
        log.warning(
            "Run %s has ended in the ledger meanwhile: its counts are not kept there",
            settings.run_id,
        )
    if not counts["extracted"]:
        log.warning(
            "0 rows extracted: no lead has updated_at in [%s, %s) (UTC). Check the window "
            "(the log of resolve_settings shows it in UTC and Asia/Shanghai) and that the "
            "warehouse stores updated_at in UTC.",
            bounds.get("window_start"),
            bounds.get("window_end"),
        )
    return counts
