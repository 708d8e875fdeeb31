"""A submitted batch's outcome: from its callback, or from the calling task's number list; the
landing check's repairs; and which batches await an outcome.

The platform accepted these batches (or may have: ``submitted`` with no ``unique_id``, the
post's answer lost). Evidence settles their rows: the callback's outcome (``settle``), the
phone in the calling task's number list, or the settle period passed with the phone still
absent (``settle_from_number_list``). A row the landing check proved wrong is repaired
(``repair_row``). Each write is conditional: another process may settle the same batch, and
the loser changes nothing.

With ``run_lifecycle``, ``planning`` and ``batch_lifecycle``, the only writers of run and
batch states and of the statuses of a batch's rows: each transition one conditional statement.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, case, func, or_, select, update
from sqlalchemy.exc import IntegrityError

from lead_load.core.ledger_rules import BatchStatus, RunState, Status, outcome_statuses
from lead_load.ledger.schema import (
    batches,
    chunks,
    database_now,
    ledger,
    now,
    one_batch,
    rows_of_batch,
    runs,
)

# -- by the callback ----------------------------------------------------------------------


def settle(
    engine: Engine,
    unique_id: str,
    imported: set[str],
    found_in_calling_task: set[str] | None = None,
) -> dict[str, int] | None:
    """submitted -> processed with the callback's outcome; its rows -> imported or
    not_imported. None: another process settled this batch first (nothing changed)."""
    stamp = now()
    with engine.begin() as conn:
        won = conn.execute(
            update(batches)
            .where(batches.c.unique_id == unique_id, batches.c.status == BatchStatus.SUBMITTED)
            .values(status=BatchStatus.PROCESSED.value, processed_at=stamp)
        ).rowcount
        if won != 1:
            return None
        sent = (
            conn.execute(
                select(ledger.c.phone).where(
                    ledger.c.unique_id == unique_id, ledger.c.status == Status.SUBMITTED
                )
            )
            .scalars()
            .all()
        )
        statuses = outcome_statuses(list(sent), imported, found_in_calling_task)
        for status in (Status.IMPORTED, Status.NOT_IMPORTED):
            phones = [p for p, s in statuses.items() if s == status]
            for chunk in chunks(phones):
                conn.execute(
                    update(ledger)
                    .where(
                        ledger.c.unique_id == unique_id,
                        ledger.c.status == Status.SUBMITTED,
                        ledger.c.phone.in_(chunk),
                    )
                    .values(
                        status=status.value,
                        reason=None
                        if status == Status.IMPORTED
                        else "absent from the batch's callback",
                        updated_at=stamp,
                    )
                )
        counts = {
            "imported": sum(1 for s in statuses.values() if s == Status.IMPORTED),
            "not_imported": sum(1 for s in statuses.values() if s == Status.NOT_IMPORTED),
        }
        conn.execute(
            update(batches)
            .where(batches.c.unique_id == unique_id)
            .values(imported=counts["imported"])
        )
    return counts


def settled_counts(engine: Engine, unique_id: str) -> dict[str, int]:
    """What the ledger holds for a batch another process settled."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(ledger.c.status, func.count())
            .where(ledger.c.unique_id == unique_id)
            .group_by(ledger.c.status)
        ).all()
    found = dict(rows)
    return {
        "imported": found.get(Status.IMPORTED, 0),
        "not_imported": found.get(Status.NOT_IMPORTED, 0),
    }


def submitted_phones(engine: Engine, unique_id: str) -> list[str]:
    with engine.connect() as conn:
        return list(
            conn.execute(
                select(ledger.c.phone).where(
                    ledger.c.unique_id == unique_id, ledger.c.status == Status.SUBMITTED
                )
            ).scalars()
        )


# -- from the calling task's number list ---------------------------------------------------


