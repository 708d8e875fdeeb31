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
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    Boolean,
    Column,
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
    select,
    text,
    update,
)
from sqlalchemy.exc import IntegrityError

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


def _chunks(items: Sequence[Any], size: int = CHUNK) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


# -- staging ------------------------------------------------------------------------------


def add_candidates(engine: Engine, run_id: str, rows: Iterable[dict[str, Any]]) -> int:
    """Store a chunk's valid rows (lead_id, phone, updated_at, payload dict) for this run."""
    values = [
        {
            "run_id": run_id,
            "lead_id": str(row["lead_id"]),
            "phone": row["phone"],
            "updated_at": str(row["updated_at"]),
            "payload": json.dumps(row["payload"], ensure_ascii=False),
        }
        for row in rows
    ]
    if values:
        with engine.begin() as conn:
            conn.execute(insert(candidates), values)
    return len(values)


def add_rejects(
    engine: Engine, run_id: str, target_task_id: str, rows: Iterable[dict[str, Any]]
) -> int:
    """Record rows that will not be sent (lead_id, raw_phone, reason), in both tables.

    The ledger only gets a ``rejected`` row where the lead has none or a rejected one: a lead
    imported before stays imported when a later extract of it is bad.
    """
    stamp = now()
    values = [
        {
            "run_id": run_id,
            "lead_id": str(row["lead_id"]),
            "target_task_id": target_task_id,
            "raw_phone": None if row.get("raw_phone") is None else str(row["raw_phone"]),
            "reason": row["reason"],
            "rejected_at": stamp,
        }
        for row in rows
    ]
    if not values:
        return 0
    with engine.begin() as conn:
        conn.execute(insert(rejects), values)
        for chunk in _chunks(values):
            ids = [v["lead_id"] for v in chunk]
            known = dict(
                conn.execute(
                    select(ledger.c.lead_id, ledger.c.status).where(
                        ledger.c.target_task_id == target_task_id, ledger.c.lead_id.in_(ids)
                    )
                ).all()
            )
            fresh = [v for v in chunk if v["lead_id"] not in known]
            again = [v for v in chunk if known.get(v["lead_id"]) == Status.REJECTED]
            if fresh:
                conn.execute(
                    insert(ledger),
                    [
                        {
                            "target_task_id": target_task_id,
                            "lead_id": v["lead_id"],
                            "phone": (v["raw_phone"] or "")[:32],
                            "status": Status.REJECTED.value,
                            "reason": v["reason"],
                            "run_id": run_id,
                            "created_at": stamp,
                            "updated_at": stamp,
                        }
                        for v in fresh
                    ],
                )
            if again:
                conn.execute(
                    update(ledger)
                    .where(
                        ledger.c.target_task_id == target_task_id,
                        ledger.c.lead_id == bindparam("b_lead"),
                    )
                    .values(reason=bindparam("b_reason"), run_id=run_id, updated_at=stamp),
                    [{"b_lead": v["lead_id"], "b_reason": v["reason"]} for v in again],
                )
    return len(values)


@dataclass
class StagingCounts:
    staged: int = 0
    duplicates_in_run: int = 0
    already_loaded: int = 0
    in_flight: int = 0

    def as_dict(self) -> dict[str, int]:
        return dict(self.__dict__)


def _cross_chunk_duplicates(engine: Engine, run_id: str) -> list[dict[str, Any]]:
    """Candidates beaten by a more recent lead with the same phone (window function)."""
    ranked = text(
        """
        SELECT lead_id, phone, kept FROM (
            SELECT lead_id, phone,
                   ROW_NUMBER() OVER (PARTITION BY phone
                                      ORDER BY updated_at DESC, lead_id DESC) AS rn,
                   FIRST_VALUE(lead_id) OVER (PARTITION BY phone
                                      ORDER BY updated_at DESC, lead_id DESC) AS kept
            FROM lead_load_candidates WHERE run_id = :run_id
        ) ranked WHERE rn > 1
        """
    )
    with engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(ranked, {"run_id": run_id})]


def stage_candidates(engine: Engine, run_id: str, target_task_id: str) -> StagingCounts:
    """Turn this run's candidates into staged ledger rows, one per phone, exactly once."""
    counts = StagingCounts()
    dupes = _cross_chunk_duplicates(engine, run_id)
    if dupes:
        add_rejects(
            engine,
            run_id,
            target_task_id,
            (
                {
                    "lead_id": d["lead_id"],
                    "raw_phone": d["phone"],
                    "reason": f"duplicate_in_run (kept lead {d['kept']})",
                }
                for d in dupes
            ),
        )
        counts.duplicates_in_run = len(dupes)
        dupe_ids = [d["lead_id"] for d in dupes]
        with engine.begin() as conn:
            for chunk in _chunks(dupe_ids):
                conn.execute(
                    delete(candidates).where(
                        candidates.c.run_id == run_id, candidates.c.lead_id.in_(chunk)
                    )
                )

    last_lead = ""
    while True:
        with engine.begin() as conn:
            chunk = conn.execute(
                select(candidates.c.lead_id, candidates.c.phone, candidates.c.payload)
                .where(candidates.c.run_id == run_id, candidates.c.lead_id > last_lead)
                .order_by(candidates.c.lead_id)
                .limit(CHUNK)
            ).all()
            if not chunk:
                break
            last_lead = chunk[-1].lead_id
            _stage_chunk(conn, run_id, target_task_id, chunk, counts)
    with engine.begin() as conn:
        conn.execute(delete(candidates).where(candidates.c.run_id == run_id))
    return counts


