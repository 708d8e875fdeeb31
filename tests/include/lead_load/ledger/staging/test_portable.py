"""The portable engine, forced on PostgreSQL, writes exactly what the set-based engine writes
there: the same ledger rows, rejects and counts, for every kind of decision and for a retry
of the run. (Every other staging test runs it on SQLite and MariaDB through the package.)"""

from __future__ import annotations

from datetime import datetime

import pytest
from sqlalchemy import func, insert, select

from lead_load.ledger import run_lifecycle, schema, staging
from lead_load.ledger.staging import engines, portable, postgres
from tests.dags.conftest import postgres_warehouse
from tests.include.lead_load.ledger.staging.staging_samples import ledger_row
from tests.include.lead_load.samples import TASK, candidate

RUN, LIVE_RUN, LATER_RUN = "run-1", "run-live", "run-2"
EARLY, LATE = "2026-11-24 09:00:00", "2026-11-24 11:00:00"

# What the ledger holds before the run: rows of earlier runs (run-0), and of a run that is
# live now and has rows staged and sending.
LEDGER = [
    ledger_row("rj", "13900000030", "rejected", reason="not_mobile"),  # valid now: restaged
    ledger_row("h1", "13900000016", "imported"),  # holds the phone t1 comes with
    ledger_row("s1", "13900000017", "staged", run_id=LIVE_RUN),  # in flight
    ledger_row("s2", "13900000031", "sending", run_id=LIVE_RUN, batch_no=0),  # in flight
    ledger_row("s3", "13900000032", "staged", run_id=LIVE_RUN),  # holds the phone u1 comes with
    ledger_row("i1", "13900000015", "imported"),
    ledger_row("n2", "13900000014", "not_imported"),
    ledger_row("i2", "13900000019", "imported"),  # loses to a2, who then finds i2 holding it
    ledger_row("i3", "13900000020", "imported"),  # stays imported when rejected now
    ledger_row("r2", "021-1234567", "rejected", reason="not_a_phone"),  # a new reason
    ledger_row("p1", "13900000040", "imported"),  # comes with a new number
    ledger_row("o1", "13900000050", "staged", api_task_id="task-2"),  # another calling task
    # Phones on the suppression list (SUPPRESSED): rejected before any ledger decision.
    ledger_row(
        "x2",
        "13900000061",
        "rejected",
        reason="suppressed: taken out of batch 3 before posting",
        batch_no=3,
    ),  # rejected again by staging: a new reason, in no batch
    ledger_row("x3", "13900000062", "imported"),  # stays imported (the report lists it)
    ledger_row("h2", "13900000063", "imported"),  # holds the phone x4 comes with
]
SUPPRESSED = ["13900000060", "13900000061", "13900000062", "13900000063", "13900000064"]
# The extract's chunks, each de-duplicated on its own: d1 and i2 lose their phones to more
# recent leads of later chunks.
CHUNKS = [
    [candidate("a0", "13900000010"), candidate("d1", "13900000018", EARLY)],
    [candidate("rj", "13900000030"), candidate("t1", "13900000016")],
    [candidate("s1", "13900000017"), candidate("s2", "13900000031")],
    [candidate("u1", "13900000032"), candidate("i1", "13900000015")],
    [candidate("n2", "13900000014"), candidate("i2", "13900000019", EARLY)],
    [candidate("a1", "13900000018", LATE), candidate("a2", "13900000019", LATE)],
    [candidate("p1", "13900000041"), candidate("o2", "13900000050")],
    [candidate("x1", "13900000060"), candidate("x2", "13900000061")],
    [candidate("x3", "13900000062"), candidate("x4", "13900000063")],
    # x5 loses its (suppressed) phone to x6, a more recent lead of another chunk.
    [candidate("x5", "13900000064", EARLY)],
    [candidate("x6", "13900000064", LATE)],
]
REJECTS = [
    {"lead_id": "i3", "raw_phone": "12345", "reason": "not_a_phone"},
    {"lead_id": "r2", "raw_phone": "021-1234567", "reason": "not_mobile"},
    {"lead_id": "z1", "raw_phone": None, "reason": "missing_phone"},
    {"lead_id": "(no lead id: row 9)", "raw_phone": "1", "reason": "missing_lead_id"}
    | {"in_ledger": False},
]


@pytest.fixture
def two_ledgers():
    """Two fresh ledgers on the local PostgreSQL, holding the same rows."""
    warehouses = [postgres_warehouse(), postgres_warehouse()]
    for warehouse in warehouses:
        schema.create_tables(warehouse.engine)
        run_lifecycle.start_run(warehouse.engine, LIVE_RUN, TASK, ("2026-11-24", "2026-11-25"))
        with warehouse.engine.begin() as conn:
            conn.execute(insert(schema.ledger), LEDGER)
            conn.execute(
                insert(schema.suppressions),
                [{"phone": phone, "added_at": schema.now()} for phone in SUPPRESSED],
            )
    yield warehouses[0].engine, warehouses[1].engine
    for warehouse in warehouses:
        for step in warehouse.cleanup:
            step()


