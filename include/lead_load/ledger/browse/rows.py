"""Read-only views of a run's rows for people: its batches and their rows, its rejects (a page
at a time, or every one for a CSV export), the rows it took over, and one lead's history.

Phones come out masked (``mask_raw`` for the raw values the warehouse held): no query here
returns a full number, and none returns a payload, which holds one. Every list is paged in
SQL, so a run of a million rows costs one page.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine, func, or_, select

from agent_api.masking import mask_phone, mask_phones_in
from lead_load.core.ledger_rules import Status
from lead_load.core.phones import classify_phone, normalise_phone
from lead_load.ledger.browse.values import Page, in_utc, page_bounds
from lead_load.ledger.counts import of_kind, reject_reasons_by_run
from lead_load.ledger.schema import CHUNK, batches, ledger, rejects


@dataclass(frozen=True)
class Batch:
    run_id: str
    batch_no: int
    api_task_id: str
    rows: int
    status: str
    unique_id: str | None
    imported: int
    not_imported: int
    error: str | None
    posted_at: datetime | None
    processed_at: datetime | None
    carried_to: str | None


@dataclass(frozen=True)
class Reject:
    run_id: str
    lead_id: str
    api_task_id: str
    raw_phone: str  # masked
    reason: str
    rejected_at: datetime | None


@dataclass(frozen=True)
class LedgerRow:
    api_task_id: str
    lead_id: str
    phone: str  # masked
    status: str
    reason: str | None
    run_id: str | None
    batch_no: int | None
    unique_id: str | None
    carried_from: str | None
    updated_at: datetime | None


@dataclass(frozen=True)
class LeadHistory:
    """Everything the ledger remembers of a lead: its rows per calling task and phone (their
    latest state) and every run's reject of it, newest first."""

    rows: list[LedgerRow]
    rejects: list[Reject]


# -- batches -------------------------------------------------------------------------------


def batches_of(engine: Engine, run_id: str) -> list[Batch]:
    """The run's batches in plan order, with their rows' outcomes counted from the ledger."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(batches).where(batches.c.run_id == run_id).order_by(batches.c.batch_no)
        ).all()
        outcomes = _outcomes(conn, run_id)
    return [_batch(r, outcomes.get(r.batch_no, {})) for r in rows]


def get_batch(engine: Engine, run_id: str, batch_no: int) -> Batch | None:
    with engine.connect() as conn:
        row = conn.execute(
            select(batches).where(batches.c.run_id == run_id, batches.c.batch_no == batch_no)
        ).one_or_none()
        outcomes = _outcomes(conn, run_id, batch_no)
    return _batch(row, outcomes.get(batch_no, {})) if row is not None else None


def batch_rows(
    engine: Engine, run_id: str, batch_no: int, page: int = 1, per_page: int = 50
) -> Page:
    """The ledger rows of one batch (lead id order, as planned)."""
    page, per_page = page_bounds(page, per_page)
    where = (ledger.c.run_id == run_id, ledger.c.batch_no == batch_no)
    with engine.connect() as conn:
        total = conn.execute(select(func.count()).select_from(ledger).where(*where)).scalar_one()
        rows = conn.execute(
            _ledger_select()
            .where(*where)
            .order_by(ledger.c.lead_id, ledger.c.phone)
            .limit(per_page)
            .offset((page - 1) * per_page)
        ).all()
    return Page([_ledger_row(r) for r in rows], total, page, per_page)


def _outcomes(conn, run_id: str, batch_no: int | None = None) -> dict[int, dict[str, int]]:
    conditions = [ledger.c.run_id == run_id, ledger.c.batch_no.is_not(None)]
    if batch_no is not None:
        conditions.append(ledger.c.batch_no == batch_no)
    found: dict[int, dict[str, int]] = {}
    for number, status, count in conn.execute(
        select(ledger.c.batch_no, ledger.c.status, func.count())
        .where(*conditions)
        .group_by(ledger.c.batch_no, ledger.c.status)
    ):
        found.setdefault(number, {})[status] = count
    return found


def _batch(row, outcome: dict[str, int]) -> Batch:
    return Batch(
        run_id=row.run_id,
        batch_no=row.batch_no,
        api_task_id=row.api_task_id,
        rows=row.rows,
        status=row.status,
        unique_id=row.unique_id,
        imported=outcome.get(Status.IMPORTED, 0),
        not_imported=outcome.get(Status.NOT_IMPORTED, 0),
        error=mask_phones_in(row.error) if row.error else None,
        posted_at=in_utc(row.posted_at),
        processed_at=in_utc(row.processed_at),
        carried_to=row.carried_to,
    )


# -- rejects and carried-over rows ---------------------------------------------------------


def reject_kinds(engine: Engine, run_id: str) -> dict[str, int]:
    """The run's rejects by kind ("duplicate_in_run (kept lead 7)" is duplicate_in_run,
    "invalid_field: name ..." is invalid_field), most frequent first."""
    with engine.connect() as conn:
        return reject_reasons_by_run(conn, [run_id])[run_id]


def rejects_of(
    engine: Engine, run_id: str, kind: str | None = None, page: int = 1, per_page: int = 50
) -> Page:
    """The run's rejects (of one ``kind`` if given), lead id order, raw phones masked."""
    page, per_page = page_bounds(page, per_page)
    where = [rejects.c.run_id == run_id]
    if kind:
        where.append(of_kind(kind))
    with engine.connect() as conn:
        total = conn.execute(select(func.count()).select_from(rejects).where(*where)).scalar_one()
        rows = conn.execute(
            select(rejects)
            .where(*where)
            .order_by(rejects.c.lead_id)
            .limit(per_page)
            .offset((page - 1) * per_page)
        ).all()
    return Page([_reject(r) for r in rows], total, page, per_page)


