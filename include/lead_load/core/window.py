"""Which slice of the warehouse a run loads: ``updated_at`` in [start, end), in UTC.

Scheduled runs and backfills take their data interval. Manual runs have none in Airflow 3,
so they must name the window with the ``window_start``/``window_end`` params. Naive values
are read as UTC, like the warehouse's ``updated_at``.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime


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
            "this run has no data interval (manual runs have none in Airflow 3): trigger it "
            "with the window_start and window_end params, e.g. 2026-11-25 and 2026-11-26"
        )
    if start >= end:
        raise WindowError(f"window_start ({start}) must be before window_end ({end})")
    return start, end


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
