"""End to end: the lead_load DAG on a real distributed Airflow against a plain asyncio script.

What is measured: N synthetic leads (default 40,000: 200 batches of 200; no invalid or
duplicate rows, so every lead is sent) loaded into the platform simulator, whose token
bucket answers 429 above ``--rps`` requests/s (default 20) over all platform routes, by

- ``DAG``: ``lead_load`` triggered through the REST API of an ``AirflowStack``
  (tests/distributed/stack.py: api-server, scheduler, dag-processor, triggerer and a Celery
  worker with 4 slots, PostgreSQL metadata DB and warehouse). It extracts the leads from
  the warehouse, stages them in the ledger, posts each batch (``post_batch``, mapped) while
  one ``wait_for_callbacks`` per run polls each accepted batch's callback and records it,
  both in the triggerer, with the ``agent_api`` connection's
  ``max_requests_per_second`` set to ``--rps``, and reports;
- ``plain``: ``plain_asyncio_loader.py``, the same API rows in the same batches into
  another fresh calling task, every request (posts, polls, downloads) paced by one token
  bucket at ``--rps``, then polls each callback and downloads the numbers it imported.

Both sides are measured from the simulator's journal (every platform request with its time
and HTTP status): the posting phase (first post -> last post), HTTP requests per batch
(posts + callback polls + number downloads), the busiest second, and the 429s received. Wall
time is the DAG run's start_date -> end_date from the REST API, and for the plain script
first request -> last download. The Airflow overhead per batch is
(DAG wall - plain wall) / batches: it includes the DAG's extract and staging, which the
plain script does not do. Both must end with every phone in their task exactly once; the
script fails if not.

    .venv/bin/python benchmarks/end_to_end.py [--leads 40000] [--rps 20] [--set KEY=VALUE ...]

``--set`` overrides an Airflow setting of the stack for this run (an environment variable such
as ``AIRFLOW__TRIGGERER__MAX_TRIGGER_TO_SELECT_PER_LOOP=50``), to measure an alternative
beside the setting the project ships.

Needs PostgreSQL (user postgres) and Redis on 127.0.0.1, like the distributed tests; the
stack lives in test-output/bench-end-to-end and is stopped (databases dropped) at the end.

The goal: the DAG saturates the rate limit (posting-phase ratio DAG / plain close to 1) and
never trips it (no 429).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import plain_asyncio_loader
from rss import TreePeaks
from sqlalchemy import create_engine

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))  # the stack lives in tests/, which is not installed

from agent_api_simulator.testing import SimulatorProcess  # noqa: E402
from lead_load_devtools.synthetic import generate, write_leads  # noqa: E402
from tests.distributed.stack import AirflowStack, StackError  # noqa: E402

WORKDIR = REPO / "test-output" / "bench-end-to-end"
WINDOW = (datetime(2026, 10, 5, tzinfo=UTC), datetime(2026, 10, 6, tzinfo=UTC))
SEED = 40
BATCH_SIZE = 200
RUN_TIMEOUT_S = 3600
DOWNLOAD_PATH = "/agent-api/download-number"
SIDES = ("dag", "plain")
# "Close to 1": the DAG's posting phase at most 20% longer than the plain script's.
GOAL_POSTING_RATIO = 1.2
GOAL_WALL_RATIO = 1.3


# --- reading the simulator's journal ---------------------------------------------------------


def kind_of(entry: dict, task_id: str) -> str:
    path = entry["path"]
    if entry["method"] == "POST" and path.endswith(f"/task/{task_id}/async_number"):
        return "post"
    if "/identification/" in path:
        return "poll"
    if path == DOWNLOAD_PATH:
        return "download"
    return "other"


def busiest_second(times: list[float]) -> int:
    """The most requests that arrived within any 1 s."""
    times = sorted(times)
    best, first = 0, 0
    for last, moment in enumerate(times):
        while moment - times[first] >= 1.0:
            first += 1
        best = max(best, last - first + 1)
    return best


def journal_stats(entries: list[dict], task_id: str, batches: int) -> dict:
    """What one side sent to the platform, from the journal entries of its phase."""
    counts = {"post": 0, "poll": 0, "download": 0, "other": 0}
    for entry in entries:
        counts[kind_of(entry, task_id)] += 1
    post_times = sorted(e["time"] for e in entries if kind_of(e, task_id) == "post")
    posting_s = post_times[-1] - post_times[0] if len(post_times) > 1 else 0.0
    return {
        "requests": len(entries),
        "requests_by_kind": counts,
        "requests_per_batch": round(len(entries) / batches, 2),
        "posting_s": round(posting_s, 2),
        # Intervals over time: 200 posts exactly at 20/s span 9.95 s and give 20.0.
        "post_rate_rps": round((len(post_times) - 1) / posting_s, 2) if posting_s else None,
        "busiest_second": busiest_second([e["time"] for e in entries]),
        "http_429": sum(1 for e in entries if e["status"] == 429),
        "other_errors": sum(1 for e in entries if e["status"] not in (200, 429)),
    }


def last_seq(sim: SimulatorProcess) -> int:
    return max((e["seq"] for e in sim.journal()), default=0)


# --- the two sides ---------------------------------------------------------------------------


def wait_for_scheduled_run(stack: AirflowStack, timeout: float = 120) -> None:
    """The scheduler starts the latest nightly run on its own (nothing to load in it): let it
    finish first, so that it neither delays the measured run (max_active_runs=1) nor sends
    requests during it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        runs = stack.dag_runs()
        if runs and all(r["state"] in ("success", "failed") for r in runs):
            return
        time.sleep(2)
    print(f"note: no finished scheduled run after {timeout:.0f} s; measuring anyway")


