"""The page's presentation rules, on plain values."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import airflow  # noqa: F401 - puts the plugins folder on sys.path, as in every Airflow process
from lead_loads import views


def test_a_window_bound_is_shown_in_utc_and_in_shanghai():
    assert views.in_zones("2026-11-23T18:00:00+00:00") == (
        "2026-11-23 18:00:00 UTC",
        "2026-11-24 02:00:00 +08:00",
    )
    assert views.in_zones("2026-11-24 02:00:00+08:00")[0] == "2026-11-23 18:00:00 UTC"
    assert views.in_zones("2026-11-24T00:00:00")[1] == "2026-11-24 08:00:00 +08:00"  # naive: UTC
    assert views.in_zones("not a time") == ("not a time", "not a time")
    assert views.in_zones(None) == ("-", "-")


def test_a_reversed_or_empty_window_is_said_so():
    assert views.window_problem("2026-11-25T00:00:00Z", "2026-11-24T00:00:00Z").startswith(
        "reversed"
    )
    assert views.window_problem("2026-11-24T00:00:00Z", "2026-11-24T00:00:00Z").startswith("empty")
    assert views.window_problem("2026-11-24T00:00:00Z", "2026-11-25T00:00:00Z") is None
    assert views.window_problem(None, "2026-11-25T00:00:00Z") is None


def test_durations_run_to_now_while_a_load_goes():
    start = datetime(2026, 11, 24, tzinfo=UTC)
    assert views.duration(start, start + timedelta(seconds=3723)) == "1h 02m 03s"
    assert views.duration(start, start + timedelta(seconds=65)) == "1m 05s"
    assert views.duration(start, None, now=start + timedelta(seconds=9)) == "9s"
    assert views.duration(None, start) == "-"


def test_a_map_index_is_a_position_in_the_plan_not_a_batch_number():
    cleared_and_rerun = [{"batch_no": 4, "rows": 200}, {"batch_no": 5, "rows": 12}]
    assert views.batch_no_at(cleared_and_rerun, 0) == 4
    assert views.batch_no_at(cleared_and_rerun, 1) == 5
    assert views.batch_no_at(cleared_and_rerun, 2) is None
    assert views.batch_no_at(cleared_and_rerun, -1) is None  # an unmapped task instance
    assert views.batch_no_at(None, 0) is None
    assert views.batch_no_at([{"rows": 1}], 0) is None


def test_links_into_airflow_keep_its_base_path_and_quote_run_ids():
    root = views.airflow_root("/airflow/lead-loads", "/lead-loads")
    assert root == "/airflow"
    run = "manual__2026-11-24T00:00:00+00:00"
    assert views.dag_run_href(root, run) == (
        "/airflow/dags/lead_load/runs/manual__2026-11-24T00%3A00%3A00%2B00%3A00"
    )
    assert views.task_instance_href("", "r", "batches.post_batch", 3) == (
        "/dags/lead_load/runs/r/tasks/batches.post_batch/mapped/3"
    )
