"""Which window a run loads."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from lead_load.core.window import WindowError, resolve_window, sql_bounds

SHANGHAI = timezone(timedelta(hours=8))


def test_params_win_over_the_data_interval_and_naive_means_utc():
    start, end = resolve_window(
        "2026-11-24", "2026-11-25T08:00:00+08:00", datetime(2020, 1, 1, tzinfo=UTC), None
    )
    assert start == datetime(2026, 11, 24, tzinfo=UTC)
    assert end == datetime(2026, 11, 25, tzinfo=UTC)


def test_scheduled_runs_use_their_data_interval_in_utc():
    start, end = resolve_window(
        None,
        None,
        datetime(2026, 11, 25, 2, tzinfo=SHANGHAI),
        datetime(2026, 11, 26, 2, tzinfo=SHANGHAI),
    )
    assert (start, end) == (
        datetime(2026, 11, 24, 18, tzinfo=UTC),
        datetime(2026, 11, 25, 18, tzinfo=UTC),
    )


@pytest.mark.parametrize(
    ("params", "interval", "message"),
    [
        ((None, None), (None, None), "has no data interval"),
        (("2026-11-24", None), (None, None), "set both"),
        (("yesterday", "today"), (None, None), "is not a date"),
        # SQL in a param never gets near the query: it is not a date.
        (("2026-11-24", "2026-11-25'; DROP TABLE leads; --"), (None, None), "window_end=.*DROP"),
        (("2026-11-25", "2026-11-24"), (None, None), "must be before"),
    ],
)
def test_bad_or_missing_windows_say_what_to_do(params, interval, message):
    with pytest.raises(WindowError, match=message):
        resolve_window(*params, *interval)


def test_sql_bounds_are_text_for_sqlite_and_timestamps_elsewhere():
    start, end = datetime(2026, 11, 24, tzinfo=UTC), datetime(2026, 11, 25, tzinfo=UTC)
    assert sql_bounds(start, end, "sqlite") == {
        "window_start": "2026-11-24 00:00:00",
        "window_end": "2026-11-25 00:00:00",
    }
    assert sql_bounds(start, end, "postgresql")["window_end"] == datetime(2026, 11, 25)


def test_text_bounds_are_utc_text_with_a_fraction_only_when_there_is_one():
    from lead_load.core.window import text_bounds

    bounds = {
        "window_start": datetime(2026, 11, 24, 8, tzinfo=SHANGHAI),
        "window_end": datetime(2026, 11, 25, 0, 0, 0, 500000),
        "other": "as it was",
    }
    assert text_bounds(bounds) == {
        "window_start": "2026-11-24 00:00:00",
        "window_end": "2026-11-25 00:00:00.500000",
        "other": "as it was",
    }
    # SQLite's bounds are the same text.
    start, end = bounds["window_start"], datetime(2026, 11, 25, 0, 0, 0, 500000, tzinfo=UTC)
    assert sql_bounds(start, end, "sqlite") == {
        "window_start": "2026-11-24 00:00:00",
        "window_end": "2026-11-25 00:00:00.500000",
    }


def test_the_window_says_where_it_comes_from():
    from lead_load.core.window import is_inferred, window_source

    assert window_source("2026-11-24", "2026-11-25", "manual") == "window_start/window_end params"
    assert window_source(None, None, "scheduled") == "scheduled run's data interval"
    assert window_source("", "", "backfill") == "backfill run's data interval"
    manual = window_source(None, None, "manual")
    assert is_inferred(manual) and "window_start/window_end were not set" in manual
    assert not is_inferred(window_source(None, None, "backfill"))


def test_the_run_type_may_be_airflows_enum_whose_str_is_not_its_value():
    from enum import Enum

    from lead_load.core.window import window_source

    class RunType(str, Enum):  # noqa: UP042 - the Task SDK DagRunType: str() is not the value
        SCHEDULED = "scheduled"
        MANUAL = "manual"

    assert str(RunType.SCHEDULED) != "scheduled"
    assert window_source(None, None, RunType.SCHEDULED) == "scheduled run's data interval"
    assert window_source(None, None, RunType.MANUAL).startswith("manual run's data interval")


def test_a_manual_run_without_params_loads_the_interval_airflow_inferred():
    """What the trigger form does in Airflow 3.3: it infers the last whole interval."""
    start, end = resolve_window(
        "",
        "",
        datetime(2026, 11, 24, 2, tzinfo=SHANGHAI),
        datetime(2026, 11, 25, 2, tzinfo=SHANGHAI),
    )
    assert (start, end) == (
        datetime(2026, 11, 23, 18, tzinfo=UTC),
        datetime(2026, 11, 24, 18, tzinfo=UTC),
    )


def test_the_window_is_described_in_utc_and_asia_shanghai():
    from lead_load.core.window import describe_window

    described = describe_window(
        datetime(2026, 11, 23, 18, tzinfo=UTC), datetime(2026, 11, 24, 18, tzinfo=UTC)
    )
    assert described == (
        "[2026-11-23 18:00:00 UTC (2026-11-24 02:00:00 Asia/Shanghai), "
        "2026-11-24 18:00:00 UTC (2026-11-25 02:00:00 Asia/Shanghai))"
    )
