"""Staging through the package's calls (add_candidates, add_rejects, stage_candidates,
clear_run) on real databases: a SQLite file, PostgreSQL through each of its drivers (psycopg2,
and psycopg 3, which Airflow's hook picks), and MariaDB, each staged by the engine it gets."""

from __future__ import annotations

import json

from sqlalchemy import func, insert, select

from lead_load.ledger import schema, staging, suppressions
from lead_load.ledger.counts import reject_reasons
from lead_load.ledger.staging import engines, portable, postgres
from tests.include.lead_load.ledger.staging.staging_samples import (
    ledger_row,
    set_based,
    staging_statements,
)
from tests.include.lead_load.samples import TASK, candidate, statuses


def test_staging_keeps_the_latest_lead_per_phone_across_chunks(engine):
    staging.add_candidates(engine, "run-1", [candidate("a", "13900000001", "2026-11-24 10:00:00")])
    staging.add_candidates(engine, "run-1", [candidate("b", "13900000001", "2026-11-24 11:00:00")])
    staging.add_candidates(engine, "run-1", [candidate("c", "13900000002")])
    counts = staging.stage_candidates(engine, "run-1", TASK)
    assert counts.as_dict() == {
        "staged": 2,
        "duplicates_in_run": 1,
        "already_loaded": 0,
        "in_flight": 0,
        "suppressed": 0,
    }
    assert statuses(engine) == {"a": "rejected", "b": "staged", "c": "staged"}
    assert reject_reasons(engine, "run-1") == {"duplicate_in_run": 1}


def test_a_later_run_does_not_stage_what_is_in_flight_or_loaded(engine):
    staging.add_candidates(engine, "run-1", [candidate("a", "13900000001")])
    staging.stage_candidates(engine, "run-1", TASK)
    # Same lead again, and another lead with the same phone, in a second run.
    staging.add_candidates(
        engine,
        "run-2",
        [candidate("a", "13900000001"), candidate("z", "13900000001", "2026-11-23 00:00:00")],
    )
    counts = staging.stage_candidates(engine, "run-2", TASK)
    assert counts.staged == 0
    assert counts.in_flight == 1 and counts.duplicates_in_run == 1


