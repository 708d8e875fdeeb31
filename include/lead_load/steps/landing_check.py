"""The landing check: the ledger against the calling task's number list on the platform.

The rules are in ``landing_rules``; this module reads the ledger, reads the calling task's
number list (once per scope) and applies the repairs that list proves:

1. the read is bounded by time (``start_at``/``end_at``, SPEC section 4) around the posts of
   the scope's batches (``lead_load_batches.posted_at``) and the rows' last changes, widened
   by the hook's day of slack: a calling task that collects numbers for years is not read whole on
   every run. A scope with no known post (old rows without a batch) is read unbounded;
2. the number list is read first, to its end, and the moment its reading began is kept (on
   the database's clock, the one every writer of the ledger is compared with). A read that
   comes in incomplete raises ``ListReadFailed``: nothing is changed;
3. then the ledger rows. An ``imported`` row missing from the list is judged only if the
   read could include it (its batch was posted within the bounds; else it is counted as
   ``not_checked``) and only if it was imported ``IMPORT_MARGIN`` before the read began;
   if more than a small share of the covered imported rows look absent, the read is not
   to be trusted and ``ListNotTrusted`` is raised, before any repair of any scope;
4. each repair is one conditional UPDATE that repeats the status, phone and updated_at the
   check read: a row changed in between is left alone and reported, never overwritten.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from airflow.sdk.exceptions import AirflowException, AirflowFailException
from sqlalchemy import Engine, func, or_, select, text

from agent_api.exceptions import AgentApiTransientError
from agent_api.masking import mask_phones_in
from lead_load.core.landing_rules import (
    ACTIVE,
    COMPARED,
    LandingReport,
    ListRead,
    Row,
    Tally,
    judge,
)
from lead_load.core.ledger_rules import Status
from lead_load.core.run_settings import RunSettings
from lead_load.ledger import schema, settling

if TYPE_CHECKING:
    from agent_api.hooks.agent_api import AgentApiHook

log = logging.getLogger(__name__)

CHUNK = 5000
_table = schema.ledger


class ScopeError(ValueError):
    """What to check cannot be worked out from the arguments and the ledger."""


class ListReadFailed(AirflowException):
    """The calling task's number list could not be read whole (an incomplete read, no end, the
    platform unreachable): nothing was changed. Airflow may retry: a later read may do."""


class ListNotTrusted(AirflowFailException):
    """The read came in whole, but misses too many of the imported rows it covers to be
    believed (``landing_rules.untrusted``): nothing was changed, and no retry is made."""


@dataclass(frozen=True)
class Scope:
    """The ledger rows of one calling task to check: those of ``run_ids``, or all (None)."""

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
    """The rows of ``run_id``; its calling task comes from ``lead_load_runs`` or, for a run that
    ended before writing its summary, from its ledger rows."""
    runs = schema.runs
    with engine.connect() as conn:
        recorded = conn.execute(
            select(runs.c.api_task_id).where(runs.c.run_id == run_id)
        ).scalar_one_or_none()
        if recorded is None:
            calling_tasks = list(
                conn.execute(
                    select(_table.c.api_task_id).where(_table.c.run_id == run_id).distinct()
                ).scalars()
            )
        else:
            calling_tasks = [recorded]
    if api_task_id is not None:
        if calling_tasks and api_task_id not in calling_tasks:
            raise ScopeError(
                f"run {run_id!r} loaded calling task {', '.join(calling_tasks)}, "
                f"not {api_task_id!r}"
            )
        return Scope(api_task_id, (run_id,))
    if len(calling_tasks) == 1:
        return Scope(calling_tasks[0], (run_id,))
    if not calling_tasks:
        raise ScopeError(
            f"run {run_id!r} is neither in lead_load_runs nor in the ledger; "
            "pass --api-task-id to check it anyway"
        )
    raise ScopeError(f"run {run_id!r} has rows of several calling tasks: pass --api-task-id")


def window_scopes(
    engine: Engine,
    window_start: str | datetime,
    window_end: str | datetime,
    api_task_id: str | None = None,
) -> list[Scope]:
    """One scope per calling task, holding every run whose window overlaps [start, end)."""
    start, end = _moment(window_start, "window start"), _moment(window_end, "window end")
    if end <= start:
        raise ScopeError(f"the window ends ({end.isoformat()}) before it starts")
    runs = schema.runs
    by_calling_task: dict[str, list[str]] = defaultdict(list)
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
            by_calling_task[row.api_task_id].append(row.run_id)
    return [
        Scope(calling_task, tuple(sorted(run_ids)))
        for calling_task, run_ids in sorted(by_calling_task.items())
    ]


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
    """Compare the scope's ledger rows with the calling task's number list; change nothing.

    Raises ``ListReadFailed`` when the list could not be read whole and ``ListNotTrusted``
    when too many of the imported rows it covers look absent from it."""
    read, calling_task_phones = _read_list(engine, hook, scope, sub_user_id)
    tally = Tally()
    suspects = []
    for chunk in _rows(engine, scope):
        suspects += tally.add(chunk, calling_task_phones, read)
    del calling_task_phones
    reason = tally.untrusted()
    if reason is not None:
        raise ListNotTrusted(
            f"the number list read of {scope.label()} is not to be trusted: {reason}; "
            "nothing was changed (compare the calling task on the platform with the ledger)"
        )
    report = LandingReport(
        scope=[scope.label()],
        checked=tally.checked,
        in_calling_task=tally.in_calling_task,
        not_checked=tally.not_checked,
    )
    if tally.not_checked:
        log.warning(
            "%d imported rows of %s are absent from a read bounded from %s: their batch's post "
            "is not known or earlier, so the read could not include them; not checked",
            tally.not_checked,
            scope.label(),
            read.start_at,
        )
    others = _rows_sharing_phones(engine, scope.api_task_id, {row.phone for row, _ in suspects})
    for row, kind in suspects:
        same_phone = [o for o in others.get(row.phone, []) if o.lead_id != row.lead_id]
        finding = judge(row, kind, same_phone, read)
        if finding is None:
            continue
        (report.pending if finding.repair else report.unrepairable).append(finding)
    return report


def _read_list(
    engine: Engine, hook: AgentApiHook, scope: Scope, sub_user_id: str | None
) -> tuple[ListRead, set[str]]:
    """The calling task's phones within the scope's bounds, read to the end, and that read."""
    from agent_api.hooks.agent_api import NUMBER_LIST_LOOKBACK

    start_at, end_at = read_bounds(engine, scope)
    read = ListRead(_database_now(engine), start_at, end_at)
    try:
        phones = {
            str(number.get("phone", ""))
            for number in hook.iter_calling_task_numbers(
                scope.api_task_id,
                start_at=start_at - NUMBER_LIST_LOOKBACK if start_at else None,
                end_at=end_at + NUMBER_LIST_LOOKBACK if end_at else None,
                sub_user_id=sub_user_id,
            )
        }
    except AgentApiTransientError as error:  # AgentApiIncompleteRead among them
        raise ListReadFailed(
            f"the number list of {scope.label()} could not be read whole, so nothing was "
            f"changed: {mask_phones_in(str(error))}"
        ) from error
    return read, phones


def read_bounds(engine: Engine, scope: Scope) -> tuple[datetime | None, datetime | None]:
    """The time bounds of the scope's read (before the hook's day of slack): from the
    earliest post of the scope's batches to the latest post or the latest change of its rows
    (a number is imported after its post and before its row says imported). (None, None)
    when no post is known: the read is unbounded, as for old rows without a batch."""
    batches = schema.batches
    conditions = [batches.c.api_task_id == scope.api_task_id, batches.c.posted_at.is_not(None)]
    if scope.run_ids is not None:
        conditions.append(batches.c.run_id.in_(scope.run_ids))
    rows = [_table.c.api_task_id == scope.api_task_id]
    if scope.run_ids is not None:
        rows.append(_table.c.run_id.in_(scope.run_ids))
    with engine.connect() as conn:
        first, last = conn.execute(
            select(func.min(batches.c.posted_at), func.max(batches.c.posted_at)).where(*conditions)
        ).one()
        if first is None:
            return None, None
        changed = conn.execute(select(func.max(_table.c.updated_at)).where(*rows)).scalar()
    ends = [_utc(last)] + ([_utc(changed)] if changed is not None else [])
    return _utc(first), max(ends)


_NOW_SQL = {
    "postgresql": "SELECT clock_timestamp()",
    "sqlite": "SELECT strftime('%Y-%m-%d %H:%M:%f', 'now')",
    "mysql": "SELECT UTC_TIMESTAMP(6)",
    "mariadb": "SELECT UTC_TIMESTAMP(6)",
}


def _database_now(engine: Engine) -> datetime:
    """Now on the database's clock (UTC), the one the margin is measured on."""
    query = _NOW_SQL.get(engine.dialect.name)
    if query is None:
        return schema.now()
    with engine.connect() as conn:
        moment = conn.execute(text(query)).scalar_one()
    if isinstance(moment, str):
        moment = datetime.fromisoformat(moment)
    return _utc(moment)


