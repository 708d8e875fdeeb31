"""A batch's post under one owner: its claim, its lease and fence, and how the post ends.

Everything that may run twice (two runs of one window, a retry beside a stuck first try, two
triggerers running copies of one trigger, a paused process that wakes up after another took
over) claims, holds and ends a batch's post through these functions. Each transition is gated
by ONE conditional UPDATE of the batch's row whose row count is checked: whoever loses the
race changes nothing, and the function says so (a ``None`` result or :class:`LeaseLost`).
The batch's ledger rows follow in the same transaction, so rows and batch never disagree.

- **Leases with fencing.** ``claim`` moves a planned batch to ``sending`` with a random token
  and an expiry (``ledger_rules.batch_lease_seconds``), after taking out of it, in the same
  transaction, the rows whose phone was put on the suppression list since they were staged.
  The owner renews it right before each POST and every later write carries the token, so a
  process that lost its lease (paused past the expiry while another reconciled the batch)
  can no longer post or write. A sending batch whose lease expired is taken over with
  ``take_expired``; a live one is waited for.
- **How a post ends.** Accepted: ``mark_submitted``. Its answer lost, or its owner died after
  a POST started: ``mark_answer_lost`` (maybe accepted, settled later by ``settling``).
  Certainly not taken: ``put_back_to_staged``.

With ``run_lifecycle``, ``planning`` and ``settling``, the only writers of run and batch
states and of the statuses of a batch's rows: each transition one conditional statement.
"""

from __future__ import annotations

import json
import logging
import secrets
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, and_, case, func, or_, select, update
from sqlalchemy.exc import OperationalError

