"""The loads the ledger shows people, after two real loads into a simulator task
(browse_samples), on every ledger database: newest first, paged and filtered in SQL, with
their report's figures or counted live by its rules."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import insert

from lead_load.ledger import browse, counts, schema


def test_loads_come_newest_first_with_their_reports_figures(engine, loaded):
    page = browse.list_loads(engine)
    assert [load.run_id for load in page.items] == ["run-1", "run-0"]
    run1, run0 = page.items
    # 9 rows extracted: a-e sent (e refused: already in the task), f g i invalid, h a's duplicate
    assert run1.reported
    assert (run1.extracted, run1.imported, run1.figures["not_imported"]) == (9, 6, 1)
    figures = run1.figures
    assert (figures["invalid"], figures["duplicates_in_run"], figures["carried_over"]) == (3, 1, 2)
    report = counts.recorded_summary(engine, "run-1")
    assert figures == {key: report[key] for key in figures}
    assert run1.state == "finished" and not run1.running
    assert run1.api_task_id == loaded.task_id
    assert run1.window_start == "2026-11-24T00:00:00+00:00"
    assert run1.started_at <= run1.finished_at and run1.started_at.utcoffset().total_seconds() == 0
    # run-0 died before its report: no extract count, its rows went to run-1
    assert (run0.state, run0.extracted, run0.imported) == ("failed", None, 0)
    assert not run0.reported
    assert browse.get_load(engine, "run-1") == run1
    assert browse.get_load(engine, "no-such-run") is None


def test_loads_are_paged(engine, loaded):
    first = browse.list_loads(engine, page=1, per_page=1)
    second = browse.list_loads(engine, page=2, per_page=1)
    assert (first.total, first.pages) == (2, 2)
    assert [first.items[0].run_id, second.items[0].run_id] == ["run-1", "run-0"]
    assert browse.list_loads(engine, page=3, per_page=1).items == []


def test_loads_are_filtered_in_sql_by_state_calling_task_and_window(engine, loaded):
    def ids(**filters) -> list[str]:
        return [load.run_id for load in browse.list_loads(engine, **filters).items]

    assert ids(state="failed") == ["run-0"]
    assert ids(state="finished") == ["run-1"]
    assert ids(state="running") == []
    assert ids(api_task_id=loaded.task_id) == ["run-1", "run-0"]
    assert ids(api_task_id=loaded.task_id[:-1]) == []  # exact, not a prefix
    # run-0 loaded [11-23, 11-24), run-1 [11-24, 11-25): a window touching a day's bound
    # only at its end does not overlap it.
    day = date.fromisoformat
    assert ids(window_from=day("2026-11-24")) == ["run-1"]
    assert ids(window_to=day("2026-11-23")) == ["run-0"]
    assert ids(window_from=day("2026-11-23"), window_to=day("2026-11-23")) == ["run-0"]
    assert ids(window_from=day("2026-11-23"), window_to=day("2026-11-24")) == ["run-1", "run-0"]
    assert ids(window_from=day("2026-11-25")) == []
    assert ids(window_to=day("2026-11-22")) == []
    assert ids(state="finished", window_to=day("2026-11-23")) == []
    paged = browse.list_loads(engine, page=2, per_page=1, window_from=day("2026-11-23"))
    assert (paged.total, paged.pages, [load.run_id for load in paged.items]) == (2, 2, ["run-0"])
    assert browse.calling_tasks(engine) == [loaded.task_id]


def test_a_window_filter_compares_what_the_project_writes_to_the_microsecond(engine, loaded):
    """Windows are stored as ``datetime.isoformat()`` in UTC, with ``.ffffff`` when they have
    microseconds: half a second past a day's start is inside that day."""
    half = timedelta(milliseconds=500)
    windows = {
        # ends half a second into 11-28: overlaps 11-28
        "run-a": (
            datetime(2026, 11, 27, 12, tzinfo=UTC),
            datetime(2026, 11, 28, tzinfo=UTC) + half,
        ),
        # starts half a second before 11-30: overlaps 11-29; ends at 11-30 00:00: not 11-30
        "run-b": (datetime(2026, 11, 30, tzinfo=UTC) - half, datetime(2026, 11, 30, tzinfo=UTC)),
    }
    with engine.begin() as conn:
        conn.execute(
            insert(schema.runs),
            [
                {
                    "run_id": run_id,
                    "api_task_id": loaded.task_id,
                    "window_start": start.isoformat(),
                    "window_end": end.isoformat(),
                    "state": "finished",
                    "started_at": end,
                }
                for run_id, (start, end) in windows.items()
            ],
        )

    def ids(first: str | None, last: str | None) -> list[str]:
        days = {"window_from": first, "window_to": last}
        found = browse.list_loads(
            engine, **{key: date.fromisoformat(v) if v else None for key, v in days.items()}
        )
        return sorted(load.run_id for load in found.items if load.run_id in windows)

    assert ids("2026-11-28", "2026-11-28") == ["run-a"]
    assert ids("2026-11-27", None) == ["run-a", "run-b"]
    assert ids(None, "2026-11-27") == ["run-a"]
    assert ids("2026-11-29", "2026-11-29") == ["run-b"]
    assert ids("2026-11-30", None) == []


