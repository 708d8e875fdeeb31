"""Which slice of the warehouse a run loads: ``updated_at`` in [start, end), in UTC.

The ``window_start``/``window_end`` params win. Without them a run loads its data interval:
scheduled runs and backfills their own; a manual run the one Airflow's trigger form infers
from its logical date (the last whole interval before it, i.e. the previous night's load).
The run says so (``window_source``: the log and the run note), so it is never silent. A
manual run created without a logical date (REST, CLI) has no interval and must name the
window. Naive values are read as UTC, like the warehouse's ``updated_at``.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

# The schedule's zone (02:00 Asia/Shanghai): windows are logged in it beside UTC.
SCHEDULE_ZONE = ZoneInfo("Asia/Shanghai")
# Run types whose data interval is the window they are meant to load.
_INTERVAL_RUN_TYPES = ("scheduled", "backfill")


class WindowError(ValueError):
    """The run's window is missing or malformed."""


def _parse(name: str, value: str) -> datetime:
    try:
        moment = datetime.fromisoformat(str(value).strip().replace("Z", "+00:00"))
    except ValueError:
        raise WindowError(
            f"{name}={value!r} is not a date or an ISO date-time (e.g. 2026-11-25 or "
            "2026-11-25T00:00:00+08:00)"
        ) from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def resolve_window(
    window_start: str | None,
    window_end: str | None,
    interval_start: datetime | None,
    interval_end: datetime | None,
) -> tuple[datetime, datetime]:
    """The run's [start, end) in UTC, from the params if given, else the data interval."""
    if window_start or window_end:
        if not (window_start and window_end):
            raise WindowError("set both window_start and window_end, or neither")
        start, end = _parse("window_start", window_start), _parse("window_end", window_end)
    elif interval_start is not None and interval_end is not None and interval_start < interval_end:
        start, end = interval_start.astimezone(UTC), interval_end.astimezone(UTC)
    else:
        raise WindowError(
            "this run has no data interval (a manual run created without a logical date): "
            "trigger it with the window_start and window_end params (UTC), e.g. 2026-11-25 "
            "and 2026-11-26"
        )
    if start >= end:
        raise WindowError(f"window_start ({start}) must be before window_end ({end})")
    return start, end


def window_source(window_start: str | None, window_end: str | None, run_type: object) -> str:
    """Where the run's window comes from, in words for the log, the summary and the run note.
    A manual run without the params loads an inferred interval: say it plainly. ``run_type``:
    the DAG run's, as text or Airflow's enum (whose ``str()`` is not its value)."""
    run_type = getattr(run_type, "value", run_type)
    if window_start or window_end:
        return "window_start/window_end params"
    if run_type in _INTERVAL_RUN_TYPES:
        return f"{run_type} run's data interval"
    return (
        f"{run_type or 'this'} run's data interval, inferred from its logical date "
        "(window_start/window_end were not set)"
    )


def is_inferred(source: str) -> bool:
    """The window is an interval Airflow inferred, not one anybody chose."""
    return "inferred" in source


def describe_window(start: datetime, end: datetime) -> str:
    """[start, end) in UTC and in the schedule's zone, for the log."""

    def both(moment: datetime) -> str:
        utc = moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")
        local = moment.astimezone(SCHEDULE_ZONE).strftime("%Y-%m-%d %H:%M:%S")
        return f"{utc} UTC ({local} {SCHEDULE_ZONE.key})"

    return f"[{both(start)}, {both(end)})"


def sql_bounds(start: datetime, end: datetime, dialect: str) -> dict[str, datetime | str]:
    """Bind values for the extract query: naive UTC timestamps, or text for SQLite (which has
    no date-time type; include/sql/sqlite/extract_leads.sql reads both sides with julianday())."""
    bounds = {
        "window_start": start.astimezone(UTC).replace(tzinfo=None),
        "window_end": end.astimezone(UTC).replace(tzinfo=None),
    }
    return text_bounds(bounds) if dialect == "sqlite" else bounds


def text_bounds(bounds: Mapping[str, datetime | str]) -> dict[str, datetime | str]:
    """The bounds as UTC text, ``YYYY-MM-DD HH:MM:SS`` (and ``.ffffff`` when the bound has a
    fraction): what a text ``updated_at`` column is compared with, and what any database
    reads as a timestamp. Text values stay as they are."""
    return {
        key: _utc_text(value) if isinstance(value, datetime) else value
        for key, value in bounds.items()
    }


def _utc_text(moment: datetime) -> str:
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC).replace(tzinfo=None)
    return moment.isoformat(sep=" ", timespec="auto")


def parse_time(value: str | datetime | None) -> datetime | None:
    """A window bound or timestamp as an aware datetime (naive values are UTC, as the load
    reads them); None when missing or unreadable."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        moment = value
    else:
        try:
            moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
        except ValueError:
            return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
