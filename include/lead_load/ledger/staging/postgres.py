"""The set-based staging engine (PostgreSQL): a run decided and written by a fixed handful
of statements, whatever its size.

Candidates and rejects go in with ``COPY``; ``stage`` decides the whole run, and writes the
ledger's rows of its rejects too, with ``INSERT ... SELECT`` and ``UPDATE ... FROM``
statements, after ``ANALYZE``, in one transaction under the calling task's staging lock.

Probing by key, as the portable engine does, still costs a statement's worth of work per
row; sorting and hashing the run once is cheaper. It is safe because nothing is left to
stale statistics or generic plans: the candidates table is ANALYZEd once the run's
candidates are in (the ledger and the rejects too when autovacuum would have, for it may be
off), and every statement is planned with its parameters (plan_cache_mode). No IN lists, no
query on the warehouse's window, and no statement per slice: a slice-driven join planned on
a stale estimate of the ledger's size read every row of the calling task per slice (measured: 38 s
for one slice of 5,000 rejects against 20,000 ledger rows), so rejects only go into their
own table until the run is staged.

Memory: Python reads nothing of the run back but the counts of its decisions.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, text

from lead_load.core.ledger_rules import (
    ACTIVE_STATUSES,
    StagingDecision,
    Status,
    decide_staging,
)
from lead_load.ledger.schema import candidates, ledger, now, rejects, suppressions
from lead_load.ledger.staging.outcomes import (
    DUPLICATE,
    DUPLICATE_IN_RUN,
    PHONE_ALREADY_LOADED,
    STAGED_BY_THIS_RUN,
    SUPPRESSED,
    StagingCounts,
)
from lead_load.ledger.staging.tables import insert_rows, lock_calling_task

_REJECT_COLUMNS = ("lead_id", "raw_phone", "reason", "in_ledger")


def _append_rejects(
    conn: Connection, run_id: str, api_task_id: str, rows: Iterable[dict], stamp: datetime
) -> int:
    """Rejects into ``lead_load_rejects`` only, with COPY where the driver has it."""
    columns = ("run_id", "api_task_id", "rejected_at", *_REJECT_COLUMNS)
    values = ((run_id, api_task_id, stamp, *map(row.get, _REJECT_COLUMNS)) for row in rows)
    return insert_rows(conn, rejects, columns, values)


def add_rejects(
    engine: Engine, run_id: str, api_task_id: str, rows: Iterable[dict[str, Any]]
) -> int:
    """The rejects (rows of ``tables.reject_row``) into their own table, in one
    transaction; their ledger rows come with ``stage``, those of the whole run in one go."""
    stamp = now()
    with engine.begin() as conn:
        return _append_rejects(conn, run_id, api_task_id, rows, stamp)


# autovacuum's default for when a table needs ANALYZE: 50 rows plus 10% changed since.
_ANALYZE_THRESHOLD, _ANALYZE_SCALE = 50, 0.1


def refresh_statistics(conn: Connection) -> None:
    """ANALYZE the candidates table (a run has just added its rows) and, where autovacuum
    would have (it may be off), the ledger and the rejects: the set-based statements are
    planned by them. ANALYZE reads a sample of at most 30,000 rows: a fraction of a second
    at a million. (A login that does not own the tables gets a warning from PostgreSQL and
    no statistics: grant it MAINTAIN, PostgreSQL 17, or let autovacuum run.)"""
    conn.exec_driver_sql(f"ANALYZE {candidates.name}")
    stale = conn.execute(
        text(
            "SELECT c.relname FROM pg_class AS c "
            "JOIN pg_stat_user_tables AS s ON s.relid = c.oid "
            "WHERE c.oid IN (to_regclass(:ledger), to_regclass(:rejects)) "
            # reltuples is -1 until the first ANALYZE
            "AND (c.reltuples < 0 OR s.n_mod_since_analyze > :threshold + :scale * c.reltuples)"
        ),
        {
            "ledger": ledger.name,
            "rejects": rejects.name,
            "threshold": _ANALYZE_THRESHOLD,
            "scale": _ANALYZE_SCALE,
        },
    ).scalars()
    for table in stale.all():
        conn.exec_driver_sql(f"ANALYZE {table}")


def _decide_staging_sql(status: str, holder: str, lead: str, suppressed: str) -> str:
    """``decide_staging`` as a SQL expression over the columns (or expressions) ``status``
    (of the ledger row of this lead and phone; NULL without one), ``holder`` (the lead
    holding the phone in the calling task; NULL when free), ``lead``, and ``suppressed`` (a
    boolean: the phone is on the suppression list).

    Built by asking ``decide_staging`` itself for every status (and one it does not know)
    with each kind of holder (none, the lead itself, another lead), suppressed or not, so the
    rules and their order stay in one place; ``test_postgres`` checks the expression against
    the function. Where every answer is the same (a suppressed phone), it is one constant.
    """
    unknown = "(a status of a later release)"

    def by_status(holder_value: str | None, on_list: bool) -> str:
        otherwise = decide_staging(unknown, holder_value, "lead", on_list)
        branches = [
            (f"{status} IS NULL" if value is None else f"{status} = '{value}'", decision)
            for value in (None, *Status)
            if (decision := decide_staging(value, holder_value, "lead", on_list)) != otherwise
        ]
        if not branches:
            return f"'{otherwise}'"
        whens = " ".join(f"WHEN {condition} THEN '{decision}'" for condition, decision in branches)
        return f"CASE {whens} ELSE '{otherwise}' END"

    def by_holder(on_list: bool) -> str:
        free, own, other = (by_status(h, on_list) for h in (None, "lead", "another lead"))
        if free == own == other:
            return free
        return (
            f"CASE WHEN {holder} IS NULL THEN {free} WHEN {holder} = {lead} THEN {own} "
            f"ELSE {other} END"
        )

    listed, unlisted = by_holder(True), by_holder(False)
    if listed == unlisted:
        return listed
    return f"CASE WHEN {suppressed} THEN {listed} ELSE {unlisted} END"


def _sql_string(text_: str) -> str:
    """A constant text as a SQL literal."""
    return "'" + text_.replace("'", "''") + "'"


def _sql_text(template: str, value: str) -> str:
    """A reason template ("... {} ...") as a SQL expression with ``value`` in its place."""
    before, after = (part.replace("'", "''") for part in template.split("{}"))
    return f"'{before}' || {value} || '{after}'"


_LEDGER_DECISION = _decide_staging_sql(
    "own.status", "holder.lead_id", "c.lead_id", "listed.phone IS NOT NULL"
)
_ACTIVE_SQL = ", ".join(f"'{status.value}'" for status in ACTIVE_STATUSES)
_DECISIONS = "lead_load_staging_decisions"

# One row per candidate of the run: the lead kept for its phone across the run (latest
# updated_at, then the highest lead id, as the transform de-duplicates a chunk), the status
# of the lead's row for this phone, the lead holding the phone, and the decision (whether the
# phone is on the suppression list goes into it; the list is joined by its primary key).
_DECIDE_SQL = f"""
INSERT INTO {_DECISIONS} (lead_id, phone, kept, holder, own_status, decision)
SELECT c.lead_id, c.phone, kept.lead_id, holder.lead_id, own.status,
    CASE
        WHEN kept.lead_id <> c.lead_id THEN '{DUPLICATE}'
        WHEN own.status = '{Status.STAGED.value}' AND own.run_id = CAST(:run_id AS TEXT)
            THEN '{STAGED_BY_THIS_RUN}'
        ELSE {_LEDGER_DECISION}
    END
