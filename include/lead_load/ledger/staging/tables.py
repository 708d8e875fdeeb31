"""The tables a run stages through, as both engines use them, and the calling task's staging lock.

- ``lead_load_candidates``: the run's valid leads, written per extract chunk
  (``add_candidates``), decided by an engine, then forgotten (``forget_candidates``).
- ``lead_load_rejects``: the rows that will not be sent, each in the shape of
  ``reject_row``; which engine writes them, and when their ledger rows follow, is the
  engine's (``engines.StagingEngine.add_rejects``).
- ``lead_load_task_locks``: one row per calling task, locked by every transaction that
  decides and writes staging (``lock_calling_task``).

Two things here depend on the database, each in one place: rows go in with COPY where the
driver has it (``_copy_driver``), and PostgreSQL empties the candidates table with TRUNCATE
when it can (``forget_candidates``).
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Sequence
from typing import Any

import msgspec
from sqlalchemy import Connection, Engine, Table, delete, func, insert, select, update
from sqlalchemy.exc import DBAPIError, IntegrityError

from lead_load.ledger import planning
from lead_load.ledger.schema import candidates, now, rejects, slices, task_locks


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


# -- the calling task's staging lock --------------------------------------------------------


def ensure_calling_task_lock(engine: Engine, api_task_id: str) -> None:
    """Create the calling task's lock row once, in a transaction of its own."""
    try:
        with engine.begin() as conn:
            exists_ = conn.execute(
                select(task_locks.c.api_task_id).where(task_locks.c.api_task_id == api_task_id)
            ).first()
            if not exists_:
                conn.execute(insert(task_locks).values(api_task_id=api_task_id))
    except IntegrityError:
        pass  # another run created it at the same moment


def lock_calling_task(conn: Connection, api_task_id: str) -> None:
    """Hold the calling task's staging lock until this transaction ends.

    A row lock on PostgreSQL and MySQL; on SQLite the write takes the database's write lock
    before any read of the transaction, which is what serialises writers there.
    """
    held = conn.execute(
        update(task_locks).where(task_locks.c.api_task_id == api_task_id).values(locked_at=now())
    ).rowcount
    if held != 1:
        raise RuntimeError(f"no staging lock row for task {api_task_id}")


# -- writing rows: COPY where the driver has it ---------------------------------------------


def _copy_driver(conn: Connection) -> str | None:
    """The driver's name, psycopg or psycopg2, when ``conn`` can COPY (PostgreSQL)."""
    if conn.dialect.name != "postgresql":
        return None
    return {"psycopg": "psycopg", "psycopg2": "psycopg2"}.get(conn.dialect.driver)


_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def _copy_line(row: tuple) -> str:
    """A row in COPY's text format (psycopg2 leaves the formatting to us)."""
    return (
        "\t".join("\\N" if value is None else str(value).translate(_COPY_ESCAPES) for value in row)
        + "\n"
    )


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


def insert_rows(
    conn: Connection, table: Table, columns: Sequence[str], rows: Iterable[tuple]
) -> int:
    """``rows`` (tuples in the order of ``columns``) into ``table``, inside ``conn``'s
    transaction: with COPY where the driver has it, else a slice per statement."""
    if _copy_driver(conn):
        return _copy(conn, table.name, columns, rows)
    added = 0
    for slice_ in slices(rows):
        conn.execute(insert(table), [dict(zip(columns, v, strict=True)) for v in slice_])
        added += len(slice_)
    return added


# -- candidates and rejects ----------------------------------------------------------------

_CANDIDATE_COLUMNS = ("run_id", "lead_id", "phone", "updated_at", "payload")


def add_candidates(engine: Engine, run_id: str, rows: Iterable[dict[str, Any]]) -> int:
    """Store a chunk's valid rows (lead_id, phone, updated_at, payload dict) for this run,
    in one transaction."""
    values = (
        (
            run_id,
            str(row["lead_id"]),
            row["phone"],
            str(row["updated_at"]),
            payload_json(row["payload"]),
        )
        for row in rows
    )
    with engine.begin() as conn:
        return insert_rows(conn, candidates, _CANDIDATE_COLUMNS, values)


def _storable(text: str) -> str:
    """The warehouse's text as every database stores it: PostgreSQL refuses NUL in text, so a
    rejected value keeps it visibly as ``\\x00``."""
    return text.replace("\x00", "\\x00")


def reject_row(row: dict[str, Any]) -> dict[str, Any]:
    """A reject as both engines write it (lead_id, raw_phone, reason, in_ledger)."""
    raw_phone = row.get("raw_phone")
    return {
        "lead_id": _storable(str(row["lead_id"])),
        "raw_phone": None if raw_phone is None else _storable(str(raw_phone)),
        "reason": _storable(row["reason"]),
        # False for a row that is no lead of its own (no lead id, or another row of the
        # same lead stands for it): recorded as a reject, kept out of the ledger.
        "in_ledger": row.get("in_ledger", True),
    }


def forget_candidates(engine: Engine, run_id: str) -> None:
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


def clear_run(engine: Engine, run_id: str) -> None:
    """Forget what an earlier try of the run left, before the extract starts again (a retry,
    or a cleared re-run), in one transaction: its candidates and rejects, which the extract
    writes again under the same keys (run and lead), and its batches that nobody claimed or
    that the platform refused, so that the re-run plans afresh
    (``planning.forget_unclaimed_and_refused_batches``)."""
    with engine.begin() as conn:
        conn.execute(delete(candidates).where(candidates.c.run_id == run_id))
        conn.execute(delete(rejects).where(rejects.c.run_id == run_id))
        planning.forget_unclaimed_and_refused_batches(conn, run_id)
