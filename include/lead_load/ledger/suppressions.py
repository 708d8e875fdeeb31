"""The suppression list: phones that must never be called, in any calling task.

``lead_load_suppressions`` holds one row per phone, in the normalised form the ledger's
``phone`` holds (``core.phones.classify_phone``), so a look-up is one comparison of text.
This module owns every read and write of it: adding (all or nothing), removing, listing,
and the two questions the load asks: which of these phones are suppressed, and which numbers
were imported into a calling task before they were suppressed (docs/suppression.md).

Staging and a batch's claim do not call this module: they ask the database, inside their
own statements, through ``schema.is_suppressed``, so the list is read in the same
transaction as the decision it changes.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Engine, and_, delete, func, insert, select
from sqlalchemy.exc import IntegrityError

from lead_load.core.ledger_rules import Status
from lead_load.core.phones import classify_phone
from lead_load.ledger import schema
from lead_load.ledger.schema import chunks, is_active, ledger, now, suppressions

# The rows of a calling task the platform has, or may have: what a later suppression cannot
# undo there (the platform has no delete call).
ON_THE_PLATFORM = (Status.IMPORTED, Status.SUBMITTED)


@dataclass(frozen=True)
class Entry:
    """A phone to suppress (normalised) and why (None: no reason given)."""

    phone: str
    reason: str | None = None


@dataclass(frozen=True)
class Added:
    """What ``add`` did: phones added, and phones that were on the list already."""

    added: int
    already: int


@dataclass(frozen=True)
class Suppression:
    """One phone of the list, as it was added (``added_at`` in UTC)."""

    phone: str
    reason: str | None
    added_at: datetime | None
    added_by: str | None


@dataclass(frozen=True)
class SuppressedAfterImport:
    """Rows of a calling task on the platform (imported or submitted) whose phone is on the
    list now: how many, and the first of them by lead id (lead_id, phone, status)."""

    count: int
    first: list[dict[str, Any]]


def _not_normalised(phones: Iterable[str]) -> list[str]:
    """The phones that are not a valid phone in its normalised form: stored, they would
    never match a lead's phone, so the list would silently suppress nothing."""
    return [phone for phone in phones if classify_phone(phone)[0] != phone]


def add(engine: Engine, entries: Sequence[Entry], added_by: str | None = None) -> Added:
    """Put ``entries`` on the list, all or nothing, in one transaction. A phone on the list
    already is left as it is (its reason and who added it stay) and counted in ``already``;
    a phone given twice counts once, with its first reason.

    The primary key is the condition of every insert: should another process add one of
    these phones between this transaction's look-up and its insert, the insert fails, the
    transaction rolls back whole, and it is tried once more (it then finds the phone there).
    Raises ValueError, before anything is written, for a phone that is not normalised.
    """
    wanted: dict[str, str | None] = {}
    for entry in entries:
        wanted.setdefault(entry.phone, entry.reason)
    bad = _not_normalised(wanted)
    if bad:
        raise ValueError(f"{len(bad)} phones are not normalised mobile numbers; nothing added")
    for attempt in (1, 2):
        try:
            return _add_once(engine, wanted, added_by)
        except IntegrityError:
            if attempt == 2:
                raise
    raise AssertionError("unreachable")  # pragma: no cover


def _add_once(engine: Engine, wanted: dict[str, str | None], added_by: str | None) -> Added:
    """One transaction of ``add``: look up which phones are listed, insert the others."""
    stamp = now()
    with engine.begin() as conn:
        present = _listed_among(conn, list(wanted))
        new = [phone for phone in wanted if phone not in present]
        for slice_ in chunks(new):
            conn.execute(
                insert(suppressions),
                [
                    {"phone": p, "reason": wanted[p], "added_at": stamp, "added_by": added_by}
                    for p in slice_
                ],
            )
    return Added(added=len(new), already=len(present))


def remove(engine: Engine, phones: Sequence[str]) -> int:
    """Take ``phones`` off the list, in one transaction; how many were on it. A phone that
    was not is no error: the caller compares the count with what it asked for."""
    removed = 0
    with engine.begin() as conn:
        for slice_ in chunks(sorted(set(phones))):
            removed += conn.execute(
                delete(suppressions).where(suppressions.c.phone.in_(slice_))
            ).rowcount
    return removed


def listed(engine: Engine) -> Iterator[Suppression]:
    """Every phone of the list in phone order, read a slice at a time (keyset paging on the
    phone), so a long list costs the memory of a slice."""
    after = ""
    while True:
        with engine.connect() as conn:
            rows = conn.execute(
                select(suppressions)
                .where(suppressions.c.phone > after)
                .order_by(suppressions.c.phone)
                .limit(schema.CHUNK)  # read at call time: tests shrink it
            ).all()
        if not rows:
            return
        for row in rows:
            yield Suppression(row.phone, row.reason, _in_utc(row.added_at), row.added_by)
        after = rows[-1].phone


def _in_utc(value: datetime | None) -> datetime | None:
    """A stored time in UTC: SQLite and MySQL hand it back without a zone (the ledger writes
    UTC), PostgreSQL in the session's zone."""
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def suppressed_among(engine: Engine, phones: Iterable[str]) -> set[str]:
    """Which of ``phones`` (normalised) are on the list."""
    with engine.connect() as conn:
        return _listed_among(conn, list(phones))


def _listed_among(conn: Connection, phones: list[str]) -> set[str]:
    found: set[str] = set()
    for slice_ in chunks(sorted(set(phones))):
        found.update(
            conn.execute(
                select(suppressions.c.phone).where(suppressions.c.phone.in_(slice_))
            ).scalars()
        )
    return found


def imported_but_suppressed(
    engine: Engine, api_task_id: str, limit: int = 20
) -> SuppressedAfterImport:
    """Rows of ``api_task_id`` that the ledger says the platform has (imported) or may have
    (submitted) and whose phone is on the list now: suppressed after they were sent. The
    platform has no delete call, so someone must remove them there by hand.

    Driven by the list: each listed phone is looked up through the ledger's one-active-row-
    per-phone index (imported and submitted are active statuses), so the cost follows the
    list, not the calling task's size.
    """
    joined = suppressions.join(
        ledger,
        and_(
            ledger.c.api_task_id == api_task_id,
            ledger.c.phone == suppressions.c.phone,
            is_active(ledger),
        ),
    )
    on_platform = ledger.c.status.in_([status.value for status in ON_THE_PLATFORM])
    with engine.connect() as conn:
        count = conn.execute(
            select(func.count()).select_from(joined).where(on_platform)
        ).scalar_one()
        first = conn.execute(
            select(ledger.c.lead_id, ledger.c.phone, ledger.c.status)
            .select_from(joined)
            .where(on_platform)
            .order_by(ledger.c.lead_id, ledger.c.phone)
            .limit(limit)
        ).all()
    return SuppressedAfterImport(count, [dict(row._mapping) for row in first])
