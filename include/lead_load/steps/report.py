"""Report: the run's summary from the ledger, and the verdict on it."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine

from agent_api.masking import mask_phone, mask_phones_in
from lead_load.core import run_summary
from lead_load.core.run_settings import RunSettings
from lead_load.ledger import counts, planning, run_lifecycle, settling, suppressions

log = logging.getLogger(__name__)


class RunFailed(RuntimeError):
    """The run's outcome is not acceptable; the message says why and what to do. ``note``:
    the run note that says so in one line."""

    def __init__(self, message: str, note: str) -> None:
        super().__init__(message)
        self.note = note


@dataclass(frozen=True)
class RunReport:
    """What a finished run reports: the flat ``summary`` (one scalar per key, adding up as
    ``lead_load.core.run_summary`` says), the nested ``breakdown`` behind its totals, and the
    one-line ``note`` for the DAG run."""

    summary: dict[str, Any]
    breakdown: dict[str, Any]
    note: str

    def stored(self) -> dict[str, Any]:
        """The run's row in lead_load_runs: the summary and its breakdown in one."""
        return {**self.summary, **self.breakdown}


def report(
    settings: RunSettings,
    ledger_engine: Engine,
    extract_counts: dict[str, int] | None,
    landing: dict[str, Any] | None = None,
    planned: bool = True,
) -> RunReport:
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
        raise RunFailed("; ".join(problems), run_summary.failure_note(failed_at, problems))
    statuses = counts.status_counts(ledger_engine, settings.api_task_id, settings.run_id)
    carried = planning.carried_over(ledger_engine, settings.run_id)
    batches = counts.batch_counts(ledger_engine, settings.run_id)
    summary = run_summary.flat_summary(
        _identity(settings),
        extract_counts,
        statuses,
        carried,
        batches,
        landing,
        counts.suppressed_before_posting(ledger_engine, settings.run_id),
    )
    details = run_summary.breakdown(
        counts.reject_reasons(ledger_engine, settings.run_id), carried, batches, landing
    )
    left_open = _left_open(ledger_engine, settings, summary)
    _suppressed_after_import(ledger_engine, settings, summary)
    refused = counts.refused_batches(ledger_engine, settings.run_id)
    problems = _problems(summary, settings, landing, planned, refused) + left_open
    if not planned:
        summary["failed_at"] = "plan_batches"
        recorded = _step_failure(ledger_engine, settings, ("plan_batches",))
        problems = recorded.get("problems", []) + problems
    if problems:
        summary["problems"] = problems
    result = RunReport(
        summary, details, run_summary.run_note(summary, details["invalid_by_reason"])
    )
    _record(settings, ledger_engine, result.stored(), failed=bool(problems))
    log.info("Run summary:\n%s", format_summary(result.stored()))
    broken = run_summary.broken_identities(summary)
    if broken:  # a bug in the counting, not in the load: say so, do not fail the load
        log.warning("The summary does not add up: %s", "; ".join(broken))
    else:
        log.info("It adds up: %s", run_summary.IDENTITY_TEXT)
    if problems:
        raise RunFailed("; ".join(problems), result.note)
    return result


def _left_open(ledger_engine: Engine, settings: RunSettings, summary: dict[str, Any]) -> list[str]:
    """Batches that ended runs left accepted, or maybe accepted, and unsettled: leads that are
    neither in the calling task nor staged. Every run reports them until they settle."""
    summary["maybe_accepted"] = settling.maybe_accepted_rows(ledger_engine, settings.run_id)
    left = settling.left_open_by_ended_runs(ledger_engine, settings.api_task_id, settings.run_id)
    summary["left_open_by_earlier_runs"] = sum(b["rows"] or 0 for b in left)
    if not left:
        return []
    named = ", ".join(f"batch {b['batch_no']} of run {b['run_id']}" for b in left[:5])
    more = f" and {len(left) - 5} more" if len(left) > 5 else ""
    log.warning("Earlier runs left %d batches unsettled: %s%s", len(left), named, more)
    return [
        f"{_count(summary['left_open_by_earlier_runs'], 'row')} of "
        f"{_count(len(left), 'batch', 'batches')} of earlier runs "
        f"({named}{more}) were accepted, or maybe accepted, and are not settled: the "
        "platform has not reported them and the calling task's number list does not show them; a "
        "later run settles them from the list once LEAD_LOAD_SETTLE_SECONDS has passed"
    ]


# How many numbers suppressed after their import the report's warning names.
SUPPRESSED_AFTER_IMPORT_LISTED = 20


