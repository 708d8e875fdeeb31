"""A run's staged rows numbered into planned batches, after taking over those of dead runs.

- **Ownership.** Ledger rows belong to the run in their ``run_id``. Planning numbers only the
  rows of its own run, plus the staged rows of runs that finished or whose run lease expired,
  which it takes over explicitly (``carried_from``; counted in the summary as carried over).
  Rows of live runs, and rows in a sending batch, are never touched.
- **Numbers are never reused within a run.** A cleared re-run forgets the batches nobody
  claimed (``forget_unclaimed_and_refused_batches``) and numbers on from the highest number
  the run used, so a late copy of an old post step cannot claim a batch holding other rows.

With ``run_lifecycle``, ``batch_lifecycle`` and ``settling``, the only writers of run and
batch states and of the statuses of a batch's rows: each transition one conditional statement.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Engine, delete, exists, func, insert, literal, select, update

from lead_load.core.ledger_rules import RUN_LEASE_SECONDS, BatchStatus, RunState, Status
from lead_load.ledger.schema import batches, database_now, ledger, now, runs

log = logging.getLogger(__name__)


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
                lease_expires_at=database_now(engine, RUN_LEASE_SECONDS),
                **({"first_batch_no": first} if refs else {}),
            )
        )
    return Plan([{"batch_no": r.batch_no, "rows": r.rows} for r in refs], carried)


def _dead_runs(conn, api_task_id: str, run_id: str) -> list[str]:
    """Other runs holding staged rows of the calling task that are finished, expired, or unknown
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
