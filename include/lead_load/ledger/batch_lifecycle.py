"""The only writer of batch and run states: named transitions, each one conditional statement.

Everything that may run twice (two runs of one window, a retry beside a stuck first try, two
triggerers running copies of one trigger, a paused process that wakes up after another took
over) changes a batch through these functions. Each transition is gated by ONE conditional
UPDATE of the batch's row (or the run's) whose row count is checked: whoever loses the race
changes nothing, and the function says so (a ``None`` result or :class:`LeaseLost`).
The batch's ledger rows follow in the same transaction, so rows and batch never disagree.

- **Ownership.** Ledger rows belong to the run in their ``run_id``. Planning numbers only the
  rows of its own run, plus the staged rows of runs that finished or whose run lease expired,
  which it takes over explicitly (``carried_from``; counted in the summary as carried over).
- **Leases with fencing.** ``claim`` moves a planned batch to ``sending`` with a random token
  and an expiry (``ledger_rules.batch_lease_seconds``). The owner renews it right before each
  POST and every later write carries the token, so a process that lost its lease (paused past
  the expiry while another reconciled the batch) can no longer post or write. A sending batch
  whose lease expired is taken over with ``take_expired``; a live one is waited for.
"""

from __future__ import annotations

import json
import logging
import secrets
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    Connection,
    Engine,
    and_,
    case,
    delete,
    exists,
    func,
    insert,
    literal,
    or_,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError, OperationalError

from lead_load.core.ledger_rules import (
    RUN_LEASE_SECONDS,
    BatchStatus,
    RunState,
    Status,
    outcome_statuses,
)
from lead_load.ledger.schema import (
    batches,
    chunks,
    database_now,
    ledger,
    now,
    runs,
)

log = logging.getLogger(__name__)


class LeaseLost(RuntimeError):
    """This process no longer holds the batch's lease: another one took the batch over."""


@dataclass(frozen=True)
class Lease:
    run_id: str
    batch_no: int
    token: str
    owner: str
    seconds: float

    def describe(self) -> str:
        return f"batch {self.batch_no} of run {self.run_id}"


@dataclass(frozen=True)
class Claim:
    """A won claim: the lease and the API rows it covers (read after the claim)."""

    lease: Lease
    rows: list[dict[str, Any]]


def _this_batch(run_id: str, batch_no: int) -> tuple:
    return (batches.c.run_id == run_id, batches.c.batch_no == batch_no)


def _held(lease: Lease) -> tuple:
    return (
        *_this_batch(lease.run_id, lease.batch_no),
        batches.c.status == BatchStatus.SENDING,
        batches.c.lease_token == lease.token,
    )


def _rows_of(run_id: str, batch_no: int, status: Status) -> tuple:
    return (ledger.c.run_id == run_id, ledger.c.batch_no == batch_no, ledger.c.status == status)


def _expiry(engine: Engine, seconds: float) -> Any:
    """When a lease taken now expires, by the database's clock."""
    return database_now(engine, seconds)


# -- runs ---------------------------------------------------------------------------------


def start_run(
    engine: Engine,
    run_id: str,
    api_task_id: str,
    window: tuple[str, str],
    settings: dict[str, Any] | None = None,
) -> None:
    """Mark the run live (or live again, for a retry or a cleared re-run), with its
    settings when given (see ``run_context``)."""
    stamp = now()
    values = {
        "api_task_id": api_task_id,
        "window_start": window[0],
        "window_end": window[1],
        "state": RunState.RUNNING.value,
        "lease_expires_at": _expiry(engine, RUN_LEASE_SECONDS),
    }
    if settings is not None:
        values["settings"] = json.dumps(settings, sort_keys=True)
    with engine.begin() as conn:
        if conn.execute(update(runs).where(runs.c.run_id == run_id).values(**values)).rowcount:
            return
    try:
        with engine.begin() as conn:
            conn.execute(insert(runs).values(run_id=run_id, started_at=stamp, **values))
    except IntegrityError:  # another copy of this step inserted it first: renew instead
        renew_run(engine, run_id)


@dataclass(frozen=True)
class RunContext:
    """What a batch's task needs to find its batch: the run's settings and the first
    batch number of its latest plan (map index ``i`` is batch ``first_batch_no + i``; a
    plan's numbers are consecutive, and a cleared re-run's plan numbers on)."""

    settings: dict[str, Any]
    first_batch_no: int


