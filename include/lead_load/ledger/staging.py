"""Staging: a run's extracted leads become ledger rows exactly once per target task.

Candidates and rejects are written per chunk as the extract streams; ``stage_candidates``
then decides every candidate against the ledger (``core.ledger_rules.decide_staging``).

Two ways to the same decisions:

- PostgreSQL: set-based. Candidates and rejects go in with ``COPY`` (psycopg 3 or
  psycopg2), and ``stage_candidates`` decides the whole run, and writes the ledger's rows of
  its rejects too, with a fixed handful of ``INSERT ... SELECT`` and ``UPDATE ... FROM``
  statements, after ``ANALYZE`` (see "Set-based staging" below for why that matters).
- Any other database (SQLite, MySQL, MariaDB): the portable path, slices of ``CHUNK`` rows,
  each row found by key, the rejects' ledger rows written as they come.

Both hold the task's staging lock (``_lock_task``) while they decide and write, so two runs
staging the same leads at once stage each lead once; the partial unique index (one active
row per task and phone) stays the last guard.
"""

from __future__ import annotations

import io
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import msgspec
from sqlalchemy import (
    Column,
    Connection,
    Engine,
    bindparam,
    delete,
    func,
    insert,
    select,
    text,
    update,
)
from sqlalchemy.exc import DBAPIError, IntegrityError

from lead_load.core.ledger_rules import (
    ACTIVE_STATUSES,
    StagingDecision,
    Status,
    decide_staging,
)
from lead_load.core.reject_reasons import (
    DUPLICATE_IN_RUN_TEMPLATE,
    PHONE_ALREADY_LOADED_TEMPLATE,
)
from lead_load.ledger import batch_lifecycle, schema
from lead_load.ledger.schema import (
    candidates,
    is_active,
    ledger,
    now,
    rejects,
    slices,
    task_locks,
    typed_key,
    typed_value,
)

# The reasons staging writes itself ("{}": the other lead).
DUPLICATE_IN_RUN = DUPLICATE_IN_RUN_TEMPLATE
PHONE_ALREADY_LOADED = PHONE_ALREADY_LOADED_TEMPLATE


def _as_base_type(value: Any) -> Any:
    """What json.dumps writes a subclass of str, int or float as (numpy's str_ and float64
    among them), for msgspec, which only knows the types themselves."""
    for kind in (str, int, float):
        if isinstance(value, kind):
            return kind(value)
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


# A payload as JSON text. msgspec (a dependency of Airflow's task SDK) writes the same JSON as
# json.dumps(ensure_ascii=False), without its spaces, five times as fast: at a million leads
# that is about 3 s of the extract step on the benchmark's machine.
_encode_json = msgspec.json.Encoder(enc_hook=_as_base_type).encode


def payload_json(payload: Any) -> str:
    """The ledger's text of an API row (a dict of str, int, float and None)."""
    return _encode_json(payload).decode()


def _ensure_task_lock(engine: Engine, api_task_id: str) -> None:
    """Create the task's lock row once, in a transaction of its own."""
    try:
        with engine.begin() as conn:
            exists_ = conn.execute(
                select(task_locks.c.api_task_id).where(task_locks.c.api_task_id == api_task_id)
            ).first()
            if not exists_:
                conn.execute(insert(task_locks).values(api_task_id=api_task_id))
    except IntegrityError:
        pass  # another run created it at the same moment


def _lock_task(conn: Connection, api_task_id: str) -> None:
    """Hold the task's staging lock until this transaction ends.

    A row lock on PostgreSQL and MySQL; on SQLite the write takes the database's write lock
    before any read of the transaction, which is what serialises writers there.
    """
    held = conn.execute(
        update(task_locks).where(task_locks.c.api_task_id == api_task_id).values(locked_at=now())
    ).rowcount
    if held != 1:
        raise RuntimeError(f"no staging lock row for task {api_task_id}")


