"""A run's summary: one flat table whose figures add up, its breakdown, and its one-line note.

Every extracted row is counted once, in one of six places, and every row the run owned at its
end was sent, not sent, or taken out of its batch before posting (``IDENTITIES``):

    extracted = invalid + duplicates_in_run + already_loaded + in_flight + suppressed + staged
    rejected  = invalid + duplicates_in_run
    staged + carried_over = submitted + not_sent + suppressed_before_posting
    submitted = imported + not_imported + awaiting_callback

``invalid``: rows refused by the rules (bad phone, field or lead id, a repeated lead id);
``duplicates_in_run``: valid rows whose phone a more recent lead of the same run has. Both are
in ``lead_load_rejects``; so is a lead whose phone another lead holds in the calling task
(``phone_already_loaded``), which is counted in ``already_loaded``, and a lead whose phone is
on the suppression list when the run stages it (``suppressed``). A row staged (or carried
over) whose phone was suppressed after that is taken out of its batch when the batch is
claimed, before posting: ``suppressed_before_posting``, on the side of the rows the run owned,
since ``staged`` says what staging decided.

The flat table is what the Airflow UI shows well (the report's XCom, one value per key); the
nested counts (reasons, batches by status, ...) go into ``breakdown``.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from lead_load.core.reject_reasons import invalid_by_kind
from lead_load.core.window import SCHEDULE_ZONE, parse_time

# The reject kind of phones another lead holds in the calling task (counted in already_loaded,
# and named in the breakdown). Which kind counts in which figure: reject_reasons.FIGURE_OF_KIND.
PHONE_TAKEN_KIND = "phone_already_loaded"

IDENTITIES: tuple[tuple[str, tuple[str, ...]], ...] = (
    (
        "extracted",
        ("invalid", "duplicates_in_run", "already_loaded", "in_flight", "suppressed", "staged"),
    ),
    ("rejected", ("invalid", "duplicates_in_run")),
    ("staged + carried_over", ("submitted", "not_sent", "suppressed_before_posting")),
    ("submitted", ("imported", "not_imported", "awaiting_callback")),
)
# What extract_and_stage counts towards the identities.
# ("rejected": an extract of an earlier release, whose "rejected" meant invalid.)
_EXTRACT_KEYS = (
    "extracted",
    "invalid",
    "rejected",
    "duplicates_in_run",
    "already_loaded",
    "in_flight",
    "suppressed",
    "staged",
)
IDENTITY_TEXT = "; ".join(f"{total} = {' + '.join(parts)}" for total, parts in IDENTITIES)

# The figures people read about a run, in reading order, with the words every page, the run
# note and the report use for them (the summary's keys stay what they are: the report's XCom
# and the asset events carry them).
FIGURE_WORDS: dict[str, str] = {
    "extracted": "extracted",
    "imported": "imported",
    "invalid": "invalid",
    "duplicates_in_run": "duplicates",
    "already_loaded": "already loaded",
    "in_flight": "in flight in another run",
    "suppressed": "suppressed",
    "staged": "staged",
    "carried_over": "carried over",
    "submitted": "submitted",
    "not_imported": "not imported",
    "awaiting_callback": "awaiting callback",
    "not_sent": "not sent",
    "suppressed_before_posting": "suppressed before posting",
    "rejected": "rejected",
}
# Figures the extract step counts: unknown ("-") on a page until it has finished.
EXTRACT_FIGURES = (
    "extracted",
    "invalid",
    "duplicates_in_run",
    "already_loaded",
    "in_flight",
    "suppressed",
)


def flat_summary(
    identity: Mapping[str, Any],
    extract_counts: Mapping[str, Any],
    statuses: Mapping[str, int],
    carried_over: Mapping[str, int],
    batches: Mapping[str, int],
    landing: Mapping[str, Any] | None,
    suppressed_before_posting: int = 0,
) -> dict[str, Any]:
    """The run's figures, one scalar per key, in reading order.

    ``extract_counts``: what extract_and_stage returned; ``statuses``: the run's ledger rows
    by status; ``carried_over``: rows taken over, by the run they came from; ``batches``: the
    run's batches by status; ``landing``: verify_landing's result (None: it did not finish);
    ``suppressed_before_posting``: the run's rows its claims took out of their batches
    (``counts.suppressed_before_posting``).
    """
    counts = {key: int(value or 0) for key, value in extract_counts.items() if key in _EXTRACT_KEYS}
    # The rest (sex_unknown, updated_at_*_in_table): facts beside the identities.
    facts = {key: value for key, value in extract_counts.items() if key not in _EXTRACT_KEYS}
    invalid = counts.get("invalid", counts.get("rejected", 0))
    duplicates = counts.get("duplicates_in_run", 0)
    imported = statuses.get("imported", 0)
    not_imported = statuses.get("not_imported", 0)
    awaiting = statuses.get("submitted", 0)
    summary: dict[str, Any] = {
        **identity,
        "extracted": counts.get("extracted", 0),
        "invalid": invalid,
        "duplicates_in_run": duplicates,
        "rejected": invalid + duplicates,
        "already_loaded": counts.get("already_loaded", 0),
        "in_flight": counts.get("in_flight", 0),
        "suppressed": counts.get("suppressed", 0),
        "staged": counts.get("staged", 0),
        "carried_over": sum(carried_over.values()),
        "submitted": imported + not_imported + awaiting,
        "imported": imported,
        "not_imported": not_imported,
        "awaiting_callback": awaiting,
        "not_sent": statuses.get("staged", 0) + statuses.get("sending", 0),
        "suppressed_before_posting": int(suppressed_before_posting or 0),
        "batches": sum(batches.values()),
        **facts,
        "landing_check": landing_verdict(landing),
    }
    # Duplicates and suppressed phones are no failure (one row per phone is the rule, and the
    # list is the business's own); invalid and refused rows are.
    failed = summary["invalid"] + summary["not_imported"]
    extracted = summary["extracted"]
    summary["reject_ratio"] = round(failed / extracted, 4) if extracted else 0.0
    return summary


def live_summary(
    extract_counts: Mapping[str, Any] | None,
    statuses: Mapping[str, int],
    carried_over: Mapping[str, int],
    batches: Mapping[str, int],
    suppressed_before_posting: int = 0,
) -> dict[str, Any]:
    """The figures of a run that has not reported (it is going, or it died before its
    report), by the same rules as its report: the extract step's counts (None until it
    finished: its figures are then None) with the ledger's rows as they are now."""
    summary = flat_summary(
        {}, extract_counts or {}, statuses, carried_over, batches, None, suppressed_before_posting
    )
    if extract_counts is None:
        for key in (*EXTRACT_FIGURES, "staged", "rejected", "reject_ratio"):
            summary[key] = None
    del summary["landing_check"]
    return summary


