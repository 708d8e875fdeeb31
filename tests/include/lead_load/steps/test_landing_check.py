"""The landing check on real ledgers (SQLite, PostgreSQL) against the simulator over HTTP.

Each test lands real numbers in a simulator task, writes the ledger a run would have left
(``clean_ledger``), corrupts it on purpose and checks what the landing check finds, repairs
and leaves alone, reading the database afterwards; the platform's side (which pages were
read, with which bounds) is read from the simulator's journal.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from sqlalchemy import insert

from agent_api.exceptions import AgentApiError
from agent_api.hooks.agent_api import PLATFORM_TIMEZONE
from lead_load.core.landing_rules import (
    IMPORT_MARGIN,
    REASON_ABSENT,
    REASON_FOUND,
    REASON_MAYBE_FOUND,
)
from lead_load.core.ledger_rules import BatchStatus, Status
from lead_load.ledger import schema
from lead_load.steps import landing_check
from tests.include.lead_load.landing_samples import (
    RUN,
    Platform,
    add_row,
    clean_ledger,
    corrupt,
    phones,
    rows,
    set_row,
)


def imported_long_ago(engine, *leads: str) -> None:
    """Stamp the rows an hour back: imported well before any list read (beyond the margin)."""
    for lead in leads:
        set_row(engine, lead, updated_at=schema.now() - timedelta(hours=1))


def post(engine, task: str, batch_no: int, posted_at: datetime, run_id: str = RUN) -> None:
    """The lead_load_batches row of a batch posted at ``posted_at``."""
    with engine.begin() as conn:
        conn.execute(
            insert(schema.batches).values(
                run_id=run_id,
                batch_no=batch_no,
                api_task_id=task,
                rows=1,
                status=BatchStatus.PROCESSED.value,
                posted_at=posted_at,
                answer_lost=False,
                claims=1,
                sends=1,
            )
        )


def list_reads(platform: Platform) -> list[dict]:
    """The number-list requests the platform received, in order."""
    return [
        entry
        for entry in platform.sim.journal()
        if entry["method"] == "GET" and entry["path"].endswith(f"/task/{platform.task_id}/number")
    ]


def platform_time(moment: datetime) -> str:
    return moment.astimezone(PLATFORM_TIMEZONE).strftime("%Y-%m-%d %H:%M:%S")


def recreate_task_empty(platform: Platform) -> None:
    """The task on the platform is deleted and created again with the same ids, empty."""
    platform.sim.reset()
    platform.sim.create_user(platform.user_id)
    platform.sim.create_task(platform.user_id, task_id=platform.task_id)


def test_a_clean_run_finds_nothing(engine, platform):
    clean_ledger(engine, platform)
    before = rows(engine)
    report = landing_check.verify_run(RUN, platform.task_id, engine, platform.hook)
    assert report.ok
    # a-f and h (g was never sent; z belongs to another run); h agrees through a.
    assert report.counts() == {
        "checked": 7,
        "in_task": 5,
        "agree": 7,
        "not_checked": 0,
        "repaired": {},
        "unrepaired": {},
    }
    assert report.unrepaired_lines() == []
    assert rows(engine) == before


def test_finds_and_repairs_each_corruption(engine, platform):
    clean_ledger(engine, platform)
    corrupt(engine)
    imported_long_ago(engine, "f")
    before = rows(engine)

    report = landing_check.verify_run(RUN, platform.task_id, engine, platform.hook)

    assert report.counts() == {
        "checked": 7,
        "in_task": 5,
        "agree": 4,
        "not_checked": 0,
        "repaired": {"imported_but_absent": 1, "not_imported_but_present": 1},
        "unrepaired": {"submitted_but_absent": 1},
    }
    assert not report.ok
    [line] = report.unrepaired_lines()
    assert line.startswith("submitted_but_absent: lead e, phone 137****")
    assert "awaiting the platform" in line
    after = rows(engine)
    assert after["b"]["status"] == Status.IMPORTED and after["b"]["reason"] == REASON_FOUND
    f = after["f"]
    assert (f["status"], f["batch_no"], f["unique_id"]) == (Status.STAGED, None, None)
    assert f["reason"] == REASON_ABSENT
    assert f["payload"] == before["f"]["payload"]  # what a later run sends
    assert after["e"] == before["e"]  # unproven: left as it was
    for lead in "acdghz":
        assert after[lead] == before[lead]

    again = landing_check.verify_run(RUN, platform.task_id, engine, platform.hook)
    assert again.counts()["repaired"] == {}
    assert again.counts()["unrepaired"] == {"submitted_but_absent": 1}


def test_a_report_only_check_changes_nothing(engine, platform):
    clean_ledger(engine, platform)
    corrupt(engine)
    imported_long_ago(engine, "f")
    before = rows(engine)
    scope = landing_check.run_scope(engine, RUN)
    report = landing_check.check(engine, platform.hook, [scope])
    assert report.counts()["unrepaired"] == {
        "imported_but_absent": 1,
        "not_imported_but_present": 1,
        "submitted_but_absent": 1,
    }
    assert rows(engine) == before


def test_a_row_changed_after_it_was_read_is_not_overwritten(engine, platform):
    ph = clean_ledger(engine, platform)
    corrupt(engine)
    imported_long_ago(engine, "f")
    report = landing_check.inspect_scope(
        engine, platform.hook, landing_check.task_scope(platform.task_id)
    )
    assert len(report.pending) == 2
    # Between the read and the repairs: a callback records b again, and a later run plans
    # f into a batch of its own (both through other connections).
    set_row(engine, "b", status=Status.IMPORTED.value, reason="from its callback")
    set_row(engine, "f", batch_no=7)

    landing_check.apply_repairs(engine, report)

    assert report.counts()["repaired"] == {}
    assert report.counts()["unrepaired"] == {"changed_during_check": 2, "submitted_but_absent": 1}
    after = rows(engine)
    assert (after["b"]["status"], after["b"]["reason"]) == ("imported", "from its callback")
    assert (after["f"]["status"], after["f"]["batch_no"]) == ("imported", 7)
    assert all("changed during the check" in line for line in report.unrepaired_lines()[1:])
    assert ph["b"] not in " ".join(report.unrepaired_lines())


def test_a_found_number_is_not_repaired_over_a_lead_that_took_it_meanwhile(engine, platform):
    ph = clean_ledger(engine, platform)
    set_row(engine, "b", status=Status.NOT_IMPORTED.value)
    report = landing_check.inspect_scope(
        engine, platform.hook, landing_check.run_scope(engine, RUN)
    )
    assert [f.row.lead_id for f in report.pending] == ["b"]
    # A new lead with b's number is staged (b was not active): the unique index now refuses
    # a second active row, so the repair must step back.
    add_row(engine, platform.task_id, "y", ph["b"], Status.STAGED, run_id="run-2")

    landing_check.apply_repairs(engine, report)

    assert report.counts()["unrepaired"] == {"changed_during_check": 1}
    after = rows(engine)
    assert (after["b"]["status"], after["y"]["status"]) == ("not_imported", "staged")


def test_scopes_from_the_runs_table_the_ledger_and_a_window(engine, platform, monkeypatch):
    monkeypatch.setattr(landing_check, "CHUNK", 2)  # page through the rows in small chunks
    clean_ledger(engine, platform)
    task = platform.task_id
    assert landing_check.run_scope(engine, RUN) == landing_check.Scope(task, (RUN,))
    # run-0 wrote no summary: its task comes from its ledger rows.
    assert landing_check.run_scope(engine, "run-0") == landing_check.Scope(task, ("run-0",))
    with pytest.raises(landing_check.ScopeError, match="pass --api-task-id"):
        landing_check.run_scope(engine, "run-unknown")
    with pytest.raises(landing_check.ScopeError, match="not 'other-task'"):
        landing_check.run_scope(engine, RUN, "other-task")
    assert landing_check.window_scopes(engine, "2026-11-24T12:00:00Z", "2026-11-26") == [
        landing_check.Scope(task, (RUN,))
    ]
    assert landing_check.window_scopes(engine, "2026-11-25", "2026-11-26") == []
    with pytest.raises(landing_check.ScopeError, match="before it starts"):
        landing_check.window_scopes(engine, "2026-11-25", "2026-11-24")
    report = landing_check.check(engine, platform.hook, [landing_check.task_scope(task)])
    assert report.ok and report.counts()["checked"] == 8  # every run's rows, paged by 2


def test_a_runs_rows_are_each_read_once_across_batch_spans_and_rows_in_no_batch(
    engine, platform, monkeypatch
):
    """The run's rows come through its batch numbers a span at a time (gaps in the numbers
    included), then those in no batch by key; another run's and another calling task's rows
    never, whatever sits between them in key order."""
    monkeypatch.setattr(landing_check, "CHUNK", 2)
    monkeypatch.setattr(landing_check, "_BATCHES_PER_READ", 2)
    task, numbers = platform.task_id, iter(phones(40))
    mine = {}
    for n, batch_no in enumerate([0, 0, 1, 3, 3, 3, 4, 9, None, None, None]):
        lead = f"m{n:02d}"
        mine[lead] = batch_no
        add_row(engine, task, lead, next(numbers), Status.IMPORTED, RUN, batch_no)
        # Interleaved in key order: another run's row and another calling task's.
        add_row(engine, task, f"{lead}x", next(numbers), Status.IMPORTED, "run-other", batch_no)
        add_row(engine, "other-task", lead, next(numbers), Status.IMPORTED, RUN, batch_no)
    add_row(engine, task, "rejected", next(numbers), Status.REJECTED, RUN, None)

    chunks = list(landing_check._rows(engine, landing_check.Scope(task, (RUN,))))

    read = [row.lead_id for chunk in chunks for row in chunk]
    assert sorted(read) == sorted(mine)  # each once; no other run's, task's, or rejected row
    assert all(len(chunk) <= 6 for chunk in chunks)  # two batches of three rows at most
    assert read[-3:] == ["m08", "m09", "m10"]  # the rows in no batch last, in key order


# -- what the list read proves, and what it cannot --------------------------------------------


def test_a_capped_list_without_page_fields_is_read_whole_and_repairs_only_what_it_proves(
    engine, platform
):
    """A platform that caps per_page at 100 and says nothing of its pages: the list is read
    on to its short last page, so the 250 numbers past page 1 are not taken as absent."""
    clean_ledger(engine, platform)
    more = phones(250)
    for part in (more[:125], more[125:]):
        unique_id = platform.land(part)
        for phone in part:
            add_row(
                engine, platform.task_id, f"m{phone}", phone, Status.IMPORTED, RUN, 1, unique_id
            )
    corrupt(engine)
    imported_long_ago(engine, "f")
    before = rows(engine)
    platform.sim.set_faults(max_per_page=100, omit_page_fields=True)

    report = landing_check.verify_run(RUN, platform.task_id, engine, platform.hook)

    reads = list_reads(platform)
    assert [int(entry["query"]["page"]) for entry in reads] == [1, 2, 3]  # 100, 100, 55
    assert "max_per_page" in reads[0]["fault"]
    assert report.counts() == {
        "checked": 257,
        "in_task": 255,
        "agree": 254,
        "not_checked": 0,
        "repaired": {"imported_but_absent": 1, "not_imported_but_present": 1},
        "unrepaired": {"submitted_but_absent": 1},
    }
    after = rows(engine)
    assert (after["b"]["status"], after["f"]["status"]) == ("imported", "staged")
    assert {lead: row for lead, row in after.items() if lead not in "bf"} == {
        lead: row for lead, row in before.items() if lead not in "bf"
    }


def test_an_incomplete_read_changes_nothing_and_says_why(engine, platform):
    """Page 2 of three comes back empty although the answer counts its rows."""
    clean_ledger(engine, platform)
    corrupt(engine)
    imported_long_ago(engine, "f")
    before = rows(engine)
    platform.sim.set_faults(max_per_page=2, empty_page_at=2)

    with pytest.raises(landing_check.ListReadFailed) as raised:
        landing_check.verify_run(RUN, platform.task_id, engine, platform.hook)

    message = str(raised.value)
    assert message.startswith(f"the number list of run {RUN} (task {platform.task_id}) could not")
    assert "could not be read whole, so nothing was changed" in message
    assert "incomplete read" in message and "\n" not in message
    assert "empty_page_at" in list_reads(platform)[1]["fault"]
    assert rows(engine) == before


def test_a_task_recreated_empty_repairs_nothing_and_fails_loudly(engine, platform):
    """Every imported row of the run looks absent: that says the read (or the task) is wrong,
    not the ledger. Not even the repair the list does prove (b found) is applied."""
    ph = clean_ledger(engine, platform)
    set_row(engine, "b", status=Status.NOT_IMPORTED.value)
    imported_long_ago(engine, "a", "c", "d")
    recreate_task_empty(platform)
    platform.land([ph["b"]])
    before = rows(engine)

    for repair in (True, False):
        with pytest.raises(landing_check.ListNotTrusted) as raised:
            landing_check.verify_run(RUN, platform.task_id, engine, platform.hook, repair=repair)
        message = str(raised.value)
        assert "number list read of run run-1" in message and "is not to be trusted" in message
        assert "3 of the 3 imported rows it covers (100%) are absent" in message
        assert "nothing was changed" in message
        assert rows(engine) == before


def test_a_few_absent_rows_among_many_are_still_repaired(engine, platform):
    """3 of 85 covered imported rows absent (under 5%): the read is trusted, and the
    threshold does not stop the ordinary repair."""
    clean_ledger(engine, platform)
    more = phones(80)
    unique_id = platform.land(more)
    for phone in more:
        add_row(engine, platform.task_id, f"m{phone}", phone, Status.IMPORTED, RUN, 1, unique_id)
    lost = [f"m{phone}" for phone in more[:2]]
    for n, lead in enumerate(lost):  # their numbers never landed
        set_row(engine, lead, phone=f"1379999999{n}")
    set_row(engine, "f", status=Status.IMPORTED.value, batch_no=0, unique_id="u-lost")
    imported_long_ago(engine, "a", "b", "c", "d", "f", *lost)

    report = landing_check.verify_run(RUN, platform.task_id, engine, platform.hook)

    assert report.counts()["repaired"] == {"imported_but_absent": 3}
    after = rows(engine)
    assert {after[lead]["status"] for lead in ["f", *lost]} == {"staged"}


def test_a_row_imported_within_the_margin_is_not_staged_again(engine, platform):
    """f says imported a moment ago, and the list does not show it: the platform's list may
    not show a number it has just imported; the next check decides."""
    clean_ledger(engine, platform)
    set_row(engine, "f", status=Status.IMPORTED.value, batch_no=0, unique_id="u-1")
    before = rows(engine)

    report = landing_check.verify_run(RUN, platform.task_id, engine, platform.hook)

    assert report.counts()["repaired"] == {}
    assert report.counts()["unrepaired"] == {"imported_but_absent": 1}
    [line] = report.unrepaired_lines()
    assert "imported less than 10 minutes before the calling task's number list was read" in line
    assert rows(engine)["f"] == before["f"]

    # Once it is older than the margin, the same absence is proof.
    set_row(engine, "f", updated_at=schema.now() - IMPORT_MARGIN - timedelta(minutes=1))
    again = landing_check.verify_run(RUN, platform.task_id, engine, platform.hook)
    assert again.counts()["repaired"] == {"imported_but_absent": 1}
    assert rows(engine)["f"]["status"] == "staged"


def test_the_read_is_bounded_around_the_runs_posts(engine, platform):
    clean_ledger(engine, platform)
    task, now = platform.task_id, schema.now()
    post(engine, task, 0, now - timedelta(hours=3))
    post(engine, task, 1, now - timedelta(hours=1))
    post(engine, task, 0, now - timedelta(days=30), run_id="run-0")  # not the run's
    set_row(engine, "f", status=Status.IMPORTED.value, batch_no=1, unique_id="u-1")
    imported_long_ago(engine, "f")
    latest = max(row["updated_at"] for row in rows(engine).values() if row["run_id"] == RUN)
    latest = landing_check._utc(latest)

    report = landing_check.verify_run(RUN, task, engine, platform.hook)

    [read] = list_reads(platform)
    # From the run's first post to its rows' last change, each widened by the hook's day.
    assert read["query"]["start_at"] == platform_time(now - timedelta(hours=3, days=1))
    assert read["query"]["end_at"] == platform_time(latest + timedelta(days=1))
    assert report.counts()["repaired"] == {"imported_but_absent": 1}  # f's post is covered

    # A task's every row: from the earliest post of any of its batches.
    landing_check.check(engine, platform.hook, [landing_check.task_scope(task)])
    read = list_reads(platform)[-1]
    assert read["query"]["start_at"] == platform_time(now - timedelta(days=31))


def test_an_absent_row_the_bounded_read_could_not_include_is_not_judged(engine, platform):
    """f's batch is unknown (no lead_load_batches row): when its number landed is unknown,
    so a read bounded by the run's posts proves nothing about it."""
    clean_ledger(engine, platform)
    post(engine, platform.task_id, 0, schema.now() - timedelta(hours=1))
    set_row(engine, "f", status=Status.IMPORTED.value, batch_no=7, unique_id="u-1")
    imported_long_ago(engine, "f")
    before = rows(engine)

    report = landing_check.verify_run(RUN, platform.task_id, engine, platform.hook)

    assert "start_at" in list_reads(platform)[0]["query"]
    assert report.ok
    assert report.counts() == {
        "checked": 7,
        "in_task": 5,
        "agree": 6,
        "not_checked": 1,
        "repaired": {},
        "unrepaired": {},
    }
    assert rows(engine) == before


