"""The landing check: the ledger against the calling task's number list on the platform.

The rules are in ``landing_rules``; this module reads the ledger, reads the task's number
list (once per task) and applies the repairs that list proves:

1. the number list is read first, and the moment its reading began is kept;
2. then the ledger rows. A status may be newer than the list; that matters only for an
   ``imported`` row missing from it (it may have landed after the list was read), so such a
   row stamped after that moment is left for the next check (``landing_rules.judge``);
3. each repair is one conditional UPDATE that repeats the status, phone and updated_at the
   check read: a row changed in between is left alone and reported, never overwritten.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, and_, or_, select

from lead_load.core.landing_rules import (
    ACTIVE,
    COMPARED,
    LandingReport,
    Row,
    compare,
    judge,
)
from lead_load.core.ledger_rules import Status
from lead_load.core.settings import RunSettings
from lead_load.ledger import batch_lifecycle, schema

if TYPE_CHECKING:
    from agent_api.hooks.agent_api import AgentApiHook

log = logging.getLogger(__name__)

CHUNK = 5000
_table = schema.ledger


class ScopeError(ValueError):
    """What to check cannot be worked out from the arguments and the ledger."""


@dataclass(frozen=True)
class Scope:
    """The ledger rows of one task to check: those of ``run_ids``, or all (None)."""

    api_task_id: str
    run_ids: tuple[str, ...] | None = None

    def label(self) -> str:
        if self.run_ids is None:
            return f"task {self.api_task_id} (every row)"
        ids = self.run_ids
        if len(ids) == 1:
            return f"run {ids[0]} (task {self.api_task_id})"
        runs = ", ".join(ids) if len(ids) <= 3 else f"{ids[0]} ... {ids[-1]}"
        return f"{len(ids)} runs: {runs} (task {self.api_task_id})"


# -- scopes -------------------------------------------------------------------------------


def task_scope(api_task_id: str) -> Scope:
    return Scope(api_task_id)


def run_scope(engine: Engine, run_id: str, api_task_id: str | None = None) -> Scope:
    """The rows of ``run_id``; its task comes from ``lead_load_runs`` or, for a run that
    ended before writing its summary, from its ledger rows."""
    runs = schema.runs
    with engine.connect() as conn:
        recorded = conn.execute(
            select(runs.c.api_task_id).where(runs.c.run_id == run_id)
        ).scalar_one_or_none()
        if recorded is None:
            tasks = list(
                conn.execute(
                    select(_table.c.api_task_id).where(_table.c.run_id == run_id).distinct()
                ).scalars()
            )
        else:
            tasks = [recorded]
    if api_task_id is not None:
        if tasks and api_task_id not in tasks:
            raise ScopeError(f"run {run_id!r} loaded task {', '.join(tasks)}, not {api_task_id!r}")
        return Scope(api_task_id, (run_id,))
    if len(tasks) == 1:
        return Scope(tasks[0], (run_id,))
    if not tasks:
        raise ScopeError(
            f"run {run_id!r} is neither in lead_load_runs nor in the ledger; "
            "pass --api-task-id to check it anyway"
        )
    raise ScopeError(f"run {run_id!r} has rows of several tasks: pass --api-task-id")


def window_scopes(
    engine: Engine,
    window_start: str | datetime,
    window_end: str | datetime,
    api_task_id: str | None = None,
) -> list[Scope]:
    """One scope per task, holding every run whose window overlaps [start, end)."""
    start, end = _moment(window_start, "window start"), _moment(window_end, "window end")
    if end <= start:
        raise ScopeError(f"the window ends ({end.isoformat()}) before it starts")
    runs = schema.runs
    by_task: dict[str, list[str]] = defaultdict(list)
    with engine.connect() as conn:
        rows = conn.execute(
            select(runs.c.run_id, runs.c.api_task_id, runs.c.window_start, runs.c.window_end)
        ).all()
    for row in rows:
        if row.window_start is None or row.window_end is None:
            continue
        if api_task_id is not None and row.api_task_id != api_task_id:
            continue
        run_start = _moment(row.window_start, f"window start of run {row.run_id}")
        run_end = _moment(row.window_end, f"window end of run {row.run_id}")
        if run_start < end and run_end > start:
            by_task[row.api_task_id].append(row.run_id)
    return [Scope(task, tuple(sorted(ids))) for task, ids in sorted(by_task.items())]


def _moment(value: str | datetime, what: str) -> datetime:
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            raise ScopeError(f"{what} {value!r} is not an ISO date or time") from None
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


# -- the check ----------------------------------------------------------------------------


def inspect_scope(
    engine: Engine, hook: AgentApiHook, scope: Scope, sub_user_id: str | None = None
) -> LandingReport:
    """Compare the scope's ledger rows with the task's number list; change nothing."""
    list_read_at = schema.now()
    task_phones = {
        str(number.get("phone", ""))
        for number in hook.iter_task_numbers(scope.api_task_id, sub_user_id=sub_user_id)
    }
    report = LandingReport(scope=[scope.label()])
    suspects = []
    for chunk in _rows(engine, scope):
        report.checked += len(chunk)
        report.in_task += sum(1 for row in chunk if row.phone in task_phones)
        suspects += compare(chunk, task_phones)
    others = _rows_sharing_phones(engine, scope.api_task_id, {row.phone for row, _ in suspects})
    for row, kind in suspects:
        same_phone = [o for o in others.get(row.phone, []) if o.lead_id != row.lead_id]
        finding = judge(row, kind, same_phone, list_read_at)
        if finding is None:
            continue
        (report.pending if finding.repair else report.unrepairable).append(finding)
    return report


def apply_repairs(engine: Engine, report: LandingReport) -> LandingReport:
    """Apply the report's pending repairs, each one guarded transition of its own."""
    pending, report.pending = report.pending, []
    for finding in pending:
        row, repair = finding.row, finding.repair
        assert repair is not None
        repaired = batch_lifecycle.landing_repair(
            engine,
            row.api_task_id,
            row.lead_id,
            (row.status, row.phone, row.updated_at),
            to=repair.status,
            reason=repair.reason,
            clear_batch=repair.clear_batch,
        )
        (report.repaired if repaired else report.changed).append(finding)
    return report