FROM {candidates.name} AS c
JOIN (
    SELECT DISTINCT ON (phone) phone, lead_id
    FROM {candidates.name}
    WHERE run_id = CAST(:run_id AS TEXT)
    ORDER BY phone, updated_at DESC NULLS LAST, lead_id DESC
) AS kept ON kept.phone = c.phone
LEFT JOIN {ledger.name} AS own
    ON own.api_task_id = CAST(:api_task_id AS TEXT) AND own.lead_id = c.lead_id
    AND own.phone = c.phone
LEFT JOIN {ledger.name} AS holder  -- at most one: the partial unique index
    ON holder.api_task_id = CAST(:api_task_id AS TEXT) AND holder.phone = c.phone
    AND holder.status IN ({_ACTIVE_SQL})
LEFT JOIN {suppressions.name} AS listed ON listed.phone = c.phone
WHERE c.run_id = CAST(:run_id AS TEXT)
"""  # noqa: S608 - our own names and constants; values are bound

# The decisions, written, in this order: the rejects first (each candidate that lost its phone
# to a more recent lead of the run, each whose phone is suppressed, and each whose phone
# another lead holds), then the
# ledger's rows of all the run's rejects (the extract's too, see add_rejects), then the
# staged rows. Each statement touches other leads than the others (a run has one candidate
# per lead, and a lead is a candidate or a reject), and the partial unique index still guards
# every phone.
_REJECT_SQL = f"""
INSERT INTO {rejects.name} (
    run_id, lead_id, api_task_id, raw_phone, reason, rejected_at, in_ledger
)
SELECT CAST(:run_id AS TEXT), d.lead_id, CAST(:api_task_id AS TEXT), d.phone,
    CASE WHEN d.decision = '{DUPLICATE}' THEN {_sql_text(DUPLICATE_IN_RUN, "d.kept")}
        WHEN d.decision = '{StagingDecision.SUPPRESSED.value}' THEN {_sql_string(SUPPRESSED)}
        ELSE {_sql_text(PHONE_ALREADY_LOADED, "d.holder")} END,
    :stamp, d.decision IN ('{DUPLICATE}', '{StagingDecision.SUPPRESSED.value}')
FROM {_DECISIONS} AS d
WHERE d.decision IN (
    '{DUPLICATE}', '{StagingDecision.SUPPRESSED.value}', '{StagingDecision.PHONE_TAKEN.value}'
)
"""  # noqa: S608 - our own names and constants; values are bound
# The ledger's key of a reject: its phone as given (the ledger's phone is NOT NULL, at most
# 32 characters).
_RUN_REJECTS = f"""
    SELECT r.lead_id, left(coalesce(r.raw_phone, ''), 32) AS phone, r.reason
    FROM {rejects.name} AS r
    WHERE r.run_id = CAST(:run_id AS TEXT) AND r.in_ledger