def run_context(engine: Engine, run_id: str) -> RunContext | None:
    """The run's settings and plan, from its row; None while either is not written yet."""
    with engine.connect() as conn:
        row = conn.execute(
            select(runs.c.settings, runs.c.first_batch_no).where(runs.c.run_id == run_id)
        ).first()
    if row is None or row.settings is None or row.first_batch_no is None:
        return None
    return RunContext(json.loads(row.settings), int(row.first_batch_no))


def latest_plan(engine: Engine, run_id: str) -> list[dict[str, Any]]:
    """The batches of the run's latest plan (from its first batch number on), in order, with
    their status; empty when the run has planned nothing yet."""
    with engine.connect() as conn:
        first = conn.execute(
            select(runs.c.first_batch_no).where(runs.c.run_id == run_id)
        ).scalar_one_or_none()
        if first is None:
            return []
        rows = conn.execute(
            select(batches.c.batch_no, batches.c.rows, batches.c.status)
            .where(batches.c.run_id == run_id, batches.c.batch_no >= first)
            .order_by(batches.c.batch_no)
        ).all()
    return [dict(r._mapping) for r in rows]


def renew_run(engine: Engine, run_id: str) -> None:
    with engine.begin() as conn:
        conn.execute(
            update(runs)
            .where(runs.c.run_id == run_id, runs.c.state == RunState.RUNNING)
            .values(lease_expires_at=_expiry(engine, RUN_LEASE_SECONDS))
        )


def record_extract(engine: Engine, run_id: str, extract_counts: dict[str, Any]) -> bool:
    """Keep the extract step's counts on the run's row while the run goes, so that the Lead
    loads page counts the run as its report will (the report's summary replaces them). Only
    a live run's row is written: False when the run has ended meanwhile."""
    with engine.begin() as conn:
        written = conn.execute(
            update(runs)
            .where(runs.c.run_id == run_id, runs.c.state == RunState.RUNNING)
            .values(summary=json.dumps({"extract_counts": extract_counts}, sort_keys=True))
        ).rowcount
    return written == 1


def finish_run(
    engine: Engine,
    run_id: str,
    api_task_id: str,
    window: tuple[str, str],
    summary: dict[str, Any],
    failed: bool = False,
) -> None:
    """The run's report is written (state ``finished``, or ``failed`` when it found problems):
    its leftover staged rows are free for the next run."""
    values = {
        "api_task_id": api_task_id,
        "window_start": window[0],
        "window_end": window[1],
        "state": (RunState.FAILED if failed else RunState.FINISHED).value,
        "summary": json.dumps(summary, sort_keys=True),
        "finished_at": now(),
        "lease_expires_at": None,
    }
    with engine.begin() as conn:
        if conn.execute(update(runs).where(runs.c.run_id == run_id).values(**values)).rowcount:
            return
    try:  # a run whose first steps never reached the ledger
        with engine.begin() as conn:
            conn.execute(insert(runs).values(run_id=run_id, **values))
    except IntegrityError:  # a concurrent copy inserted it: write ours over it
        with engine.begin() as conn:
            conn.execute(update(runs).where(runs.c.run_id == run_id).values(**values))


def live_runs(engine: Engine, api_task_id: str, run_id: str) -> list[str]:
    """Other runs of the task the ledger holds for live (running, lease not expired)."""
    with engine.connect() as conn:
        return list(
            conn.execute(
                select(runs.c.run_id).where(
                    runs.c.api_task_id == api_task_id,
                    runs.c.run_id != run_id,
                    runs.c.state == RunState.RUNNING,
                    runs.c.lease_expires_at > database_now(engine),
                )
            ).scalars()
        )


def end_run(engine: Engine, run_id: str) -> bool:
    """running -> failed for a run that Airflow says has ended (marked failed or success in
    the UI while its batches were in flight): its staged rows are free for the next plan at
    once, instead of after its run lease. False: it was not running any more."""
    with engine.begin() as conn:
        return (
            conn.execute(
                update(runs)
                .where(runs.c.run_id == run_id, runs.c.state == RunState.RUNNING)
                .values(state=RunState.FAILED.value, lease_expires_at=database_now(engine))
            ).rowcount
            == 1
        )


def _dead_runs(conn, api_task_id: str, run_id: str) -> list[str]:
    """Other runs holding staged rows of the task that are finished, expired, or unknown
    (rows written before runs had leases)."""
    holders = (
        conn.execute(
            select(ledger.c.run_id)
            .where(
                ledger.c.api_task_id == api_task_id,
                ledger.c.status == Status.STAGED,
                ledger.c.run_id != run_id,
            )
            .distinct()
        )
        .scalars()
        .all()
    )
    if not holders:
        return []
    live = set(
        conn.execute(
            select(runs.c.run_id).where(
                runs.c.run_id.in_(holders),
                runs.c.state == RunState.RUNNING,
                runs.c.lease_expires_at > database_now(conn.engine),
            )
        ).scalars()
    )
    return sorted(set(holders) - live)