def test_a_scope_with_no_known_post_is_read_unbounded(engine, platform):
    clean_ledger(engine, platform)  # rows without lead_load_batches rows: an old ledger
    landing_check.verify_run(RUN, platform.task_id, engine, platform.hook)
    [read] = list_reads(platform)
    assert "start_at" not in read["query"] and "end_at" not in read["query"]


def test_maybe_accepted_rows_found_are_imported_and_absent_ones_only_reported(engine, platform):
    """c's and e's posts lost their answers (submitted, no unique_id): c's number is in the
    task, e's is not, even long after its post; e is never staged again by the check."""
    clean_ledger(engine, platform)
    set_row(engine, "c", status=Status.SUBMITTED.value, unique_id=None)
    set_row(
        engine,
        "e",
        status=Status.SUBMITTED.value,
        unique_id=None,
        updated_at=schema.now() - timedelta(days=30),
    )
    before = rows(engine)

    report = landing_check.verify_run(RUN, platform.task_id, engine, platform.hook)

    assert report.counts()["repaired"] == {"maybe_accepted_but_present": 1}
    assert report.counts()["unrepaired"] == {"submitted_but_absent": 1}
    [line] = report.unrepaired_lines()
    assert line.startswith("submitted_but_absent: lead e") and "never sent again" in line
    after = rows(engine)
    assert (after["c"]["status"], after["c"]["reason"]) == ("imported", REASON_MAYBE_FOUND)
    assert after["e"] == before["e"]


def test_nothing_is_repaired_before_every_scope_was_read(engine, platform):
    clean_ledger(engine, platform)
    corrupt(engine)
    imported_long_ago(engine, "f")
    before = rows(engine)
    scopes = [landing_check.run_scope(engine, RUN), landing_check.task_scope("no-such-task")]
    with pytest.raises(AgentApiError):
        landing_check.check(engine, platform.hook, scopes, repair=True)
    assert rows(engine) == before
