"""The landing check on real ledgers (SQLite, PostgreSQL) against the simulator over HTTP.

Each test lands real numbers in a simulator task, writes the ledger a run would have left
(``clean_ledger``), corrupts it on purpose and checks what the landing check finds, repairs
and leaves alone, reading the database afterwards.
"""

from __future__ import annotations

import pytest

from lead_load.core.landing_rules import REASON_ABSENT, REASON_FOUND
from lead_load.core.ledger_rules import Status
from lead_load.steps import landing_check
from tests.include.lead_load.landing_samples import (
    RUN,
    add_row,
    clean_ledger,
    corrupt,
    rows,
    set_row,
)


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
        "repaired": {},
        "unrepaired": {},
    }
    assert report.unrepaired_lines() == []
    assert rows(engine) == before


def test_finds_and_repairs_each_corruption(engine, platform):
    clean_ledger(engine, platform)
    corrupt(engine)
    before = rows(engine)

    report = landing_check.verify_run(RUN, platform.task_id, engine, platform.hook)

    assert report.counts() == {
        "checked": 7,
        "in_task": 5,
        "agree": 4,
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