# -- planning -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Plan:
    batches: list[dict[str, int]]  # [{"batch_no", "rows"}]
    carried_over: dict[str, int]  # rows taken over, by the run they came from


def count_plannable(engine: Engine, run_id: str, api_task_id: str) -> tuple[int, int]:
    """(rows this run would plan, of which carried over from dead runs), without writing."""
    with engine.connect() as conn:
        dead = _dead_runs(conn, api_task_id, run_id)
        own = conn.execute(
            select(func.count()).where(
                ledger.c.api_task_id == api_task_id,
                ledger.c.status == Status.STAGED,
                ledger.c.run_id == run_id,
                _not_in_open_batch(),
            )
        ).scalar_one()
        carried = 0
        for dead_run in dead:
            carried += conn.execute(
                select(func.count()).where(
                    ledger.c.api_task_id == api_task_id,
                    ledger.c.status == Status.STAGED,
                    ledger.c.run_id == dead_run,
                    ~_in_sending_batch(),
                )
            ).scalar_one()
    return own + carried, carried


def _in_sending_batch() -> Any:
    return exists().where(
        batches.c.run_id == ledger.c.run_id,
        batches.c.batch_no == ledger.c.batch_no,
        batches.c.status == BatchStatus.SENDING,
    )


def _not_in_open_batch() -> Any:
    """A staged row that no planned or sending batch of its run holds."""
    return ~exists().where(
        batches.c.run_id == ledger.c.run_id,
        batches.c.batch_no == ledger.c.batch_no,
        batches.c.status.in_([BatchStatus.PLANNED.value, BatchStatus.SENDING.value]),
    )