# -- staging ------------------------------------------------------------------------------
#
# Memory: candidates and rejects are written in slices of at most CHUNK rows (or streamed
# through COPY), and stage_candidates reads at most a slice at a time (the portable path) or
# nothing but counts (PostgreSQL), so the Python process never holds a run.
#
# Portable path: every statement finds its rows by key, executemany keyed on a primary key or
# a correlated subquery on a unique index, one executemany statement per kind of change and
# slice (a statement per row made staging 90% of the extract step's time). The ledger and
# candidates tables grow by a whole run within minutes, faster than statistics follow
# (PostgreSQL's autovacuum may be off); joins, semi-joins on a window query and
# `IN (<5,000 values>)` lists were then planned as a scan per row or per slice, which made
# staging quadratic. A key look-up has only one plan.
#
# Set-based staging (PostgreSQL): probing by key still costs a statement's worth of work per
# row; sorting and hashing the run once is cheaper. It is safe because nothing is left to
# stale statistics or generic plans: the candidates table is ANALYZEd once the run's
# candidates are in (the ledger and the rejects too when autovacuum would have, for it may
# be off), and every statement is planned with its parameters (plan_cache_mode). No IN
# lists, no query on the warehouse's window, and no statement per slice: a slice-driven join
# planned on a stale estimate of the ledger's size read every row of the task per slice
# (measured: 38 s for one slice of 5,000 rejects against 20,000 ledger rows), so rejects only
# go into their own table until the run is staged.


def add_candidates(engine: Engine, run_id: str, rows: Iterable[dict[str, Any]]) -> int:
    """Store a chunk's valid rows (lead_id, phone, updated_at, payload dict) for this run."""
    return _add_candidates(
        engine,
        run_id,
        ((row["lead_id"], row["phone"], row["updated_at"], row["payload"]) for row in rows),
    )


_CANDIDATE_COLUMNS = ("run_id", "lead_id", "phone", "updated_at", "payload")


def _add_candidates(engine: Engine, run_id: str, rows: Iterable[tuple]) -> int:
    """(lead_id, phone, updated_at, payload dict) rows into ``lead_load_candidates``, in one
    transaction: with COPY where the driver has it, else a slice per statement."""
    values = (
        (run_id, str(lead), phone, str(updated), payload_json(payload))
        for lead, phone, updated, payload in rows
    )
    with engine.begin() as conn:
        if _copy_driver(conn):
            return _copy(conn, candidates.name, _CANDIDATE_COLUMNS, values)
        added = 0
        for slice_ in slices(values):
            conn.execute(
                insert(candidates), [dict(zip(_CANDIDATE_COLUMNS, v, strict=True)) for v in slice_]
            )
            added += len(slice_)
        return added


def _copy_driver(conn: Connection) -> str | None:
    """The driver's name, psycopg or psycopg2, when ``conn`` can COPY (PostgreSQL)."""
    if conn.dialect.name != "postgresql":
        return None
    return {"psycopg": "psycopg", "psycopg2": "psycopg2"}.get(conn.dialect.driver)


def _copy(conn: Connection, table: str, columns: Sequence[str], rows: Iterable[tuple]) -> int:
    """``COPY table FROM STDIN`` of ``rows`` (tuples of text, None, or values whose ``str``
    PostgreSQL reads: datetimes, booleans), inside ``conn``'s transaction. Streamed: psycopg 3
    sends as it goes, psycopg2 a slice at a time."""
    sql = f"COPY {table} ({', '.join(columns)}) FROM STDIN"
    raw = conn.connection.driver_connection
    added = 0
    if _copy_driver(conn) == "psycopg":
        with raw.cursor() as cursor, cursor.copy(sql) as copy:
            for row in rows:
                copy.write_row(row)
                added += 1
        return added
    with raw.cursor() as cursor:
        for slice_ in slices(rows):
            cursor.copy_expert(sql, io.StringIO("".join(map(_copy_line, slice_))))
            added += len(slice_)
    return added


