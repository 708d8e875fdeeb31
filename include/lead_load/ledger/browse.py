"""Read-only views of the ledger for people: loads, batches, rejects and one lead's history.

What the "Lead loads" page of the Airflow UI shows (plugins/lead_loads). Plain values come
out, phones already masked: no query here returns a full number, so nothing built on these
can leak one. SQLAlchemy only; every list is paged in SQL, so a run of a million rows costs
one page.
"""

from __future__ import annotations

import json
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import Engine, func, or_, select

from agent_api.masking import mask_phone, mask_phones_in
from lead_load.core import run_summary
from lead_load.core.ledger_rules import RunState, Status
from lead_load.core.phones import classify_phone, normalise_phone
from lead_load.core.reject_reasons import invalid_by_kind
from lead_load.ledger.counts import of_kind, reject_reasons_by_run
from lead_load.ledger.schema import CHUNK, batches, ledger, rejects, runs


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
    """One run of the DAG as the ledger knows it.

    ``figures``: the run's summary (``lead_load.core.run_summary``: the same keys, rules
    and words as its report, XCom and note). Once the run reported, they are its stored
    report (``reported``); before that, or when it died without one, they are counted live
    by the same rules from the extract step's counts and the ledger's rows, and a figure
    the extract step has not counted yet is None.
    """

    run_id: str
    api_task_id: str
    window_start: str | None
    window_end: str | None
    state: str | None
    started_at: datetime | None
    finished_at: datetime | None
    figures: dict[str, Any]
    reported: bool
    invalid_by_reason: dict[str, int] = field(default_factory=dict)
    batches_by_status: dict[str, int] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    failed_at: str | None = None
    # The run stored a summary this release cannot read (not a JSON object): its figures
    # are counted from the ledger instead, and the page says why.
    report_unreadable: bool = False

    @property
    def running(self) -> bool:
        return self.state == RunState.RUNNING

    @property
    def extracted(self) -> int | None:
        return self.figures.get("extracted")

    @property
    def imported(self) -> int | None:
        return self.figures.get("imported")


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


def list_loads(
    engine: Engine,
    page: int = 1,
    per_page: int = 20,
    *,
    state: str | None = None,
    api_task_id: str | None = None,
    window_from: date | None = None,
    window_to: date | None = None,
) -> Page:
    """Loads newest first (by start, else by end for a run whose first steps never reached
    the ledger), paged; filtered in SQL when asked: by ``state``, by calling task (exact),
    and to the runs whose window overlaps the days ``window_from`` to ``window_to`` (UTC,
    both included; either may be left open)."""
    page, per_page = _paging(page, per_page)
    where = []
    if state:
        where.append(runs.c.state == state)
    if api_task_id:
        where.append(runs.c.api_task_id == api_task_id)
    where += _window_overlaps(window_from, window_to)
    newest = func.coalesce(runs.c.started_at, runs.c.finished_at)
    with engine.connect() as conn:
        total = conn.execute(select(func.count()).select_from(runs).where(*where)).scalar_one()
        rows = conn.execute(
            select(runs)
            .where(*where)
            .order_by(newest.desc(), runs.c.run_id.desc())
            .limit(per_page)
            .offset((page - 1) * per_page)
        ).all()
        loads = _with_counts(conn, rows)
    return Page(loads, total, page, per_page)


# A stored window bound up to its seconds: YYYY-MM-DDTHH:MM:SS.
_TO_SECONDS = 19


def _window_overlaps(first_day: date | None, last_day: date | None) -> list[Any]:
    """SQL: the run's window [start, end) overlaps [first_day 00:00, last_day + 1 day 00:00)
    UTC, i.e. start < the upper bound and end > the lower one.

    It compares the stored text, and assumes what the project writes there
    (``batch_lifecycle.start_run`` from ``glue.settings``): ``datetime.isoformat()`` of a
    moment in UTC, ``2026-11-24T00:00:00+00:00``, with ``.ffffff`` before the offset when
    it has microseconds. The first 19 characters of such texts have one width, one zone and
    their separators in the same places, so they sort as their moments in any collation
    (PostgreSQL's and MariaDB's may weigh ``.`` and ``+`` otherwise than ASCII, but those
    come later). The bounds are whole seconds, so ``start < upper`` holds exactly when
    ``start[:19] < upper[:19]``, and ``end > lower`` when ``end[:19] >= lower[:19]`` and
    ``end`` is not ``lower`` itself (a fraction past ``lower``'s second is later than it).
    A window written in another zone, or with a ``Z``, would be compared wrongly; a run
    without a window matches no window filter.
    """
    conditions = []
    start, end = runs.c.window_start, runs.c.window_end
    if last_day is not None:
        upper = datetime.combine(last_day + timedelta(days=1), time(), UTC).isoformat()
        conditions.append(func.substr(start, 1, _TO_SECONDS) < upper[:_TO_SECONDS])
    if first_day is not None:
        lower = datetime.combine(first_day, time(), UTC).isoformat()
        conditions.append(func.substr(end, 1, _TO_SECONDS) >= lower[:_TO_SECONDS])
        conditions.append(end != lower)
    return conditions


def calling_tasks(engine: Engine) -> list[str]:
    """The calling tasks the ledger's runs loaded into, for the list's filter."""
    with engine.connect() as conn:
        found = conn.execute(select(runs.c.api_task_id).distinct()).scalars()
        return sorted(task for task in found if task)


def get_load(engine: Engine, run_id: str) -> Load | None:
    with engine.connect() as conn:
        row = conn.execute(select(runs).where(runs.c.run_id == run_id)).one_or_none()
        return _with_counts(conn, [row])[0] if row is not None else None