def plan(engine: Engine, run_id: str, api_task_id: str, batch_size: int) -> Plan:
    """Take over the staged rows of dead runs, then number this run's free staged rows into
    new planned batches of ``batch_size`` (lead_id order). Rows of live runs are not touched.

    Set-based, whatever the row count: one UPDATE per dead run, one UPDATE numbering the rows
    with ROW_NUMBER(), one INSERT ... SELECT counting them into batches.
    """
    stamp = now()
    carried: dict[str, int] = {}
    with engine.begin() as conn:
        for dead_run in _dead_runs(conn, api_task_id, run_id):
            # Its planned batches first, so that a late claim of one of them finds it gone.
            conn.execute(
                update(batches)
                .where(batches.c.run_id == dead_run, batches.c.status == BatchStatus.PLANNED)
                .values(status=BatchStatus.CARRIED_OVER.value, carried_to=run_id)
            )
            moved = conn.execute(
                update(ledger)
                .where(
                    ledger.c.api_task_id == api_task_id,
                    ledger.c.status == Status.STAGED,
                    ledger.c.run_id == dead_run,
                    ~_in_sending_batch(),
                )
                .values(run_id=run_id, carried_from=dead_run, batch_no=None, updated_at=stamp)
            ).rowcount
            if moved:
                carried[dead_run] = moved
                log.warning(
                    "Took over %d staged rows left by run %s (finished or no longer live)",
                    moved,
                    dead_run,
                )

        # Numbers are never reused within a run (a cleared re-run numbers on), so a late
        # copy of an old post step cannot claim a batch that now holds other rows.
        first = 1 + max(
            conn.execute(
                select(func.coalesce(func.max(batches.c.batch_no), -1)).where(
                    batches.c.run_id == run_id
                )
            ).scalar_one(),
            conn.execute(
                select(func.coalesce(func.max(ledger.c.batch_no), -1)).where(
                    ledger.c.run_id == run_id
                )
            ).scalar_one(),
        )
        if conn.dialect.name == "postgresql":
            _plan_numbering_on_fresh_statistics(conn)
        free = (
            ledger.c.api_task_id == api_task_id,
            ledger.c.status == Status.STAGED,
            ledger.c.run_id == run_id,
            _not_in_open_batch(),
        )
        numbered = (
            select(
                ledger.c.lead_id,
                ledger.c.phone,
                (func.row_number().over(order_by=(ledger.c.lead_id, ledger.c.phone)) - 1).label(
                    "position"
                ),
            )
            .where(*free)
            .subquery()
        )
        # Joined on the primary key alone: any other condition here lets PostgreSQL, which
        # has no statistics on a ledger that just grew, put the window query on the inner
        # side of a nested loop (17,000 rows: 193 s instead of under a second). The rows
        # the subquery chose are this run's and in no open batch, so no other process
        # claims them meanwhile.
        conn.execute(
            update(ledger)
            .where(
                ledger.c.api_task_id == api_task_id,
                ledger.c.lead_id == numbered.c.lead_id,
                ledger.c.phone == numbered.c.phone,
            )
            .values(batch_no=first + numbered.c.position // batch_size, updated_at=stamp)
        )
        planned = (
            select(
                ledger.c.run_id,
                ledger.c.batch_no,
                ledger.c.api_task_id,
                func.count().label("rows"),
                literal(BatchStatus.PLANNED.value).label("status"),
                literal(False).label("answer_lost"),
                literal(0).label("claims"),
            )
            .where(
                ledger.c.api_task_id == api_task_id,
                ledger.c.status == Status.STAGED,
                ledger.c.run_id == run_id,
                ledger.c.batch_no >= first,
            )
            .group_by(ledger.c.run_id, ledger.c.batch_no, ledger.c.api_task_id)
        )
        conn.execute(
            insert(batches).from_select(
                ["run_id", "batch_no", "api_task_id", "rows", "status", "answer_lost", "claims"],
                planned,
            )
        )
        refs = conn.execute(
            select(batches.c.batch_no, batches.c.rows)
            .where(batches.c.run_id == run_id, batches.c.batch_no >= first)
            .order_by(batches.c.batch_no)
        ).all()
        conn.execute(
            update(runs)
            .where(runs.c.run_id == run_id, runs.c.state == RunState.RUNNING)
            # An empty plan keeps the latest one's first number (see steps.plan).
            .values(
                lease_expires_at=_expiry(engine, RUN_LEASE_SECONDS),
                **({"first_batch_no": first} if refs else {}),
            )
        )
    return Plan([{"batch_no": r.batch_no, "rows": r.rows} for r in refs], carried)


def _plan_numbering_on_fresh_statistics(conn) -> None:
    """The run's staging has just added up to millions of ledger rows under a calling task
    that the statistics may not know yet: PostgreSQL then estimates one row for it and
    numbers the rows in a nested loop over the window query (210,000 rows: over 20 minutes
    instead of seconds). ANALYZE reads a sample of at most 30,000 rows (a fraction of a
    second at a million); no nested loops in this transaction, in case the login may not
    ANALYZE tables it does not own."""
    conn.exec_driver_sql(f"ANALYZE {ledger.name}")
    conn.exec_driver_sql("SELECT set_config('enable_nestloop', 'off', true)")


def carried_over(engine: Engine, run_id: str) -> dict[str, int]:
    """Rows of this run taken over from other runs, by the run they came from."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(ledger.c.carried_from, func.count())
            .where(ledger.c.run_id == run_id, ledger.c.carried_from.is_not(None))
            .group_by(ledger.c.carried_from)
        ).all()
    return {source: count for source, count in rows}


def forget_unclaimed_and_refused_batches(conn: Connection, run_id: str) -> int:
    """Delete the run's batches the platform took none of the rows of, inside ``conn``'s
    transaction, as a retry of the run's extract starts (``staging.clear_run``): those nobody
    claimed (``planned``) and those the platform refused in a way no retry changes
    (``failed``). How many were deleted.

    Their rows are staged (a planned batch's never left, a failed batch's went back), and
    the re-run's plan numbers them into new batches, on from the highest number the run used:
    a planned batch left in place would hold its rows out of that plan, and no late post
    step of the earlier try can claim a batch that is gone. Every other batch stays: a
    sending or submitted one may have reached the platform, and a processed or carried over
    one records what became of its rows.

    One conditional statement: a claim at the same moment either finds the batch gone, or
    has moved it to ``sending`` first and it is kept.
    """
    return conn.execute(
        delete(batches).where(
            batches.c.run_id == run_id,
            batches.c.status.in_([BatchStatus.PLANNED.value, BatchStatus.FAILED.value]),
        )
    ).rowcount


# -- posting ------------------------------------------------------------------------------


def batch_state(engine: Engine, run_id: str, batch_no: int) -> dict[str, Any]:
    """The batch's row, and ``lease_live``: whether its lease runs yet, by the database's
    clock."""
    live = and_(
        batches.c.status == BatchStatus.SENDING,
        batches.c.lease_expires_at.is_not(None),
        batches.c.lease_expires_at > database_now(engine),
    )
    with engine.connect() as conn:
        row = conn.execute(
            select(batches, case((live, True), else_=False).label("lease_live")).where(
                *_this_batch(run_id, batch_no)
            )
        ).one_or_none()
    if row is None:
        raise LookupError(f"run {run_id} has no batch {batch_no} (was the run cleared?)")
    return dict(row._mapping)


def lease_is_live(state: dict[str, Any]) -> bool:
    """A sending batch whose lease had not expired when ``batch_state`` read it."""
    return bool(state.get("lease_live"))


def claim(engine: Engine, run_id: str, batch_no: int, owner: str, seconds: float) -> Claim | None:
    """planned (or failed: a cleared post tries again) -> sending under a new lease; its
    staged rows -> sending. None: lost the race (the batch was neither planned nor failed any
    more when this statement ran)."""
    token = secrets.token_hex(16)
    stamp = now()
    with engine.begin() as conn:
        won = conn.execute(
            update(batches)
            .where(
                *_this_batch(run_id, batch_no),
                batches.c.status.in_([BatchStatus.PLANNED.value, BatchStatus.FAILED.value]),
            )
            .values(
                status=BatchStatus.SENDING.value,
                lease_owner=owner[:400],
                lease_token=token,
                lease_expires_at=_expiry(engine, seconds),
                claims=batches.c.claims + 1,
                sends=0,
                posted_at=database_now(engine),
                error=None,
            )
        ).rowcount
        if won != 1:
            return None
        conn.execute(
            update(ledger)
            .where(*_rows_of(run_id, batch_no, Status.STAGED))
            .values(status=Status.SENDING.value, updated_at=stamp)
        )
        payloads = conn.execute(
            select(ledger.c.payload)
            .where(*_rows_of(run_id, batch_no, Status.SENDING))
            .order_by(ledger.c.lead_id, ledger.c.phone)
        ).scalars()
        rows = [json.loads(p) for p in payloads]
        conn.execute(
            update(runs)
            .where(runs.c.run_id == run_id, runs.c.state == RunState.RUNNING)
            .values(lease_expires_at=_expiry(engine, RUN_LEASE_SECONDS))
        )
    return Claim(Lease(run_id, batch_no, token, owner, seconds), rows)


def renew(engine: Engine, lease: Lease) -> None:
    """Extend the lease and count the POST about to start, or raise LeaseLost: the fence
    checked right before every POST. Once this committed, the platform may have the batch."""
    with engine.begin() as conn:
        kept = conn.execute(
            update(batches)
            .where(*_held(lease))
            .values(
                lease_expires_at=_expiry(engine, lease.seconds),
                sends=func.coalesce(batches.c.sends, 0) + 1,
            )
        ).rowcount
    if kept != 1:
        raise LeaseLost(f"{lease.describe()} was taken over by another process; not posting")


# A ledger row whose post may have been accepted: submitted with no unique_id.
MAYBE_ACCEPTED_REASON = "post's answer lost: maybe accepted, settled from the task's numbers"


def _retrying_write(write: Any, done: Any) -> Any:
    """Run ``write()`` (one transaction); on a dropped database connection run it again,
    unless ``done()`` shows the first attempt committed (its acknowledgement was lost)."""
    for delay in (0.5, 1.0, 2.0, None):
        try:
            return write()
        except OperationalError:
            if delay is None:
                raise
            log.warning("The ledger's connection failed while recording a post; retrying")
            time.sleep(delay)
            if done():
                return None
    raise AssertionError("unreachable")  # pragma: no cover


def answer_lost(engine: Engine, lease: Lease, error: str) -> None:
    """sending -> submitted with no ``unique_id``: the post may have been accepted (its answer
    was lost, or its owner died after a POST started). The rows stay active, so no post sends
    them, until the task's number list settles them (``settle_from_task``). Raises LeaseLost
    when another process owns the batch now."""

    def write() -> None:
        stamp = now()
        with engine.begin() as conn:
            won = conn.execute(
                update(batches)
                .where(*_held(lease))
                .values(
                    status=BatchStatus.SUBMITTED.value,
                    unique_id=None,
                    answer_lost=True,
                    error=error,
                    posted_at=database_now(engine),
                    lease_token=None,
                    lease_expires_at=None,
                )
            ).rowcount
            if won != 1:
                raise LeaseLost(f"{lease.describe()} was taken over; leaving it to its new owner")
            conn.execute(
                update(ledger)
                .where(*_rows_of(lease.run_id, lease.batch_no, Status.SENDING))
                .values(
                    status=Status.SUBMITTED.value,
                    unique_id=None,
                    reason=MAYBE_ACCEPTED_REASON,
                    updated_at=stamp,
                )
            )

    def done() -> bool:
        state = batch_state(engine, lease.run_id, lease.batch_no)
        return state["status"] == BatchStatus.SUBMITTED and state["unique_id"] is None

    _retrying_write(write, done)


def take_expired(
    engine: Engine, run_id: str, batch_no: int, owner: str, seconds: float
) -> Lease | None:
    """A sending batch whose lease expired (its owner died or hung) gets a new owner, who must
    look its rows up in the task before anything else. None: still live, or taken already."""
    token = secrets.token_hex(16)
    with engine.begin() as conn:
        won = conn.execute(
            update(batches)
            .where(
                *_this_batch(run_id, batch_no),
                batches.c.status == BatchStatus.SENDING,
                or_(
                    batches.c.lease_expires_at.is_(None),
                    batches.c.lease_expires_at < database_now(engine),
                ),
            )
            .values(
                lease_owner=owner[:400],
                lease_token=token,
                lease_expires_at=_expiry(engine, seconds),
            )
        ).rowcount
    return Lease(run_id, batch_no, token, owner, seconds) if won == 1 else None


def sending_phones(engine: Engine, lease: Lease) -> list[str]:
    with engine.connect() as conn:
        return list(
            conn.execute(
                select(ledger.c.phone).where(
                    *_rows_of(lease.run_id, lease.batch_no, Status.SENDING)
                )
            ).scalars()
        )


def submitted(engine: Engine, lease: Lease, unique_id: str | None) -> None:
    """sending -> submitted with the accepted post's ``unique_id`` (or processed when there was
    nothing to post), its rows with it. Retried when the database connection drops: the
    platform has the batch, and losing its unique_id would leave it to the settle period."""

    def write() -> None:
        stamp = now()
        with engine.begin() as conn:
            won = conn.execute(
                update(batches)
                .where(*_held(lease))
                .values(
                    status=(BatchStatus.SUBMITTED if unique_id else BatchStatus.PROCESSED).value,
                    unique_id=unique_id,
                    lease_token=None,
                    lease_expires_at=None,
                    processed_at=None if unique_id else stamp,
                )
            ).rowcount
            if won != 1:
                raise LeaseLost(
                    f"{lease.describe()} was taken over while its post was under way; the "
                    f"platform's answer (unique_id {unique_id}) is not recorded by this process"
                )
            conn.execute(
                update(ledger)
                .where(*_rows_of(lease.run_id, lease.batch_no, Status.SENDING))
                .values(status=Status.SUBMITTED.value, unique_id=unique_id, updated_at=stamp)
            )

    def done() -> bool:
        state = batch_state(engine, lease.run_id, lease.batch_no)
        return bool(unique_id) and state["unique_id"] == unique_id

    _retrying_write(write, done)


def back_to_staged(engine: Engine, lease: Lease, *, error: str, final: bool = False) -> None:
    """sending -> planned, releasing the lease: the platform certainly has none of the rows
    (it refused the post, or no POST of the batch ever started), so they go back to staged.
    ``final``: the refusal is one no retry can change, the batch ends ``failed``."""
    stamp = now()
    with engine.begin() as conn:
        won = conn.execute(
            update(batches)
            .where(*_held(lease))
            .values(
                status=(BatchStatus.FAILED if final else BatchStatus.PLANNED).value,
                lease_token=None,
                lease_expires_at=None,
                error=error,
            )
        ).rowcount
        if won != 1:
            raise LeaseLost(f"{lease.describe()} was taken over; leaving it to its new owner")
        conn.execute(
            update(ledger)
            .where(*_rows_of(lease.run_id, lease.batch_no, Status.SENDING))
            .values(status=Status.STAGED.value, updated_at=stamp)
        )


def expired_batches(engine: Engine, api_task_id: str) -> list[dict[str, Any]]:
    """Sending batches of the task (any run) whose lease has expired: their owners are gone."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(batches.c.run_id, batches.c.batch_no, batches.c.lease_owner).where(
                batches.c.api_task_id == api_task_id,
                batches.c.status == BatchStatus.SENDING,
                or_(
                    batches.c.lease_expires_at.is_(None),
                    batches.c.lease_expires_at < database_now(engine),
                ),
            )
        ).all()
    return [dict(r._mapping) for r in rows]


