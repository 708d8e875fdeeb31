"""Time and peak memory of the DAG's extract step for growing windows, next to a plain COPY.

What is measured: the ``extract_and_stage`` task's work
(``lead_load.steps.extract.extract_and_stage``: stream the window from the warehouse in
20,000-row chunks, transform each chunk, write candidates and rejects to the ledger, then
stage one row per phone), for windows of each ``--sizes`` rows (default 100,000 and
1,000,000), with the ledger in the warehouse database as by default. Two goals:

- memory: peak RSS does not grow with the row count (ratio close to 1);
- time: the step takes at most 3 times (``GOAL_COPY_RATIO``) as long as PostgreSQL's COPY of
  the same rows into a table, measured in the same worker: ``COPY (<the extract query>) TO
  STDOUT`` from one session streamed into ``COPY ... FROM STDIN`` of a table shaped like
  ``leads`` (``LIKE leads INCLUDING ALL``: its primary key too) on another. It runs once
  before and once after the step, and the ratio is taken against the faster of the two.

How: a fresh PostgreSQL database (127.0.0.1:5432, user postgres; dropped at the end) gets the
documented ``leads`` table (``lead_load_devtools.synthetic.LEADS_DDL``), and each size its
own day of synthetic leads (the messy phones, invalid rows and 10% duplicates of
transform_vs_duckdb.build_leads), loaded with COPY. Each size then runs in its own
subprocess, which builds its engines as the DAG does (the ``lead_warehouse`` connection,
given as ``AIRFLOW_CONN_LEAD_WAREHOUSE``), imports everything, resets its peak-RSS mark, and
runs the step. Reported: the peak resident set during the step (VmHWM; not ``ru_maxrss``,
which Linux makes inherit the parent's peak, see rss.py), the resident set before it, the
step's time, and where that time went: reading the warehouse (inside ``read_in_chunks``),
the transform, writing candidates (with the extract's per-row hand-over, which runs inside
``add_candidates``), writing rejects, the final staging, and the rest (the warehouse
contract check, run leases, table set-up). The agent-api hook is only used to fetch a
template when the field mapping has components; the default mapping has none, so no hook
(and no platform) is needed.

``--second-run`` then runs the step again on the same window for the same calling task, as
another run (the ledger now full, every lead in flight; PostgreSQL's autovacuum is off here,
so only the staging's own ANALYZE gives it statistics), and reports its time and staging.
``BENCH_PROFILE=<path>`` writes a cProfile of each worker's step to ``<path>.<size>``.

    .venv/bin/python benchmarks/extraction_memory.py [--sizes 100000,1000000] [--second-run]
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
import psycopg
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
GOAL_COPY_RATIO = 3.0
COPY_TABLE = "bench_copy_of_leads"
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


def copy_seconds(database: str, sql: str, bounds: dict) -> tuple[float, int]:
    """Seconds to COPY the extract query's rows out of the warehouse and into a new table
    shaped like ``leads`` (with its primary key), through this process: two sessions, the
    rows streamed from one COPY into the other as they come."""
    query = sql.strip().rstrip(";")
    for name, value in bounds.items():  # our own timestamps, as literals: COPY takes no params
        query = query.replace(f":{name}", f"'{value.isoformat(sep=' ')}'")
    source = psycopg.connect(dbname=database, **PG)
    target = psycopg.connect(dbname=database, **PG)
    try:
        target.execute(f"DROP TABLE IF EXISTS {COPY_TABLE}")
        target.execute(f"CREATE TABLE {COPY_TABLE} (LIKE leads INCLUDING ALL)")
        target.commit()
        started = time.perf_counter()
        with (
            source.cursor() as out_cursor,
            target.cursor() as in_cursor,
            out_cursor.copy(f"COPY ({query}) TO STDOUT") as out_copy,
            in_cursor.copy(f"COPY {COPY_TABLE} FROM STDIN") as in_copy,
        ):
            for block in out_copy:
                in_copy.write(block)
        target.commit()
        seconds = time.perf_counter() - started
        copied = target.execute(f"SELECT count(*) FROM {COPY_TABLE}").fetchone()[0]  # noqa: S608
        target.execute(f"DROP TABLE {COPY_TABLE}")
        target.commit()
    finally:
        source.close()
        target.close()
    return seconds, copied


class Phases:
    """Seconds spent inside the functions the step calls, by phase (wrappers around them)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = dict.fromkeys(
            ("read", "transform", "candidates", "rejects", "staging"), 0.0
        )

    def timed(self, phase: str, function):
        def wrapper(*args, **kwargs):
            started = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                self.seconds[phase] += time.perf_counter() - started

        return wrapper

    def timed_iterator(self, phase: str, function):
        def wrapper(*args, **kwargs):
            iterator = iter(function(*args, **kwargs))
            while True:
                started = time.perf_counter()
                try:
                    item = next(iterator)
                except StopIteration:
                    return
                finally:
                    self.seconds[phase] += time.perf_counter() - started
                yield item

        return wrapper


