"""Counts for a run's summary, read from the ledger."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import Connection, Engine, func, or_, select

from lead_load.core.ledger_rules import BatchStatus, Status
from lead_load.core.reject_reasons import NO_REASON, by_kind
from lead_load.ledger.schema import batches, ledger, rejects, runs


def _count_by(engine: Engine, column, *conditions) -> dict[str, int]:
    """Row counts grouped by ``column`` among the rows matching ``conditions``."""
    with engine.connect() as conn:
        rows = conn.execute(select(column, func.count()).where(*conditions).group_by(column)).all()
    return {value: count for value, count in rows}


def status_counts(engine: Engine, api_task_id: str, run_id: str) -> dict[str, int]:
    """Ledger rows last touched by this run, by status."""
    return _count_by(
        engine,
        ledger.c.status,
        ledger.c.api_task_id == api_task_id,
        ledger.c.run_id == run_id,
    )


def suppressed_before_posting(engine: Engine, run_id: str) -> int:
    """The run's rows its claims took out of their batches, their phones suppressed after
    staging (``batch_lifecycle.claim``)."""
    with engine.connect() as conn:
        return suppressed_before_posting_by_run(conn, [run_id])[run_id]


def suppressed_before_posting_by_run(conn: Connection, run_ids: list[str]) -> dict[str, int]:
    """``suppressed_before_posting`` of each of ``run_ids``: their rejected rows that are in a
    batch. Staging writes rejected rows in no batch (and takes a row it rejects again out of
    its batch), so a rejected row keeps a batch number only when a claim took it out."""
    found = dict.fromkeys(run_ids, 0)
    for run_id, count in conn.execute(
        select(ledger.c.run_id, func.count())
        .where(
            ledger.c.run_id.in_(run_ids),
            ledger.c.status == Status.REJECTED,
            ledger.c.batch_no.is_not(None),
        )
        .group_by(ledger.c.run_id)
    ):
        found[run_id] = count
    return found


def reject_reasons(engine: Engine, run_id: str) -> dict[str, int]:
    """This run's rejects by kind (``reject_reasons.kind_of``), most frequent first."""
    with engine.connect() as conn:
        return reject_reasons_by_run(conn, [run_id])[run_id]


def reject_reasons_by_run(conn: Connection, run_ids: list[str]) -> dict[str, dict[str, int]]:
    """The rejects of each of ``run_ids`` by kind, most frequent first: grouped in SQL by
    the reason's first word, then by kind (``invalid_field:`` and ``invalid_field`` are one)."""
    word = reason_first_word(conn.dialect.name)
    found: dict[str, dict[str | None, int]] = {run_id: {} for run_id in run_ids}
    for run_id, token, count in conn.execute(
        select(rejects.c.run_id, word, func.count())
        .where(rejects.c.run_id.in_(run_ids))
        .group_by(rejects.c.run_id, word)
    ):
        found[run_id][token] = found[run_id].get(token, 0) + count
    return {run_id: by_kind(tokens) for run_id, tokens in found.items()}


def reason_first_word(dialect: str) -> Any:
    """SQL for a reject reason's first word (the part before its first space), which holds
    its kind: ``kind_of`` reads the kind out of it."""
    reason = rejects.c.reason
    if dialect == "postgresql":
        return func.split_part(reason, " ", 1).label("kind")
    if dialect in ("mysql", "mariadb"):
        return func.substring_index(reason, " ", 1).label("kind")
    return func.substr(reason, 1, func.instr(reason.concat(" "), " ") - 1).label("kind")


def of_kind(kind: str) -> Any:
    """SQL: the reject's reason is of ``kind`` (its kind alone, or followed by a detail)."""
    reason = rejects.c.reason
    if kind == NO_REASON:
        return func.trim(reason) == ""
    return or_(
        reason == kind,
        *(reason.startswith(f"{kind}{mark}", autoescape=True) for mark in (" ", ":", "(")),
    )


def batch_counts(engine: Engine, run_id: str) -> dict[str, int]:
    return _count_by(engine, batches.c.status, batches.c.run_id == run_id)


def refused_batches(engine: Engine, run_id: str) -> list[dict[str, Any]]:
    """The run's batches the platform refused for good (``failed``): batch_no, rows, error."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(batches.c.batch_no, batches.c.rows, batches.c.error)
            .where(batches.c.run_id == run_id, batches.c.status == BatchStatus.FAILED)
            .order_by(batches.c.batch_no)
        ).all()
    return [dict(r._mapping) for r in rows]


def lead_id_range(engine: Engine, run_id: str, batch_no: int) -> tuple[str, str, int] | None:
    """The first and last lead id of a batch (its rows go out in lead id order) and its row
    count, to name the batch in logs; None when the ledger has no row of it."""
    with engine.connect() as conn:
        first, last, count = conn.execute(
            select(func.min(ledger.c.lead_id), func.max(ledger.c.lead_id), func.count()).where(
                ledger.c.run_id == run_id, ledger.c.batch_no == batch_no
            )
        ).one()
    return (first, last, count) if count else None


def recorded_summary(engine: Engine, run_id: str) -> dict[str, Any]:
    """The summary stored on the run's row (empty when there is none yet)."""
    with engine.connect() as conn:
        stored = conn.execute(select(runs.c.summary).where(runs.c.run_id == run_id)).scalar()
    return json.loads(stored) if stored else {}
