"""Two runs of the same window at once: how many times each phone is posted, and how long.

What is measured: N synthetic leads (default 20,000, with the usual 5% invalid and 10%
duplicate rows) in a fresh PostgreSQL warehouse, which also holds the ledger. Two
`airflow dags test lead_load` processes over the same window and the same target task start
``--offset`` seconds apart (default 1), as in tests/dags/test_overlapping_runs.py
(tests/dags/overlap.py), against the platform simulator; ``--rps`` sets the agent_api
connection's ``max_requests_per_second`` (default: no pacing).

Reported, from the simulator's journal and its task: posts per phone, the phones carried by
accepted async_number posts over the distinct phones among them (goal: exactly 1.00), phones
accepted more than once, whether the task holds each valid phone exactly once, each run's
exit code and wall time, and the pair's wall time (first start -> last end). The ledger's
status counts are printed too. The script exits non-zero when a phone was posted twice, a
valid phone is missing from the task, or a run failed, after printing its BENCH_JSON line.

    .venv/bin/python benchmarks/overlap.py [--leads 20000] [--offset 1] [--rps 20]

Needs PostgreSQL on 127.0.0.1:5432 (user postgres); its database is dropped at the end.
Airflow's home is $AIRFLOW_HOME (`make bench` sets .airflow); the script migrates it and
creates the agent_api pool if needed, as `make airflow-home` does.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))  # the helpers live in tests/, which is not installed
os.environ.setdefault("AIRFLOW_HOME", str(REPO / ".airflow"))
os.environ.setdefault("AIRFLOW__CORE__DAGS_FOLDER", str(REPO / "dags"))
os.environ.setdefault("AIRFLOW__CORE__PLUGINS_FOLDER", str(REPO / "plugins"))
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")

import pytest  # noqa: E402 - postgres_warehouse() skips through pytest

from agent_api_simulator.testing import SimulatorProcess  # noqa: E402
from lead_load_devtools.synthetic import generate, write_leads  # noqa: E402
from tests.dags.conftest import WINDOW, make_env, postgres_warehouse  # noqa: E402
from tests.dags.overlap import accepted_posts, posts_per_phone, run_overlapping  # noqa: E402

SEED = 23


def prepare_airflow_home() -> None:
    """The metadata DB migrated, the DAG's pool there and the DAG registered (all idempotent).

    Registering first matters: two `airflow dags test` started together on a DB that has not
    seen the DAG both insert it (and its asset), and one of them fails on a unique constraint.
    """
    for args in (
        ("db", "migrate"),
        ("pools", "set", "agent_api", "4", "lead_load posts"),
        ("dags", "reserialize"),
    ):
        done = subprocess.run(
            [sys.executable, "-m", "airflow", *args], capture_output=True, text=True, check=False
        )
        if done.returncode != 0:
            raise SystemExit(f"airflow {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")


def measure(leads: int, offset: float, rps: float | None) -> dict:
    synthetic = generate(leads, seed=SEED, start=WINDOW[0], end=WINDOW[1], id_prefix="O")
    valid = set(synthetic.valid_phones)
    try:
        warehouse = postgres_warehouse()
    except pytest.skip.Exception as error:
        raise SystemExit(str(error)) from None
    database = warehouse.conn_uri.rsplit("/", 1)[1]
    try:
        with SimulatorProcess() as sim:
            env = make_env(
                sim, warehouse, **({} if rps is None else {"max_requests_per_second": rps})
            )
            write_leads(warehouse.engine, synthetic.frame)
            started, started_at = time.monotonic(), time.time()
            runs = run_overlapping(env, offset)
            wall_s = time.monotonic() - started
            posts = accepted_posts(env)
            per_phone = posts_per_phone(posts)
            in_task = env.calling_task_phones()
            ledger = env.ledger_counts()
            logs = [run.tail(3000) for run in runs if run.returncode != 0]
    finally:
        for step in warehouse.cleanup:
            step()
    post_times = sorted(post["time"] for post in posts)
    phones_posted = sum(per_phone.values())
    return {
        "leads": leads,
        "valid_phones": len(valid),
        "offset_s": offset,
        "max_requests_per_second": rps,
        "wall_s": round(wall_s, 2),
        "runs": [{"exit": run.returncode, "wall_s": run.wall_s} for run in runs],
        "runs_succeeded": all(run.returncode == 0 for run in runs),
        "accepted_posts": len(posts),
        "posting_s": round(post_times[-1] - post_times[0], 2) if len(post_times) > 1 else 0.0,
        # The journal's clock is the wall clock: the pair's start to its first accepted post
        # (settings, extract, staging, planning), and its last post to the pair's end.
        "before_first_post_s": round(post_times[0] - started_at, 2) if post_times else None,
        "after_last_post_s": round(started_at + wall_s - post_times[-1], 2) if post_times else None,
        "phones_posted": phones_posted,
        "distinct_phones_posted": len(per_phone),
        "posts_per_phone": round(phones_posted / len(per_phone), 2) if per_phone else None,
        "phones_posted_twice": sum(1 for count in per_phone.values() if count > 1),
        "task_exactly_once": len(in_task) == len(set(in_task)) and set(in_task) == valid,
        "ledger": ledger,
        "database": database,
        "failed_run_logs": logs,
    }


def print_table(result: dict) -> None:
    pacing = result["max_requests_per_second"]
    print(
        f"{result['leads']:,} leads ({result['valid_phones']:,} valid phones), two runs of the "
        f"same window {result['offset_s']:g} s apart, "
        + ("no pacing" if pacing is None else f"paced at {pacing:g} req/s per run")
    )
    rows = [
        ("posts per phone", f"{result['posts_per_phone'] or 0:.2f}"),
        ("phones accepted more than once", result["phones_posted_twice"]),
        ("accepted async_number posts", result["accepted_posts"]),
        ("each valid phone once in the task", result["task_exactly_once"]),
        ("wall time s (both runs)", result["wall_s"]),
        ("start -> first post s", result["before_first_post_s"]),
        ("posting phase s", result["posting_s"]),
        ("last post -> end s", result["after_last_post_s"]),
    ]
    rows += [
        (f"run {n}: exit code, wall s", f"{run['exit']}, {run['wall_s']}")
        for n, run in enumerate(result["runs"], 1)
    ]
    rows.append(("ledger", ", ".join(f"{k} {v:,}" for k, v in sorted(result["ledger"].items()))))
    for label, value in rows:
        print(f"{label:<36} {value}")
    for log in result["failed_run_logs"]:
        print(f"--- end of a failed run's output ---\n{log}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--leads", type=int, default=20_000)
    parser.add_argument("--offset", type=float, default=1.0, help="seconds between the starts")
    parser.add_argument("--rps", type=float, default=None, help="max_requests_per_second")
    args = parser.parse_args()
    prepare_airflow_home()
    result = measure(args.leads, args.offset, args.rps)
    print_table(result)
    from importlib.metadata import version

    summary = {
        "benchmark": "overlap",
        **{k: v for k, v in result.items() if k != "failed_run_logs"},
        "goal_posts_per_phone": 1.0,
        "goal_met": result["phones_posted_twice"] == 0
        and result["task_exactly_once"]
        and result["runs_succeeded"],
        "python_version": platform.python_version(),
        "airflow_version": version("apache-airflow"),
        "nproc": os.cpu_count(),
    }
    print("BENCH_JSON " + json.dumps(summary))
    if not summary["goal_met"]:
        raise SystemExit(
            "not every valid phone posted and imported exactly once by two successful runs"
        )


if __name__ == "__main__":
    main()
