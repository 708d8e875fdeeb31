"""Read-only views of the ledger for people: loads, batches, rejects and one lead's history.

What the "Lead loads" page of the Airflow UI shows (plugins/lead_loads). Plain values come
out, phones already masked: no query here returns a full number, so nothing built on these
can leak one. SQLAlchemy only; every list is paged in SQL, so a run of a million rows costs
one page.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, func, or_, select

from agent_api.masking import mask_phone, mask_phones_in
from lead_load.core.ledger_rules import RunState, Status
from lead_load.core.phones import normalise_phone
from lead_load.ledger.schema import batches, ledger, rejects, runs

# Reject kinds that are not bad data: the row's phone is sent (or was) for another lead.
DUPLICATE_KINDS = ("duplicate_in_run",)
ALREADY_LOADED_KINDS = ("phone_already_loaded",)


@dataclass(frozen=True)
class Page:
    """One page of a longer list; ``page`` counts from 1."""

    items: list[Any]
    total: int
    page: int
    per_page: int

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.per_page))


@dataclass(frozen=True)
class Load:
    """One run of the DAG as the ledger knows it. ``extracted`` is None until the run's
    report stored it; the other counts are read from the ledger's rows."""

    run_id: str
    api_task_id: str
    window_start: str | None
    window_end: str | None
    state: str | None
    started_at: datetime | None
    finished_at: datetime | None
    extracted: int | None
    imported: int = 0
    not_imported: int = 0
    rejected: int = 0
    duplicates: int = 0
    already_loaded: int = 0
    carried_over: int = 0
    statuses: dict[str, int] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    @property
    def running(self) -> bool:
        return self.state == RunState.RUNNING


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
    """Everything the ledger remembers of a lead: its rows per target task and phone (their
    latest state) and every run's reject of it, newest first."""

    rows: list[LedgerRow]
    rejects: list[Reject]


# -- loads ---------------------------------------------------------------------------------


def list_loads(engine: Engine, page: int = 1, per_page: int = 20) -> Page:
    """Loads newest first (by start, else by end for a run whose first steps never reached
    the ledger)."""
    page, per_page = _paging(page, per_page)
    newest = func.coalesce(runs.c.started_at, runs.c.finished_at)
    with engine.connect() as conn:
        total = conn.execute(select(func.count()).select_from(runs)).scalar_one()
        rows = conn.execute(
            select(runs)
            .order_by(newest.desc(), runs.c.run_id.desc())
            .limit(per_page)
            .offset((page - 1) * per_page)
        ).all()
        loads = _with_counts(conn, rows)
    return Page(loads, total, page, per_page)


def get_load(engine: Engine, run_id: str) -> Load | None:
    with engine.connect() as conn:
        row = conn.execute(select(runs).where(runs.c.run_id == run_id)).one_or_none()
        return _with_counts(conn, [row])[0] if row is not None else None


def live_counts(engine: Engine, run_id: str) -> dict[str, Any]:
    """What changes while a run goes: its state, its rows by status, its batches by status."""
    with engine.connect() as conn:
        state = conn.execute(select(runs.c.state).where(runs.c.run_id == run_id)).scalar()
        rows = dict(
            conn.execute(
                select(ledger.c.status, func.count())
                .where(ledger.c.run_id == run_id)
                .group_by(ledger.c.status)
            ).all()
        )
        by_batch = dict(
            conn.execute(
                select(batches.c.status, func.count())
                .where(batches.c.run_id == run_id)
                .group_by(batches.c.status)
            ).all()
        )
        rejected = conn.execute(
            select(func.count()).select_from(rejects).where(rejects.c.run_id == run_id)
        ).scalar_one()
    return {"state": state, "rows": rows, "batches": by_batch, "rejects": rejected}


def _with_counts(conn, run_rows: list) -> list[Load]:
    """Loads for ``run_rows``, counted with one grouped query per table for all of them."""
    ids = [r.run_id for r in run_rows]
    statuses: dict[str, dict[str, int]] = {run_id: {} for run_id in ids}
    for run_id, status, count in conn.execute(
        select(ledger.c.run_id, ledger.c.status, func.count())
        .where(ledger.c.run_id.in_(ids))
        .group_by(ledger.c.run_id, ledger.c.status)
    ):
        statuses[run_id][status] = count
    kinds: dict[str, dict[str, int]] = {run_id: {} for run_id in ids}
    kind = reason_kind(conn.dialect.name)
    for run_id, token, count in conn.execute(
        select(rejects.c.run_id, kind, func.count())
        .where(rejects.c.run_id.in_(ids))
        .group_by(rejects.c.run_id, kind)
    ):
        name = _kind_name(token)
        kinds[run_id][name] = kinds[run_id].get(name, 0) + count
    carried = dict(
        conn.execute(
            select(ledger.c.run_id, func.count())
            .where(ledger.c.run_id.in_(ids), ledger.c.carried_from.is_not(None))
            .group_by(ledger.c.run_id)
        ).all()
    )
    return [
        _load(r, statuses[r.run_id], kinds[r.run_id], carried.get(r.run_id, 0)) for r in run_rows
    ]


