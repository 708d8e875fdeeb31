"""The ledger in SQL: staging area, memory of what was sent, and per-run reports.

Works on any SQLAlchemy engine (SQLite and PostgreSQL are tested). Tables:

- ``lead_load_ledger``: one row per (target task, lead); rules in ``ledger_rules``.
  A partial unique index allows one *active* row per (target task, phone).
- ``lead_load_candidates``: a run's valid leads before the cross-chunk de-duplication.
- ``lead_load_batches``: one row per posted batch, with its ``unique_id``.
- ``lead_load_rejects``: every row a run did not send, with the reason.
- ``lead_load_runs``: one summary per run.

Every function streams in chunks, so memory stays bounded whatever the run's size.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import islice
from typing import Any

from sqlalchemy import (
    Boolean,
    Column,
    Connection,
    DateTime,
    Engine,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    bindparam,
    delete,
    func,
    insert,
    literal,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.sql import FromClause

from lead_load.ledger_rules import (
    ACTIVE_STATUSES,
    StagingDecision,
    Status,
    decide_staging,
    outcome_statuses,
)

CHUNK = 5000
metadata = MetaData()
_active = [s.value for s in ACTIVE_STATUSES]


def _is_active(table: FromClause) -> Any:
    """``table``'s row holds its phone. The statuses are written into the SQL, as in the
    partial index's WHERE: a database only uses a partial index for a query that repeats its
    condition, which bound parameters do not in SQLite or in a PostgreSQL generic plan (the
    look-up would scan the task's rows)."""
    statuses = bindparam("active_statuses", _active, expanding=True, literal_execute=True)
    return table.c.status.in_(statuses)


ledger = Table(
    "lead_load_ledger",
    metadata,
    Column("target_task_id", String(64), primary_key=True),
    Column("lead_id", String(128), primary_key=True),
    Column("phone", String(32), nullable=False),
    Column("status", String(16), nullable=False),
    Column("reason", Text),
    Column("run_id", String(250)),
    Column("batch_no", Integer),
    Column("unique_id", String(64)),
    Column("payload", Text),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Index("ix_lead_load_ledger_run_batch", "run_id", "batch_no"),
    Index("ix_lead_load_ledger_unique_id", "unique_id"),
)
# The database, not the code, guarantees one active row per phone and task.
Index(
    "ux_lead_load_ledger_active_phone",
    ledger.c.target_task_id,
    ledger.c.phone,
    unique=True,
    sqlite_where=ledger.c.status.in_(_active),
    postgresql_where=ledger.c.status.in_(_active),
)

candidates = Table(
    "lead_load_candidates",
    metadata,
    Column("run_id", String(250), primary_key=True),
    Column("lead_id", String(128), primary_key=True),
    Column("phone", String(32), nullable=False),
    Column("updated_at", String(40)),
    Column("payload", Text, nullable=False),
    Index("ix_lead_load_candidates_phone", "run_id", "phone"),
)

batches = Table(
    "lead_load_batches",
    metadata,
    Column("run_id", String(250), primary_key=True),
    Column("batch_no", Integer, primary_key=True),
    Column("target_task_id", String(64), nullable=False),
    Column("rows", Integer, nullable=False),
    Column("status", String(16), nullable=False),  # planned, sending, submitted, processed
    Column("unique_id", String(64)),
    Column("answer_lost", Boolean, nullable=False, default=False),
    Column("imported", Integer),
    Column("error", Text),
    Column("posted_at", DateTime(timezone=True)),
    Column("processed_at", DateTime(timezone=True)),
)

rejects = Table(
    "lead_load_rejects",
    metadata,
    Column("run_id", String(250), primary_key=True),
    Column("lead_id", String(128), primary_key=True),
    Column("target_task_id", String(64), nullable=False),
    Column("raw_phone", Text),
    Column("reason", Text, nullable=False),
    Column("rejected_at", DateTime(timezone=True), nullable=False),
)

runs = Table(
    "lead_load_runs",
    metadata,
    Column("run_id", String(250), primary_key=True),
    Column("target_task_id", String(64), nullable=False),
    Column("window_start", String(40)),
    Column("window_end", String(40)),
    Column("summary", Text),
    Column("finished_at", DateTime(timezone=True)),
)


def now() -> datetime:
    return datetime.now(UTC)


def create_tables(engine: Engine) -> None:
    metadata.create_all(engine, checkfirst=True)


def _chunks(items: Sequence[Any], size: int | None = None) -> Iterator[Sequence[Any]]:
    size = size or CHUNK  # read at call time, so tests can make the slices small
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _slices(rows: Iterable[Any]) -> Iterator[list[Any]]:
    """``rows`` as lists of at most ``CHUNK`` items, consumed lazily: whatever the caller
    passes (a generator over a whole run, say), at most one slice is in memory."""
    rows = iter(rows)
    while slice_ := list(islice(rows, CHUNK)):
        yield slice_


def _value(value: Any, column: Column) -> Any:
    """A constant typed like ``column``: each database gets it in the column's format
    (SQLite stores datetimes as SQLAlchemy-formatted text)."""
    return literal(value, column.type)


def _key(name: str, column: Column) -> Any:
    """A per-row parameter of an executemany statement, typed like ``column``."""
    return bindparam(name, type_=column.type)


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
        for slice_ in _slices(rows):
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
    engine: Engine, run_id: str, target_task_id: str, rows: Iterable[dict[str, Any]]
) -> int:
    """Record rows that will not be sent (lead_id, raw_phone, reason), in both tables.

    The ledger only gets a ``rejected`` row where the lead has none or a rejected one: a lead
    imported before stays imported when a later extract of it is bad.
    """
    stamp = now()
    added = 0
    with engine.begin() as conn:
        for slice_ in _slices(rows):
            _write_rejects(conn, run_id, target_task_id, [_reject(row) for row in slice_], stamp)
            added += len(slice_)
    return added