def _stage_chunk(conn, run_id: str, target_task_id: str, chunk, counts: StagingCounts) -> None:
    ids = [r.lead_id for r in chunk]
    phones = [r.phone for r in chunk]
    existing = {
        r.lead_id: (r.status, r.phone, r.run_id)
        for r in conn.execute(
            select(ledger.c.lead_id, ledger.c.status, ledger.c.phone, ledger.c.run_id).where(
                ledger.c.target_task_id == target_task_id, ledger.c.lead_id.in_(ids)
            )
        )
    }
    holders = {
        r.phone: r.lead_id
        for r in conn.execute(
            select(ledger.c.phone, ledger.c.lead_id).where(
                ledger.c.target_task_id == target_task_id,
                ledger.c.phone.in_(phones),
                ledger.c.status.in_(_active),
            )
        )
    }
    stamp = now()
    for row in chunk:
        status, old_phone, old_run = existing.get(row.lead_id, (None, None, None))
        if status == Status.STAGED and old_run == run_id:
            counts.staged += 1  # staged by an earlier try of this same run
            continue
        decision = decide_staging(status, old_phone, row.phone, holders.get(row.phone), row.lead_id)
        if decision == StagingDecision.STAGE_NEW:
            conn.execute(
                insert(ledger).values(
                    target_task_id=target_task_id,
                    lead_id=row.lead_id,
                    phone=row.phone,
                    status=Status.STAGED.value,
                    run_id=run_id,
                    payload=row.payload,
                    created_at=stamp,
                    updated_at=stamp,
                )
            )
            counts.staged += 1
        elif decision == StagingDecision.RESTAGE:
            conn.execute(
                update(ledger)
                .where(ledger.c.target_task_id == target_task_id, ledger.c.lead_id == row.lead_id)
                .values(
                    phone=row.phone,
                    status=Status.STAGED.value,
                    reason=None,
                    run_id=run_id,
                    batch_no=None,
                    unique_id=None,
                    payload=row.payload,
                    updated_at=stamp,
                )
            )
            counts.staged += 1
        elif decision == StagingDecision.PHONE_TAKEN:
            conn.execute(
                insert(rejects).values(
                    run_id=run_id,
                    lead_id=row.lead_id,
                    target_task_id=target_task_id,
                    raw_phone=row.phone,
                    reason=f"phone_already_loaded (by lead {holders[row.phone]})",
                    rejected_at=stamp,
                )
            )
            counts.already_loaded += 1
        elif decision == StagingDecision.ALREADY_LOADED:
            counts.already_loaded += 1
        else:
            counts.in_flight += 1


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
    batches of ``batch_size``, in lead_id order. Returns small batch references."""
    refs: list[dict] = []
    with engine.connect() as conn:  # a cleared re-run numbers on from its earlier batches
        batch_no = (
            1
            + conn.execute(
                select(func.coalesce(func.max(batches.c.batch_no), -1)).where(
                    batches.c.run_id == run_id
                )
            ).scalar_one()
        )
    last_lead = ""
    while True:
        with engine.begin() as conn:
            ids = (
                conn.execute(
                    select(ledger.c.lead_id)
                    .where(
                        ledger.c.target_task_id == target_task_id,
                        ledger.c.status == Status.STAGED,
                        ledger.c.lead_id > last_lead,
                    )
                    .order_by(ledger.c.lead_id)
                    .limit(batch_size)
                )
                .scalars()
                .all()
            )
            if not ids:
                break
            last_lead = ids[-1]
            conn.execute(
                update(ledger)
                .where(ledger.c.target_task_id == target_task_id, ledger.c.lead_id.in_(ids))
                .values(run_id=run_id, batch_no=batch_no, updated_at=now())
            )
            conn.execute(
                insert(batches).values(
                    run_id=run_id,
                    batch_no=batch_no,
                    target_task_id=target_task_id,
                    rows=len(ids),
                    status="planned",
                    answer_lost=False,
                )
            )
        refs.append({"batch_no": batch_no, "rows": len(ids)})
        batch_no += 1
    return refs


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