def live_sending_batches(engine: Engine, api_task_id: str) -> int:
    with engine.connect() as conn:
        return conn.execute(
            select(func.count()).where(
                batches.c.api_task_id == api_task_id,
                batches.c.status == BatchStatus.SENDING,
                batches.c.lease_expires_at >= database_now(engine),
            )
        ).scalar_one()


# -- outcomes -----------------------------------------------------------------------------


def submitted_phones(engine: Engine, unique_id: str) -> list[str]:
    with engine.connect() as conn:
        return list(
            conn.execute(
                select(ledger.c.phone).where(
                    ledger.c.unique_id == unique_id, ledger.c.status == Status.SUBMITTED
                )
            ).scalars()
        )


def settle(
    engine: Engine, unique_id: str, imported: set[str], found_in_task: set[str] | None = None
) -> dict[str, int] | None:
    """submitted -> processed with the callback's outcome; its rows -> imported or
    not_imported. None: another process settled this batch first (nothing changed)."""
    stamp = now()
    with engine.begin() as conn:
        won = conn.execute(
            update(batches)
            .where(batches.c.unique_id == unique_id, batches.c.status == BatchStatus.SUBMITTED)
            .values(status=BatchStatus.PROCESSED.value, processed_at=stamp)
        ).rowcount
        if won != 1:
            return None
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
            for chunk in chunks(phones):
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
            .values(imported=counts["imported"])
        )
    return counts


