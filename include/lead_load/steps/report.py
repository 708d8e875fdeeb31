"""Report: the run's summary from the ledger, and the verdict on it."""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import Engine

from agent_api.masking import mask_phones_in
from lead_load.core.ledger_rules import (
    Status,
)
from lead_load.core.settings import RunSettings
from lead_load.ledger import batch_lifecycle, counts

log = logging.getLogger(__name__)


class RunFailed(RuntimeError):
    """The run's outcome is not acceptable; the message says why and what to do."""


def report(
    settings: RunSettings,
    ledger_engine: Engine,
    extract_counts: dict[str, int] | None,
    landing: dict[str, Any] | None = None,
    planned: bool = True,
) -> dict[str, Any]:
    """Summarise the run from the ledger, store it, and fail the run when it went wrong.

    ``planned``: plan_batches finished (a dry run that could not plan has failed too). The
    run's row in ``lead_load_runs`` is written in every case, a failed run's with state
    ``failed`` and its problems (phones masked).
    """
    if extract_counts is None:
        # The step that failed recorded where and why (glue.failures); keep its words.
        recorded = _step_failure(
            ledger_engine, settings, ("recheck_earlier_batches", "extract_and_stage")
        )
        problems = recorded.get("problems") or [
            "the extract step did not finish (it or a task before it failed); see the log "
            "of the first failed task"
        ]
        failed_at = recorded.get("failed_at", "extract_and_stage")
        _record(
            settings,
            ledger_engine,
            {**_identity(settings), "failed_at": failed_at, "problems": problems},
            failed=True,
        )
        raise RunFailed("; ".join(problems))
    statuses = counts.status_counts(ledger_engine, settings.api_task_id, settings.run_id)
    summary: dict[str, Any] = {
        **_identity(settings),
        **extract_counts,
        "rejected_by_reason": counts.reject_reasons(ledger_engine, settings.run_id),
        "submitted": sum(
            statuses.get(s, 0) for s in (Status.SUBMITTED, Status.IMPORTED, Status.NOT_IMPORTED)
        ),
        "imported": statuses.get(Status.IMPORTED, 0),
        "not_imported": statuses.get(Status.NOT_IMPORTED, 0),
        "awaiting_callback": statuses.get(Status.SUBMITTED, 0),
        "not_sent": statuses.get(Status.STAGED, 0) + statuses.get(Status.SENDING, 0),
        "carried_over": batch_lifecycle.carried_over(ledger_engine, settings.run_id),
        "batches": counts.batch_counts(ledger_engine, settings.run_id),
        "landing_check": (landing or {}).get("counts")
        or (landing or {}).get("skipped")
        or "did not run",
    }
    # Duplicates within the run are not failures: one row per phone is the rule.
    failed = summary["not_imported"] + summary["rejected"]
    ratio = failed / summary["extracted"] if summary["extracted"] else 0.0
    summary["reject_ratio"] = round(ratio, 4)
    problems = _problems(summary, settings, landing, planned)
    if not planned:
        summary["failed_at"] = "plan_batches"
        recorded = _step_failure(ledger_engine, settings, ("plan_batches",))
        problems = recorded.get("problems", []) + problems
    if problems:
        summary["problems"] = problems
    _record(settings, ledger_engine, summary, failed=bool(problems))
    log.info("Run summary:\n%s", format_summary(summary))
    if problems:
        raise RunFailed("; ".join(problems))
    return summary


def _step_failure(
    ledger_engine: Engine, settings: RunSettings, stages: tuple[str, ...]
) -> dict[str, Any]:
    """What a failed step of ``stages`` recorded on the run's row; empty if none did (or
    the ledger cannot be read: the verdict does not depend on it)."""
    try:
        recorded = counts.recorded_summary(ledger_engine, settings.run_id)
    except Exception as error:
        log.warning("Could not read run %s's record: %s", settings.run_id, type(error).__name__)
        return {}
    return recorded if recorded.get("failed_at") in stages else {}


def _identity(settings: RunSettings) -> dict[str, Any]:
    return {
        "window": [settings.window_start, settings.window_end],
        "api_task_id": settings.api_task_id,
        "dry_run": settings.dry_run,
    }


def _record(
    settings: RunSettings, ledger_engine: Engine, summary: dict[str, Any], failed: bool
) -> None:
    """Write the run's row; a ledger that cannot be reached is logged, not raised over the
    verdict (the run has failed or is failing for a reason of its own then)."""
    try:
        batch_lifecycle.finish_run(
            ledger_engine,
            settings.run_id,
            settings.api_task_id,
            (settings.window_start, settings.window_end),
            summary,
            failed=failed,
        )
    except Exception as error:
        log.warning("Could not record run %s in the ledger: %s", settings.run_id, error)
        if not failed:
            raise


def _problems(
    summary: dict[str, Any],
    settings: RunSettings,
    landing: dict[str, Any] | None,
    planned: bool,
) -> list[str]:
    """What makes the run fail, each with what to do; phones masked."""
    problems = []
    if not planned:
        problems.append(
            "plan_batches did not finish, so nothing of this run was planned or sent; see its "
            "log for why"
        )
    if summary["not_sent"] and not settings.dry_run:
        problems.append(
            f"{summary['not_sent']} staged rows were not sent (see the failed post_batch "
            "tasks); clear them or run again: nothing already sent will be sent twice"
        )
    if summary["awaiting_callback"]:
        problems.append(
            f"{summary['awaiting_callback']} rows still await the platform's callback; the "
            "next run re-checks their batches by unique_id first"
        )
    if landing is None and not settings.dry_run:
        problems.append("the landing check did not finish; see the verify_landing log")
    elif landing and landing.get("unrepaired"):
        problems.append(
            "the landing check found disagreements it cannot repair: "
            + "; ".join(landing["unrepaired"])
        )
    if summary["reject_ratio"] > settings.max_reject_ratio:
        problems.append(
            f"{summary['reject_ratio']:.1%} of the extracted rows were rejected or not "
            f"imported, above max_reject_ratio={settings.max_reject_ratio:.1%}; see the "
            "lead_load_rejects table"
        )
    return [mask_phones_in(problem) for problem in problems]


def format_summary(summary: dict[str, Any]) -> str:
    """The summary as an aligned two-column table for the task log."""
    lines = []
    for key, value in summary.items():
        if isinstance(value, dict):
            lines.append(f"{key:<22} {'-' if not value else ''}")
            lines += [f"  {sub:<20} {count}" for sub, count in sorted(value.items())]
        else:
            lines.append(f"{key:<22} {value}")
    return "\n".join(lines)