def worker(size: int, position: int, database: str, second_run: bool) -> None:
    import dataclasses

    from lead_load.core.mapping import FieldMapping
    from lead_load.core.run_settings import RunSettings
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

    copy_before, copied = copy_seconds(database, sql, bounds)

    # Where the time goes: wrappers around what the step calls.
    phases = Phases()
    extract.read_in_chunks = phases.timed_iterator("read", extract.read_in_chunks)
    extract.transform_leads = phases.timed("transform", extract.transform_leads)
    staging.add_candidates = phases.timed("candidates", staging.add_candidates)
    staging.add_rejects = phases.timed("rejects", staging.add_rejects)

    # Split the peak in two, the chunk loop (read, transform, write candidates and rejects)
    # and the final staging, by wrapping the staging call the step makes; the step's peak is
    # the higher of the two.
    memory = {}
    stage_candidates = phases.timed("staging", staging.stage_candidates)

    def measured_stage_candidates(*args, **kwargs):
        if memory:  # the second run: its time only
            return stage_candidates(*args, **kwargs)
        memory["chunks_peak_mib"] = rss.peak_mib()
        memory["chunks_s"] = time.perf_counter() - started
        rss.reset_peak()
        result = stage_candidates(*args, **kwargs)
        memory["staging_peak_mib"] = rss.peak_mib()
        return result

    staging.stage_candidates = measured_stage_candidates
    peak_was_reset = rss.reset_peak()
    baseline = rss.current_mib()
    profile = os.environ.get("BENCH_PROFILE")
    if profile:
        import cProfile

        profiler = cProfile.Profile()
        profiler.enable()
    started = time.perf_counter()
    counts = extract.extract_and_stage(settings, sql, bounds, warehouse, ledger, None, mapping)
    seconds = time.perf_counter() - started
    if profile:
        profiler.disable()
        profiler.dump_stats(f"{profile}.{size}")
    peak = max(memory["chunks_peak_mib"], memory["staging_peak_mib"])

    copy_after, _ = copy_seconds(database, sql, bounds)
    spent = {f"{phase}_s": value for phase, value in phases.seconds.items()}
    spent["other_s"] = seconds - sum(phases.seconds.values())
    if second_run:
        staged_before = phases.seconds["staging"]
        again = dataclasses.replace(settings, run_id=f"bench-{size}-again")
        started = time.perf_counter()
        repeat = extract.extract_and_stage(again, sql, bounds, warehouse, ledger, None, mapping)
        spent["second_run_s"] = time.perf_counter() - started
        spent["second_run_staging_s"] = phases.seconds["staging"] - staged_before
        spent["second_run_in_flight"] = repeat["in_flight"]
    print(
        json.dumps(
            {
                "counts": counts,
                "seconds": seconds,
                "copy_s": [copy_before, copy_after],
                "copied_rows": copied,
                **spent,
                "baseline_mib": baseline,
                "peak_mib": peak,
                **memory,
                "peak_was_reset": peak_was_reset,
                "driver": warehouse.url.drivername,
                "chunk_rows": extract.EXTRACT_CHUNK_ROWS,
            }
        )
    )