def settled_counts(engine: Engine, unique_id: str) -> dict[str, int]:
    """What the ledger holds for a batch another process settled."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(ledger.c.status, func.count())
            .where(ledger.c.unique_id == unique_id)
            .group_by(ledger.c.status)
        ).all()
    found = dict(rows)
    return {
        "imported": found.get(Status.IMPORTED, 0),
        "not_imported": found.get(Status.NOT_IMPORTED, 0),
    }


def pending_batches(engine: Engine, api_task_id: str) -> list[dict[str, Any]]:
    """Batches (of any run) the platform accepted and has not reported on yet."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(batches.c.run_id, batches.c.batch_no, batches.c.unique_id).where(
                batches.c.api_task_id == api_task_id,
                batches.c.status == BatchStatus.SUBMITTED,
            )
        ).all()
    return [dict(r._mapping) for r in rows]


def unsettled_batches(
    engine: Engine, api_task_id: str, settle_seconds: float = 0.0
) -> list[dict[str, Any]]:
    """Submitted batches of the task (any run) with their post's time: the platform accepted
    them, or may have (no ``unique_id``: the answer was lost), and the ledger awaits their
    outcome. ``settle_due``: posted longer than ``settle_seconds`` ago, by the database's
    clock (or at a time unknown)."""
    due = or_(
        batches.c.posted_at.is_(None), batches.c.posted_at < database_now(engine, -settle_seconds)
    )
    with engine.connect() as conn:
        rows = conn.execute(
            select(
                batches.c.run_id,
                batches.c.batch_no,
                batches.c.unique_id,
                batches.c.posted_at,
                case((due, True), else_=False).label("settle_due"),
            )
            .where(
                batches.c.api_task_id == api_task_id,
                batches.c.status == BatchStatus.SUBMITTED,
            )
            .order_by(batches.c.posted_at)
        ).all()
    return [dict(r._mapping) for r in rows]


