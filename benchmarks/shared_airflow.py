"""Shared Airflow: does a big lead load leave the scheduler free for everybody else's DAGs?

What is measured: the ``canary`` DAG (tests/distributed/canary_dags/canary_dag.py, one task
that does nothing) triggered through the REST API every ``--every`` seconds (default 10) on
the distributed stack of ``end_to_end.py`` (tests/distributed/stack.py: api-server, scheduler,
dag-processor, triggerer, a Celery worker with 4 slots), first on the idle stack
(``--idle-canaries``, default 6, after one warm-up canary that is not counted: the worker's
first task pays for loading the DAG), then throughout one ``lead_load`` run of ``--leads``
synthetic leads (default 40,000) into the simulator, paced at and limited to ``--rps``
(default 20), as ``end_to_end.py`` runs it.

For each canary: its run's creation (``queued_at``) -> its task's start, and -> its task's
end; "during the load" are the canaries created between the trigger of the ``lead_load`` run
and the moment its end was seen (the REST API is polled every 3 s). Beside them, the
scheduler's loop durations over the same two periods, from its own per-loop timer
(tests/distributed/canary.py says why that one). The table gives p50 / p95 / max of each,
idle and during the load.

    .venv/bin/python benchmarks/shared_airflow.py [--leads 40000] [--rps 20] [--every 10]
        [--plain] [--set AIRFLOW__SECTION__KEY=VALUE ...]

``--plain`` then runs ``plain_asyncio_loader.py`` on the same rows at the same rate into
another calling task of the same simulator, as ``end_to_end.py`` does, so that one run (a
million leads take about half an hour) gives the wall ratio DAG / plain beside the canaries.
``--set`` passes an Airflow setting to every process of the stack, as in ``end_to_end.py``.

Needs PostgreSQL (user postgres) and Redis on 127.0.0.1, like the distributed tests; the
stack lives in test-output/bench-shared-airflow and is stopped (databases dropped) at the end.

The goals: canary start delay p95 during the load <= 15 s and within 2x of the idle stack's;
scheduler loop p95 during the load <= 5 s.
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import signal
import sys
import time
from pathlib import Path

import plain_asyncio_loader
from end_to_end import (
    BATCH_SIZE,
    SEED,
    WINDOW,
    add_settings_option,
    imported_once,
    run_dag,
    run_plain,
    stack_settings,
    versions,
    wait_for_scheduled_run,
)
from sqlalchemy import create_engine

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))  # the stack lives in tests/, which is not installed

from agent_api_simulator.testing import SimulatorProcess  # noqa: E402
from lead_load_devtools.synthetic import generate, write_leads  # noqa: E402
from tests.distributed.canary import (  # noqa: E402
    DAG_ID,
    SCHEDULER_LOOP_LOG,
    Canaries,
    Canary,
    percentile,
    scheduler_loops,
)
from tests.distributed.stack import AirflowStack, StackError  # noqa: E402

WORKDIR = REPO / "test-output" / "bench-shared-airflow"
GOAL_START_DELAY_P95_S = 15.0
GOAL_START_DELAY_RATIO = 2.0
GOAL_LOOP_P95_S = 5.0
QUANTILES = ("p50", "p95", "max")


def spread(values: list[float]) -> dict:
    """p50 / p95 / max of ``values``, rounded; None where nothing was measured."""
    figures = {"p50": percentile(values, 0.5), "p95": percentile(values, 0.95)}
    figures["max"] = max(values, default=None)
    return {name: None if v is None else round(v, 2) for name, v in figures.items()}


def canary_figures(canaries: list[Canary]) -> dict:
    return {
        "canaries": len(canaries),
        "not_succeeded": sum(1 for c in canaries if c.state != "success"),
        "start_delay_s": spread([c.start_delay_s for c in canaries if c.start_delay_s is not None]),
        "end_delay_s": spread([c.end_delay_s for c in canaries if c.end_delay_s is not None]),
        "trigger_api_s": spread([c.api_s for c in canaries]),
    }


def loop_figures(loops: list[tuple[float, float]], first: float, last: float) -> dict:
    durations = [took for when, took in loops if first <= when <= last]
    return {"loops": len(durations), "loop_s": spread(durations)}


def measure_idle(stack: AirflowStack, count: int, every: float) -> tuple[list[Canary], float]:
    """``count`` canaries on the idle stack, after a warm-up one; returns them and when the
    first of them was triggered."""
    warm_up = stack.trigger({}, dag_id=DAG_ID)
    stack.wait_for_runs([warm_up], dag_id=DAG_ID, timeout=300)
    first = time.time()
    with Canaries(stack, every) as canaries:
        time.sleep(every * (count - 1) + 1)  # the first fires at once
    return canaries.results(), first


def measure_load(stack: AirflowStack, sim: SimulatorProcess, batches: int, every: float):
    """One lead_load run with a canary every ``every`` s; returns the run's figures (as
    end_to_end.py's), the canaries and the period they cover."""
    first = time.time()
    with Canaries(stack, every) as canaries:
        dag = run_dag(stack, sim, batches)
    last = time.time()
    return dag, canaries, first, last


