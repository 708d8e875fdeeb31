"""Read-only views of the loads for people: the list of runs (paged, filtered in SQL), one
run with its figures, and what a running load's page refreshes.

A run's figures are its summary (``lead_load.core.run_summary``): its stored report once it
reported, counted live by the same rules before that. Problems come out with phones masked.
"""

from __future__ import annotations

import json
from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import Engine, false, func, or_, select

from agent_api.masking import mask_phones_in
from lead_load.core import run_summary
from lead_load.core.ledger_rules import RunState
from lead_load.core.loads import DEFAULT_LOAD_ID, airflow_run_of
from lead_load.core.reject_reasons import invalid_by_kind
from lead_load.ledger.browse.values import Page, in_utc, page_bounds
from lead_load.ledger.counts import reject_reasons_by_run, suppressed_before_posting_by_run
from lead_load.ledger.schema import batches, ledger, runs


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
    def load_id(self) -> str:
        """The load (DAG) of the run, from its ledger run id."""
        return airflow_run_of(self.run_id)[0]

    @property
    def extracted(self) -> int | None:
        return self.figures.get("extracted")

    @property
    def imported(self) -> int | None:
        return self.figures.get("imported")


def list_loads(
    engine: Engine,
    page: int = 1,
    per_page: int = 20,
    *,
    state: str | None = None,
    load_id: str | None = None,
    api_task_id: str | None = None,
    window_from: date | None = None,
    window_to: date | None = None,
    readable_loads: Collection[str] | None = None,
) -> Page:
    """Loads newest first (by start, else by end for a run whose first steps never reached
    the ledger), paged; filtered in SQL when asked: by ``state``, by load (``load_id``), by
    calling task (exact), and to the runs whose window overlaps the days ``window_from`` to
    ``window_to`` (UTC, both included; either may be left open). ``readable_loads``: only
    the runs of these loads (those the user may read)."""
    page, per_page = page_bounds(page, per_page)
    where = []
    if state:
        where.append(runs.c.state == state)
    if load_id:
        where.append(of_load(load_id))
    if readable_loads is not None:
        where.append(or_(false(), *(of_load(load) for load in readable_loads)))
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


def of_load(load_id: str) -> Any:
    """SQL: the run is one of the load's (``loads.ledger_run_id``: the default load's run ids
    have no ``/``, another load's start with ``<load id>/``)."""
    if load_id == DEFAULT_LOAD_ID:
        return ~runs.c.run_id.contains("/", autoescape=True)
    prefix = f"{load_id}/"
    return func.substr(runs.c.run_id, 1, len(prefix)) == prefix


def loads_in_ledger(engine: Engine) -> list[str]:
    """The loads the ledger has runs of, for the list's filter."""
    with engine.connect() as conn:
        found = conn.execute(select(runs.c.run_id)).scalars()
        return sorted({airflow_run_of(run_id)[0] for run_id in found})


# A stored window bound up to its seconds: YYYY-MM-DDTHH:MM:SS.
_TO_SECONDS = 19


def _window_overlaps(first_day: date | None, last_day: date | None) -> list[Any]:
    """SQL: the run's window [start, end) overlaps [first_day 00:00, last_day + 1 day 00:00)
    UTC, i.e. start < the upper bound and end > the lower one.

    It compares the stored text, and assumes what the project writes there
    (``run_lifecycle.start_run`` from ``glue.settings_catalog``): ``datetime.isoformat()`` of a
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
        return sorted(api_task_id for api_task_id in found if api_task_id)


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
        taken_out = suppressed_before_posting_by_run(conn, ids)
        carried: dict[str, dict[str, int]] = {run_id: {} for run_id in ids}
        for run_id, source, count in conn.execute(
            select(ledger.c.run_id, ledger.c.carried_from, func.count())
            .where(ledger.c.run_id.in_(ids), ledger.c.carried_from.is_not(None))
            .group_by(ledger.c.run_id, ledger.c.carried_from)
        ):
            carried[run_id][source] = count
        for r in live:
            loads[r.run_id] = _live_load(
                r,
                statuses[r.run_id],
                kinds[r.run_id],
                carried[r.run_id],
                by_batch[r.run_id],
                taken_out[r.run_id],
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
        "started_at": in_utc(row.started_at),
        "finished_at": in_utc(row.finished_at),
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
    suppressed_before_posting: int = 0,
) -> Load:
    """The load counted from the ledger by the report's rules: while it runs, or when it
    ended without a report (its failure record, if any, says why)."""
    stored = _summary(row.summary)
    # The extract step's counts: kept on the row while the run goes; a run that stored a
    # report before and runs again without extracting again still has them in that report.
    extract = stored.get("extract_counts")
    if extract is None and isinstance(stored.get("extracted"), int):
        extract = stored
    figures = run_summary.live_summary(
        extract, statuses, carried, by_batch, suppressed_before_posting
    )
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
