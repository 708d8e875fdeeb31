"""A run's row in ``lead_load_runs``: started, kept live, read by its batches, and ended.

A run owns the ledger rows in its ``run_id`` while it is live: its row is ``running`` and its
run lease (``RUN_LEASE_SECONDS``, renewed by every step and every batch claim) has not
expired. A run that finished, failed or stopped renewing leaves its staged rows to the next
plan (``planning``); docs/leases.md, "Run leases", says why the lease lasts two hours.

With ``planning``, ``batch_lifecycle`` and ``settling``, the only writers of run and batch
states and of the statuses of a batch's rows: each transition one conditional statement.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, insert, select, update
from sqlalchemy.exc import IntegrityError

from lead_load.core.ledger_rules import RUN_LEASE_SECONDS, RunState
from lead_load.ledger.schema import batches, database_now, now, runs


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
        "lease_expires_at": database_now(engine, RUN_LEASE_SECONDS),
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


def renew_run(engine: Engine, run_id: str) -> None:
    with engine.begin() as conn:
        conn.execute(
            update(runs)
            .where(runs.c.run_id == run_id, runs.c.state == RunState.RUNNING)
            .values(lease_expires_at=database_now(engine, RUN_LEASE_SECONDS))
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


# -- what a run's batches read of it ------------------------------------------------------


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


def run_settings(engine: Engine, run_id: str) -> dict[str, Any] | None:
    """The run's settings, as its first task recorded them; None before that."""
    with engine.connect() as conn:
        text = conn.execute(
            select(runs.c.settings).where(runs.c.run_id == run_id)
        ).scalar_one_or_none()
    return None if text is None else json.loads(text)


def latest_plan(engine: Engine, run_id: str) -> list[dict[str, Any]]:
    """The batches of the run's latest plan (from its first batch number on), in order, with
    their status and ``unique_id``; empty when the run has planned nothing yet."""
    with engine.connect() as conn:
        first = conn.execute(
            select(runs.c.first_batch_no).where(runs.c.run_id == run_id)
        ).scalar_one_or_none()
        if first is None:
            return []
        rows = conn.execute(
            select(batches.c.batch_no, batches.c.rows, batches.c.status, batches.c.unique_id)
            .where(batches.c.run_id == run_id, batches.c.batch_no >= first)
            .order_by(batches.c.batch_no)
        ).all()
    return [dict(r._mapping) for r in rows]


# -- the end of a run ---------------------------------------------------------------------


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
    """Other runs of the calling task the ledger holds for live (running, lease not expired)."""
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