def _suppressed_after_import(
    ledger_engine: Engine, settings: RunSettings, summary: dict[str, Any]
) -> None:
    """Numbers of the calling task that the platform has (or may have: submitted) and that
    were put on the suppression list since: counted in the summary and named in a warning
    (lead ids, phones masked). The platform has no delete call, so they stay callable there
    until someone removes them by hand; every run says so while the ledger still has them
    there. Not a failure of the run: nothing it sent was suppressed when it was sent."""
    found = suppressions.imported_but_suppressed(
        ledger_engine, settings.api_task_id, limit=SUPPRESSED_AFTER_IMPORT_LISTED
    )
    summary["suppressed_after_import"] = found.count
    if not found.count:
        return
    named = ", ".join(
        f"lead {mask_phones_in(str(r['lead_id']))} ({mask_phone(r['phone'])}, {r['status']})"
        for r in found.first
    )
    more = f" and {found.count - len(found.first)} more" if found.count > len(found.first) else ""
    log.warning(
        "%s of calling task %s %s on the suppression list but in the calling task already "
        "(imported, or submitted): %s%s. The platform has no delete call: remove them from "
        "the calling task by hand in the platform (docs/suppression.md)",
        _count(found.count, "number"),
        settings.api_task_id,
        "is" if found.count == 1 else "are",
        named,
        more,
    )


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
        "window_start": settings.window_start,
        "window_end": settings.window_end,
        "window_source": settings.window_source,
        "api_task_id": settings.api_task_id,
        "dry_run": settings.dry_run,
    }


def _record(
    settings: RunSettings, ledger_engine: Engine, summary: dict[str, Any], failed: bool
) -> None:
    """Write the run's row; a ledger that cannot be reached is logged, not raised over the
    verdict (the run has failed or is failing for a reason of its own then)."""
    try:
        run_lifecycle.finish_run(
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
    refused: list[dict[str, Any]] | None = None,
) -> list[str]:
    """What makes the run fail, each with what to do; phones masked. ``refused``: the
    run's batches the platform refused for good (``counts.refused_batches``), each distinct
    refusal said once with what to fix instead of "clear them or run again"."""
    problems = []
    if not planned:
        problems.append(
            "plan_batches did not finish, so nothing of this run was planned or sent; see its "
            "log for why"
        )
    not_sent = summary["not_sent"]
    if not_sent and not settings.dry_run:
        by_error: dict[str, list[dict[str, Any]]] = {}
        for batch in refused or []:
            by_error.setdefault(batch["error"] or "no error recorded", []).append(batch)
        for error, group in by_error.items():
            rows = sum(b["rows"] or 0 for b in group)
            not_sent -= rows
            named = ", ".join(str(b["batch_no"]) for b in group[:5])
            more = f" and {len(group) - 5} more" if len(group) > 5 else ""
            problems.append(
                f"{_count(rows, 'staged row')} of {_count(len(group), 'batch', 'batches')} "
                f"({named}{more}) {_were(rows)} refused by "
                f"the platform, which no retry changes, and none was sent: {error}"
            )
    if not_sent > 0 and not settings.dry_run:
        problems.append(
            f"{_count(not_sent, 'staged row')} {_were(not_sent)} not sent (see the failed "
            "post_batch tasks); clear them or run again: nothing already sent will be sent twice"
        )
    if summary.get("maybe_accepted"):
        problems.append(
            f"{_count(summary['maybe_accepted'], 'row')} {_were(summary['maybe_accepted'])} "
            "posted but the answer was lost, and the "
            "calling task's number list does not show them yet: they are never sent again before "
            "LEAD_LOAD_SETTLE_SECONDS has passed since their post; a run after that settles "
            "them (absent ones are sent then)"
        )
    elif summary["awaiting_callback"]:
        problems.append(
            f"{_count(summary['awaiting_callback'], 'row')} still "
            f"{'awaits' if summary['awaiting_callback'] == 1 else 'await'} the platform's "
            "callback; the next run re-checks their batches by unique_id first"
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
            f"{summary['reject_ratio']:.1%} of the extracted rows were invalid or not "
            f"imported, above max_reject_ratio={settings.max_reject_ratio:.1%}; see the "
            "lead_load_rejects table"
        )
    return [mask_phones_in(problem) for problem in problems]


def _count(n: int, singular: str, plural: str | None = None) -> str:
    """``1 row``, ``2 rows``."""
    return f"{n} {singular if n == 1 else plural or singular + 's'}"


def _were(n: int) -> str:
    return "was" if n == 1 else "were"


def format_summary(summary: dict[str, Any], indent: int = 0) -> str:
    """The summary as an aligned two-column table for the task log; a nested count is
    indented under its key, a list item per line, an empty one reads "none"."""
    lines = []
    width = 28 - indent
    for key, value in summary.items():
        if isinstance(value, dict) and value:
            lines.append(" " * indent + str(key))
            lines.append(format_summary(dict(sorted(value.items())), indent + 2))
        elif isinstance(value, list) and value:
            lines.append(" " * indent + str(key))
            lines += [f"{' ' * (indent + 2)}- {item}" for item in value]
        else:
            shown = "none" if isinstance(value, dict | list) and not value else value
            lines.append(f"{' ' * indent}{key:<{width}} {shown}")
    return "\n".join(lines)
