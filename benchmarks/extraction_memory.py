"""Peak memory of the DAG's extract step for growing windows: it must not grow with the rows.

What is measured: the ``extract_and_stage`` task's work
(``lead_load.steps.extract.extract_and_stage``: stream the window from the warehouse in
20,000-row chunks, transform each chunk, write candidates and rejects to the ledger, then
stage one row per phone), for windows of each
``--sizes`` rows (default 100,000 and 1,000,000), with the ledger in the warehouse database
as by default. The goal: peak RSS does not grow with the row count (ratio close to 1).

How: a fresh PostgreSQL database (127.0.0.1:5432, user postgres; dropped at the end) gets the
documented ``leads`` table (``lead_load_devtools.synthetic.LEADS_DDL``), and each size its
own day of synthetic leads (the messy phones, invalid rows and 10% duplicates of
transform_vs_duckdb.build_leads), loaded with COPY. Each size then runs in its own
subprocess, which builds its engines as the DAG does (the ``lead_warehouse`` connection,
given as ``AIRFLOW_CONN_LEAD_WAREHOUSE``), imports everything, resets its peak-RSS mark, and
runs the step. Reported: the peak resident set during the step (VmHWM; not ``ru_maxrss``,
which Linux makes inherit the parent's peak, see rss.py), the resident set before it, and the
step's time. The agent-api hook is only used to fetch a template when the field mapping has
components; the default mapping has none, so no hook (and no platform) is needed.

    .venv/bin/python benchmarks/extraction_memory.py [--sizes 100000,1000000]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import jinja2
import numpy as np
import psycopg2
import rss
from transform_vs_duckdb import build_leads

import lead_load
from lead_load_devtools.synthetic import LEADS_DDL

EXTRACT_SQL = Path(lead_load.__file__).parents[1] / "sql" / "extract_leads.sql"
PG = {"host": "127.0.0.1", "port": 5432, "user": "postgres"}
ADMIN_DB = "test"
FIRST_DAY = datetime(2026, 10, 1)  # naive UTC, like the warehouse's updated_at
DAYS_APART = 7  # each size's leads live in their own window, far from the others'
COPY_ROWS = 200_000
LEAD_COLUMNS = (
    "lead_id, name, phone, email, company, sex, source_id, industry_id, grade_id, updated_at"
)
INTEGER_COLUMNS = ("source_id", "industry_id", "grade_id")


def window_of(position: int) -> tuple[datetime, datetime]:
    """The [start, end) holding exactly the leads of the size at ``position``."""
    day = FIRST_DAY + timedelta(days=DAYS_APART * position)
    return day - timedelta(hours=2), day + timedelta(days=1)  # duplicates are <= 1 h older


def load_leads(connection, rows: int, position: int) -> None:
    """COPY ``rows`` synthetic leads into ``leads``, a slice at a time (bounded memory)."""
    leads = build_leads(
        rows,
        seed=position + 1,
        start=np.datetime64(FIRST_DAY + timedelta(days=DAYS_APART * position), "us"),
        id_prefix=f"S{position}-",
    )
    # read_sql gives nullable integers back as floats; the table wants integers.
    leads = leads.astype(dict.fromkeys(INTEGER_COLUMNS, "Int64"))
    copy = f"COPY leads ({LEAD_COLUMNS}) FROM STDIN WITH (FORMAT csv, NULL '\\N')"
    with connection.cursor() as cursor:
        for offset in range(0, rows, COPY_ROWS):
            buffer = io.StringIO()
            # \N marks NULL, so an empty or blank phone stays text, as in a real warehouse.
            leads.iloc[offset : offset + COPY_ROWS].to_csv(
                buffer, index=False, header=False, na_rep="\\N"
            )
            buffer.seek(0)
            cursor.copy_expert(copy, buffer)
    connection.commit()


# --- the worker: one size, in its own process --------------------------------------------------


def worker(size: int, position: int) -> None:
    from lead_load.core.mapping import FieldMapping
    from lead_load.core.settings import RunSettings
    from lead_load.core.window import sql_bounds
    from lead_load.glue.connections import ledger_engine, warehouse_engine
    from lead_load.ledger import staging
    from lead_load.steps import extract

    start, end = (moment.replace(tzinfo=UTC) for moment in window_of(position))
    warehouse, ledger = warehouse_engine(), ledger_engine()
    settings = RunSettings(
        run_id=f"bench-{size}",
        api_task_id=str(uuid.uuid4()),
        window_start=start.isoformat(),
        window_end=end.isoformat(),
    )
    # The task's templates_dict renders the file with Jinja; it has no macros, so plain
    # Jinja gives the same text.
    sql = jinja2.Template(EXTRACT_SQL.read_text()).render()
    bounds = sql_bounds(start, end, warehouse.dialect.name)
    mapping = FieldMapping.load()
    with warehouse.connect() as conn:  # open the pools now: connecting is not the step
        conn.exec_driver_sql("SELECT 1")
    with ledger.connect() as conn:
        conn.exec_driver_sql("SELECT 1")

    # Split the peak in two, the chunk loop (read, transform, write candidates and rejects)
    # and the final staging, by wrapping the staging call the step makes; the step's peak is
    # the higher of the two.
    phases = {}
    stage_candidates = staging.stage_candidates

    def measured_stage_candidates(*args, **kwargs):
        phases["chunks_peak_mib"] = rss.peak_mib()
        phases["chunks_s"] = time.perf_counter() - started
        rss.reset_peak()
        result = stage_candidates(*args, **kwargs)
        phases["staging_peak_mib"] = rss.peak_mib()
        return result

    staging.stage_candidates = measured_stage_candidates
    peak_was_reset = rss.reset_peak()
    baseline = rss.current_mib()
    started = time.perf_counter()
    counts = extract.extract_and_stage(settings, sql, bounds, warehouse, ledger, None, mapping)
    seconds = time.perf_counter() - started
    peak = max(phases["chunks_peak_mib"], phases["staging_peak_mib"])
    print(
        json.dumps(
            {
                "counts": counts,
                "seconds": seconds,
                "baseline_mib": baseline,
                "peak_mib": peak,
                **phases,
                "peak_was_reset": peak_was_reset,
                "driver": warehouse.url.drivername,
                "chunk_rows": extract.EXTRACT_CHUNK_ROWS,
            }
        )
    )


def run_worker(size: int, position: int, database: str, home: str) -> dict:
    env = {
        **os.environ,
        "AIRFLOW_CONN_LEAD_WAREHOUSE": f"postgresql://{PG['user']}@{PG['host']}:{PG['port']}/"
        f"{database}",
        "AIRFLOW_HOME": home,  # the worker needs no metadata DB: keep it off the real one
    }
    command = [sys.executable, __file__, "--worker", str(size), "--position", str(position)]
    done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    if done.returncode != 0:
        raise SystemExit(f"worker for {size} rows failed:\n{done.stdout}\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


# --- the parent: database, data, one worker per size, report -----------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100000,1000000")
    parser.add_argument("--worker", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--position", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker is not None:
        worker(args.worker, args.position)
        return
    sizes = sorted(int(size) for size in args.sizes.split(","))

    database = f"lead_load_bench_{uuid.uuid4().hex[:10]}"
    try:
        admin = psycopg2.connect(dbname=ADMIN_DB, connect_timeout=5, **PG)
    except psycopg2.OperationalError as error:
        message = f"PostgreSQL on {PG['host']}:{PG['port']} is not reachable: {error}"
        raise SystemExit(message) from None
    admin.autocommit = True  # CREATE/DROP DATABASE cannot run in a transaction
    with admin.cursor() as cursor:
        cursor.execute(f'CREATE DATABASE "{database}"')
    results: dict[int, dict] = {}
    try:
        started = time.perf_counter()
        with psycopg2.connect(dbname=database, **PG) as connection:
            with connection.cursor() as cursor:
                cursor.execute(LEADS_DDL)
            for position, size in enumerate(sizes):
                load_leads(connection, size, position)
            with connection.cursor() as cursor:
                cursor.execute("ANALYZE leads")
        connection.close()
        load_s = time.perf_counter() - started
        with tempfile.TemporaryDirectory(prefix="bench-extract-") as home:
            for position, size in enumerate(sizes):
                results[size] = run_worker(size, position, database, home)
    finally:
        with admin.cursor() as cursor:
            cursor.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        admin.close()

    rows = {}
    for size, measured in results.items():
        counts = measured["counts"]
        settled = sum(
            counts[key]
            for key in ("staged", "rejected", "duplicates_in_run", "already_loaded", "in_flight")
        )
        rows[str(size)] = {
            "extracted": counts["extracted"],
            "accounted": settled == counts["extracted"],
            "counts": counts,
            "seconds": round(measured["seconds"], 2),
            "chunks_s": round(measured["chunks_s"], 2),  # read, transform, write candidates
            "rows_per_s": round(counts["extracted"] / measured["seconds"]),
            "peak_rss_mib": round(measured["peak_mib"], 1),
            "baseline_rss_mib": round(measured["baseline_mib"], 1),
            "step_rss_mib": round(measured["peak_mib"] - measured["baseline_mib"], 1),
            "chunks_peak_rss_mib": round(measured["chunks_peak_mib"], 1),
            "staging_peak_rss_mib": round(measured["staging_peak_mib"], 1),
            "peak_was_reset": measured["peak_was_reset"],
        }
    small, large = rows[str(sizes[0])], rows[str(sizes[-1])]
    ratio = large["peak_rss_mib"] / small["peak_rss_mib"]
    step_ratio = large["step_rss_mib"] / max(small["step_rss_mib"], 0.1)

    print(f"{sum(sizes):,} leads loaded with COPY in {load_s:.1f} s; one subprocess per size")
    columns = (
        ("rows", "extracted", "{:,}"),
        ("rows/s", "rows_per_s", "{:,}"),
        ("seconds", "seconds", "{:.1f}"),
        ("chunks s", "chunks_s", "{:.1f}"),
        ("peak RSS MiB", "peak_rss_mib", "{:.1f}"),
        ("before MiB", "baseline_rss_mib", "{:.1f}"),
        ("step +MiB", "step_rss_mib", "{:.1f}"),
        ("chunks peak", "chunks_peak_rss_mib", "{:.1f}"),
        ("staging peak", "staging_peak_rss_mib", "{:.1f}"),
    )
    print("  ".join(f"{title:>12}" for title, _, _ in columns))
    for r in rows.values():
        print("  ".join(f"{style.format(r[key]):>12}" for _, key, style in columns))
    print(f"peak RSS ratio {sizes[-1]:,} / {sizes[0]:,} rows: {ratio:.2f} (goal: close to 1)")
    print(f"step RSS (above the imports) ratio: {step_ratio:.2f}")
    summary = {
        "benchmark": "extraction_memory",
        "sizes": sizes,
        "database": database,  # created for this run and dropped again
        "load_s": round(load_s, 1),
        "results": rows,
        "peak_rss_ratio": round(ratio, 3),
        "step_rss_ratio": round(step_ratio, 3),
        "chunk_rows": next(iter(results.values()))["chunk_rows"],
        "driver": next(iter(results.values()))["driver"],
        "memory": "VmHWM during the step (absolute, and minus VmRSS before it), "
        "one subprocess per size",
    }
    print("BENCH_JSON " + json.dumps(summary))
    wrong = [size for size, r in rows.items() if int(size) != r["extracted"] or not r["accounted"]]
    if wrong:
        raise SystemExit(f"extracted or accounted rows do not add up for sizes {wrong}")


if __name__ == "__main__":
    main()
