"""The ledger's whole-run statements at a million rows: planning, the landing check's read,
and recording callbacks, on PostgreSQL.

What is measured, on a fresh database (127.0.0.1:5432, user postgres; dropped at the end)
whose ledger holds ``--rows`` staged rows of the measured run plus as many rows of an
earlier run of the same calling task (a ledger that has seen a few nights):

- ``plan``: ``planning.plan`` numbering the run's staged rows into batches of 200;
- ``landing read``: ``landing_check._rows`` paging through the run's rows (its batches
  posted, its rows imported), the read the end-of-run landing check makes, and through the
  whole calling task (both runs), the read of ``python -m lead_load verify --api-task-id`` on a
  calling task;
- ``record callbacks``: ``settling.settle`` for every batch of the run, one batch at a time
  as each batch's wait records its callback.

Each figure is the wall time of the step on its own; rows/s beside it. The rows are written
with COPY, so setting up a million takes about half a minute.

    .venv/bin/python benchmarks/ledger_at_scale.py [--rows 1000000]
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta

import psycopg
from sqlalchemy import create_engine, select, text

from lead_load.core.ledger_rules import BatchStatus, Status
from lead_load.ledger import planning, run_lifecycle, schema, settling
from lead_load.steps import landing_check

SERVER = "postgresql://postgres@127.0.0.1:5432"
BATCH = 200
PAYLOAD = json.dumps({"name": "Lead Name", "city": "Shanghai", "note": "y" * 120})


def _copy_rows(dsn: str, task: str, run_id: str, rows: int, offset: int, status: str) -> None:
    """``rows`` ledger rows of ``run_id`` written with COPY (phones unique across runs)."""
    stamp = datetime.now(UTC).isoformat()
    buffer = io.StringIO()
    for n in range(offset, offset + rows):
        phone = f"13{n:09d}"
        payload = PAYLOAD.replace("\\", "\\\\")
        buffer.write(
            f"{task}\tL{n:09d}\t{phone}\t{status}\t{run_id}\t{payload}\t{stamp}\t{stamp}\n"
        )
    buffer.seek(0)
    columns = "api_task_id, lead_id, phone, status, run_id, payload, created_at, updated_at"
    with (
        psycopg.connect(dsn) as conn,
        conn.cursor() as cursor,
        cursor.copy(f"COPY lead_load_ledger ({columns}) FROM STDIN") as copy,
    ):
        while block := buffer.read(1 << 20):
            copy.write(block)


def _timed(step):
    started = time.perf_counter()
    result = step()
    return time.perf_counter() - started, result


def _submit_everything(engine, run_id: str) -> list[str]:
    """Every planned batch of the run posted and accepted: what the posts leave behind (two
    set-based statements; how the posts write it is not what is measured here)."""
    posted = datetime.now(UTC) - timedelta(minutes=5)
    with engine.begin() as conn:
        conn.execute(
            text(
                "UPDATE lead_load_batches SET status = :status, posted_at = :posted, "
                "unique_id = md5(run_id || '/' || batch_no) WHERE run_id = :run"
            ),
            {"status": BatchStatus.SUBMITTED.value, "posted": posted, "run": run_id},
        )
        conn.execute(
            text(
                "UPDATE lead_load_ledger l SET status = :status, unique_id = b.unique_id "
                "FROM lead_load_batches b WHERE b.run_id = l.run_id AND b.batch_no = l.batch_no "
                "AND l.run_id = :run"
            ),
            {"status": Status.SUBMITTED.value, "run": run_id},
        )
        return list(
            conn.execute(
                select(schema.batches.c.unique_id)
                .where(schema.batches.c.run_id == run_id)
                .order_by(schema.batches.c.batch_no)
            ).scalars()
        )


def _phones_of(engine, unique_ids: list[str]) -> dict[str, set[str]]:
    ledger = schema.ledger
    found: dict[str, set[str]] = {u: set() for u in unique_ids}
    with engine.connect() as conn:
        for unique_id, phone in conn.execute(
            select(ledger.c.unique_id, ledger.c.phone).where(ledger.c.unique_id.is_not(None))
        ):
            if unique_id in found:
                found[unique_id].add(phone)
    return found


def measure(rows: int) -> dict:
    database = f"bench_ledger_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(f"{SERVER}/postgres", autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {database}")
    dsn = f"{SERVER}/{database}"
    engine = create_engine(f"postgresql+psycopg://postgres@127.0.0.1:5432/{database}")
    try:
        schema.create_tables(engine)
        task, earlier, run_id = "bench-task", "scheduled__earlier", "scheduled__measured"
        _copy_rows(dsn, task, earlier, rows, 0, Status.IMPORTED.value)
        _copy_rows(dsn, task, run_id, rows, rows, Status.STAGED.value)
        with engine.begin() as conn:
            conn.exec_driver_sql("ANALYZE lead_load_ledger")
        run_lifecycle.start_run(engine, run_id, task, ("2026-09-01", "2026-09-02"))
        result: dict = {"rows": rows, "database": database}

        result["plan_s"], plan = _timed(lambda: planning.plan(engine, run_id, task, BATCH))
        result["batches"] = len(plan.batches)
        unique_ids = _submit_everything(engine, run_id)
        phones = _phones_of(engine, unique_ids)

        result["settle_one_s"], _ = _timed(
            lambda: [settling.settle(engine, u, phones[u]) for u in unique_ids]
        )

        # The run's rows as the end-of-run check reads them, and the calling task's whole as
        # the command-line check of a task does (both runs: twice the rows).
        for key, scope, expected in (
            ("landing_read_s", landing_check.Scope(task, (run_id,)), rows),
            ("landing_read_task_s", landing_check.Scope(task), 2 * rows),
        ):
            result[key], read = _timed(
                lambda scope=scope: sum(len(c) for c in landing_check._rows(engine, scope))
            )
            assert read == expected, (key, read, expected)
        with engine.connect() as conn:
            imported = conn.execute(
                text("SELECT count(*) FROM lead_load_ledger WHERE run_id = :r AND status = :s"),
                {"r": run_id, "s": Status.IMPORTED.value},
            ).scalar_one()
        assert imported == rows, (imported, rows)
        return result
    finally:
        engine.dispose()
        with psycopg.connect(f"{SERVER}/postgres", autocommit=True) as admin:
            admin.execute(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")


def print_table(result: dict) -> None:
    rows = result["rows"]
    print(f"\nLedger at {rows:,} rows ({result['batches']:,} batches of {BATCH})\n")
    print("| step | seconds | rows/s |")
    print("|---|---|---|")
    for key, label in (
        ("plan_s", "plan (number the run's rows)"),
        ("landing_read_s", "landing check's read of the run"),
        ("landing_read_task_s", "landing check's read of the calling task (2 runs)"),
        ("settle_one_s", "record callbacks, one batch at a time"),
    ):
        print(f"| {label} | {result[key]:.2f} | {rows / result[key]:,.0f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    args = parser.parse_args()
    result = measure(args.rows)
    print_table(result)
    print("BENCH_JSON " + json.dumps({"benchmark": "ledger_at_scale", **result}))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
