"""The portable staging engine: any database SQLAlchemy speaks, slice by slice, by key.

Used on SQLite, MySQL and MariaDB (``engines.for_database``); it works on PostgreSQL too,
where the tests run it beside the set-based engine and compare what the two write.

Every statement finds its rows by key, executemany keyed on a primary key or a correlated
subquery on a unique index, one executemany statement per kind of change and slice (a
statement per row made staging 90% of the extract step's time). The ledger and candidates
tables grow by a whole run within minutes, faster than statistics follow (PostgreSQL's
autovacuum may be off); joins, semi-joins on a window query and ``IN (<5,000 values>)``
lists were then planned as a scan per row or per slice, which made staging quadratic. A key
look-up has only one plan.

Memory: the run is read a slice of ``CHUNK`` candidates at a time, and the rejects written a
slice at a time.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Column, Connection, Engine, bindparam, insert, select, update

from lead_load.core.ledger_rules import StagingDecision, Status, decide_staging
from lead_load.ledger import schema
from lead_load.ledger.schema import (
    candidates,
    is_active,
    ledger,
    now,
    rejects,
    slices,
    typed_key,
    typed_value,
)
from lead_load.ledger.staging.outcomes import (
    DUPLICATE,
    DUPLICATE_IN_RUN,
    PHONE_ALREADY_LOADED,
    STAGED_BY_THIS_RUN,
    SUPPRESSED,
    StagingCounts,
)
from lead_load.ledger.staging.tables import ensure_calling_task_lock, lock_calling_task


def _write_rejects(
    conn: Connection, run_id: str, api_task_id: str, rows: list[dict], stamp: datetime
) -> None:
    """A slice of rejects (lead_id, raw_phone, reason) into ``lead_load_rejects`` and the
    ledger: a ``rejected`` row for a lead and phone without one, the new reason where that
    lead and phone were rejected before (in no batch now: one a claim took out of its batch
    kept its number until then); any other ledger row (staged, in flight, imported, not
    imported) stays as it is."""
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
        .values(
            reason=typed_key("b_reason", ledger.c.reason),
            run_id=run_id,
            batch_no=None,
            updated_at=stamp,
        ),
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


def add_rejects(
    engine: Engine, run_id: str, api_task_id: str, rows: Iterable[dict[str, Any]]
) -> int:
    """The rejects (rows of ``tables.reject_row``) and their ledger rows, a slice per
    transaction, each under the calling task's staging lock."""
    stamp = now()
    added = 0
    ensure_calling_task_lock(engine, api_task_id)
    for slice_ in slices(rows):
        with engine.begin() as conn:
            lock_calling_task(conn, api_task_id)
            _write_rejects(conn, run_id, api_task_id, slice_, stamp)
        added += len(slice_)
    return added


@dataclass(frozen=True)
class _Lead:
    """A candidate and what staging decides on: the lead kept for its phone in this run, the
    status and run of the ledger row of this lead and phone (None without one), the lead
    holding the phone in the calling task (None when free), and whether the phone is on the
    suppression list."""

    lead_id: str
    phone: str
    payload: str
    kept: str
    status: str | None
    old_run: str | None
    holder: str | None
    suppressed: bool


def _next_chunk(conn: Connection, run_id: str, api_task_id: str, after: str) -> list[_Lead]:
    """The next ``CHUNK`` candidates after lead ``after``, each with the lead kept for its
    phone across the whole run (the chunks were de-duplicated one by one), its own ledger
    row, the lead holding its phone in the calling task and whether the phone is suppressed,
    each found by a correlated subquery."""
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
            schema.is_suppressed(candidates.c.phone).label("suppressed"),
        )
        .where(candidates.c.run_id == run_id, candidates.c.lead_id > after)
        .order_by(candidates.c.lead_id)
        .limit(schema.CHUNK)  # read at call time: tests shrink it
    ).all()
    return [_Lead(**{**row._mapping, "suppressed": bool(row.suppressed)}) for row in rows]


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
    """Leads whose phone another lead holds in the calling task: a reject row, the ledger
    unchanged."""
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


def _reject_suppressed(
    conn: Connection, run_id: str, api_task_id: str, leads: list[_Lead], stamp: datetime
) -> None:
    """Leads whose phone is on the suppression list: rejected as every reject with a ledger
    row is (``_write_rejects``): a ledger row of that lead and phone that is in flight or
    loaded stays as it is (a claim takes a staged one out of its batch)."""
    rows = [{"lead_id": x.lead_id, "raw_phone": x.phone, "reason": SUPPRESSED} for x in leads]
    _write_rejects(conn, run_id, api_task_id, rows, stamp)


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
        decision = decide_staging(lead.status, lead.holder, lead.lead_id, lead.suppressed)
        decided[decision].append(lead)

    _insert_staged(conn, run_id, api_task_id, decided[StagingDecision.STAGE_NEW], stamp)
    _restage(conn, run_id, api_task_id, decided[StagingDecision.RESTAGE], stamp)
    _reject_taken_phones(conn, run_id, api_task_id, decided[StagingDecision.PHONE_TAKEN], stamp)
    _reject_suppressed(conn, run_id, api_task_id, decided[StagingDecision.SUPPRESSED], stamp)
    for decision, leads in decided.items():
        counts.add(decision, len(leads))


def stage(engine: Engine, run_id: str, api_task_id: str) -> StagingCounts:
    """The run decided slice by slice in lead id order, one transaction per slice under the
    calling task's staging lock; the rejects' ledger rows were written by ``add_rejects``."""
    counts = StagingCounts()
    last_lead = ""
    while True:
        with engine.begin() as conn:
            lock_calling_task(conn, api_task_id)  # decide on what other runs have committed
            chunk = _next_chunk(conn, run_id, api_task_id, after=last_lead)
            if not chunk:
                return counts
            last_lead = chunk[-1].lead_id
            _stage_chunk(conn, run_id, api_task_id, chunk, counts)