def ratio(load: float | None, idle: float | None) -> float | None:
    return round(load / idle, 2) if load is not None and idle else None


def print_table(results: dict, args: argparse.Namespace, batches: int) -> None:
    idle, load, dag = results["idle"], results["load"], results["dag"]
    print(
        f"{args.leads:,} leads in {batches} batches of {BATCH_SIZE} at {args.rps:g} req/s "
        f"(DAG wall {dag['wall_s']} s, posting {dag['posting_s']} s, {dag['http_429']} 429s); "
        f"a canary every {args.every:g} s"
    )
    print(f"{'':<34} {'idle':>10} {'load':>10} {'load/idle':>10}")
    counts = [f"{p['canaries']} ({p['not_succeeded']})" for p in (idle, load)]
    print(f"{'canaries (not succeeded)':<34} {counts[0]:>10} {counts[1]:>10}")
    rows = [(f"canary created->start {q} s", "start_delay_s", q) for q in QUANTILES]
    rows += [(f"canary created->end {q} s", "end_delay_s", q) for q in QUANTILES]
    rows += [("trigger API answer max s", "trigger_api_s", "max")]
    rows += [(f"scheduler loop {q} s", "loop_s", q) for q in QUANTILES]
    for label, key, q in rows:
        left, right = idle[key][q], load[key][q]
        print(f"{label:<34} {left!s:>10} {right!s:>10} {ratio(right, left)!s:>10}")
    print(f"{'scheduler loops':<34} {idle['loops']:>10} {load['loops']:>10}")
    print(
        f"goals: canary start p95 during the load <= {GOAL_START_DELAY_P95_S:g} s and <= "
        f"{GOAL_START_DELAY_RATIO:g}x idle; scheduler loop p95 <= {GOAL_LOOP_P95_S:g} s: "
        f"{'met' if results['goal_met'] else 'missed'}"
    )
    if results["failed_triggers"]:
        print(f"triggers refused or timed out: {results['failed_triggers']}")
    if "plain" in results:
        plain = results["plain"]
        print(
            f"plain asyncio loader: wall {plain['wall_s']} s, posting {plain['posting_s']} s, "
            f"{plain['http_429']} 429s; ratio DAG / plain: wall {results['ratio_wall']:.2f}, "
            f"posting {results['ratio_posting']:.2f}"
        )