def all_task_instances(stack: AirflowStack, run_id: str) -> list[dict]:
    """Every task instance of the run: the API serves at most 100 per page."""
    path = f"/dags/lead_load/dagRuns/{run_id}/taskInstances"
    found: list[dict] = []
    while True:
        page = stack.api("GET", path, params={"limit": 100, "offset": len(found)})
        found += page["task_instances"]
        if not page["task_instances"] or len(found) >= page["total_entries"]:
            return found


def _seconds(value: str | None) -> float | None:
    return datetime.fromisoformat(value).timestamp() if value else None


def ti_timing(tis: list[dict], task_id: str) -> dict:
    """Medians over the instances of ``task_id`` (mapped or not): where each one's time went."""
    chosen = [ti for ti in tis if ti["task_id"] == task_id]

    def median(first: str, last: str) -> float | None:
        gaps = [_seconds(ti[last]) - _seconds(ti[first]) for ti in chosen if ti[first] and ti[last]]
        return round(statistics.median(gaps), 2) if gaps else None

    return {
        "instances": len(chosen),
        "max_try_number": max((ti["try_number"] for ti in chosen), default=0),
        "scheduled_to_queued_s": median("scheduled_when", "queued_when"),
        "queued_to_start_s": median("queued_when", "start_date"),
        "run_s": median("start_date", "end_date"),
        # A pool slot is taken from queued to the end of the try.
        "queued_to_end_s": median("queued_when", "end_date"),
    }


def run_dag(stack: AirflowStack, sim: SimulatorProcess, batches: int) -> dict:
    task_id = sim.create_task(stack.user_id)
    since = last_seq(sim)
    run_id = stack.trigger(
        {
            "window_start": WINDOW[0].isoformat(),
            "window_end": WINDOW[1].isoformat(),
            "api_task_id": task_id,
        }
    )
    (run,) = stack.wait_for_runs([run_id], timeout=RUN_TIMEOUT_S)
    entries = sim.journal(since)
    tis = all_task_instances(stack, run_id)
    if run["state"] != "success":
        states = sorted({(ti["task_id"], ti["state"]) for ti in tis})
        raise SystemExit(f"DAG run {run_id} ended {run['state']}: {states}")
    started = datetime.fromisoformat(run["start_date"]).timestamp()
    ended = datetime.fromisoformat(run["end_date"]).timestamp()
    stats = journal_stats(entries, task_id, batches)
    post_times = sorted(e["time"] for e in entries if kind_of(e, task_id) == "post")
    return {
        "task_id": task_id,
        "wall_s": round(ended - started, 2),
        **stats,
        # The run in three parts: resolve/extract/stage/plan, posting, callbacks + report.
        "before_first_post_s": round(post_times[0] - started, 2),
        "after_last_post_s": round(ended - post_times[-1], 2),
        "post_batch": ti_timing(tis, "post_batch"),
        "wait_for_callbacks": ti_timing(tis, "wait_for_callbacks"),
    }