_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def _copy_line(row: tuple) -> str:
    """A row in COPY's text format (psycopg2 leaves the formatting to us)."""
    return (
        "\t".join("\\N" if value is None else str(value).translate(_COPY_ESCAPES) for value in row)
        + "\n"
    )


def add_rejects(
    engine: Engine, run_id: str, api_task_id: str, rows: Iterable[dict[str, Any]]
) -> int:
    """Record rows that will not be sent (lead_id, raw_phone, reason), in both tables.

    The ledger only gets a ``rejected`` row where the lead has none or a rejected one: a lead
    imported before stays imported when a later extract of it is bad. On PostgreSQL the
    ledger's rows come with ``stage_candidates``, which writes those of the whole run in one
    go; elsewhere they are written here, a slice at a time.
    """
    stamp = now()
    if engine.dialect.name == "postgresql":
        with engine.begin() as conn:
            return _append_rejects(conn, run_id, api_task_id, map(_reject, rows), stamp)
    added = 0
    _ensure_task_lock(engine, api_task_id)
    for slice_ in slices(rows):
        with engine.begin() as conn:
            _lock_task(conn, api_task_id)
            _write_rejects(conn, run_id, api_task_id, [_reject(row) for row in slice_], stamp)
        added += len(slice_)
    return added


_REJECT_COLUMNS = ("lead_id", "raw_phone", "reason", "in_ledger")


def _append_rejects(
    conn: Connection, run_id: str, api_task_id: str, rows: Iterable[dict], stamp: datetime
) -> int:
    """Rejects into ``lead_load_rejects`` only, with COPY where the driver has it."""
    columns = ("run_id", "api_task_id", "rejected_at", *_REJECT_COLUMNS)
    values = ((run_id, api_task_id, stamp, *map(row.get, _REJECT_COLUMNS)) for row in rows)
    if _copy_driver(conn):
        return _copy(conn, rejects.name, columns, values)
    added = 0
    for slice_ in slices(values):
        conn.execute(insert(rejects), [dict(zip(columns, v, strict=True)) for v in slice_])
        added += len(slice_)
    return added


def _reject(row: dict[str, Any]) -> dict[str, Any]:
    raw_phone = row.get("raw_phone")
    return {
        "lead_id": _storable(str(row["lead_id"])),
        "raw_phone": None if raw_phone is None else _storable(str(raw_phone)),
        "reason": _storable(row["reason"]),
        # False for a row that is no lead of its own (no lead id, or another row of the
        # same lead stands for it): recorded as a reject, kept out of the ledger.
        "in_ledger": row.get("in_ledger", True),
    }


def _storable(text: str) -> str:
    """The warehouse's text as every database stores it: PostgreSQL refuses NUL in text, so a
    rejected value keeps it visibly as ``\\x00``."""
    return text.replace("\x00", "\\x00")


def _write_rejects(
    conn: Connection, run_id: str, api_task_id: str, rows: list[dict], stamp: datetime
) -> None:
    """A slice of rejects (lead_id, raw_phone, reason) into ``lead_load_rejects`` and the
    ledger: a ``rejected`` row for a lead and phone without one, the new reason where that
    lead and phone were rejected before; any other ledger row (staged, in flight, imported,
    not imported) stays as it is."""
    if not rows:
        return
    conn.execute(
        insert(rejects),
        [
            {
                "run_id": run_id,
                "api_task_id": api_task_id,
                "rejected_at": stamp,
                "lead_id": row["lead_id"],
                "raw_phone": row["raw_phone"],
                "reason": row["reason"],
                "in_ledger": row.get("in_ledger", True),
            }
            for row in rows
        ],
    )
    rows = [row for row in rows if row.get("in_ledger", True)]
    if not rows:
        return
    keyed = [
        {
            "b_lead": row["lead_id"],
            "b_phone": (row["raw_phone"] or "")[:32],  # the ledger's phone is NOT NULL
            "b_reason": row["reason"],
        }
        for row in rows
    ]
    lead = typed_key("b_lead", ledger.c.lead_id)
    phone = typed_key("b_phone", ledger.c.phone)
    this_lead = (
        ledger.c.api_task_id == api_task_id,
        ledger.c.lead_id == lead,
        ledger.c.phone == phone,
    )
    # The update goes first, so that it cannot touch the rows the insert adds.
    conn.execute(
        update(ledger)
        .where(*this_lead, ledger.c.status == Status.REJECTED.value)
        .values(reason=typed_key("b_reason", ledger.c.reason), run_id=run_id, updated_at=stamp),
        keyed,
    )
    new_row = {
        "api_task_id": typed_value(api_task_id, ledger.c.api_task_id),
        "lead_id": lead,
        "phone": phone,
        "status": typed_value(Status.REJECTED.value, ledger.c.status),
        "reason": typed_key("b_reason", ledger.c.reason),
        "run_id": typed_value(run_id, ledger.c.run_id),
        "created_at": typed_value(stamp, ledger.c.created_at),
        "updated_at": typed_value(stamp, ledger.c.updated_at),
    }
    has_row = select(ledger.c.lead_id).where(*this_lead).exists()
    conn.execute(
        insert(ledger).from_select(list(new_row), select(*new_row.values()).where(~has_row)),
        keyed,
    )