from lead_load.core.ledger_rules import RUN_LEASE_SECONDS, BatchStatus, RunState, Status
from lead_load.core.reject_reasons import RejectReason
from lead_load.ledger.schema import (
    batches,
    database_now,
    is_suppressed,
    ledger,
    now,
    one_batch,
    rows_of_batch,
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
    # The first and last lead ids of the rows: how the post's log names the batch.
    leads: tuple[str, str] | None = None
    # Rows the claim took out of the batch: their phones were suppressed after staging.
    suppressed: int = 0


def _held(lease: Lease) -> tuple:
    return (
        *one_batch(lease.run_id, lease.batch_no),
        batches.c.status == BatchStatus.SENDING,
        batches.c.lease_token == lease.token,
    )


# -- claiming and holding a batch ---------------------------------------------------------


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
                *one_batch(run_id, batch_no)
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
    staged rows whose phone is on the suppression list now -> rejected
    (``_take_out_suppressed``), the others -> sending. None: lost the race (the batch was
    neither planned nor failed any more when this statement ran).

    One transaction: the list is read where the rows are moved, so a phone suppressed before
    the claim committed is never posted by it, and one suppressed later is the post's (the
    report lists it if it was imported, docs/suppression.md)."""
    token = secrets.token_hex(16)
    stamp = now()
    with engine.begin() as conn:
        won = conn.execute(
            update(batches)
            .where(
                *one_batch(run_id, batch_no),
                batches.c.status.in_([BatchStatus.PLANNED.value, BatchStatus.FAILED.value]),
            )
            .values(
                status=BatchStatus.SENDING.value,
                lease_owner=owner[:400],
                lease_token=token,
                lease_expires_at=database_now(engine, seconds),
                claims=batches.c.claims + 1,
                sends=0,
                posted_at=database_now(engine),
                error=None,
            )
        ).rowcount
        if won != 1:
            return None
        suppressed = _take_out_suppressed(conn, run_id, batch_no, token, stamp)
        conn.execute(
            update(ledger)
            .where(*rows_of_batch(run_id, batch_no, Status.STAGED))
            .values(status=Status.SENDING.value, updated_at=stamp)
        )
        held = conn.execute(
            select(ledger.c.lead_id, ledger.c.payload)
            .where(*rows_of_batch(run_id, batch_no, Status.SENDING))
            .order_by(ledger.c.lead_id, ledger.c.phone)
        ).all()
        rows = [json.loads(r.payload) for r in held]
        conn.execute(
            update(runs)
            .where(runs.c.run_id == run_id, runs.c.state == RunState.RUNNING)
            .values(lease_expires_at=database_now(engine, RUN_LEASE_SECONDS))
        )
    leads = (held[0].lead_id, held[-1].lead_id) if held else None
    return Claim(Lease(run_id, batch_no, token, owner, seconds), rows, leads, suppressed)


def _take_out_suppressed(
    conn: Connection, run_id: str, batch_no: int, token: str, stamp: datetime
) -> int:
    """Inside a claim's transaction: the batch's staged rows whose phone is on the
    suppression list -> rejected (``suppressed: taken out of batch N before posting``; they
    keep their batch number, which says where they were taken out of), and the batch's
    ``rows`` less that many, fenced by the claim's token. How many were taken out.

    The list grows after staging (an operator adds a number while rows wait for their post):
    a row staged before is taken out here, the last moment before anything is posted. Each
    change is one conditional statement: the rows' update counts what it moved, the batch's
    must then change exactly its one row, or the claim rolls back whole.
    """
    taken_out = conn.execute(
        update(ledger)
        .where(*rows_of_batch(run_id, batch_no, Status.STAGED), is_suppressed(ledger.c.phone))
        .values(
            status=Status.REJECTED.value,
            reason=str(RejectReason.suppressed(batch_no)),
            updated_at=stamp,
        )
    ).rowcount
    if not taken_out:
        return 0
    shrunk = conn.execute(
        update(batches)
        .where(
            *one_batch(run_id, batch_no),
            batches.c.status == BatchStatus.SENDING,
            batches.c.lease_token == token,
            batches.c.rows >= taken_out,
        )
        .values(rows=batches.c.rows - taken_out)
    ).rowcount
    if shrunk != 1:
        raise RuntimeError(
            f"batch {batch_no} of run {run_id}: {taken_out} suppressed rows taken out, but its "
            "row count could not be lowered by as many; the claim is rolled back"
        )
    return taken_out


def renew(engine: Engine, lease: Lease) -> None:
    """Extend the lease and count the POST about to start, or raise LeaseLost: the fence
    checked right before every POST. Once this committed, the platform may have the batch."""
    with engine.begin() as conn:
        kept = conn.execute(
            update(batches)
            .where(*_held(lease))
            .values(
                lease_expires_at=database_now(engine, lease.seconds),
                sends=func.coalesce(batches.c.sends, 0) + 1,
            )
        ).rowcount
    if kept != 1:
        raise LeaseLost(f"{lease.describe()} was taken over by another process; not posting")


# -- how a post ends ----------------------------------------------------------------------


def mark_submitted(engine: Engine, lease: Lease, unique_id: str | None) -> None:
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
                .where(*rows_of_batch(lease.run_id, lease.batch_no, Status.SENDING))
                .values(status=Status.SUBMITTED.value, unique_id=unique_id, updated_at=stamp)
            )

    def done() -> bool:
        state = batch_state(engine, lease.run_id, lease.batch_no)
        return bool(unique_id) and state["unique_id"] == unique_id

    _retrying_write(write, done)


# A ledger row whose post may have been accepted: submitted with no unique_id. The reasons
# written into ledger rows keep the words earlier releases wrote ("the task" there is the
# calling task), so that one reason has one text in the ledger.
MAYBE_ACCEPTED_REASON = "post's answer lost: maybe accepted, settled from the task's numbers"


def mark_answer_lost(engine: Engine, lease: Lease, error: str) -> None:
    """sending -> submitted with no ``unique_id``: the post may have been accepted (its answer
    was lost, or its owner died after a POST started). The rows stay active, so no post sends
    them, until the calling task's number list settles them
    (``settling.settle_from_number_list``). Raises LeaseLost when another process owns the
    batch now."""

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
                .where(*rows_of_batch(lease.run_id, lease.batch_no, Status.SENDING))
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


def put_back_to_staged(engine: Engine, lease: Lease, *, error: str, final: bool = False) -> None:
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
            .where(*rows_of_batch(lease.run_id, lease.batch_no, Status.SENDING))
            .values(status=Status.STAGED.value, updated_at=stamp)
        )


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


# -- sending batches, abandoned or live ---------------------------------------------------


def expired_batches(engine: Engine, api_task_id: str) -> list[dict[str, Any]]:
    """Sending batches of the calling task (any run) whose lease has expired: their owners
    are gone."""
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


def take_expired(
    engine: Engine, run_id: str, batch_no: int, owner: str, seconds: float
) -> Lease | None:
    """A sending batch whose lease expired (its owner died or hung) gets a new owner, who must
    look its rows up in the calling task before anything else. None: still live, or taken
    already."""
    token = secrets.token_hex(16)
    with engine.begin() as conn:
        won = conn.execute(
            update(batches)
            .where(
                *one_batch(run_id, batch_no),
                batches.c.status == BatchStatus.SENDING,
                or_(
                    batches.c.lease_expires_at.is_(None),
                    batches.c.lease_expires_at < database_now(engine),
                ),
            )
            .values(
                lease_owner=owner[:400],
                lease_token=token,
                lease_expires_at=database_now(engine, seconds),
            )
        ).rowcount
    return Lease(run_id, batch_no, token, owner, seconds) if won == 1 else None


def sending_phones(engine: Engine, lease: Lease) -> list[str]:
    with engine.connect() as conn:
        return list(
            conn.execute(
                select(ledger.c.phone).where(
                    *rows_of_batch(lease.run_id, lease.batch_no, Status.SENDING)
                )
            ).scalars()
        )


def live_sending_batches(engine: Engine, api_task_id: str) -> int:
    with engine.connect() as conn:
        return conn.execute(
            select(func.count()).where(
                batches.c.api_task_id == api_task_id,
                batches.c.status == BatchStatus.SENDING,
                batches.c.lease_expires_at >= database_now(engine),
            )
        ).scalar_one()