def test_a_run_that_has_not_reported_is_counted_by_its_reports_rules(engine, loaded):
    report = counts.recorded_summary(engine, "run-1")
    with engine.begin() as conn:  # run-1 runs again, its extract's counts kept on its row
        conn.execute(
            schema.runs.update()
            .where(schema.runs.c.run_id == "run-1")
            .values(state="running", summary=json.dumps({"extract_counts": loaded.counts}))
        )
    live = browse.live_counts(engine, "run-1")
    assert live["state"] == "running" and live["reported"] is False
    assert live["figures"] == {key: report[key] for key in live["figures"]}
    assert live["batches"] == {"processed": 4}
    with engine.begin() as conn:  # before its extract has counted: those figures are unknown
        conn.execute(
            schema.runs.update().where(schema.runs.c.run_id == "run-1").values(summary=None)
        )
    figures = browse.get_load(engine, "run-1").figures
    assert figures["extracted"] is None and figures["invalid"] is None
    assert figures["imported"] == report["imported"]


@pytest.mark.parametrize("stored", ["{not json", "[1, 2]"])
def test_a_stored_report_that_cannot_be_read_is_counted_live_and_said_unreadable(
    engine, loaded, stored
):
    with engine.begin() as conn:
        conn.execute(
            schema.runs.update().where(schema.runs.c.run_id == "run-1").values(summary=stored)
        )
    found = browse.get_load(engine, "run-1")
    assert found.report_unreadable and not found.reported
    assert found.imported == 6 and found.extracted is None
    assert not browse.get_load(engine, "run-0").report_unreadable


def test_a_running_load_counts_the_rows_its_claims_took_out_as_suppressed(engine):
    """Live, by the report's rules: a row taken out of its batch at the claim (its phone
    suppressed after staging) is ``suppressed_before_posting``, and the identities hold."""
    from lead_load.core import run_summary
    from lead_load.ledger import batch_lifecycle, planning, run_lifecycle, suppressions
    from tests.include.lead_load.ledger.lifecycle_samples import TASK, five_leads, staged

    staged(engine, "run-s", five_leads())
    extract = dict.fromkeys(run_summary.EXTRACT_FIGURES, 0) | {"extracted": 5, "staged": 5}
    assert run_lifecycle.record_extract(engine, "run-s", extract)
    planning.plan(engine, "run-s", TASK, batch_size=5)
    suppressions.add(engine, [suppressions.Entry("13900000001")])
    assert batch_lifecycle.claim(engine, "run-s", 0, "owner", seconds=60).suppressed == 1

    figures = browse.get_load(engine, "run-s").figures
    assert (figures["suppressed_before_posting"], figures["not_sent"]) == (1, 4)
    assert figures["suppressed"] == 0
    assert run_summary.broken_identities(figures) == []
