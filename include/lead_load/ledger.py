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
    inspect,
    literal,
    select,
    text,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.sql import FromClause

from lead_load.core.ledger_rules import (
    ACTIVE_STATUSES,
    BatchStatus,
    StagingDecision,
    Status,
    decide_staging,
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
    # The run this row was taken over from (see batch_lifecycle.plan), for the summary.
    Column("carried_from", String(250)),
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
    Column("status", String(16), nullable=False),  # ledger_rules.BatchStatus
    Column("unique_id", String(64)),
    Column("answer_lost", Boolean, nullable=False, default=False),
    Column("imported", Integer),
    Column("error", Text),
    Column("posted_at", DateTime(timezone=True)),
    Column("processed_at", DateTime(timezone=True)),
    # The claim of a sending batch: who posts it, the token its writes must carry, and when
    # another process may reconcile it (batch_lifecycle).
    Column("lease_owner", String(400)),
    Column("lease_token", String(64)),
    Column("lease_expires_at", DateTime(timezone=True)),
    Column("claims", Integer, nullable=False, default=0),
    Column("carried_to", String(250)),
    Index("ix_lead_load_batches_unique_id", "unique_id"),
    Index("ix_lead_load_batches_task_status", "target_task_id", "status"),
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
    Column("state", String(16)),  # ledger_rules.RunState
    Column("started_at", DateTime(timezone=True)),
    Column("lease_expires_at", DateTime(timezone=True)),
)


# One row per target task, locked by every transaction that decides and writes staging
# (see _lock_task): two runs staging the same window at once then decide each slice on what
# the other has committed, instead of both inserting the same lead or phone.
task_locks = Table(
    "lead_load_task_locks",
    metadata,
    Column("target_task_id", String(64), primary_key=True),
    Column("locked_at", DateTime(timezone=True)),
)


def now() -> datetime:
    return datetime.now(UTC)


def create_tables(engine: Engine) -> None:
    """Create the ledger's tables, and add the columns a ledger made by an older release
    lacks (every added column is nullable or has a default)."""
    metadata.create_all(engine, checkfirst=True)
    existing = inspect(engine)
    for table in metadata.sorted_tables:
        have = {c["name"] for c in existing.get_columns(table.name)}
        missing = [c for c in table.columns if c.name not in have]
        if not missing:
            continue
        with engine.begin() as conn:
            for column in missing:
                kind = column.type.compile(dialect=engine.dialect)
                default = " NOT NULL DEFAULT 0" if column.name == "claims" else ""
                conn.execute(
                    text(f"ALTER TABLE {table.name} ADD COLUMN {column.name} {kind}{default}")
                )
        for index in table.indexes:
            index.create(engine, checkfirst=True)


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


def _ensure_task_lock(engine: Engine, target_task_id: str) -> None:
    """Create the task's lock row once, in a transaction of its own."""
    try:
        with engine.begin() as conn:
            exists_ = conn.execute(
                select(task_locks.c.target_task_id).where(
                    task_locks.c.target_task_id == target_task_id
                )
            ).first()
            if not exists_:
                conn.execute(insert(task_locks).values(target_task_id=target_task_id))
    except IntegrityError:
        pass  # another run created it at the same moment


def _lock_task(conn: Connection, target_task_id: str) -> None:
    """Hold the task's staging lock until this transaction ends.

    A row lock on PostgreSQL and MySQL; on SQLite the write takes the database's write lock
    before any read of the transaction, which is what serialises writers there.
    """
    held = conn.execute(
        update(task_locks)
        .where(task_locks.c.target_task_id == target_task_id)
        .values(locked_at=now())
    ).rowcount
    if held != 1:
        raise RuntimeError(f"no staging lock row for task {target_task_id}")


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
    _ensure_task_lock(engine, target_task_id)
    for slice_ in _slices(rows):
        with engine.begin() as conn:
            _lock_task(conn, target_task_id)
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
    _ensure_task_lock(engine, target_task_id)
    while True:
        with engine.begin() as conn:
            _lock_task(conn, target_task_id)  # decide on what other runs have committed
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