def run_worker(size: int, position: int, database: str, home: str, second_run: bool) -> dict:
    env = {
        **os.environ,
        "AIRFLOW_CONN_LEAD_WAREHOUSE": f"postgresql://{PG['user']}@{PG['host']}:{PG['port']}/"
        f"{database}",
        "AIRFLOW_HOME": home,  # the worker needs no metadata DB: keep it off the real one
    }
    command = [
        *(sys.executable, __file__, "--worker", str(size), "--position", str(position)),
        *("--database", database),
        *(["--second-run"] if second_run else []),
    ]
    done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    if done.returncode != 0:
        raise SystemExit(f"worker for {size} rows failed:\n{done.stdout}\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


# --- the parent: database, data, one worker per size, report -----------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100000,1000000")
    parser.add_argument("--worker", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--second-run", action="store_true")
    parser.add_argument("--position", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--database", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker is not None:
        worker(args.worker, args.position, args.database, args.second_run)
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
                results[size] = run_worker(size, position, database, home, args.second_run)
    finally:
        with admin.cursor() as cursor:
            cursor.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        admin.close()

    rows = {}
    for size, measured in results.items():
        counts = measured["counts"]
        settled = sum(
            counts.get(key, 0)
            for key in (
                "staged",
                "invalid",
                "duplicates_in_run",
                "already_loaded",
                "in_flight",
                "suppressed",
            )
        )
        copy_s = min(measured["copy_s"])
        rows[str(size)] = {
            "extracted": counts["extracted"],
            "accounted": settled == counts["extracted"],
            "copied_rows": measured["copied_rows"],
            "counts": counts,
            "seconds": round(measured["seconds"], 2),
            "copy_s": round(copy_s, 2),
            "copy_s_before_after": [round(value, 2) for value in measured["copy_s"]],
            "copy_ratio": round(measured["seconds"] / copy_s, 2),
            "chunks_s": round(measured["chunks_s"], 2),  # read, transform, write candidates
            **{key: round(measured[key], 2) for key in PHASES},
            "rows_per_s": round(counts["extracted"] / measured["seconds"]),
            "peak_rss_mib": round(measured["peak_mib"], 1),
            "baseline_rss_mib": round(measured["baseline_mib"], 1),
            "step_rss_mib": round(measured["peak_mib"] - measured["baseline_mib"], 1),
            "chunks_peak_rss_mib": round(measured["chunks_peak_mib"], 1),
            "staging_peak_rss_mib": round(measured["staging_peak_mib"], 1),
            "peak_was_reset": measured["peak_was_reset"],
            **{key: round(measured[key], 2) for key in SECOND_RUN if key in measured},
        }
    small, large = rows[str(sizes[0])], rows[str(sizes[-1])]
    ratio = large["peak_rss_mib"] / small["peak_rss_mib"]
    step_ratio = large["step_rss_mib"] / max(small["step_rss_mib"], 0.1)

    print(f"{sum(sizes):,} leads loaded with COPY in {load_s:.1f} s; one subprocess per size")
    print("time (s); COPY: the same rows into a table like leads, faster of before/after")
    columns = (
        ("rows", "extracted", "{:,}"),
        ("step s", "seconds", "{:.1f}"),
        ("COPY s", "copy_s", "{:.2f}"),
        ("step/COPY", "copy_ratio", "{:.2f}"),
        ("read", "read_s", "{:.1f}"),
        ("transform", "transform_s", "{:.1f}"),
        ("candidates", "candidates_s", "{:.1f}"),
        ("rejects", "rejects_s", "{:.1f}"),
        ("staging", "staging_s", "{:.1f}"),
        ("other", "other_s", "{:.1f}"),
    )
    print_table(columns, rows.values())
    if args.second_run:
        print("the same window again, as another run for the same calling task")
        columns = (
            ("rows", "extracted", "{:,}"),
            ("2nd run s", "second_run_s", "{:.1f}"),
            ("its staging", "second_run_staging_s", "{:.1f}"),
            ("in flight", "second_run_in_flight", "{:,.0f}"),
        )
        print_table(columns, rows.values())
    print("memory (MiB)")
    columns = (
        ("rows", "extracted", "{:,}"),
        ("rows/s", "rows_per_s", "{:,}"),
        ("chunks s", "chunks_s", "{:.1f}"),
        ("peak RSS MiB", "peak_rss_mib", "{:.1f}"),
        ("before MiB", "baseline_rss_mib", "{:.1f}"),
        ("step +MiB", "step_rss_mib", "{:.1f}"),
        ("chunks peak", "chunks_peak_rss_mib", "{:.1f}"),
        ("staging peak", "staging_peak_rss_mib", "{:.1f}"),
    )
    print_table(columns, rows.values())
    print(f"peak RSS ratio {sizes[-1]:,} / {sizes[0]:,} rows: {ratio:.2f} (goal: close to 1)")
    print(f"step RSS (above the imports) ratio: {step_ratio:.2f}")
    print(
        f"step / COPY at {sizes[-1]:,} rows: {large['copy_ratio']:.2f} (goal <= {GOAL_COPY_RATIO})"
    )
    summary = {
        "benchmark": "extraction_memory",
        "sizes": sizes,
        "database": database,  # created for this run and dropped again
        "load_s": round(load_s, 1),
        "results": rows,
        "peak_rss_ratio": round(ratio, 3),
        "step_rss_ratio": round(step_ratio, 3),
        "copy_ratio": large["copy_ratio"],
        "copy_ratio_goal": GOAL_COPY_RATIO,
        "chunk_rows": next(iter(results.values()))["chunk_rows"],
        "driver": next(iter(results.values()))["driver"],
        "memory": "VmHWM during the step (absolute, and minus VmRSS before it), "
        "one subprocess per size",
        "copy": "COPY (extract query) TO STDOUT streamed into COPY ... FROM STDIN of a table "
        "LIKE leads INCLUDING ALL, in the worker; the faster of one run before and one after "
        "the step",
    }
    print("BENCH_JSON " + json.dumps(summary))
    wrong = [
        size
        for size, r in rows.items()
        if int(size) != r["extracted"] or not r["accounted"] or r["copied_rows"] != int(size)
    ]
    if wrong:
        raise SystemExit(f"extracted, copied or accounted rows do not add up for sizes {wrong}")


PHASES = ("read_s", "transform_s", "candidates_s", "rejects_s", "staging_s", "other_s")
SECOND_RUN = ("second_run_s", "second_run_staging_s", "second_run_in_flight")


def print_table(columns, rows) -> None:
    print("  ".join(f"{title:>12}" for title, _, _ in columns))
    for r in rows:
        print("  ".join(f"{style.format(r[key]):>12}" for _, key, style in columns))


if __name__ == "__main__":
    main()