def reject_pages(
    engine: Engine, run_id: str, kind: str | None = None, size: int = CHUNK
) -> Iterator[list[Reject]]:
    """Every reject of the run (of one ``kind`` if given), ``size`` at a time in lead id
    order, raw phones masked: for an export, which must not hold a million rows at once.
    Keyset paging on lead_id (unique within a run), one short connection per page, so a
    page costs the same wherever it falls."""
    where = [rejects.c.run_id == run_id]
    if kind:
        where.append(of_kind(kind))
    after: str | None = None
    while True:
        query = select(rejects).where(*where).order_by(rejects.c.lead_id).limit(size)
        if after is not None:
            query = query.where(rejects.c.lead_id > after)
        with engine.connect() as conn:
            rows = conn.execute(query).all()
        if rows:
            yield [_reject(r) for r in rows]
        if len(rows) < size:
            return
        after = rows[-1].lead_id


def carried_into(engine: Engine, run_id: str, page: int = 1, per_page: int = 50) -> Page:
    """Rows this run took over from runs that had finished or died."""
    page, per_page = page_bounds(page, per_page)
    where = (ledger.c.run_id == run_id, ledger.c.carried_from.is_not(None))
    with engine.connect() as conn:
        total = conn.execute(select(func.count()).select_from(ledger).where(*where)).scalar_one()
        rows = conn.execute(
            _ledger_select()
            .where(*where)
            .order_by(ledger.c.carried_from, ledger.c.lead_id)
            .limit(per_page)
            .offset((page - 1) * per_page)
        ).all()
    return Page([_ledger_row(r) for r in rows], total, page, per_page)


def _reject(row) -> Reject:
    return Reject(
        run_id=row.run_id,
        lead_id=row.lead_id,
        api_task_id=row.api_task_id,
        raw_phone=mask_raw(row.raw_phone),
        reason=mask_phones_in(row.reason),
        rejected_at=in_utc(row.rejected_at),
    )


# -- one lead ------------------------------------------------------------------------------


def find_lead(
    engine: Engine, lead_id: str | None = None, phone: str | None = None, limit: int = 200
) -> LeadHistory:
    """A lead's history by its id, or by a phone number in any spelling the load accepts
    (``+86 139-0000-0001`` finds ``13900000001``): the leads that held the number, and the
    rejects of those leads or of rows that carried the number."""
    lead_ids = [lead_id] if lead_id else []
    number = normalise_phone(phone) if phone else None
    with engine.connect() as conn:
        if number:
            lead_ids += conn.execute(
                select(ledger.c.lead_id).where(ledger.c.phone == number).distinct()
            ).scalars()
        reject_match = [rejects.c.lead_id.in_(lead_ids)] if lead_ids else []
        if number:
            raw = {number, phone.strip()}
            reject_match.append(rejects.c.raw_phone.in_(sorted(raw)))
        if not reject_match:
            return LeadHistory([], [])
        rows = conn.execute(
            _ledger_select()
            .where(ledger.c.lead_id.in_(lead_ids))
            .order_by(ledger.c.updated_at.desc(), ledger.c.api_task_id)
            .limit(limit)
        ).all()
        found = conn.execute(
            select(rejects)
            .where(or_(*reject_match))
            .order_by(rejects.c.rejected_at.desc(), rejects.c.run_id)
            .limit(limit)
        ).all()
    return LeadHistory([_ledger_row(r) for r in rows], [_reject(r) for r in found])


def _ledger_select():
    # Never the payload: it holds the full phone.
    return select(
        ledger.c.api_task_id,
        ledger.c.lead_id,
        ledger.c.phone,
        ledger.c.status,
        ledger.c.reason,
        ledger.c.run_id,
        ledger.c.batch_no,
        ledger.c.unique_id,
        ledger.c.carried_from,
        ledger.c.updated_at,
    )


def _ledger_row(row) -> LedgerRow:
    return LedgerRow(
        api_task_id=row.api_task_id,
        lead_id=row.lead_id,
        phone=mask_phone(row.phone),
        status=row.status,
        reason=mask_phones_in(row.reason) if row.reason else None,
        run_id=row.run_id,
        batch_no=row.batch_no,
        unique_id=row.unique_id,
        carried_from=row.carried_from,
        updated_at=in_utc(row.updated_at),
    )


# -- a raw phone, masked -------------------------------------------------------------------


def mask_raw(value: object) -> str:
    """A raw phone value as the warehouse held it, masked in the one style of every phone
    the page shows (first three and last four digits, a star for each digit between, no
    separators): a value that normalises to a mobile number shows as that number masked
    (``+86 139 0000 0001`` is ``139****0001``); any other value with eight digits or more
    shows its digits only, masked alike (``021-5555-12345`` is ``021*****2345``); a value
    with fewer digits is no phone and shows as it is (``12345``)."""
    if value is None:
        return ""
    text = str(value)
    number, _reason = classify_phone(text)
    if number:
        return mask_phone(number)
    # Every decimal digit counts, whatever its script (NFKC leaves some alone), as ASCII.
    digits = "".join(str(unicodedata.decimal(ch)) for ch in text if ch.isdecimal())
    if len(digits) < 8:
        return text
    return mask_phone(digits)