# What staging decides for a candidate besides decide_staging's decisions: it lost its phone
# to a more recent lead of the run, or an earlier try of this same run staged it.
DUPLICATE = "duplicate_in_run"
STAGED_BY_THIS_RUN = "staged_by_this_run"


@dataclass
class StagingCounts:
    staged: int = 0
    duplicates_in_run: int = 0
    already_loaded: int = 0
    in_flight: int = 0

    def as_dict(self) -> dict[str, int]:
        return dict(self.__dict__)

    def add(self, decision: str, leads: int) -> None:
        """Count ``leads`` candidates decided ``decision`` (a StagingDecision, DUPLICATE or
        STAGED_BY_THIS_RUN)."""
        if decision == DUPLICATE:
            self.duplicates_in_run += leads
        elif decision in (STAGED_BY_THIS_RUN, StagingDecision.STAGE_NEW, StagingDecision.RESTAGE):
            self.staged += leads
        elif decision in (StagingDecision.ALREADY_LOADED, StagingDecision.PHONE_TAKEN):
            self.already_loaded += leads
        elif decision == StagingDecision.IN_FLIGHT:
            self.in_flight += leads
        else:
            raise ValueError(f"unknown staging decision {decision!r}")


@dataclass(frozen=True)
class _Lead:
    """A candidate and what staging decides on: the lead kept for its phone in this run, the
    status and run of the ledger row of this lead and phone (None without one), and the lead
    holding the phone in the task (None when free)."""

    lead_id: str
    phone: str
    payload: str
    kept: str
    status: str | None
    old_run: str | None
    holder: str | None


def stage_candidates(engine: Engine, run_id: str, api_task_id: str) -> StagingCounts:
    """Turn this run's candidates into staged ledger rows, one per phone, exactly once.

    Each candidate that lost its phone to a more recent lead of the run (in another extract
    chunk) is rejected as a duplicate, every other one goes through ``decide_staging``,
    holding the task's staging lock (``_lock_task``) so that two runs at once decide on what
    the other has committed. PostgreSQL decides the whole run in one transaction, in SQL;
    elsewhere slice by slice in lead id order, one transaction per slice. The candidates are
    deleted at the end, so each slice sees the whole run when it looks for the lead kept for
    a phone.
    """
    _ensure_task_lock(engine, api_task_id)
    if engine.dialect.name == "postgresql":
        counts = _stage_run_in_sql(engine, run_id, api_task_id)
    else:
        counts = _stage_in_slices(engine, run_id, api_task_id)
    _forget_candidates(engine, run_id)
    return counts