def maybe_accepted_rows(engine: Engine, run_id: str) -> int:
    """Rows of the run whose post's answer was lost and that the task does not show yet."""
    with engine.connect() as conn:
        return conn.execute(
            select(func.count()).where(
                ledger.c.run_id == run_id,
                ledger.c.status == Status.SUBMITTED,
                ledger.c.unique_id.is_(None),
            )
        ).scalar_one()


def left_open_by_ended_runs(engine: Engine, api_task_id: str, run_id: str) -> list[dict[str, Any]]:
    """Submitted batches of the task that runs other than ``run_id`` left behind when they
    ended (finished, failed, or stopped renewing their lease): accepted, or maybe accepted,
    leads that are neither confirmed in the task nor staged to be sent."""
    live = select(runs.c.run_id).where(
        runs.c.state == RunState.RUNNING,
        runs.c.lease_expires_at > database_now(engine),
    )
    with engine.connect() as conn:
        rows = conn.execute(
            select(batches.c.run_id, batches.c.batch_no, batches.c.unique_id, batches.c.rows)
            .where(
                batches.c.api_task_id == api_task_id,
                batches.c.status == BatchStatus.SUBMITTED,
                batches.c.run_id != run_id,
                batches.c.run_id.not_in(live),
            )
            .order_by(batches.c.run_id, batches.c.batch_no)
        ).all()
    return [dict(r._mapping) for r in rows]


