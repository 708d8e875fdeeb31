"""Plan: the run's staged rows (and those it takes over) numbered into batches."""

from __future__ import annotations

import logging

from sqlalchemy import Engine

from lead_load.core.ledger_rules import (
    BatchStatus,
    batch_count,
    check_map_limit,
    first_batch_no,
)
from lead_load.core.run_settings import RunSettings
from lead_load.ledger import planning, run_lifecycle

log = logging.getLogger(__name__)


def plan(settings: RunSettings, ledger_engine: Engine, max_map_length: int) -> list[dict]:
    """Batch references for the mapped post_batch task (small: numbers, no rows).

    The run plans its own staged rows and takes over those of finished or dead runs
    (reported as carried over); rows of other live runs are theirs to send.
    """
    rows, carried = planning.count_plannable(ledger_engine, settings.run_id, settings.api_task_id)
    batches = batch_count(rows, settings.batch_size)
    check_map_limit(batches, max_map_length, carried_rows=carried)
    if settings.dry_run:
        log.info(
            "Dry run: %d staged rows (%d of them left by earlier runs) would go out in %d "
            "batches; nothing is sent",
            rows,
            carried,
            batches,
        )
        return []
    planned = planning.plan(
        ledger_engine, settings.run_id, settings.api_task_id, settings.batch_size
    )
    if not planned.batches and (unposted := _plan_still_to_post(ledger_engine, settings)):
        return unposted
    if planned.batches:
        # The batches' tasks find theirs as first + map index (run_lifecycle.run_context).
        first_batch_no([b["batch_no"] for b in planned.batches])
    log.info(
        "Planned %d batches for %d staged rows (carried over from earlier runs: %s)",
        len(planned.batches),
        sum(b["rows"] for b in planned.batches),
        planned.carried_over or "none",
    )
    return planned.batches


def _plan_still_to_post(ledger_engine: Engine, settings: RunSettings) -> list[dict]:
    """The run's latest plan when some of its batches were never posted: what a retry of
    this step must return after its first try's plan committed (the first try failed later,
    say while handing its result to Airflow). Returning nothing would leave those batches
    planned with no task to post them. Every batch of the plan is returned, posted ones too,
    so that map index ``i`` is still batch ``first + i``; their tasks find them posted."""
    latest = run_lifecycle.latest_plan(ledger_engine, settings.run_id)
    if not any(b["status"] == BatchStatus.PLANNED for b in latest):
        return []
    log.warning(
        "Nothing new to plan, but the run's plan of %d batches (batches %d to %d) still has "
        "unposted batches: returning that plan (a retry of plan_batches after its plan was "
        "written)",
        len(latest),
        latest[0]["batch_no"],
        latest[-1]["batch_no"],
    )
    return [{"batch_no": b["batch_no"], "rows": b["rows"]} for b in latest]