def submitted_rows_of_batch(engine: Engine, run_id: str, batch_no: int) -> dict[str, str]:
    """phone -> lead id of a batch's rows that await their outcome (the lead id is the
    ``extra`` the post carried)."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(ledger.c.phone, ledger.c.lead_id).where(
                *rows_of_batch(run_id, batch_no, Status.SUBMITTED)
            )
        ).all()
    return {phone: lead_id for phone, lead_id in rows}


def settle_from_number_list(
    engine: Engine,
    run_id: str,
    batch_no: int,
    listed: Iterable[str],
    *,
    settle_seconds: float | None = None,
) -> dict[str, int]:
    """Settle a submitted batch from the calling task's number list, where its callback cannot:
    rows whose phone the list shows -> imported. With ``settle_seconds``, and only when the
    batch was posted longer ago than that by the database's clock (the platform has surely
    processed it by then), the rows still absent -> staged: sent again by the next plan.
    The batch is processed once no row awaits. Each write is conditional (another process
    may settle the same batch); the counts are what this call changed."""
    stamp = now()
    found = restaged = 0
    with engine.begin() as conn:
        for chunk in chunks(sorted(set(listed))):
            found += conn.execute(
                update(ledger)
                .where(
                    *rows_of_batch(run_id, batch_no, Status.SUBMITTED), ledger.c.phone.in_(chunk)
                )
                .values(
                    status=Status.IMPORTED.value,
                    reason="found in the task's number list",  # as earlier releases wrote it
                    updated_at=stamp,
                )
            ).rowcount
        left = conn.execute(
            select(func.count()).where(*rows_of_batch(run_id, batch_no, Status.SUBMITTED))
        ).scalar_one()
        closing = [*one_batch(run_id, batch_no), batches.c.status == BatchStatus.SUBMITTED]
        if left and settle_seconds is not None:
            closing.append(batches.c.posted_at < database_now(engine, -settle_seconds))
        if left and settle_seconds is None:
            closed = 0
        else:
            closed = conn.execute(
                update(batches)
                .where(*closing)
                .values(status=BatchStatus.PROCESSED.value, processed_at=stamp)
            ).rowcount
        if closed and left:
            restaged = conn.execute(
                update(ledger)
                .where(*rows_of_batch(run_id, batch_no, Status.SUBMITTED))
                .values(
                    status=Status.STAGED.value,
                    unique_id=None,
                    reason="absent from the task after the settle period: sent again",
                    updated_at=stamp,
                )
            ).rowcount
        imported = conn.execute(
            select(func.count()).where(*rows_of_batch(run_id, batch_no, Status.IMPORTED))
        ).scalar_one()
        conn.execute(update(batches).where(*one_batch(run_id, batch_no)).values(imported=imported))
    return {
        "imported": found,
        "staged_again": restaged,
        "awaiting": 0 if closed else left,
        "closed": closed,
    }


# -- the landing check's repairs ----------------------------------------------------------


def repair_row(
    engine: Engine,
    api_task_id: str,
    lead_id: str,
    seen: tuple[str, str, datetime],
    *,
    to: Status,
    reason: str,
    clear_batch: bool = False,
) -> bool:
    """A row the landing check proved wrong: ``seen`` (status, phone, updated_at) -> ``to``.

    False when the row changed since the check read it (any write moves one of the three),
    or when another lead took its phone meanwhile (the unique index refuses a second active
    row): the repair no longer holds, and nothing is written.
    """
    status, phone, updated_at = seen
    values: dict[str, Any] = {"status": to.value, "reason": reason, "updated_at": now()}
    if clear_batch:
        values.update(batch_no=None, unique_id=None)
    statement = (
        update(ledger)
        .where(
            ledger.c.api_task_id == api_task_id,
            ledger.c.lead_id == lead_id,
            ledger.c.status == status,
            ledger.c.phone == phone,
            ledger.c.updated_at == updated_at,
        )
        .values(**values)
    )
    try:
        with engine.begin() as conn:
            return conn.execute(statement).rowcount == 1
    except IntegrityError:
        return False


# -- what awaits an outcome ---------------------------------------------------------------


def awaiting_callback(engine: Engine, run_id: str) -> list[str]:
    """``unique_id``s of the run's batches that the platform accepted and has not reported on."""
    with engine.connect() as conn:
        return list(
            conn.execute(
                select(batches.c.unique_id)
                .where(
                    batches.c.run_id == run_id,
                    batches.c.status == BatchStatus.SUBMITTED,
                    batches.c.unique_id.is_not(None),
                )
                .order_by(batches.c.batch_no)
            ).scalars()
        )


def pending_batches(engine: Engine, api_task_id: str) -> list[dict[str, Any]]:
    """Batches (of any run) the platform accepted and has not reported on yet."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(batches.c.run_id, batches.c.batch_no, batches.c.unique_id).where(
                batches.c.api_task_id == api_task_id,
                batches.c.status == BatchStatus.SUBMITTED,
            )
        ).all()
    return [dict(r._mapping) for r in rows]


def unsettled_batches(
    engine: Engine, api_task_id: str, settle_seconds: float = 0.0
) -> list[dict[str, Any]]:
    """Submitted batches of the calling task (any run) with their post's time: the platform accepted
    them, or may have (no ``unique_id``: the answer was lost), and the ledger awaits their
    outcome. ``settle_due``: posted longer than ``settle_seconds`` ago, by the database's
    clock (or at a time unknown)."""
    due = or_(
        batches.c.posted_at.is_(None), batches.c.posted_at < database_now(engine, -settle_seconds)
    )
    with engine.connect() as conn:
        rows = conn.execute(
            select(
                batches.c.run_id,
                batches.c.batch_no,
                batches.c.unique_id,
                batches.c.posted_at,
                case((due, True), else_=False).label("settle_due"),
            )
            .where(
                batches.c.api_task_id == api_task_id,
                batches.c.status == BatchStatus.SUBMITTED,
            )
            .order_by(batches.c.posted_at)
        ).all()
    return [dict(r._mapping) for r in rows]


def maybe_accepted_rows(engine: Engine, run_id: str) -> int:
    """Rows of the run whose post's answer was lost and that the calling task does not show yet."""
    with engine.connect() as conn:
        return conn.execute(
            select(func.count()).where(
                ledger.c.run_id == run_id,
                ledger.c.status == Status.SUBMITTED,
                ledger.c.unique_id.is_(None),
            )
        ).scalar_one()


def left_open_by_ended_runs(engine: Engine, api_task_id: str, run_id: str) -> list[dict[str, Any]]:
    """Submitted batches of the calling task that runs other than ``run_id`` left behind when they
    ended (finished, failed, or stopped renewing their lease): accepted, or maybe accepted,
    leads that are neither confirmed in the calling task nor staged to be sent."""
    live = select(runs.c.run_id).where(
        runs.c.state == RunState.RUNNING,
        runs.c.lease_expires_at > database_now(engine),
    )
    with engine.connect() as conn:
        rows = conn.execute(
            select(batches.c.run_id, batches.c.batch_no, batches.c.unique_id, batches.c.rows)
            .where(
                batches.c.api_task_id == api_task_id,
                batches.c.status == BatchStatus.SUBMITTED,
                batches.c.run_id != run_id,
                batches.c.run_id.not_in(live),
            )
            .order_by(batches.c.run_id, batches.c.batch_no)
        ).all()
    return [dict(r._mapping) for r in rows]