def _load(row, statuses: dict[str, int], kinds: dict[str, int], carried: int) -> Load:
    summary = _summary(row.summary)
    special = DUPLICATE_KINDS + ALREADY_LOADED_KINDS
    return Load(
        run_id=row.run_id,
        api_task_id=row.api_task_id,
        window_start=row.window_start,
        window_end=row.window_end,
        state=row.state,
        started_at=_utc(row.started_at),
        finished_at=_utc(row.finished_at),
        extracted=summary.get("extracted") if isinstance(summary.get("extracted"), int) else None,
        imported=statuses.get(Status.IMPORTED, 0),
        not_imported=statuses.get(Status.NOT_IMPORTED, 0),
        rejected=sum(n for k, n in kinds.items() if k not in special),
        duplicates=sum(kinds.get(k, 0) for k in DUPLICATE_KINDS),
        already_loaded=sum(kinds.get(k, 0) for k in ALREADY_LOADED_KINDS),
        carried_over=carried,
        statuses=statuses,
        problems=[mask_phones_in(str(p)) for p in summary.get("problems") or []],
    )


def _summary(stored: str | None) -> dict[str, Any]:
    try:
        summary = json.loads(stored) if stored else {}
    except ValueError:
        return {}
    return summary if isinstance(summary, dict) else {}


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
    page, per_page = _paging(page, per_page)
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
        posted_at=_utc(row.posted_at),
        processed_at=_utc(row.processed_at),
        carried_to=row.carried_to,
    )


# -- rejects and carried-over rows -----------------------------------------------------------


def reject_kinds(engine: Engine, run_id: str) -> dict[str, int]:
    """The run's rejects by kind ("duplicate_in_run (kept lead 7)" is duplicate_in_run,
    "invalid_field: name ..." is invalid_field), most frequent first."""
    with engine.connect() as conn:
        kind = reason_kind(conn.dialect.name)
        rows = conn.execute(
            select(kind, func.count()).where(rejects.c.run_id == run_id).group_by(kind)
        ).all()
    counts: dict[str, int] = {}
    for token, count in rows:
        counts[_kind_name(token)] = counts.get(_kind_name(token), 0) + count
    return dict(sorted(counts.items(), key=lambda item: (-item[1], item[0])))


def rejects_of(
    engine: Engine, run_id: str, kind: str | None = None, page: int = 1, per_page: int = 50
) -> Page:
    """The run's rejects (of one ``kind`` if given), lead id order, raw phones masked."""
    page, per_page = _paging(page, per_page)
    where = [rejects.c.run_id == run_id]
    if kind:
        where.append(_of_kind(kind))
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


def carried_into(engine: Engine, run_id: str, page: int = 1, per_page: int = 50) -> Page:
    """Rows this run took over from runs that had finished or died."""
    page, per_page = _paging(page, per_page)
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


def reason_kind(dialect: str) -> Any:
    """SQL for a reject reason's first word, the part before its first space."""
    reason = rejects.c.reason
    if dialect == "postgresql":
        return func.split_part(reason, " ", 1).label("kind")
    if dialect in ("mysql", "mariadb"):
        return func.substring_index(reason, " ", 1).label("kind")
    return func.substr(reason, 1, func.instr(reason.concat(" "), " ") - 1).label("kind")


def _kind_name(token: str | None) -> str:
    return (token or "").rstrip(":") or "(no reason)"


def _of_kind(kind: str) -> Any:
    reason = rejects.c.reason
    return or_(
        reason == kind,
        reason.startswith(f"{kind} ", autoescape=True),
        reason.startswith(f"{kind}:", autoescape=True),
    )


def _reject(row) -> Reject:
    return Reject(
        run_id=row.run_id,
        lead_id=row.lead_id,
        api_task_id=row.api_task_id,
        raw_phone=mask_raw(row.raw_phone),
        reason=mask_phones_in(row.reason),
        rejected_at=_utc(row.rejected_at),
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
        updated_at=_utc(row.updated_at),
    )


# -- helpers -------------------------------------------------------------------------------

_DIGIT = re.compile(r"\d")


def mask_raw(value: str | None) -> str:
    """A raw phone value as the warehouse held it, masked whatever its spelling: with eight
    digits or more (``+86 139 0000 0001``, ``139-0000-0001``), every digit but the first
    three and the last four becomes ``*``; a shorter value is no phone and shows as it is."""
    if value is None:
        return ""
    text = str(value)
    digits = [m.start() for m in _DIGIT.finditer(text)]
    if len(digits) < 8:
        return text
    hidden = set(digits[3:-4])
    return "".join("*" if i in hidden else ch for i, ch in enumerate(text))


def _paging(page: int, per_page: int) -> tuple[int, int]:
    return max(1, int(page)), min(max(1, int(per_page)), 500)


def _utc(value: datetime | None) -> datetime | None:
    """SQLite hands timestamps back without a zone; the ledger writes them in UTC."""
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)