"""  # noqa: S608 - our own names and constants; values are bound
_WRITE_SQL = (
    _REJECT_SQL,
    # A reject's ledger row: the new reason where the lead and phone were rejected before
    # (in no batch now: one a claim took out of its batch kept its number until then),
    f"""
    UPDATE {ledger.name} AS l
    SET reason = r.reason, run_id = CAST(:run_id AS TEXT), batch_no = NULL,
        updated_at = :stamp
    FROM ({_RUN_REJECTS}) AS r
    WHERE l.api_task_id = CAST(:api_task_id AS TEXT) AND l.lead_id = r.lead_id
      AND l.phone = r.phone AND l.status = '{Status.REJECTED.value}'
    """,  # noqa: S608 - our own names and constants; values are bound
    # ... a rejected row where they have none (any other row stays as it is).
    f"""
    INSERT INTO {ledger.name} (
        api_task_id, lead_id, phone, status, reason, run_id, created_at, updated_at
    )
    SELECT CAST(:api_task_id AS TEXT), r.lead_id, r.phone, '{Status.REJECTED.value}',
        r.reason, CAST(:run_id AS TEXT), :stamp, :stamp
    FROM ({_RUN_REJECTS}) AS r
    WHERE NOT EXISTS (
        SELECT 1 FROM {ledger.name} AS l
        WHERE l.api_task_id = CAST(:api_task_id AS TEXT) AND l.lead_id = r.lead_id
          AND l.phone = r.phone
    )
    """,  # noqa: S608 - our own names and constants; values are bound
    # New leads and phones: a staged row each.
    f"""
    INSERT INTO {ledger.name} (
        api_task_id, lead_id, phone, status, run_id, payload, created_at, updated_at
    )
    SELECT CAST(:api_task_id AS TEXT), c.lead_id, c.phone, '{Status.STAGED.value}',
        CAST(:run_id AS TEXT), c.payload, :stamp, :stamp
    FROM {candidates.name} AS c
    JOIN {_DECISIONS} AS d ON d.lead_id = c.lead_id
    WHERE c.run_id = CAST(:run_id AS TEXT)
      AND d.decision = '{StagingDecision.STAGE_NEW.value}'
    """,  # noqa: S608 - our own names and constants; values are bound
    # Leads rejected before under the same phone and valid now: staged again.
    f"""
    UPDATE {ledger.name} AS l
    SET status = '{Status.STAGED.value}', reason = NULL, run_id = CAST(:run_id AS TEXT),
        batch_no = NULL, unique_id = NULL, payload = c.payload, updated_at = :stamp
    FROM {_DECISIONS} AS d
    JOIN {candidates.name} AS c ON c.run_id = CAST(:run_id AS TEXT) AND c.lead_id = d.lead_id
    WHERE d.decision = '{StagingDecision.RESTAGE.value}'
      AND l.api_task_id = CAST(:api_task_id AS TEXT) AND l.lead_id = d.lead_id
      AND l.phone = d.phone AND l.status = '{Status.REJECTED.value}'
    """,  # noqa: S608 - our own names and constants; values are bound
)

# Statements planned for the values they run with: a prepared statement's generic plan
# (psycopg 3 prepares a statement it has run five times on a connection) knows neither the
# run nor the calling task. set_config(..., true) lasts to the transaction's end.
_PLAN_EACH_TIME = "SELECT set_config('plan_cache_mode', 'force_custom_plan', true)"


def stage(engine: Engine, run_id: str, api_task_id: str) -> StagingCounts:
    """The whole run decided and written by a fixed number of statements, in one
    transaction."""
    with engine.begin() as conn:  # not under the calling task's lock: ANALYZE takes a while
        refresh_statistics(conn)
    params = {"run_id": run_id, "api_task_id": api_task_id, "stamp": now()}
    counts = StagingCounts()
    with engine.begin() as conn:
        lock_calling_task(conn, api_task_id)  # decide on what other runs have committed
        conn.exec_driver_sql(_PLAN_EACH_TIME)
        conn.exec_driver_sql(
            f"CREATE TEMPORARY TABLE {_DECISIONS} (lead_id VARCHAR(128), phone VARCHAR(32), "
            "kept VARCHAR(128), holder VARCHAR(128), own_status VARCHAR(16), "
            "decision VARCHAR(32)) ON COMMIT DROP"
        )
        conn.execute(text(_DECIDE_SQL), params)
        conn.exec_driver_sql(f"ANALYZE {_DECISIONS}")  # temporary tables never get any
        decided = conn.execute(
            text(f"SELECT decision, count(*) FROM {_DECISIONS} GROUP BY decision")  # noqa: S608
        ).all()
        for decision, leads in decided:
            counts.add(decision, leads)
        for statement in _WRITE_SQL:
            conn.execute(text(statement), params)
    return counts
