"""Staging: a run's extracted leads become ledger rows exactly once per target task.

Candidates and rejects are written per chunk as the extract streams; ``stage_candidates``
then decides every candidate against the ledger (``core.ledger_rules.decide_staging``).
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    Column,
    Connection,
    Engine,
    bindparam,
    delete,
    insert,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError

from lead_load.core.ledger_rules import (
    BatchStatus,
    StagingDecision,
    Status,
    decide_staging,
)
from lead_load.ledger import schema
from lead_load.ledger.schema import (
    batches,
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
# Staging works on slices of at most CHUNK rows, so its memory does not grow with the run,
# and writes each slice with one executemany statement per kind of change (a statement per
# row made staging 90% of the extract step's time).
#
# Every statement finds its rows by key: executemany keyed on a primary key, or a correlated
# subquery on a unique index. The ledger and candidates tables grow by a whole run within
# minutes, faster than statistics follow (PostgreSQL's autovacuum may be off); joins,
# semi-joins on a window query and `IN (<5,000 values>)` lists were then planned as a scan
# per row or per slice, which made staging quadratic. A key look-up has only one plan.


def add_candidates(engine: Engine, run_id: str, rows: Iterable[dict[str, Any]]) -> int:
    """Store a chunk's valid rows (lead_id, phone, updated_at, payload dict) for this run."""
    added = 0
    with engine.begin() as conn:
        for slice_ in slices(rows):
            conn.execute(
                insert(candidates),
                [
                    {
                        "run_id": run_id,
                        "lead_id": str(row["lead_id"]),
                        "phone": row["phone"],
                        "updated_at": str(row["updated_at"]),
                        "payload": json.dumps(row["payload"], ensure_ascii=False),
                    }
                    for row in slice_
                ],
            )
            added += len(slice_)
    return added


def add_rejects(
    engine: Engine, run_id: str, api_task_id: str, rows: Iterable[dict[str, Any]]
) -> int:
    """Record rows that will not be sent (lead_id, raw_phone, reason), in both tables.

    The ledger only gets a ``rejected`` row where the lead has none or a rejected one: a lead
    imported before stays imported when a later extract of it is bad.
    """
    stamp = now()
    added = 0
    _ensure_task_lock(engine, api_task_id)
    for slice_ in slices(rows):
        with engine.begin() as conn:
            _lock_task(conn, api_task_id)
            _write_rejects(conn, run_id, api_task_id, [_reject(row) for row in slice_], stamp)
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


@dataclass
class StagingCounts:
    staged: int = 0
    duplicates_in_run: int = 0
    already_loaded: int = 0
    in_flight: int = 0

    def as_dict(self) -> dict[str, int]:
        return dict(self.__dict__)


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

    Slice by slice in lead id order: each candidate that lost its phone to a more recent lead
    of the run (in another extract chunk) is rejected as a duplicate, every other one goes
    through ``decide_staging``. One transaction per slice; the candidates are deleted at the
    end, so each slice sees the whole run when it looks for the lead kept for a phone.
    """
    counts = StagingCounts()
    last_lead = ""
    _ensure_task_lock(engine, api_task_id)
    while True:
        with engine.begin() as conn:
            _lock_task(conn, api_task_id)  # decide on what other runs have committed
            chunk = _next_chunk(conn, run_id, api_task_id, after=last_lead)
            if not chunk:
                break
            last_lead = chunk[-1].lead_id
            _stage_chunk(conn, run_id, api_task_id, chunk, counts)
    with engine.begin() as conn:
        conn.execute(delete(candidates).where(candidates.c.run_id == run_id))
    return counts


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
                "reason": f"duplicate_in_run (kept lead {lead.kept})",
            }
            for lead in duplicates
        ],
        stamp,
    )
    counts.duplicates_in_run += len(duplicates)

    decided: dict[StagingDecision, list[_Lead]] = defaultdict(list)
    for lead in chunk:
        if lead.kept != lead.lead_id:
            continue  # a duplicate, rejected above
        if lead.status == Status.STAGED and lead.old_run == run_id:
            counts.staged += 1  # staged by an earlier try of this same run
            continue
        decision = decide_staging(lead.status, lead.holder, lead.lead_id)
        decided[decision].append(lead)

    new, again = decided[StagingDecision.STAGE_NEW], decided[StagingDecision.RESTAGE]
    taken = decided[StagingDecision.PHONE_TAKEN]
    _insert_staged(conn, run_id, api_task_id, new, stamp)
    _restage(conn, run_id, api_task_id, again, stamp)
    _reject_taken_phones(conn, run_id, api_task_id, taken, stamp)
    counts.staged += len(new) + len(again)
    counts.already_loaded += len(taken) + len(decided[StagingDecision.ALREADY_LOADED])
    counts.in_flight += len(decided[StagingDecision.IN_FLIGHT])


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
                "reason": f"phone_already_loaded (by lead {lead.holder})",
                "rejected_at": stamp,
            }
            for lead in leads
        ],
    )


def clear_run(engine: Engine, run_id: str) -> None:
    """Forget a run's candidates and rejects before it starts again (a cleared re-run)."""
    with engine.begin() as conn:
        conn.execute(delete(candidates).where(candidates.c.run_id == run_id))
        conn.execute(delete(rejects).where(rejects.c.run_id == run_id))
        # Its batches that nobody claimed: the re-run plans afresh.
        conn.execute(
            delete(batches).where(
                batches.c.run_id == run_id, batches.c.status == BatchStatus.PLANNED
            )
        )