def has_run(engine: Engine, run_id: str) -> bool:
    """The ledger has a row of the run."""
    with engine.connect() as conn:
        found = conn.execute(select(runs.c.run_id).where(runs.c.run_id == run_id)).first()
    return found is not None


def live_counts(engine: Engine, run_id: str) -> dict[str, Any]:
    """What a running load's page refreshes: the run's state and figures (``Load``), its
    batches by status."""
    found = get_load(engine, run_id)
    if found is None:
        return {"state": None, "reported": False, "figures": {}, "batches": {}}
    return {
        "state": found.state,
        "reported": found.reported,
        "figures": found.figures,
        "batches": found.batches_by_status,
    }


def _with_counts(conn, run_rows: list) -> list[Load]:
    """Loads for ``run_rows``. A reported run's figures are its stored summary; the others
    are counted with one grouped query per table for all of them."""
    loads = {r.run_id: _stored_load(r) for r in run_rows}
    live = [r for r in run_rows if loads[r.run_id] is None]
    ids = [r.run_id for r in live]
    if ids:
        statuses = _grouped(conn, ledger.c.run_id, ledger.c.status, ids)
        by_batch = _grouped(conn, batches.c.run_id, batches.c.status, ids)
        kinds = reject_reasons_by_run(conn, ids)
        carried: dict[str, dict[str, int]] = {run_id: {} for run_id in ids}
        for run_id, source, count in conn.execute(
            select(ledger.c.run_id, ledger.c.carried_from, func.count())
            .where(ledger.c.run_id.in_(ids), ledger.c.carried_from.is_not(None))
            .group_by(ledger.c.run_id, ledger.c.carried_from)
        ):
            carried[run_id][source] = count
        for r in live:
            loads[r.run_id] = _live_load(
                r, statuses[r.run_id], kinds[r.run_id], carried[r.run_id], by_batch[r.run_id]
            )
    return [loads[r.run_id] for r in run_rows]


def _grouped(conn, run_column, column, ids: list[str]) -> dict[str, dict[str, int]]:
    found: dict[str, dict[str, int]] = {run_id: {} for run_id in ids}
    for run_id, value, count in conn.execute(
        select(run_column, column, func.count())
        .where(run_column.in_(ids))
        .group_by(run_column, column)
    ):
        found[run_id][value] = count
    return found


def _identity(row) -> dict[str, Any]:
    return {
        "run_id": row.run_id,
        "api_task_id": row.api_task_id,
        "window_start": row.window_start,
        "window_end": row.window_end,
        "state": row.state,
        "started_at": _utc(row.started_at),
        "finished_at": _utc(row.finished_at),
    }


def _stored_load(row) -> Load | None:
    """The load as its report stored it; None when it has not reported (or runs again)."""
    summary = _summary(row.summary)
    if row.state == RunState.RUNNING or not isinstance(summary.get("extracted"), int):
        return None
    return Load(
        **_identity(row),
        figures={key: summary.get(key) for key in _FIGURE_KEYS},
        reported=True,
        invalid_by_reason=dict(summary.get("invalid_by_reason") or {}),
        batches_by_status=dict(summary.get("batches_by_status") or {}),
        problems=[mask_phones_in(str(p)) for p in summary.get("problems") or []],
        failed_at=summary.get("failed_at"),
    )


def _live_load(
    row,
    statuses: dict[str, int],
    kinds: dict[str, int],
    carried: dict[str, int],
    by_batch: dict[str, int],
) -> Load:
    """The load counted from the ledger by the report's rules: while it runs, or when it
    ended without a report (its failure record, if any, says why)."""
    stored = _summary(row.summary)
    # The extract step's counts: kept on the row while the run goes; a run that stored a
    # report before and runs again without extracting again still has them in that report.
    extract = stored.get("extract_counts")
    if extract is None and isinstance(stored.get("extracted"), int):
        extract = stored
    figures = run_summary.live_summary(extract, statuses, carried, by_batch)
    return Load(
        **_identity(row),
        figures={key: figures.get(key) for key in _FIGURE_KEYS},
        reported=False,
        invalid_by_reason=invalid_by_kind(kinds),
        batches_by_status=dict(sorted(by_batch.items())),
        problems=[mask_phones_in(str(p)) for p in stored.get("problems") or []],
        failed_at=stored.get("failed_at"),
        report_unreadable=_read_summary(row.summary) is None,
    )


# What a Load carries of the summary: the figures and the reject ratio.
_FIGURE_KEYS = (*run_summary.FIGURE_WORDS, "reject_ratio")


def _summary(stored: str | None) -> dict[str, Any]:
    found = _read_summary(stored)
    return found if found is not None else {}


def _read_summary(stored: str | None) -> dict[str, Any] | None:
    """The stored summary; None when its text is no JSON object."""
    try:
        summary = json.loads(stored) if stored else {}
    except ValueError:
        return None
    return summary if isinstance(summary, dict) else None


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
        return reject_reasons_by_run(conn, [run_id])[run_id]


def rejects_of(
    engine: Engine, run_id: str, kind: str | None = None, page: int = 1, per_page: int = 50
) -> Page:
    """The run's rejects (of one ``kind`` if given), lead id order, raw phones masked."""
    page, per_page = _paging(page, per_page)
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


def _paging(page: int, per_page: int) -> tuple[int, int]:
    return max(1, int(page)), min(max(1, int(per_page)), 500)


def _utc(value: datetime | None) -> datetime | None:
    """SQLite hands timestamps back without a zone; the ledger writes them in UTC."""
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)
