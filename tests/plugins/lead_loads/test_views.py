"""The page's presentation rules, on plain values."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import airflow  # noqa: F401 - puts the plugins folder on sys.path, as in every Airflow process
import pytest
from lead_loads import views


def test_a_window_bound_is_shown_in_utc_and_in_shanghai():
    assert views.in_zones("2026-11-23T18:00:00+00:00") == (
        "2026-11-23 18:00:00 UTC",
        "2026-11-24 02:00:00 +08:00",
    )
    assert views.in_zones("2026-11-24 02:00:00+08:00")[0] == "2026-11-23 18:00:00 UTC"
    assert views.in_zones("2026-11-24T00:00:00")[1] == "2026-11-24 08:00:00 +08:00"  # naive: UTC
    assert views.in_zones("not a time") == ("not a time (unreadable)", "not a time (unreadable)")
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


def test_counts_agree_with_their_nouns():
    assert views.plural(1, "attempt") == "1 attempt"
    assert views.plural(2, "attempt") == "2 attempts"
    assert views.plural(0, "batch", "batches") == "0 batches"


def test_the_lists_filters_are_read_from_the_form_and_kept_for_its_links():
    filters = views.LoadFilters.of(
        state=" failed ", api_task_id="t-1", window_from="2026-11-24", window_to=None
    )
    assert filters.problems() == [] and filters.any
    assert filters.arguments() == {
        "state": "failed",
        "load_id": None,
        "api_task_id": "t-1",
        "window_from": date(2026, 11, 24),
        "window_to": None,
    }
    assert filters.pager_href("/lead-loads") == (
        "/lead-loads/?state=failed&api_task_id=t-1&window_from=2026-11-24&page="
    )
    none = views.LoadFilters.of(state="", api_task_id="", window_from="", window_to="")
    assert not none.any and none.pager_href("/b") == "/b/?page="
    assert set(none.arguments().values()) == {None}


def test_a_filter_that_cannot_be_read_is_said_plainly():
    said = views.LoadFilters.of(
        state="done", window_from="2026-02-30", window_to="20261124"
    ).problems()
    assert said == [
        "State 'done' is none of running, finished, failed: choose one, or all.",
        "window_from '2026-02-30' is not a day written YYYY-MM-DD (e.g. 2026-11-24).",
        "window_to is not a day written YYYY-MM-DD (e.g. 2026-11-24).",  # no number echoed
    ]
    reversed_days = views.LoadFilters.of(window_from="2026-11-25", window_to="2026-11-24")
    assert reversed_days.problems() == [
        "window_from (2026-11-25) is after window_to (2026-11-24): no window lies between."
    ]
    typed = views.LoadFilters.of(api_task_id="13900000001", state="13900000001")
    assert typed.shown("api_task_id") == "139****0001"
    assert typed.problems() == ["State is none of running, finished, failed: choose one, or all."]


def test_a_map_index_is_read_from_text():
    assert views.map_index_of("0") == 0 and views.map_index_of("12") == 12
    for text in ("-1", "{MAP_INDEX}", "", "1.0", "１", " 1"):
        assert views.map_index_of(text) is None, text


def test_the_batch_tab_says_what_it_is_for():
    purpose = "This tab shows one batch of lead_load: open it on a mapped instance of post_batch."
    assert views.not_a_batch("lead_load", "report") == (
        f"{purpose} report is not a batch; the run's figures are on its Lead load tab."
    )
    assert views.not_a_batch(None, None).startswith(
        f"{purpose} This task instance without a map index is not a batch;"
    )
    assert views.not_a_batch("other", "x") == (
        f"{purpose} x of DAG other is not a batch: that DAG loads no leads."
    )


def test_a_request_fastapi_cannot_read_is_said_in_words_without_its_value():
    errors = [
        {"type": "int_parsing", "loc": ("query", "page"), "input": "13900000001"},
        {"type": "int_parsing", "loc": ("path", "batch_no"), "input": "x"},
        {"type": "missing", "loc": ("body", "phone")},
        {"type": "something_else", "loc": ()},
    ]
    assert views.unreadable_request(errors) == (
        "This address asks for something the page cannot read: page must be a whole number; "
        "batch_no must be a whole number; phone is missing; a value cannot be read. Follow "
        "the page's own links, or start again from the list of loads."
    )


@pytest.mark.parametrize(
    ("typed", "said"),
    [
        ("139****0001", views.MASKED_NUMBER),
        ("139＊＊＊＊0001", views.MASKED_NUMBER),
        ("12345", "That is not a mobile number (reason: not_mobile)"),
        ("010-12345678", "That is not a mobile number (reason: not_mobile)"),
        ("abc", "That is not a mobile number (reason: not_a_phone)"),
        ("+86 139 0000 0001", None),
        ("13900000001", None),
    ],
)
def test_a_phone_search_that_can_match_nothing_says_why(typed, said):
    problem = views.phone_search_problem(typed)
    assert problem == said if said is None else problem.startswith(said)
    assert problem is None or "0000" not in problem


def test_a_run_the_ledger_does_not_know_names_the_ledger_read():
    said = views.unknown_run("manual__1", "my_ledger")
    assert said.startswith(
        "The ledger this page reads (connection my_ledger) has no row of run manual__1. "
    )
    assert "139****0001" in views.unknown_run("13900000001", "x")


def test_the_list_shows_a_window_in_two_short_lines():
    assert views.window_lines("2026-11-23T18:00:00+00:00", "2026-11-24T18:00:00+00:00") == (
        "2026-11-23 18:00 \u2192 2026-11-24 18:00 UTC",
        "2026-11-24 02:00 \u2192 2026-11-25 02:00 +08:00",
    )
    assert views.window_lines("2026-11-23T18:00:00+00:00", None) == (
        "2026-11-23 18:00 \u2192 - UTC",
        "2026-11-24 02:00 \u2192 - +08:00",
    )
    assert views.window_lines("garbled", None)[0] == "garbled \u2192 - UTC"


def test_a_runs_addresses_name_its_load():
    default, other = "scheduled__2026-11-24T18:00:00+00:00", "lapsed_customers/manual__1"
    assert views.run_href("/b", default) == "/b/runs/scheduled__2026-11-24T18%3A00%3A00%2B00%3A00"
    assert views.run_href("/b", other) == "/b/loads/lapsed_customers/runs/manual__1"
    assert views.dag_run_href("", other) == "/dags/lapsed_customers/runs/manual__1"
    assert views.task_instance_href("", other, "post_batch", 2) == (
        "/dags/lapsed_customers/runs/manual__1/tasks/post_batch/mapped/2"
    )
    assert (views.load_of(default), views.load_of(other)) == ("lead_load", "lapsed_customers")
    assert "that DAG loads no leads" in views.not_a_batch("canary", "t", ["lead_load"])
    assert "loads no leads" not in views.not_a_batch(
        "lapsed_customers", "report", ["lapsed_customers"]
    )