def breakdown(
    reject_kinds: Mapping[str, int],
    carried_over: Mapping[str, int],
    batches: Mapping[str, int],
    landing: Mapping[str, Any] | None,
) -> dict[str, Any]:
    """The nested counts behind the flat table's totals."""
    invalid = dict(sorted(invalid_by_kind(dict(reject_kinds)).items()))
    return {
        "invalid_by_reason": invalid,
        "phone_held_by_another_lead": reject_kinds.get(PHONE_TAKEN_KIND, 0),
        "carried_over_by_run": dict(carried_over),
        "batches_by_status": dict(sorted(batches.items())),
        "landing_check_counts": dict((landing or {}).get("counts") or {}),
    }


def landing_verdict(landing: Mapping[str, Any] | None) -> str:
    """The landing check in a few words: its counts are in the breakdown."""
    if landing is None:
        return "did not finish"
    if "skipped" in landing:
        return f"skipped: {landing['skipped']}"
    counts = landing.get("counts") or {}
    unrepaired = sum((counts.get("unrepaired") or {}).values())
    repaired = sum((counts.get("repaired") or {}).values())
    return (
        f"{counts.get('agree', 0)} of {counts.get('checked', 0)} agree, "
        f"{repaired} repaired, {unrepaired} unrepaired"
    )


def broken_identities(summary: Mapping[str, Any]) -> list[str]:
    """The identities the summary breaks, written out with its figures (empty: it adds up)."""
    broken = []
    for total, parts in IDENTITIES:
        left = sum(int(summary.get(name, 0) or 0) for name in total.split(" + "))
        right = sum(int(summary.get(name, 0) or 0) for name in parts)
        if left != right:
            broken.append(f"{total} ({left}) != {' + '.join(parts)} ({right})")
    return broken


