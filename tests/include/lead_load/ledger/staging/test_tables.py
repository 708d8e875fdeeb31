"""What both engines share, on real databases: the candidates and rejects as stored (COPY's
escaping, NUL bytes, payload JSON), forgetting a run's candidates, and clearing a run."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sqlalchemy import func, insert, select

from lead_load.core.ledger_rules import BatchStatus
from lead_load.ledger import schema, staging
from lead_load.ledger.counts import reject_reasons
from tests.include.lead_load.ledger.staging.staging_samples import set_based
from tests.include.lead_load.samples import TASK, candidate


def test_a_nul_byte_from_the_warehouse_is_stored_visibly_not_refused(engine):
    """PostgreSQL refuses NUL in text: a rejected row carrying one is still recorded."""
    staging.add_rejects(
        engine,
        "run-1",
        TASK,
        [{"lead_id": "L\x001", "raw_phone": "1380013\x008000", "reason": "not_a_phone"}],
    )
    with engine.connect() as conn:
        (row,) = conn.execute(select(schema.rejects)).all()
    assert (row.lead_id, row.raw_phone) == ("L\\x001", "1380013\\x008000")
    assert reject_reasons(engine, "run-1") == {"not_a_phone": 1}


def test_text_is_stored_as_given_whatever_it_holds(engine):
    """Backslashes, tabs, line breaks, quotes and non-ASCII text reach the tables unchanged
    (COPY's text format escapes them), in candidates, their payloads and rejects."""
    odd = "L\\1\t'\"\n联\\N"
    row = candidate(odd, "13900000001")
    row["payload"] |= {"name": 'a\tb\\c\nd "e" 联系人 \\N', "sex": 0, "score": 1.5}
    staging.add_candidates(engine, "run-1", [row])
    reject = {"lead_id": odd + "x", "raw_phone": "1\t2\\3\n", "reason": "not_a_phone"}
    staging.add_rejects(engine, "run-1", TASK, [reject])
    assert staging.stage_candidates(engine, "run-1", TASK).staged == 1
    with engine.connect() as conn:
        rows = {r.lead_id: r for r in conn.execute(select(schema.ledger))}
        (logged,) = conn.execute(select(schema.rejects)).all()
    assert json.loads(rows[odd].payload) == row["payload"]
    assert rows[odd].phone == "13900000001"
    assert (logged.lead_id, logged.raw_phone) == (odd + "x", "1\t2\\3\n")
    assert rows[odd + "x"].status == "rejected"
    assert rows[odd + "x"].phone == "1\t2\\3\n"


def test_a_payload_is_the_json_json_dumps_writes():
    """msgspec writes the payloads; what json.dumps accepted it accepts, and json.loads reads
    back the same row (numpy's str_ and float64 are str and float to json.dumps)."""
    payload = {
        "phone": np.str_("13900000001"),
        "name": '联系人 "a"\tb\\',
        "sex": 0,
        "score": np.float64(1.5),
        "email": None,
        "extra": "L1",
    }
    text_ = staging.payload_json(payload)
    assert json.loads(text_) == json.loads(json.dumps(payload, ensure_ascii=False))
    assert "联系人" in text_  # as text, not \\u escapes
    with pytest.raises(TypeError, match="not JSON serializable"):
        staging.payload_json({"when": object()})


def test_staging_a_run_leaves_the_candidates_of_another_run_alone(engine):
    staging.add_candidates(engine, "run-a", [candidate("a", "13900000001")])
    staging.add_candidates(engine, "run-b", [candidate("b", "13900000002")])
    assert staging.stage_candidates(engine, "run-a", TASK).staged == 1
    with engine.connect() as conn:
        left = conn.execute(select(schema.candidates.c.run_id, schema.candidates.c.lead_id)).all()
    assert left == [("run-b", "b")]
    assert staging.stage_candidates(engine, "run-b", TASK).staged == 1
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(schema.candidates)).scalar() == 0


def test_staging_does_not_wait_for_another_run_reading_the_candidates(engine):
    """PostgreSQL empties the candidates table with TRUNCATE only when it can have it at once
    and no other run's rows are in it; otherwise it deletes the run's own rows."""
    if not set_based(engine):
        pytest.skip("PostgreSQL's set-based staging only")
    staging.add_candidates(engine, "run-a", [candidate("a", "13900000001")])
    with engine.connect() as other:
        # another run in the middle of reading its candidates holds a lock on the table
        other.execute(select(func.count()).select_from(schema.candidates)).scalar()
        assert staging.stage_candidates(engine, "run-a", TASK).staged == 1
        other.rollback()
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(schema.candidates)).scalar() == 0


def test_clearing_a_run_forgets_its_candidates_rejects_and_unclaimed_or_refused_batches(engine):
    """What a retry of the extract starts with: the run's candidates and rejects go, and of
    its batches those nobody claimed (planned) or the platform refused (failed); every other
    batch, the ledger, and everything of another run stay."""
    for run, lead in (("run-1", "a"), ("run-2", "b")):
        staging.add_candidates(engine, run, [candidate(lead, "13900000001")])
        staging.add_rejects(
            engine, run, TASK, [{"lead_id": lead + "x", "raw_phone": "1", "reason": "not_a_phone"}]
        )
    with engine.begin() as conn:
        conn.execute(
            insert(schema.batches),
            [
                {"run_id": run, "batch_no": no, "api_task_id": TASK, "rows": 1, "status": status}
                for run in ("run-1", "run-2")
                for no, status in enumerate(BatchStatus)
            ],
        )

    def state():
        with engine.connect() as conn:
            return {
                table.name: sorted(map(tuple, conn.execute(select(*columns))), key=repr)
                for table, columns in (
                    (schema.candidates, [schema.candidates.c.run_id]),
                    (schema.rejects, [schema.rejects.c.run_id]),
                    (schema.batches, [schema.batches.c.run_id, schema.batches.c.status]),
                    (schema.ledger, [schema.ledger]),
                )
            }

    before = state()
    staging.clear_run(engine, "run-1")
    after = state()

    assert after["lead_load_candidates"] == after["lead_load_rejects"] == [("run-2",)]
    unposted = {BatchStatus.PLANNED, BatchStatus.FAILED}
    assert after["lead_load_batches"] == sorted(
        [("run-1", s.value) for s in BatchStatus if s not in unposted]
        + [("run-2", s.value) for s in BatchStatus],
        key=repr,
    )
    assert after["lead_load_ledger"] == before["lead_load_ledger"]