def run_plain(stack: AirflowStack, sim: SimulatorProcess, rows: list, rps: float) -> dict:
    task_id = sim.create_task(stack.user_id)
    since = last_seq(sim)
    result = plain_asyncio_loader.run(sim.base_url, sim.token, stack.user_id, task_id, rows, rps)
    stats = journal_stats(sim.journal(since), task_id, len(rows))
    return {
        "task_id": task_id,
        "wall_s": round(result.wall_s, 2),
        **stats,
        "client_counted_429": result.rate_limited,
    }


def imported_once(sim: SimulatorProcess, user_id: str, task_id: str, expected: set[str]) -> dict:
    phones = [n["phone"] for n in sim.task_numbers(user_id, task_id)]
    return {
        "imported": len(phones),
        "exactly_once": len(phones) == len(set(phones)) and set(phones) == expected,
    }


# --- report ----------------------------------------------------------------------------------


def print_table(results: dict, leads: int, batches: int, rps: float) -> None:
    dag, plain = results["dag"], results["plain"]

    def kinds(side: dict) -> str:
        k = side["requests_by_kind"]
        return f"{k['post']}/{k['poll']}/{k['download']}/{k['other']}"

    rows = [
        ("wall time s", dag["wall_s"], plain["wall_s"]),
        ("posting phase s", dag["posting_s"], plain["posting_s"]),
        ("post rate req/s", dag["post_rate_rps"], plain["post_rate_rps"]),
        ("busiest second, requests", dag["busiest_second"], plain["busiest_second"]),
        ("HTTP requests / batch", dag["requests_per_batch"], plain["requests_per_batch"]),
        ("  posts/polls/downloads/other", kinds(dag), kinds(plain)),
        ("429s received", dag["http_429"], plain["http_429"]),
        ("phones imported", f"{dag['imported']:,}", f"{plain['imported']:,}"),
    ]
    print(
        f"{leads:,} leads in {batches} batches of {BATCH_SIZE}; simulator limit {rps:g} req/s; "
        f"DAG paced at {rps:g} req/s (max_requests_per_second); 4 Celery slots"
    )
    print(f"{'':<30} {'DAG':>14} {'plain asyncio':>14}")
    for label, left, right in rows:
        print(f"{label:<30} {left!s:>14} {right!s:>14}")
    print(
        f"ratio DAG / plain: wall {results['ratio_wall']:.2f}, posting phase "
        f"{results['ratio_posting']:.2f} (goals: wall <= {GOAL_WALL_RATIO}, posting <= "
        f"{GOAL_POSTING_RATIO}, no 429)"
    )
    peaks = ", ".join(f"{name} {mib:,} MiB" for name, mib in dag["peak_rss_mib"].items())
    print(f"peak RSS during the DAG run (each component with its child processes): {peaks}")
    print(f"Airflow overhead per batch: {results['airflow_overhead_per_batch_s']:.3f} s")
    print(
        f"DAG run: {dag['before_first_post_s']:.1f} s before the first post (settings, extract, "
        f"stage, plan), {dag['posting_s']:.1f} s posting, {dag['after_last_post_s']:.1f} s "
        "after the last post (callbacks, report)"
    )
    for task in ("post_batch", "wait_for_callbacks"):
        t = dag[task]
        # Task instances started in the triggerer are never queued for a worker.
        where = (
            "in the triggerer (never queued)"
            if t["queued_to_start_s"] is None
            else f"scheduled->queued {t['scheduled_to_queued_s']}, queued->start "
            f"{t['queued_to_start_s']}; pool/worker slot held {t['queued_to_end_s']}"
        )
        print(f"{task} ({t['instances']} instances), median s: start->end {t['run_s']}, {where}")