def _stage_in_slices(engine: Engine, run_id: str, api_task_id: str) -> StagingCounts:
    counts = StagingCounts()
    last_lead = ""
    while True:
        with engine.begin() as conn:
            _lock_task(conn, api_task_id)  # decide on what other runs have committed
            chunk = _next_chunk(conn, run_id, api_task_id, after=last_lead)
            if not chunk:
                return counts
            last_lead = chunk[-1].lead_id
            _stage_chunk(conn, run_id, api_task_id, chunk, counts)


def _forget_candidates(engine: Engine, run_id: str) -> None:
    """Delete the run's candidates. On PostgreSQL, TRUNCATE the table when no other run has
    rows in it and nobody is using it: with autovacuum off, deleted rows would stay in the
    table for good, and every later run would read past them."""
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            try:
                with conn.begin_nested():
                    conn.exec_driver_sql(
                        f"LOCK TABLE {candidates.name} IN ACCESS EXCLUSIVE MODE NOWAIT"
                    )
            except DBAPIError:
                pass  # another run is writing or staging its candidates: delete ours only
            else:
                runs = conn.execute(
                    select(func.min(candidates.c.run_id), func.max(candidates.c.run_id))
                ).one()
                if set(runs) <= {run_id, None}:
                    conn.exec_driver_sql(f"TRUNCATE {candidates.name}")
                    return
        conn.execute(delete(candidates).where(candidates.c.run_id == run_id))


# -- set-based staging (PostgreSQL) ---------------------------------------------------------


def _decide_staging_sql(status: str, holder: str, lead: str) -> str:
    """``decide_staging`` as a SQL expression over the columns (or expressions) ``status``
    (of the ledger row of this lead and phone; NULL without one), ``holder`` (the lead
    holding the phone in the task; NULL when free) and ``lead``.

    Built by asking ``decide_staging`` itself for every status (and one it does not know)
    with each kind of holder (none, the lead itself, another lead), so the rules stay in one
    place; ``test_staging`` checks the expression against the function.
    """
    unknown = "(a status of a later release)"

    def by_status(holder_value: str | None) -> str:
        otherwise = decide_staging(unknown, holder_value, "lead")
        branches = [
            (f"{status} IS NULL" if value is None else f"{status} = '{value}'", decision)
            for value in (None, *Status)
            if (decision := decide_staging(value, holder_value, "lead")) != otherwise
        ]
        if not branches:
            return f"'{otherwise}'"
        whens = " ".join(f"WHEN {condition} THEN '{decision}'" for condition, decision in branches)
        return f"CASE {whens} ELSE '{otherwise}' END"

    return (
        f"CASE WHEN {holder} IS NULL THEN {by_status(None)} "
        f"WHEN {holder} = {lead} THEN {by_status('lead')} "
        f"ELSE {by_status('another lead')} END"
    )


def _sql_text(template: str, value: str) -> str:
    """A reason template ("... {} ...") as a SQL expression with ``value`` in its place."""
    before, after = (part.replace("'", "''") for part in template.split("{}"))
    return f"'{before}' || {value} || '{after}'"


_ACTIVE_SQL = ", ".join(f"'{status.value}'" for status in ACTIVE_STATUSES)
_DECISIONS = "lead_load_staging_decisions"

# One row per candidate of the run: the lead kept for its phone across the run (latest
# updated_at, then the highest lead id, as the transform de-duplicates a chunk), the status
# of the lead's row for this phone, the lead holding the phone, and the decision.
_DECIDE_SQL = f"""
INSERT INTO {_DECISIONS} (lead_id, phone, kept, holder, own_status, decision)
SELECT c.lead_id, c.phone, kept.lead_id, holder.lead_id, own.status,
    CASE
        WHEN kept.lead_id <> c.lead_id THEN '{DUPLICATE}'
        WHEN own.status = '{Status.STAGED.value}' AND own.run_id = CAST(:run_id AS TEXT)
            THEN '{STAGED_BY_THIS_RUN}'
        ELSE {_decide_staging_sql("own.status", "holder.lead_id", "c.lead_id")}
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
WHERE c.run_id = CAST(:run_id AS TEXT)
"""  # noqa: S608 - our own names and constants; values are bound