def _utc(moment: datetime) -> datetime:
    """SQLite and MySQL give back naive datetimes; the ledger writes them in UTC."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def apply_repairs(engine: Engine, report: LandingReport) -> LandingReport:
    """Apply the report's pending repairs, each one guarded transition of its own."""
    pending, report.pending = report.pending, []
    for finding in pending:
        row, repair = finding.row, finding.repair
        assert repair is not None
        repaired = settling.repair_row(
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
    """Inspect every scope (and repair what is proven, if ``repair``); one report for all.

    Every scope is inspected before anything is repaired: a read that fails or is not to be
    trusted (``ListReadFailed``, ``ListNotTrusted``) raises with nothing changed."""
    found = [inspect_scope(engine, hook, scope, sub_user_id) for scope in scopes]
    report = LandingReport()
    for scope_report in found:
        report = report.merge(apply_repairs(engine, scope_report) if repair else scope_report)
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
    """The DAG's end-of-run check: the run's rows in ``api_task_id``, repaired by default.
    Raises (``ListReadFailed``, ``ListNotTrusted``) with nothing changed when the calling task's
    number list cannot be read whole or is not to be trusted: the run fails with why."""
    report = check(ledger_engine, hook, [Scope(api_task_id, (run_id,))], sub_user_id, repair=repair)
    log.info("Landing check of %s: %s", report.scope[0], report.counts())
    for line in report.repaired_lines():
        log.info("Repaired %s", line)
    for line in report.unrepaired_lines():
        log.warning("Left %s", line)
    return report


# -- reading the ledger ---------------------------------------------------------------------


_ROW_COLUMNS = (
    _table.c.lead_id,
    _table.c.phone,
    _table.c.status,
    _table.c.updated_at,
    _table.c.unique_id,
    _table.c.run_id,
    _table.c.batch_no,
)
# Batch numbers read per query of a run's rows: at most 200 rows each, so at most CHUNK rows.
_BATCHES_PER_READ = 25


def _rows(engine: Engine, scope: Scope) -> Iterator[list[Row]]:
    """The scope's compared rows, a chunk at a time (memory stays bounded and no transaction
    stays open), each with its batch's post time. A run's rows are read through the
    ``(run_id, batch_no)`` index, a calling task's whole through the primary key: either way
    each chunk starts where the last one ended, so a million rows cost one pass, not one
    pass per chunk."""
    if scope.run_ids is None:
        yield from _rows_in_key_order(engine, scope.api_task_id, ())
        return
    for run_id in scope.run_ids:
        yield from _rows_of_run(engine, scope.api_task_id, run_id)


def _select_rows(api_task_id: str, *conditions: Any) -> Any:
    return select(*_ROW_COLUMNS).where(
        _table.c.api_task_id == api_task_id,
        _table.c.status.in_([s.value for s in COMPARED]),
        *conditions,
    )


def _read_chunk(engine: Engine, api_task_id: str, statement: Any) -> list[Row]:
    """The rows ``statement`` selects, each with its batch's post time. The post times are
    read apart, for the few batches of the chunk: joined in the same query, PostgreSQL
    without statistics on a just-grown batches table scanned the run's batches once per row
    (a million rows: about 15 minutes)."""
    with engine.connect() as conn:
        found = conn.execute(statement).all()
        numbers = {r.batch_no for r in found if r.batch_no is not None}
        runs = {r.run_id for r in found if r.batch_no is not None}
        posted = {}
        if numbers:
            batches = schema.batches
            posted = {
                (b.run_id, b.batch_no): b.posted_at
                for b in conn.execute(
                    select(batches.c.run_id, batches.c.batch_no, batches.c.posted_at).where(
                        batches.c.run_id.in_(sorted(runs)),
                        batches.c.batch_no.in_(sorted(numbers)),
                    )
                )
            }
    return [
        Row(
            api_task_id,
            r.lead_id,
            r.phone,
            r.status,
            r.updated_at,
            r.unique_id,
            posted.get((r.run_id, r.batch_no)),
        )
        for r in found
    ]


def _rows_of_run(engine: Engine, api_task_id: str, run_id: str) -> Iterator[list[Row]]:
    """A run's rows: those in a batch a span of batch numbers at a time, then those in none
    (staged and never planned, or put back: few)."""
    with engine.connect() as conn:
        first, last = conn.execute(
            select(func.min(_table.c.batch_no), func.max(_table.c.batch_no)).where(
                _table.c.run_id == run_id
            )
        ).one()
    if first is not None:
        for low in range(first, last + 1, _BATCHES_PER_READ):
            chunk = _read_chunk(
                engine,
                api_task_id,
                _select_rows(
                    api_task_id,
                    _table.c.run_id == run_id,
                    _table.c.batch_no >= low,
                    _table.c.batch_no < low + _BATCHES_PER_READ,
                ),
            )
            if chunk:
                yield chunk
    yield from _rows_in_key_order(
        engine, api_task_id, (_table.c.run_id == run_id, _table.c.batch_no.is_(None))
    )


def _rows_in_key_order(
    engine: Engine, api_task_id: str, conditions: tuple[Any, ...]
) -> Iterator[list[Row]]:
    """The calling task's rows meeting ``conditions`` in primary-key order, keyset-paged."""
    after = ("", "")
    while True:
        chunk = _read_chunk(
            engine,
            api_task_id,
            _select_rows(api_task_id, *conditions, *_after_key(*after))
            .order_by(_table.c.lead_id, _table.c.phone)
            .limit(CHUNK),
        )
        if not chunk:
            return
        yield chunk
        after = (chunk[-1].lead_id, chunk[-1].phone)


def _after_key(lead_id: str, phone: str) -> tuple[Any, ...]:
    """Rows after (lead_id, phone) in primary-key order. The plain ``lead_id >= ...`` bound
    lets every database start its index walk at the previous chunk's end; the OR alone made
    PostgreSQL read the run's rows from the start for every chunk (a million rows: minutes)."""
    return (
        _table.c.lead_id >= lead_id,
        or_(_table.c.lead_id > lead_id, _table.c.phone > phone),
    )


def _rows_sharing_phones(
    engine: Engine, api_task_id: str, phones: set[str]
) -> dict[str, list[Row]]:
    """The calling task's rows (in any run) holding one of ``phones`` actively, or not_imported."""
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
        # The ledger holds the ciphertext the warehouse gave; the calling task's list cannot be
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