def versions() -> dict:
    from importlib.metadata import version

    return {
        "python_version": platform.python_version(),
        "airflow_version": version("apache-airflow"),
        "nproc": os.cpu_count(),
    }


def add_settings_option(parser: argparse.ArgumentParser) -> None:
    """``--set KEY=VALUE`` (repeatable): an Airflow setting for every process of the stack."""
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="an Airflow setting of the stack for this run, as an environment variable",
    )


def stack_settings(args: argparse.Namespace) -> dict[str, str]:
    """The ``--set`` settings as the stack's extra environment."""
    return dict(item.split("=", 1) for item in args.set)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--leads", type=int, default=40_000)
    parser.add_argument("--rps", type=float, default=20.0)
    add_settings_option(parser)
    args = parser.parse_args()
    settings = stack_settings(args)
    # A SIGTERM (a CI timeout, say) must still stop every process the stack started.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    leads = generate(
        args.leads,
        seed=SEED,
        start=WINDOW[0],
        end=WINDOW[1],
        invalid_share=0,
        duplicate_share=0,
        id_prefix="E",
    )
    expected = set(leads.valid_phones)
    rows = plain_asyncio_loader.payload_batches(leads.frame, BATCH_SIZE)
    batches = len(rows)
    shutil.rmtree(WORKDIR, ignore_errors=True)
    started = time.perf_counter()
    with SimulatorProcess() as sim:
        # The DAG paces itself at the platform's limit, as a deployment would configure it.
        pacing = {"max_requests_per_second": args.rps}
        with AirflowStack(WORKDIR, sim, agent_api_extra=pacing, extra_env=settings) as stack:
            stack_up_s = time.perf_counter() - started
            engine = create_engine(stack.warehouse_url)
            write_leads(engine, leads.frame)
            engine.dispose()
            stack.wait_for_dag()
            wait_for_scheduled_run(stack)

            sim.set_faults(rate_limit_rps=args.rps)
            components = {name: p.pid for name, p in stack.processes.items()}
            with TreePeaks(components) as peaks:
                dag = run_dag(stack, sim, batches)
            dag["peak_rss_mib"] = {name: round(mib) for name, mib in peaks.mib.items()}
            plain = run_plain(stack, sim, rows, args.rps)
            sim.set_faults()
            for side in (dag, plain):
                side.update(imported_once(sim, stack.user_id, side["task_id"], expected))
        leftovers = stack.leftover_processes()
        if leftovers:
            print(f"warning: processes of the stack outlived it: {leftovers}")

    results = {
        "dag": dag,
        "plain": plain,
        "ratio_wall": round(dag["wall_s"] / plain["wall_s"], 2),
        "ratio_posting": round(dag["posting_s"] / plain["posting_s"], 2),
        "airflow_overhead_per_batch_s": round((dag["wall_s"] - plain["wall_s"]) / batches, 3),
    }
    print_table(results, args.leads, batches, args.rps)
    summary = {
        "benchmark": "end_to_end",
        "leads": args.leads,
        "batches": batches,
        "batch_size": BATCH_SIZE,
        "rate_limit_rps": args.rps,
        "settings": settings,
        **results,
        "goal_posting_ratio": GOAL_POSTING_RATIO,
        "goal_wall_ratio": GOAL_WALL_RATIO,
        "goal_met": results["ratio_posting"] <= GOAL_POSTING_RATIO
        and results["ratio_wall"] <= GOAL_WALL_RATIO
        and dag["http_429"] == 0,
        "stack_start_s": round(stack_up_s, 1),
        **versions(),
    }
    print("BENCH_JSON " + json.dumps(summary))
    broken = [side for side in SIDES if not results[side]["exactly_once"]]
    if broken:
        raise SystemExit(f"not every phone imported exactly once by: {broken}")


if __name__ == "__main__":
    try:
        main()
    except StackError as error:
        raise SystemExit(f"the Airflow stack failed: {error}") from None