def test_staging_applies_every_rule_across_many_slices(engine, monkeypatch):
    """Every staging decision, with slices of two rows, so that each kind of write spans
    several statements and duplicates fall in other slices than the leads they lost to."""
    monkeypatch.setattr(schema, "CHUNK", 2)
    with engine.begin() as conn:
        conn.execute(
            insert(schema.ledger),
            [
                ledger_row("r1", "139 0000 0011", "rejected", reason="not_a_phone"),
                ledger_row("n1", "13900000012", "not_imported"),  # a new number: try again
                ledger_row("n2", "13900000014", "not_imported"),  # the same number: final
                ledger_row("i1", "13900000015", "imported"),
                ledger_row("h1", "13900000016", "imported"),
                ledger_row("s1", "13900000017", "staged"),  # an unfinished run's row
                ledger_row("d1", "1390000001", "rejected", reason="not_a_phone"),
                ledger_row("i2", "13900000019", "imported"),
                ledger_row("i3", "13900000020", "imported"),
                ledger_row("r2", "", "rejected", reason="missing_phone"),
            ],
        )
    early, late = "2026-11-24 09:00:00", "2026-11-24 11:00:00"
    extract_chunks = [
        [candidate("a0", "13900000010"), candidate("a1", "13900000018", late)],
        [candidate("r1", "13900000011"), candidate("n1", "13900000013")],
        [candidate("n2", "13900000014"), candidate("i1", "13900000015")],
        [candidate("t1", "13900000016"), candidate("s1", "13900000017")],
        # d1 and i2 lose their phones to newer leads of earlier chunks.
        [candidate("d1", "13900000018", early), candidate("i2", "13900000019", early)],
        [candidate("a2", "13900000019", late)],
    ]
    for rows in extract_chunks:
        staging.add_candidates(engine, "run-1", rows)
    bad = [
        {"lead_id": "i3", "raw_phone": "12345", "reason": "not_a_phone"},  # stays imported
        {"lead_id": "r2", "raw_phone": "021-1234567", "reason": "not_mobile"},
        {"lead_id": "z1", "raw_phone": None, "reason": "missing_phone"},
    ]
    assert staging.add_rejects(engine, "run-1", TASK, iter(bad)) == 3

    counts = staging.stage_candidates(engine, "run-1", TASK)

    assert counts.as_dict() == {
        "staged": 4,  # a0, a1 new; r1, n1 staged again
        "duplicates_in_run": 2,  # d1, i2
        "already_loaded": 4,  # n2, i1; t1 and a2, whose phones other leads hold
        "in_flight": 1,  # s1
        "suppressed": 0,
    }
    with engine.connect() as conn:
        rows = conn.execute(select(schema.ledger).where(schema.ledger.c.api_task_id == TASK)).all()
        reasons = dict(
            conn.execute(
                select(schema.rejects.c.lead_id, schema.rejects.c.reason).where(
                    schema.rejects.c.run_id == "run-1"
                )
            ).all()
        )
        left = conn.execute(select(func.count()).select_from(schema.candidates)).scalar_one()
    # One row per lead and phone: a lead with a new number (r1, n1, d1, i3, r2) gets a row
    # for it, and the row of its old number stays as it was.
    assert {(r.lead_id, r.phone, r.status, r.reason, r.run_id) for r in rows} == {
        ("a0", "13900000010", "staged", None, "run-1"),
        ("a1", "13900000018", "staged", None, "run-1"),
        ("r1", "139 0000 0011", "rejected", "not_a_phone", "run-0"),
        ("r1", "13900000011", "staged", None, "run-1"),
        ("n1", "13900000012", "not_imported", None, "run-0"),
        ("n1", "13900000013", "staged", None, "run-1"),
        ("n2", "13900000014", "not_imported", None, "run-0"),
        ("i1", "13900000015", "imported", None, "run-0"),
        ("h1", "13900000016", "imported", None, "run-0"),
        ("s1", "13900000017", "staged", None, "run-0"),
        ("d1", "1390000001", "rejected", "not_a_phone", "run-0"),
        ("d1", "13900000018", "rejected", "duplicate_in_run (kept lead a1)", "run-1"),
        ("i2", "13900000019", "imported", None, "run-0"),
        ("i3", "13900000020", "imported", None, "run-0"),
        ("i3", "12345", "rejected", "not_a_phone", "run-1"),
        ("r2", "", "rejected", "missing_phone", "run-0"),
        ("r2", "021-1234567", "rejected", "not_mobile", "run-1"),
        ("z1", "", "rejected", "missing_phone", "run-1"),
    }
    by_lead = {(r.lead_id, r.phone): r for r in rows}
    assert json.loads(by_lead["n1", "13900000013"].payload)["phone"] == "13900000013"
    assert reasons == {
        "d1": "duplicate_in_run (kept lead a1)",
        "i2": "duplicate_in_run (kept lead a2)",
        "t1": "phone_already_loaded (by lead h1)",
        "a2": "phone_already_loaded (by lead i2)",
        "i3": "not_a_phone",
        "r2": "not_mobile",
        "z1": "missing_phone",
    }
    assert left == 0


