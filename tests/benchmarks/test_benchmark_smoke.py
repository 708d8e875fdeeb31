"""The benchmark scripts run end to end on tiny inputs and print sane BENCH_JSON lines.

They do not check speed or memory goals (meaningless at these sizes), only that the scripts
work, agree with themselves and clean up after themselves.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import psycopg2
import pytest

from tests.conftest import REPO

PG = {"host": "127.0.0.1", "port": 5432, "user": "postgres", "dbname": "test"}


def run_benchmark(script: str, *args: str) -> dict:
    """Run benchmarks/<script> with ``args``; its one BENCH_JSON line, parsed."""
    done = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / script), *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, f"{script} failed:\n{done.stdout}\n{done.stderr}"
    lines = [line for line in done.stdout.splitlines() if line.startswith("BENCH_JSON ")]
    assert len(lines) == 1, done.stdout
    return json.loads(lines[0].removeprefix("BENCH_JSON "))


@pytest.fixture
def postgres_admin():
    """A connection to the local PostgreSQL's admin database, as tests/dags/conftest.py
    decides: unreachable fails under CI=true and skips elsewhere."""
    try:
        connection = psycopg2.connect(connect_timeout=5, **PG)
    except psycopg2.OperationalError as error:
        if os.environ.get("CI") == "true":
            pytest.fail(f"PostgreSQL on 127.0.0.1:5432 is required in CI: {error}")
        pytest.skip(f"PostgreSQL on 127.0.0.1:5432 is not reachable: {error}")
    yield connection
    connection.close()


def test_transform_vs_duckdb_keeps_the_same_rows_on_a_small_input():
    result = run_benchmark("transform_vs_duckdb.py", "--rows", "20000", "--repeat", "1")

    assert result["benchmark"] == "transform_vs_duckdb"
    assert result["rows"] == 20000
    kept = set()
    for name in ("ours", "duckdb", "transform_leads"):
        side = result[name]
        assert side["rows_per_s"] > 0
        assert 0 < side["best_s"] < 60
        assert side["peak_rss_delta_mib"] >= 0
        kept.add(side["kept_rows"])
    # 5% invalid and 10% duplicates: most rows are kept, and all three keep the same ones.
    assert len(kept) == 1
    assert 0.7 * 20000 < kept.pop() < 0.9 * 20000
    assert result["kept_rows_match"] is True
    assert result["kept_mismatch"] == {"ours": 0, "transform_leads": 0}
    assert result["ratio_ours_over_duckdb"] > 0
    assert result["duckdb_version"]


@pytest.mark.postgres
def test_extraction_memory_runs_each_size_and_drops_its_database(postgres_admin):
    result = run_benchmark("extraction_memory.py", "--sizes", "2000,5000")

    assert result["benchmark"] == "extraction_memory"
    assert result["sizes"] == [2000, 5000]
    for size in ("2000", "5000"):
        run = result["results"][size]
        assert run["extracted"] == int(size)
        assert run["accounted"] is True  # staged + rejected + duplicates == extracted
        assert run["counts"]["staged"] > 0.7 * int(size)
        assert run["rows_per_s"] > 0
        assert run["peak_rss_mib"] >= run["baseline_rss_mib"] > 0
    assert result["peak_rss_ratio"] > 0
    with postgres_admin.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_database WHERE datname = %s", [result["database"]])
        assert cursor.fetchone()[0] == 0


@pytest.mark.slow
@pytest.mark.postgres
def test_overlap_posts_each_phone_once_on_a_small_window_and_drops_its_database(postgres_admin):
    result = run_benchmark("overlap.py", "--leads", "600", "--offset", "1", "--rps", "20")

    assert result["benchmark"] == "overlap"
    assert result["leads"] == 600
    assert 0.7 * 600 < result["valid_phones"] < 0.9 * 600
    assert result["posts_per_phone"] == 1.0
    assert result["phones_posted"] == result["distinct_phones_posted"] == result["valid_phones"]
    assert result["phones_posted_twice"] == 0
    assert result["task_exactly_once"] is True
    assert [run["exit"] for run in result["runs"]] == [0, 0]
    assert result["wall_s"] >= max(run["wall_s"] for run in result["runs"]) > 0
    assert result["ledger"]["imported"] == result["valid_phones"]
    assert result["goal_met"] is True
    with postgres_admin.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_database WHERE datname = %s", [result["database"]])
        assert cursor.fetchone()[0] == 0


@pytest.mark.postgres
def test_ledger_at_scale_reads_every_row_once_and_drops_its_database(postgres_admin):
    """The benchmark itself checks that each read returns every row of its scope once and
    that every callback was recorded (it fails otherwise)."""
    result = run_benchmark("ledger_at_scale.py", "--rows", "3000")

    assert result["benchmark"] == "ledger_at_scale"
    assert (result["rows"], result["batches"]) == (3000, 15)
    for key in ("plan_s", "landing_read_s", "landing_read_task_s", "settle_one_s"):
        assert 0 < result[key] < 60, key
    with postgres_admin.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_database WHERE datname = %s", [result["database"]])
        assert cursor.fetchone()[0] == 0