# The decisions, written, in this order: the rejects first (each candidate that lost its phone
# to a more recent lead of the run, and each whose phone another lead holds), then the
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
        ELSE {_sql_text(PHONE_ALREADY_LOADED, "d.holder")} END,
    :stamp, d.decision = '{DUPLICATE}'
FROM {_DECISIONS} AS d
WHERE d.decision IN ('{DUPLICATE}', '{StagingDecision.PHONE_TAKEN.value}')
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
    # A reject's ledger row: the new reason where the lead and phone were rejected before,
    f"""
    UPDATE {ledger.name} AS l
    SET reason = r.reason, run_id = CAST(:run_id AS TEXT), updated_at = :stamp
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
# run nor the task. set_config(..., true) lasts to the transaction's end.
_PLAN_EACH_TIME = "SELECT set_config('plan_cache_mode', 'force_custom_plan', true)"


def _stage_run_in_sql(engine: Engine, run_id: str, api_task_id: str) -> StagingCounts:
    """The whole run decided and written by a fixed number of statements (PostgreSQL)."""
    with engine.begin() as conn:  # not under the task lock: ANALYZE takes a while
        refresh_statistics(conn)
    params = {"run_id": run_id, "api_task_id": api_task_id, "stamp": now()}
    counts = StagingCounts()
    with engine.begin() as conn:
        _lock_task(conn, api_task_id)  # decide on what other runs have committed
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


# -- the portable path: slices by key --------------------------------------------------------


def _next_chunk(conn: Connection, run_id: str, api_task_id: str, after: str) -> list[_Lead]:
    """The next ``CHUNK`` candidates after lead ``after``, each with the lead kept for its
    phone across the whole run (the chunks were de-duplicated one by one), its own ledger
    row and the lead holding its phone in the task, each found by a correlated subquery."""
    best, own, holder = candidates.alias("best"), ledger.alias("own"), ledger.alias("holder")
    # The same order as the transform's de-duplication: latest updated_at, then highest id.
    kept = (
        select(best.c.lead_id)
        .where(best.c.run_id == run_id, best.c.phone == candidates.c.phone)
        .order_by(best.c.updated_at.desc(), best.c.lead_id.desc())
        .limit(1)
        .scalar_subquery()
    )

    def own_row(column: Column) -> Any:
        return (
            select(column)
            .where(
                own.c.api_task_id == api_task_id,
                own.c.lead_id == candidates.c.lead_id,
                own.c.phone == candidates.c.phone,
            )
            .scalar_subquery()
        )

    phone_holder = (
        select(holder.c.lead_id)
        .where(
            holder.c.api_task_id == api_task_id,
            holder.c.phone == candidates.c.phone,
            is_active(holder),  # at most one such row: the partial unique index
        )
        .scalar_subquery()
    )
    rows = conn.execute(
        select(
            candidates.c.lead_id,
            candidates.c.phone,
            candidates.c.payload,
            kept.label("kept"),
            own_row(own.c.status).label("status"),
            own_row(own.c.run_id).label("old_run"),
            phone_holder.label("holder"),
        )
        .where(candidates.c.run_id == run_id, candidates.c.lead_id > after)
        .order_by(candidates.c.lead_id)
        .limit(schema.CHUNK)  # read at call time: tests shrink it
    ).all()
    return [_Lead(**row._mapping) for row in rows]


def _stage_chunk(
    conn: Connection, run_id: str, api_task_id: str, chunk: list[_Lead], counts: StagingCounts
) -> None:
    """Reject the chunk's cross-chunk duplicates, decide every other lead with
    ``decide_staging``, and write the decisions with one statement per kind.

    Deciding a whole chunk before writing changes no outcome: a duplicate's rejected row is
    not active, and no two kept leads share a phone, so no decision depends on another
    row's write.
    """
    stamp = now()
    duplicates = [lead for lead in chunk if lead.kept != lead.lead_id]
    _write_rejects(
        conn,
        run_id,
        api_task_id,
        [
            {
                "lead_id": lead.lead_id,
                "raw_phone": lead.phone,
                "reason": DUPLICATE_IN_RUN.format(lead.kept),
            }
            for lead in duplicates
        ],
        stamp,
    )
    counts.add(DUPLICATE, len(duplicates))

    decided: dict[str, list[_Lead]] = defaultdict(list)
    for lead in chunk:
        if lead.kept != lead.lead_id:
            continue  # a duplicate, rejected above
        if lead.status == Status.STAGED and lead.old_run == run_id:
            decided[STAGED_BY_THIS_RUN].append(lead)  # by an earlier try: nothing to write
            continue
        decided[decide_staging(lead.status, lead.holder, lead.lead_id)].append(lead)

    _insert_staged(conn, run_id, api_task_id, decided[StagingDecision.STAGE_NEW], stamp)
    _restage(conn, run_id, api_task_id, decided[StagingDecision.RESTAGE], stamp)
    _reject_taken_phones(conn, run_id, api_task_id, decided[StagingDecision.PHONE_TAKEN], stamp)
    for decision, leads in decided.items():
        counts.add(decision, len(leads))


def _insert_staged(
    conn: Connection, run_id: str, api_task_id: str, leads: list[_Lead], stamp: datetime
) -> None:
    """New leads: a ``staged`` row each (the partial unique index still guards the phone)."""
    if not leads:
        return
    conn.execute(
        insert(ledger),
        [
            {
                "api_task_id": api_task_id,
                "lead_id": lead.lead_id,
                "phone": lead.phone,
                "status": Status.STAGED.value,
                "run_id": run_id,
                "payload": lead.payload,
                "created_at": stamp,
                "updated_at": stamp,
            }
            for lead in leads
        ],
    )


def _restage(
    conn: Connection, run_id: str, api_task_id: str, leads: list[_Lead], stamp: datetime
) -> None:
    """Leads rejected before under the same phone and valid now: staged again."""
    if not leads:
        return
    conn.execute(
        update(ledger)
        .where(
            ledger.c.api_task_id == api_task_id,
            ledger.c.lead_id == bindparam("b_lead"),
            ledger.c.phone == bindparam("b_phone"),
            ledger.c.status == Status.REJECTED.value,
        )
        .values(
            status=Status.STAGED.value,
            reason=None,
            run_id=run_id,
            batch_no=None,
            unique_id=None,
            payload=bindparam("b_payload"),
            updated_at=stamp,
        ),
        [{"b_lead": x.lead_id, "b_phone": x.phone, "b_payload": x.payload} for x in leads],
    )


def _reject_taken_phones(
    conn: Connection, run_id: str, api_task_id: str, leads: list[_Lead], stamp: datetime
) -> None:
    """Leads whose phone another lead holds in the task: a reject row, the ledger unchanged."""
    if not leads:
        return
    conn.execute(
        insert(rejects),
        [
            {
                "run_id": run_id,
                "lead_id": lead.lead_id,
                "api_task_id": api_task_id,
                "raw_phone": lead.phone,
                "reason": PHONE_ALREADY_LOADED.format(lead.holder),
                "rejected_at": stamp,
                "in_ledger": False,
            }
            for lead in leads
        ],
    )


def clear_run(engine: Engine, run_id: str) -> None:
    """Forget what an earlier try of the run left, before the extract starts again (a retry,
    or a cleared re-run), in one transaction: its candidates and rejects, which the extract
    writes again under the same keys (run and lead), and its batches that nobody claimed or
    that the platform refused, so that the re-run plans afresh
    (``batch_lifecycle.forget_unclaimed_and_refused_batches``)."""
    with engine.begin() as conn:
        conn.execute(delete(candidates).where(candidates.c.run_id == run_id))
        conn.execute(delete(rejects).where(rejects.c.run_id == run_id))
        batch_lifecycle.forget_unclaimed_and_refused_batches(conn, run_id)