def run_note(summary: Mapping[str, Any], invalid_by_reason: Mapping[str, int]) -> str:
    """One line for the DAG run's note: what a data engineer asks first about a load."""
    reasons = ", ".join(
        f"{kind} {count}"
        for kind, count in sorted(invalid_by_reason.items(), key=lambda kv: (-kv[1], kv[0]))
    )
    words = FIGURE_WORDS
    parts = [
        f"{'Dry run: ' if summary.get('dry_run') else ''}{words['imported']} "
        f"{summary['imported']} of {summary['extracted']} {words['extracted']}",
        f"{words['invalid']} {summary['invalid']}" + (f" ({reasons})" if reasons else ""),
        *(
            f"{words[key]} {summary[key]}"
            for key in ("duplicates_in_run", "already_loaded", "not_imported", "carried_over")
        ),
    ]
    for optional, said in (
        ("in_flight", words["in_flight"]),
        ("suppressed", words["suppressed"]),
        ("suppressed_before_posting", words["suppressed_before_posting"]),
        ("suppressed_after_import", "suppressed after import (remove by hand)"),
        ("not_sent", words["not_sent"]),
        ("awaiting_callback", words["awaiting_callback"]),
        ("maybe_accepted", "of them maybe accepted (answer lost)"),
        ("left_open_by_earlier_runs", "unsettled of earlier runs"),
    ):
        if summary.get(optional):
            parts.append(f"{said} {summary[optional]}")
    window = note_window(summary.get("window_start"), summary.get("window_end"))
    if summary.get("window_source"):
        window += f", {summary['window_source']}"
    note = "; ".join(parts) + f" | {window}"
    if summary.get("problems"):
        note = f"Failed: {summary['problems'][0]} | {note}"
    return _at_most(note, NOTE_MAX_CHARS)


def note_window(start: object, end: object) -> str:
    """The window for the run note, in UTC and in the schedule's zone by its offset (never an
    abbreviation such as CST, which names three zones): ``window 2026-11-24 00:00 to
    2026-11-25 00:00 UTC (08:00 to 08:00 +08:00)``. A local time carries its date when that
    differs from the UTC one. Values that are no ISO date-time are shown as they are."""
    moments = [parse_time(start), parse_time(end)]
    if None in moments:
        return f"window {start} to {end} UTC"
    utc = [moment.astimezone(UTC) for moment in moments]
    local = [moment.astimezone(SCHEDULE_ZONE) for moment in moments]
    local_text = [
        _clock(there) if there.date() == here.date() else f"{there:%Y-%m-%d} {_clock(there)}"
        for here, there in zip(utc, local, strict=True)
    ]
    offsets = [_offset(moment) for moment in local]
    if offsets[0] == offsets[1]:
        local_part = f"{local_text[0]} to {local_text[1]} {offsets[0]}"
    else:
        local_part = f"{local_text[0]} {offsets[0]} to {local_text[1]} {offsets[1]}"
    return (
        f"window {utc[0]:%Y-%m-%d} {_clock(utc[0])} to {utc[1]:%Y-%m-%d} {_clock(utc[1])} UTC "
        f"({local_part})"
    )


def _clock(moment: datetime) -> str:
    """HH:MM, with seconds (and their fraction) only when the moment has them."""
    if moment.second == 0 and moment.microsecond == 0:
        return f"{moment:%H:%M}"
    return moment.time().isoformat()


def _offset(moment: datetime) -> str:
    """The UTC offset as +HH:MM."""
    text = f"{moment:%z}"
    return f"{text[:3]}:{text[3:5]}"


def failure_note(failed_at: str, problems: list[str]) -> str:
    """The note of a run that failed before it had anything to count."""
    return _at_most(f"Failed at {failed_at}: {'; '.join(problems)}", NOTE_MAX_CHARS)


# The api-server refuses a longer note.
NOTE_MAX_CHARS = 1000


def _at_most(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


# What a consumer of the imported-leads asset learns from its event.
ASSET_EXTRA_KEYS = (
    "api_task_id",
    "window_start",
    "window_end",
    "extracted",
    "imported",
    "not_imported",
    "invalid",
    "duplicates_in_run",
    "already_loaded",
    "carried_over",
)


def asset_extra(summary: Mapping[str, Any]) -> dict[str, Any]:
    """The extra of the run's imported-leads asset event: the counts and the calling task."""
    return {key: summary[key] for key in ASSET_EXTRA_KEYS if key in summary}