def _reject(row: dict[str, Any]) -> dict[str, Any]:
    raw_phone = row.get("raw_phone")
    return {
        "lead_id": str(row["lead_id"]),
        "raw_phone": None if raw_phone is None else str(raw_phone),
        "reason": row["reason"],
    }


def _write_rejects(
    conn: Connection, run_id: str, target_task_id: str, rows: list[dict], stamp: datetime
) -> None:
    """A slice of rejects (lead_id, raw_phone, reason) into ``lead_load_rejects`` and the
    ledger: a ``rejected`` row for a lead without one, the new reason for a lead rejected
    before; any other ledger row (staged, in flight, imported, not imported) stays as it is."""
    if not rows:
        return
    conn.execute(
        insert(rejects),
        [
            {"run_id": run_id, "target_task_id": target_task_id, "rejected_at": stamp, **row}
            for row in rows
        ],
    )
    keyed = [
        {
            "b_lead": row["lead_id"],
            "b_phone": (row["raw_phone"] or "")[:32],  # the ledger's phone is NOT NULL
            "b_reason": row["reason"],
        }
        for row in rows
    ]
    lead = _key("b_lead", ledger.c.lead_id)
    this_lead = (ledger.c.target_task_id == target_task_id, ledger.c.lead_id == lead)
    # The update goes first, so that it cannot touch the rows the insert adds.
    conn.execute(
        update(ledger)
        .where(*this_lead, ledger.c.status == Status.REJECTED.value)
        .values(reason=_key("b_reason", ledger.c.reason), run_id=run_id, updated_at=stamp),
        keyed,
    )
    new_row = {
        "target_task_id": _value(target_task_id, ledger.c.target_task_id),
        "lead_id": lead,
        "phone": _key("b_phone", ledger.c.phone),
        "status": _value(Status.REJECTED.value, ledger.c.status),
        "reason": _key("b_reason", ledger.c.reason),
        "run_id": _value(run_id, ledger.c.run_id),
        "created_at": _value(stamp, ledger.c.created_at),
        "updated_at": _value(stamp, ledger.c.updated_at),
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
    """A candidate and what staging decides on: the lead kept for its phone in this run, its
    ledger row's status, phone and run (None without a row), and the lead holding its phone
    in the task (None when free)."""

    lead_id: str
    phone: str
    payload: str
    kept: str
    status: str | None
    old_phone: str | None
    old_run: str | None
    holder: str | None


def stage_candidates(engine: Engine, run_id: str, target_task_id: str) -> StagingCounts:
    """Turn this run's candidates into staged ledger rows, one per phone, exactly once.

    Slice by slice in lead id order: each candidate that lost its phone to a more recent lead
    of the run (in another extract chunk) is rejected as a duplicate, every other one goes
    through ``decide_staging``. One transaction per slice; the candidates are deleted at the
    end, so each slice sees the whole run when it looks for the lead kept for a phone.
    """
    counts = StagingCounts()
    last_lead = ""
    while True:
        with engine.begin() as conn:
            chunk = _next_chunk(conn, run_id, target_task_id, after=last_lead)
            if not chunk:
                break
            last_lead = chunk[-1].lead_id
            _stage_chunk(conn, run_id, target_task_id, chunk, counts)
    with engine.begin() as conn:
        conn.execute(delete(candidates).where(candidates.c.run_id == run_id))
    return counts


def _next_chunk(conn: Connection, run_id: str, target_task_id: str, after: str) -> list[_Lead]:
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
            .where(own.c.target_task_id == target_task_id, own.c.lead_id == candidates.c.lead_id)
            .scalar_subquery()
        )

    phone_holder = (
        select(holder.c.lead_id)
        .where(
            holder.c.target_task_id == target_task_id,
            holder.c.phone == candidates.c.phone,
            _is_active(holder),  # at most one such row: the partial unique index
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
            own_row(own.c.phone).label("old_phone"),
            own_row(own.c.run_id).label("old_run"),
            phone_holder.label("holder"),
        )
        .where(candidates.c.run_id == run_id, candidates.c.lead_id > after)
        .order_by(candidates.c.lead_id)
        .limit(CHUNK)
    ).all()
    return [_Lead(**row._mapping) for row in rows]