def submitted_rows_of_batch(engine: Engine, run_id: str, batch_no: int) -> dict[str, str]:
    """phone -> lead id of a batch's rows that await their outcome (the lead id is the
    ``extra`` the post carried)."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(ledger.c.phone, ledger.c.lead_id).where(
                *_rows_of(run_id, batch_no, Status.SUBMITTED)
            )
        ).all()
    return {phone: lead_id for phone, lead_id in rows}


def settle_from_task(
    engine: Engine,
    run_id: str,
    batch_no: int,
    in_task: Iterable[str],
    *,
    settle_seconds: float | None = None,
) -> dict[str, int]:
    """Settle a submitted batch from the task's number list, where its callback cannot:
    rows whose phone the list shows -> imported. With ``settle_seconds``, and only when the
    batch was posted longer ago than that by the database's clock (the platform has surely
    processed it by then), the rows still absent -> staged: sent again by the next plan.
    The batch is processed once no row awaits. Each write is conditional (another process
    may settle the same batch); the counts are what this call changed."""
    stamp = now()
    found = restaged = 0
    with engine.begin() as conn:
        for chunk in chunks(sorted(set(in_task))):
            found += conn.execute(
                update(ledger)
                .where(*_rows_of(run_id, batch_no, Status.SUBMITTED), ledger.c.phone.in_(chunk))
                .values(
                    status=Status.IMPORTED.value,
                    reason="found in the task's number list",
                    updated_at=stamp,
                )
            ).rowcount
        left = conn.execute(
            select(func.count()).where(*_rows_of(run_id, batch_no, Status.SUBMITTED))
        ).scalar_one()
        closing = [*_this_batch(run_id, batch_no), batches.c.status == BatchStatus.SUBMITTED]
        if left and settle_seconds is not None:
            closing.append(batches.c.posted_at < database_now(engine, -settle_seconds))
        if left and settle_seconds is None:
            closed = 0
        else:
            closed = conn.execute(
                update(batches)
                .where(*closing)
                .values(status=BatchStatus.PROCESSED.value, processed_at=stamp)
            ).rowcount
        if closed and left:
            restaged = conn.execute(
                update(ledger)
                .where(*_rows_of(run_id, batch_no, Status.SUBMITTED))
                .values(
                    status=Status.STAGED.value,
                    unique_id=None,
                    reason="absent from the task after the settle period: sent again",
                    updated_at=stamp,
                )
            ).rowcount
        imported = conn.execute(
            select(func.count()).where(*_rows_of(run_id, batch_no, Status.IMPORTED))
        ).scalar_one()
        conn.execute(
            update(batches).where(*_this_batch(run_id, batch_no)).values(imported=imported)
        )
    return {
        "imported": found,
        "staged_again": restaged,
        "awaiting": 0 if closed else left,
        "closed": closed,
    }


def awaiting_callback(engine: Engine, run_id: str) -> list[str]:
    """``unique_id``s of the run's batches that the platform accepted and has not reported on."""
    with engine.connect() as conn:
        return list(
            conn.execute(
                select(batches.c.unique_id)
                .where(
                    batches.c.run_id == run_id,
                    batches.c.status == BatchStatus.SUBMITTED,
                    batches.c.unique_id.is_not(None),
                )
                .order_by(batches.c.batch_no)
            ).scalars()
        )


# -- landing check ------------------------------------------------------------------------


def landing_repair(
    engine: Engine,
    api_task_id: str,
    lead_id: str,
    seen: tuple[str, str, datetime],
    *,
    to: Status,
    reason: str,
    clear_batch: bool = False,
) -> bool:
    """A row the landing check proved wrong: ``seen`` (status, phone, updated_at) -> ``to``.

    False when the row changed since the check read it (any write moves one of the three),
    or when another lead took its phone meanwhile (the unique index refuses a second active
    row): the repair no longer holds, and nothing is written.
    """
    status, phone, updated_at = seen
    values: dict[str, Any] = {"status": to.value, "reason": reason, "updated_at": now()}
    if clear_batch:
        values.update(batch_no=None, unique_id=None)
    statement = (
        update(ledger)
        .where(
            ledger.c.api_task_id == api_task_id,
            ledger.c.lead_id == lead_id,
            ledger.c.status == status,
            ledger.c.phone == phone,
            ledger.c.updated_at == updated_at,
        )
        .values(**values)
    )
    try:
        with engine.begin() as conn:
            return conn.execute(statement).rowcount == 1
    except IntegrityError:
        return False