def extract_and_stage(engine, run_id: str) -> dict[str, int]:
    """What the extract step does with the ledger: clear what an earlier try left, write
    the chunks' candidates and rejects, stage."""
    staging.clear_run(engine, run_id)
    for chunk in CHUNKS:
        staging.add_candidates(engine, run_id, chunk)
    staging.add_rejects(engine, run_id, TASK, REJECTS)
    return staging.stage_candidates(engine, run_id, TASK).as_dict()


def tables(engine, since: datetime) -> dict[str, list[tuple]]:
    """Every ledger row and reject, without their times, but whether staging since ``since``
    wrote the ledger row; and how many candidates are left."""
    ledger, rejects = schema.ledger, schema.rejects
    untimed = [c for c in ledger.c if c.name not in ("created_at", "updated_at")]
    with engine.connect() as conn:
        found = {
            "ledger": conn.execute(select(*untimed, (ledger.c.updated_at >= since))).all(),
            "rejects": conn.execute(select(*(c for c in rejects.c if c.name != "rejected_at"))),
            "candidates": conn.execute(select(func.count()).select_from(schema.candidates)),
        }
        return {name: sorted(map(tuple, rows), key=repr) for name, rows in found.items()}


@pytest.mark.postgres
def test_the_portable_engine_writes_what_the_set_based_one_writes(two_ledgers, monkeypatch):
    set_based, sliced = two_ledgers
    monkeypatch.setattr(schema, "CHUNK", 2)  # the portable engine's slices: a few per run
    forced = {sliced.url: portable, set_based.url: postgres}
    monkeypatch.setattr(engines, "for_database", lambda engine: forced[engine.url])

    counted = []
    for run_id in (RUN, RUN, LATER_RUN):  # a run, its retry, and a later run
        since = schema.now()
        counts = [extract_and_stage(engine, run_id) for engine in (set_based, sliced)]
        assert counts[0] == counts[1]
        assert tables(set_based, since) == tables(sliced, since)
        counted.append(counts[0])

    # Every decision is reached, so the agreement above covers each of them. The run: a0, a1,
    # p1 (a new number) and o2 (a phone of another task only) new and rj restaged; d1, i2 and
    # x5 duplicates; i1 and n2 loaded, and t1, u1 and a2 find their phones held; s1, s2 in
    # flight; x1 (new), x2 (rejected before), x3 (imported), x4 (its phone held by h2) and x6
    # (which x5 lost to) suppressed.
    first = {
        "staged": 5,
        "duplicates_in_run": 3,
        "already_loaded": 5,
        "in_flight": 2,
        "suppressed": 5,
    }
    assert counted == [
        first,
        first,  # the retry: what its earlier try staged counts as staged, nothing is added
        first | {"staged": 0, "in_flight": 2 + 5},  # a later run: run-1's leads are in flight
    ]
    with sliced.connect() as conn:
        reasons = dict(
            conn.execute(
                select(schema.rejects.c.lead_id, schema.rejects.c.reason).where(
                    schema.rejects.c.run_id == RUN
                )
            ).all()
        )
    assert reasons == {
        "d1": "duplicate_in_run (kept lead a1)",
        "i2": "duplicate_in_run (kept lead a2)",
        "t1": "phone_already_loaded (by lead h1)",
        "u1": "phone_already_loaded (by lead s3)",
        "a2": "phone_already_loaded (by lead i2)",
        "i3": "not_a_phone",
        "r2": "not_mobile",
        "z1": "missing_phone",
        "(no lead id: row 9)": "missing_lead_id",
        "x1": "suppressed",
        "x2": "suppressed",
        "x3": "suppressed",
        "x4": "suppressed",
        "x5": "duplicate_in_run (kept lead x6)",
        "x6": "suppressed",
    }
    with sliced.connect() as conn:
        rows = conn.execute(
            select(
                schema.ledger.c.lead_id,
                schema.ledger.c.status,
                schema.ledger.c.reason,
                schema.ledger.c.batch_no,
            ).where(schema.ledger.c.lead_id.like("x%"))
        ).all()
    # After the later run: every suppressed lead has a rejected row in no batch, but x3,
    # whose imported row stays as it is.
    assert sorted(map(tuple, rows)) == [
        ("x1", "rejected", "suppressed", None),
        ("x2", "rejected", "suppressed", None),
        ("x3", "imported", None, None),
        ("x4", "rejected", "suppressed", None),
        ("x5", "rejected", "duplicate_in_run (kept lead x6)", None),
        ("x6", "rejected", "suppressed", None),
    ]