def test_staging_sends_at_most_one_slice_per_statement(engine, monkeypatch):
    """A cheap guard on memory and speed, without timing anything.

    Memory: no statement may carry more than a slice of rows. Staging once passed every
    cross-chunk duplicate of a run to one insert (+96 MiB at a million rows); PostgreSQL's
    COPY streams the rows (it is no statement with parameters).
    Speed, portable path: staging writes the ledger with a few statements per slice, not one
    per row (which was 90% of the extract step's time).
    """
    slice_rows = 20
    monkeypatch.setattr(schema, "CHUNK", slice_rows)
    writing, staged = staging_statements(engine, 100)

    widest = len(schema.ledger.columns)
    too_big = [
        (sql[:60], rows, values)
        for sql, rows, values in writing + staged
        if rows > slice_rows or values > slice_rows * widest
    ]
    assert too_big == []
    if set_based(engine):
        return  # test_set_based_staging_sends_as_many_statements_for_any_run
    ledger_writes = [
        sql
        for sql, _, _ in staged
        if sql.startswith(("INSERT INTO lead_load_ledger", "UPDATE lead_load_ledger"))
    ]
    slices = -(-100 // slice_rows)
    assert len(ledger_writes) <= 4 * slices  # 75 rows staged, 25 rejected


def test_two_runs_staging_the_same_leads_at_once_stage_each_lead_once(engine):
    """Two runs of one window extract the same leads at the same moment: each lead is
    staged by exactly one of them, the other counts it in flight; nothing crashes."""
    from concurrent.futures import ThreadPoolExecutor

    leads = [candidate(f"l{i:04d}", f"139{i:08d}") for i in range(3000)]
    for run in ("run-a", "run-b"):
        staging.add_candidates(engine, run, leads)
    with ThreadPoolExecutor(2) as pool:
        a, b = pool.map(
            lambda run: staging.stage_candidates(engine, run, "task-1"), ["run-a", "run-b"]
        )
    assert a.staged + b.staged == 3000
    assert a.in_flight + b.in_flight == 3000
    with engine.connect() as conn:
        rows = conn.execute(select(schema.ledger.c.status, func.count()).group_by("status")).all()
    assert dict(rows) == {"staged": 3000}


def _mark(engine, status: str) -> None:
    """Every staged row of the task as if its batch had ended with ``status``."""
    with engine.begin() as conn:
        conn.execute(
            schema.ledger.update()
            .where(schema.ledger.c.status == "staged")
            .values(status=status, unique_id="u-1")
        )


def test_a_lead_whose_phone_changed_is_staged_with_the_new_number_and_keeps_the_old_row(engine):
    staging.add_candidates(engine, "run-1", [candidate("a", "13900000001")])
    staging.stage_candidates(engine, "run-1", TASK)
    _mark(engine, "imported")

    # The lead's row now has another valid number; another lead took the old one.
    staging.add_candidates(
        engine, "run-2", [candidate("a", "13900000002"), candidate("b", "13900000001")]
    )
    counts = staging.stage_candidates(engine, "run-2", TASK)

    assert counts.staged == 1 and counts.already_loaded == 1
    with engine.connect() as conn:
        rows = conn.execute(
            select(schema.ledger.c.lead_id, schema.ledger.c.phone, schema.ledger.c.status)
        ).all()
    assert sorted(rows) == [("a", "13900000001", "imported"), ("a", "13900000002", "staged")]
    assert reject_reasons(engine, "run-2") == {"phone_already_loaded": 1}

    # A third run with the same data changes nothing: both of a's numbers are accounted for.
    _mark(engine, "imported")
    staging.add_candidates(engine, "run-3", [candidate("a", "13900000002")])
    again = staging.stage_candidates(engine, "run-3", TASK)
    assert (again.staged, again.already_loaded) == (0, 1)


def test_a_number_the_platform_refused_is_not_sent_again_but_a_new_one_is(engine):
    staging.add_candidates(engine, "run-1", [candidate("a", "13900000001")])
    staging.stage_candidates(engine, "run-1", TASK)
    _mark(engine, "not_imported")
    staging.add_candidates(engine, "run-2", [candidate("a", "13900000001")])
    assert staging.stage_candidates(engine, "run-2", TASK).already_loaded == 1
    staging.add_candidates(engine, "run-3", [candidate("a", "13900000009")])
    assert staging.stage_candidates(engine, "run-3", TASK).staged == 1
    with engine.connect() as conn:
        rows = conn.execute(select(schema.ledger.c.phone, schema.ledger.c.status)).all()
    assert sorted(rows) == [("13900000001", "not_imported"), ("13900000009", "staged")]


def test_a_run_of_rejects_only_still_gets_their_ledger_rows(engine):
    staging.add_rejects(
        engine,
        "run-1",
        TASK,
        [
            {"lead_id": "a", "raw_phone": "12345", "reason": "not_a_phone"},
            {"lead_id": "b", "raw_phone": None, "reason": "missing_phone"},
            # no lead of its own: recorded, kept out of the ledger
            {"lead_id": "(no lead id: row 3)", "raw_phone": "1", "reason": "missing_lead_id"}
            | {"in_ledger": False},
        ],
    )
    assert staging.stage_candidates(engine, "run-1", TASK).as_dict() == dict.fromkeys(
        ("staged", "duplicates_in_run", "already_loaded", "in_flight", "suppressed"), 0
    )
    assert statuses(engine) == {"a": "rejected", "b": "rejected"}
    assert reject_reasons(engine, "run-1") == {
        "not_a_phone": 1,
        "missing_phone": 1,
        "missing_lead_id": 1,
    }


def test_a_retry_of_a_run_counts_what_its_earlier_try_staged_and_adds_nothing(engine):
    leads = [candidate("a", "13900000001"), candidate("b", "13900000002")]
    bad = [{"lead_id": "c", "raw_phone": "123", "reason": "not_a_phone"}]
    staging.add_candidates(engine, "run-1", leads)
    staging.add_rejects(engine, "run-1", TASK, bad)
    first = staging.stage_candidates(engine, "run-1", TASK)
    staging.clear_run(engine, "run-1")  # what the extract's retry does first
    staging.add_candidates(engine, "run-1", leads)
    staging.add_rejects(engine, "run-1", TASK, bad)
    again = staging.stage_candidates(engine, "run-1", TASK)
    assert (
        first.as_dict()
        == again.as_dict()
        == {
            "staged": 2,
            "duplicates_in_run": 0,
            "already_loaded": 0,
            "in_flight": 0,
            "suppressed": 0,
        }
    )
    assert statuses(engine) == {"a": "staged", "b": "staged", "c": "rejected"}


def test_each_database_is_staged_by_its_engine(engine):
    """PostgreSQL stages set-based, every other database portably; each engine (a module)
    has the interface."""
    assert engines.for_database(engine) is (postgres if set_based(engine) else portable)
    assert isinstance(portable, engines.StagingEngine)
    assert isinstance(postgres, engines.StagingEngine)


def test_a_suppressed_phone_is_rejected_before_any_ledger_decision(engine):
    """On every database and engine: a lead whose phone is on the suppression list is
    rejected as ``suppressed`` whatever the ledger says of it (new, loaded, in flight, held by
    another lead), with a reject row and a rejected ledger row where it has none; a row the
    ledger has in flight or loaded stays as it is. An invalid row stays invalid; a lead that
    loses its phone to a more recent lead of the run stays a duplicate."""
    with engine.begin() as conn:
        conn.execute(
            insert(schema.ledger),
            [
                ledger_row("i1", "13900000015", "imported"),
                ledger_row("s1", "13900000017", "staged"),  # another run's, in flight
                ledger_row("h1", "13900000016", "imported"),  # holds the phone t1 comes with
            ],
        )
    listed = ["13900000010", "13900000015", "13900000016", "13900000017", "13900000018"]
    suppressions.add(engine, [suppressions.Entry(phone) for phone in listed], "tester")
    staging.add_candidates(
        engine,
        "run-1",
        [
            candidate("a", "13900000010"),  # new
            candidate("i1", "13900000015"),  # loaded before
            candidate("s1", "13900000017"),  # in flight
            candidate("t1", "13900000016"),  # another lead holds it
            candidate("ok", "13900000019"),  # not on the list: staged
        ],
    )
    # d1 loses the suppressed phone to the more recent d2 of another chunk.
    staging.add_candidates(engine, "run-1", [candidate("d1", "13900000018", "2026-11-24 09:00")])
    staging.add_candidates(engine, "run-1", [candidate("d2", "13900000018", "2026-11-24 11:00")])
    invalid = {"lead_id": "v", "raw_phone": "13900000010", "reason": "invalid_field: sex"}
    staging.add_rejects(engine, "run-1", TASK, [invalid])

    counts = staging.stage_candidates(engine, "run-1", TASK)

    assert counts.as_dict() == {
        "staged": 1,
        "duplicates_in_run": 1,
        "already_loaded": 0,
        "in_flight": 0,
        "suppressed": 5,
    }
    assert statuses(engine) == {
        "a": "rejected",
        "i1": "imported",
        "s1": "staged",
        "h1": "imported",
        "t1": "rejected",
        "ok": "staged",
        "d1": "rejected",
        "d2": "rejected",
        "v": "rejected",
    }
    with engine.connect() as conn:
        reasons = dict(
            conn.execute(select(schema.rejects.c.lead_id, schema.rejects.c.reason)).all()
        )
        ledger_reasons = dict(
            conn.execute(
                select(schema.ledger.c.lead_id, schema.ledger.c.reason).where(
                    schema.ledger.c.status == "rejected"
                )
            ).all()
        )
    assert reasons == {
        "a": "suppressed",
        "i1": "suppressed",
        "s1": "suppressed",
        "t1": "suppressed",
        "d1": "duplicate_in_run (kept lead d2)",
        "d2": "suppressed",
        "v": "invalid_field: sex",
    }
    assert ledger_reasons == {
        "a": "suppressed",
        "t1": "suppressed",
        "d1": "duplicate_in_run (kept lead d2)",
        "d2": "suppressed",
        "v": "invalid_field: sex",
    }
    assert reject_reasons(engine, "run-1") == {
        "suppressed": 5,
        "duplicate_in_run": 1,
        "invalid_field": 1,
    }

    # Off the list again, a later run stages the lead it rejected (and still not i1 or s1).
    suppressions.remove(engine, ["13900000010"])
    staging.add_candidates(engine, "run-2", [candidate("a", "13900000010")])
    assert staging.stage_candidates(engine, "run-2", TASK).staged == 1
    assert statuses(engine)["a"] == "staged"