def goal_met(idle: dict, load: dict) -> bool:
    start_p95, idle_p95 = load["start_delay_s"]["p95"], idle["start_delay_s"]["p95"]
    loop_p95 = load["loop_s"]["p95"]
    return (
        start_p95 is not None
        and start_p95 <= GOAL_START_DELAY_P95_S
        and start_p95 <= GOAL_START_DELAY_RATIO * idle_p95
        and loop_p95 is not None
        and loop_p95 <= GOAL_LOOP_P95_S
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--leads", type=int, default=40_000)
    parser.add_argument("--rps", type=float, default=20.0)
    parser.add_argument("--every", type=float, default=10.0)
    parser.add_argument("--idle-canaries", type=int, default=6)
    parser.add_argument(
        "--plain", action="store_true", help="also run the plain asyncio loader afterwards"
    )
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
        id_prefix="S",
    )
    batches = math.ceil(args.leads / BATCH_SIZE)
    shutil.rmtree(WORKDIR, ignore_errors=True)
    with SimulatorProcess() as sim:
        pacing = {"max_requests_per_second": args.rps}
        extra_env = {**SCHEDULER_LOOP_LOG, **settings}
        stack = AirflowStack(WORKDIR, sim, agent_api_extra=pacing, extra_env=extra_env)
        with stack:
            engine = create_engine(stack.warehouse_url)
            write_leads(engine, leads.frame)
            engine.dispose()
            stack.wait_for_dag()
            stack.wait_for_dag(DAG_ID)
            wait_for_scheduled_run(stack)

            idle_canaries, idle_first = measure_idle(stack, args.idle_canaries, args.every)
            idle_last = time.time()
            sim.set_faults(rate_limit_rps=args.rps)
            dag, canaries, load_first, load_last = measure_load(stack, sim, batches, args.every)
            load_canaries = canaries.results()
            plain = None
            if args.plain:
                rows = plain_asyncio_loader.payload_batches(leads.frame, BATCH_SIZE)
                plain = run_plain(stack, sim, rows, args.rps)
            sim.set_faults()
            expected = set(leads.valid_phones)
            for side in (dag, plain) if plain else (dag,):
                side.update(imported_once(sim, stack.user_id, side["task_id"], expected))
            loops = scheduler_loops(stack)
        leftovers = stack.leftover_processes()
        if leftovers:
            print(f"warning: processes of the stack outlived it: {leftovers}")

    idle = {**canary_figures(idle_canaries), **loop_figures(loops, idle_first, idle_last)}
    load = {**canary_figures(load_canaries), **loop_figures(loops, load_first, load_last)}
    dag_keys = (
        "wall_s",
        "posting_s",
        "post_rate_rps",
        "before_first_post_s",
        "after_last_post_s",
        "http_429",
        "imported",
        "exactly_once",
    )
    results = {
        "idle": idle,
        "load": load,
        "dag": {key: dag[key] for key in dag_keys},
        "failed_triggers": canaries.failed_triggers,
        "goal_met": goal_met(idle, load),
    }
    if plain:
        results["plain"] = {key: plain[key] for key in dag_keys if key in plain}
        results["ratio_wall"] = round(dag["wall_s"] / plain["wall_s"], 2)
        results["ratio_posting"] = round(dag["posting_s"] / plain["posting_s"], 2)
    print_table(results, args, batches)
    summary = {
        "benchmark": "shared_airflow",
        "leads": args.leads,
        "batches": batches,
        "rate_limit_rps": args.rps,
        "canary_every_s": args.every,
        "settings": settings,
        **results,
        "ratio_start_delay_p95": ratio(load["start_delay_s"]["p95"], idle["start_delay_s"]["p95"]),
        "goal_start_delay_p95_s": GOAL_START_DELAY_P95_S,
        "goal_start_delay_ratio": GOAL_START_DELAY_RATIO,
        "goal_loop_p95_s": GOAL_LOOP_P95_S,
        **versions(),
    }
    print("BENCH_JSON " + json.dumps(summary))
    if plain and not plain["exactly_once"]:
        raise SystemExit("the plain loader did not import every phone exactly once")
    if not dag["exactly_once"]:
        raise SystemExit("not every phone imported exactly once")
    if not loops:
        raise SystemExit("no scheduling loop timings in the scheduler's log")


if __name__ == "__main__":
    try:
        main()
    except StackError as error:
        raise SystemExit(f"the Airflow stack failed: {error}") from None