def check(
    engine: Engine,
    hook: AgentApiHook,
    scopes: Iterable[Scope],
    sub_user_id: str | None = None,
    *,
    repair: bool = False,
) -> LandingReport:
    """Inspect every scope (and repair what is proven, if ``repair``); one report for all."""
    report = LandingReport()
    for scope in scopes:
        found = inspect_scope(engine, hook, scope, sub_user_id)
        report = report.merge(apply_repairs(engine, found) if repair else found)
    return report


def verify_run(
    run_id: str,
    api_task_id: str,
    ledger_engine: Engine,
    hook: AgentApiHook,
    sub_user_id: str | None = None,
    *,
    repair: bool = True,
) -> LandingReport:
    """The DAG's end-of-run check: the run's rows in ``api_task_id``, repaired by default."""
    report = check(ledger_engine, hook, [Scope(api_task_id, (run_id,))], sub_user_id, repair=repair)
    log.info("Landing check of %s: %s", report.scope[0], report.counts())
    for line in report.repaired_lines():
        log.info("Repaired %s", line)
    for line in report.unrepaired_lines():
        log.warning("Left %s", line)
    return report


# -- reading the ledger ---------------------------------------------------------------------


def _rows(engine: Engine, scope: Scope) -> Iterator[list[Row]]:
    """The scope's compared rows, a chunk at a time in (lead_id, phone) order (keyset paging
    on the primary key, so memory stays bounded and no transaction stays open)."""
    conditions = [
        _table.c.api_task_id == scope.api_task_id,
        _table.c.status.in_([s.value for s in COMPARED]),
    ]
    if scope.run_ids is not None:
        conditions.append(_table.c.run_id.in_(scope.run_ids))
    after = ("", "")
    while True:
        lead, phone = after
        with engine.connect() as conn:
            chunk = [
                Row(scope.api_task_id, r.lead_id, r.phone, r.status, r.updated_at)
                for r in conn.execute(
                    select(_table.c.lead_id, _table.c.phone, _table.c.status, _table.c.updated_at)
                    .where(
                        *conditions,
                        or_(
                            _table.c.lead_id > lead,
                            and_(_table.c.lead_id == lead, _table.c.phone > phone),
                        ),
                    )
                    .order_by(_table.c.lead_id, _table.c.phone)
                    .limit(CHUNK)
                )
            ]
        if not chunk:
            return
        yield chunk
        after = (chunk[-1].lead_id, chunk[-1].phone)


def _rows_sharing_phones(
    engine: Engine, api_task_id: str, phones: set[str]
) -> dict[str, list[Row]]:
    """The task's rows (in any run) holding one of ``phones`` actively, or not_imported."""
    statuses = [s.value for s in ACTIVE] + [Status.NOT_IMPORTED.value]
    found: dict[str, list[Row]] = defaultdict(list)
    ordered = sorted(phones)
    for start in range(0, len(ordered), CHUNK):
        with engine.connect() as conn:
            for r in conn.execute(
                select(_table.c.lead_id, _table.c.phone, _table.c.status).where(
                    _table.c.api_task_id == api_task_id,
                    _table.c.phone.in_(ordered[start : start + CHUNK]),
                    _table.c.status.in_(statuses),
                )
            ):
                found[r.phone].append(Row(api_task_id, r.lead_id, r.phone, r.status))
    return found


def verify_landing(
    settings: RunSettings, ledger_engine: Engine, agent_api: AgentApiHook
) -> dict[str, Any]:
    """The landing check of this run's rows, repairing what the platform's list proves.

    Returns ``{"counts", "unrepaired"}`` (masked lines), or ``{"skipped": reason}``.
    """
    if settings.dry_run:
        return {"skipped": "dry run: nothing was sent"}
    if settings.encryption:
        # The ledger holds the ciphertext the warehouse gave; the task's list cannot be
        # compared with it, and a "missing" number would be staged again.
        return {"skipped": "encryption=true: the ledger's phones cannot be compared"}
    found = verify_run(
        settings.run_id,
        settings.api_task_id,
        ledger_engine,
        agent_api,
        settings.sub_user_id,
        repair=True,
    )
    return {"counts": found.counts(), "unrepaired": found.unrepaired_lines(50)}