def _stage_chunk(
    conn: Connection, run_id: str, target_task_id: str, chunk: list[_Lead], counts: StagingCounts
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
        target_task_id,
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
        decision = decide_staging(
            lead.status, lead.old_phone, lead.phone, lead.holder, lead.lead_id
        )
        decided[decision].append(lead)

    new, again = decided[StagingDecision.STAGE_NEW], decided[StagingDecision.RESTAGE]
    taken = decided[StagingDecision.PHONE_TAKEN]
    _insert_staged(conn, run_id, target_task_id, new, stamp)
    _restage(conn, run_id, target_task_id, again, stamp)
    _reject_taken_phones(conn, run_id, target_task_id, taken, stamp)
    counts.staged += len(new) + len(again)
    counts.already_loaded += len(taken) + len(decided[StagingDecision.ALREADY_LOADED])
    counts.in_flight += len(decided[StagingDecision.IN_FLIGHT])


def _insert_staged(
    conn: Connection, run_id: str, target_task_id: str, leads: list[_Lead], stamp: datetime
) -> None:
    """New leads: a ``staged`` row each (the partial unique index still guards the phone)."""
    if not leads:
        return
    conn.execute(
        insert(ledger),
        [
            {
                "target_task_id": target_task_id,
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
    conn: Connection, run_id: str, target_task_id: str, leads: list[_Lead], stamp: datetime
) -> None:
    """Leads rejected before, or refused by the platform under an old number: staged again."""
    if not leads:
        return
    conn.execute(
        update(ledger)
        .where(ledger.c.target_task_id == target_task_id, ledger.c.lead_id == bindparam("b_lead"))
        .values(
            phone=bindparam("b_phone"),
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
    conn: Connection, run_id: str, target_task_id: str, leads: list[_Lead], stamp: datetime
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
                "target_task_id": target_task_id,
                "raw_phone": lead.phone,
                "reason": f"phone_already_loaded (by lead {lead.holder})",
                "rejected_at": stamp,
            }
            for lead in leads
        ],
    )


# -- batches ------------------------------------------------------------------------------


def count_staged(engine: Engine, target_task_id: str) -> int:
    with engine.connect() as conn:
        return conn.execute(
            select(func.count()).where(
                ledger.c.target_task_id == target_task_id, ledger.c.status == Status.STAGED
            )
        ).scalar_one()


def plan_batches(engine: Engine, run_id: str, target_task_id: str, batch_size: int) -> list[dict]:
    """Number every staged row of the task (this run's, and any left by a failed run) into
    batches of ``batch_size``, in lead_id order. Returns small batch references.

    Two statements whatever the row count: one UPDATE numbers the rows with ROW_NUMBER(), one
    INSERT ... SELECT counts them into batches. (Paging through the rows 200 at a time cost a
    query per batch, each one a scan of the task's rows when the planner had no statistics:
    35 s for 200 batches.)
    """
    with engine.begin() as conn:
        # A cleared re-run numbers on from its earlier batches.
        first = (
            1
            + conn.execute(
                select(func.coalesce(func.max(batches.c.batch_no), -1)).where(
                    batches.c.run_id == run_id
                )
            ).scalar_one()
        )
        numbered = (
            select(
                ledger.c.lead_id,
                (func.row_number().over(order_by=ledger.c.lead_id) - 1).label("position"),
            )
            .where(ledger.c.target_task_id == target_task_id, ledger.c.status == Status.STAGED)
            .subquery()
        )
        conn.execute(
            update(ledger)
            .where(
                ledger.c.target_task_id == target_task_id, ledger.c.lead_id == numbered.c.lead_id
            )
            .values(
                run_id=run_id, batch_no=first + numbered.c.position // batch_size, updated_at=now()
            )
        )
        planned = (
            select(
                ledger.c.run_id,
                ledger.c.batch_no,
                ledger.c.target_task_id,
                func.count().label("rows"),
                literal("planned").label("status"),
                literal(False).label("answer_lost"),
            )
            .where(
                ledger.c.target_task_id == target_task_id,
                ledger.c.status == Status.STAGED,
                ledger.c.run_id == run_id,
                ledger.c.batch_no >= first,
            )
            .group_by(ledger.c.run_id, ledger.c.batch_no, ledger.c.target_task_id)
        )
        conn.execute(
            insert(batches).from_select(
                ["run_id", "batch_no", "target_task_id", "rows", "status", "answer_lost"], planned
            )
        )
        refs = conn.execute(
            select(batches.c.batch_no, batches.c.rows)
            .where(batches.c.run_id == run_id, batches.c.batch_no >= first)
            .order_by(batches.c.batch_no)
        ).all()
    return [{"batch_no": r.batch_no, "rows": r.rows} for r in refs]


def batch_state(engine: Engine, run_id: str, batch_no: int) -> dict[str, Any]:
    with engine.connect() as conn:
        row = conn.execute(
            select(batches).where(batches.c.run_id == run_id, batches.c.batch_no == batch_no)
        ).one()
        return dict(row._mapping)


def batch_rows(engine: Engine, run_id: str, batch_no: int, status: Status) -> list[dict]:
    """The API rows of a batch whose ledger status is ``status``."""
    with engine.connect() as conn:
        payloads = conn.execute(
            select(ledger.c.payload)
            .where(
                ledger.c.run_id == run_id,
                ledger.c.batch_no == batch_no,
                ledger.c.status == status,
            )
            .order_by(ledger.c.lead_id)
        ).scalars()
        return [json.loads(p) for p in payloads]


def set_batch_status(
    engine: Engine,
    run_id: str,
    batch_no: int,
    *,
    rows_from: Status,
    rows_to: Status,
    batch_status: str,
    phones: Sequence[str] | None = None,
    **batch_values: Any,
) -> int:
    """Move a batch's rows (optionally only ``phones``) between statuses, in one transaction."""
    stamp = now()
    with engine.begin() as conn:
        moved = 0
        conditions = [
            ledger.c.run_id == run_id,
            ledger.c.batch_no == batch_no,
            ledger.c.status == rows_from,
        ]
        row_values: dict[str, Any] = {"status": rows_to.value, "updated_at": stamp}
        if "unique_id" in batch_values:
            row_values["unique_id"] = batch_values["unique_id"]
        if "reason" in batch_values:
            row_values["reason"] = batch_values.pop("reason")
        if phones is None:
            moved = conn.execute(update(ledger).where(*conditions).values(**row_values)).rowcount
        else:
            for chunk in _chunks(list(phones)):
                moved += conn.execute(
                    update(ledger)
                    .where(*conditions, ledger.c.phone.in_(chunk))
                    .values(**row_values)
                ).rowcount
        conn.execute(
            update(batches)
            .where(batches.c.run_id == run_id, batches.c.batch_no == batch_no)
            .values(status=batch_status, **batch_values)
        )
    return moved


def record_outcome(
    engine: Engine,
    unique_id: str,
    imported: set[str],
    found_in_task: set[str] | None = None,
) -> dict[str, int]:
    """Apply a processed batch's callback to its submitted rows."""
    stamp = now()
    with engine.begin() as conn:
        sent = (
            conn.execute(
                select(ledger.c.phone).where(
                    ledger.c.unique_id == unique_id, ledger.c.status == Status.SUBMITTED
                )
            )
            .scalars()
            .all()
        )
        statuses = outcome_statuses(list(sent), imported, found_in_task)
        for status in (Status.IMPORTED, Status.NOT_IMPORTED):
            phones = [p for p, s in statuses.items() if s == status]
            for chunk in _chunks(phones):
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
            .values(status="processed", imported=counts["imported"], processed_at=stamp)
        )
    return counts


def submitted_phones(engine: Engine, unique_id: str) -> list[str]:
    with engine.connect() as conn:
        return list(
            conn.execute(
                select(ledger.c.phone).where(
                    ledger.c.unique_id == unique_id, ledger.c.status == Status.SUBMITTED
                )
            ).scalars()
        )


def answer_was_lost(engine: Engine, unique_id: str) -> bool:
    with engine.connect() as conn:
        return bool(
            conn.execute(
                select(func.count()).where(
                    batches.c.unique_id == unique_id, batches.c.answer_lost.is_(True)
                )
            ).scalar_one()
        )


def pending_batches(engine: Engine, target_task_id: str) -> list[dict[str, Any]]:
    """Batches of earlier runs that were accepted but whose outcome is not known yet."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(batches.c.run_id, batches.c.batch_no, batches.c.unique_id).where(
                batches.c.target_task_id == target_task_id, batches.c.status == "submitted"
            )
        ).all()
        return [dict(r._mapping) for r in rows]


def awaiting_callback(engine: Engine, run_id: str) -> list[str]:
    """``unique_id``s of the run's batches that the platform accepted and has not reported on."""
    with engine.connect() as conn:
        return list(
            conn.execute(
                select(batches.c.unique_id)
                .where(
                    batches.c.run_id == run_id,
                    batches.c.status == "submitted",
                    batches.c.unique_id.is_not(None),
                )
                .order_by(batches.c.batch_no)
            ).scalars()
        )


def interrupted_batches(engine: Engine, target_task_id: str) -> list[dict[str, Any]]:
    """Batches whose post was under way when its worker died (rows still ``sending``)."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(ledger.c.run_id, ledger.c.batch_no)
            .where(ledger.c.target_task_id == target_task_id, ledger.c.status == Status.SENDING)
            .distinct()
        ).all()
        return [dict(r._mapping) for r in rows]


def sending_phones(engine: Engine, run_id: str, batch_no: int) -> list[str]:
    with engine.connect() as conn:
        return list(
            conn.execute(
                select(ledger.c.phone).where(
                    ledger.c.run_id == run_id,
                    ledger.c.batch_no == batch_no,
                    ledger.c.status == Status.SENDING,
                )
            ).scalars()
        )


# -- reporting ----------------------------------------------------------------------------


def _count_by(engine: Engine, column, *conditions) -> dict[str, int]:
    """Row counts grouped by ``column`` among the rows matching ``conditions``."""
    with engine.connect() as conn:
        rows = conn.execute(select(column, func.count()).where(*conditions).group_by(column)).all()
    return {value: count for value, count in rows}


def status_counts(engine: Engine, target_task_id: str, run_id: str) -> dict[str, int]:
    """Ledger rows last touched by this run, by status."""
    return _count_by(
        engine,
        ledger.c.status,
        ledger.c.target_task_id == target_task_id,
        ledger.c.run_id == run_id,
    )


def reject_reasons(engine: Engine, run_id: str) -> dict[str, int]:
    """This run's rejects by kind: "duplicate_in_run (kept lead 7)" counts as duplicate_in_run."""
    counts: dict[str, int] = {}
    for reason, count in _count_by(engine, rejects.c.reason, rejects.c.run_id == run_id).items():
        kind = str(reason).split(" ", 1)[0]
        counts[kind] = counts.get(kind, 0) + count
    return counts


def batch_counts(engine: Engine, run_id: str) -> dict[str, int]:
    return _count_by(engine, batches.c.status, batches.c.run_id == run_id)


def save_run_summary(
    engine: Engine,
    run_id: str,
    target_task_id: str,
    window: tuple[str, str],
    summary: dict[str, Any],
) -> None:
    values = {
        "target_task_id": target_task_id,
        "window_start": window[0],
        "window_end": window[1],
        "summary": json.dumps(summary, sort_keys=True),
        "finished_at": now(),
    }
    with engine.begin() as conn:
        done = conn.execute(update(runs).where(runs.c.run_id == run_id).values(**values)).rowcount
        if not done:
            try:
                conn.execute(insert(runs).values(run_id=run_id, **values))
            except IntegrityError:  # pragma: no cover - a concurrent writer of the same run
                conn.execute(update(runs).where(runs.c.run_id == run_id).values(**values))


def clear_run(engine: Engine, run_id: str) -> None:
    """Forget a run's candidates and rejects before it starts again (a cleared re-run)."""
    with engine.begin() as conn:
        conn.execute(delete(candidates).where(candidates.c.run_id == run_id))
        conn.execute(delete(rejects).where(rejects.c.run_id == run_id))
        conn.execute(
            delete(batches).where(batches.c.run_id == run_id, batches.c.status == "planned")
        )
