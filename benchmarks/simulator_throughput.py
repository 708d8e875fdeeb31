"""Throughput of the agent-api simulator's import path.

Starts the simulator as a subprocess, fires N async_number posts of R rows each from an
aiohttp client at a fixed concurrency, waits until every batch is imported, and prints a
small table plus one JSON line:

    .venv/bin/python benchmarks/simulator_throughput.py [--requests 2000] [--concurrency 16]

The project needs 200 imports/s of 200-row batches; the simulator must not be the bottleneck.
"""

import argparse
import asyncio
import json
import statistics
import time

import aiohttp

from agent_api_simulator.testing import SimulatorProcess


def build_bodies(count: int, rows: int) -> list[bytes]:
    # Distinct valid phones everywhere, so every row is really imported (worst case for the
    # duplicate index). Serialised up front to keep the client's CPU use out of the timing.
    bodies = []
    for batch in range(count):
        data = [
            {"phone": f"13{batch * rows + i:09d}", "sort": 0, "extra": f"lead-{batch}-{i}"}
            for i in range(rows)
        ]
        bodies.append(json.dumps({"ignore_crm": True, "data": data}).encode())
    return bodies


async def fire(url: str, headers: dict, bodies: list[bytes], concurrency: int):
    latencies_ms: list[float] = []
    failures: list[str] = []
    next_index = 0

    async def worker(session: aiohttp.ClientSession) -> None:
        nonlocal next_index
        while next_index < len(bodies):
            body = bodies[next_index]
            next_index += 1
            started = time.perf_counter()
            async with session.post(url, data=body, headers=headers) as response:
                payload = await response.json()
            latencies_ms.append((time.perf_counter() - started) * 1000)
            if payload.get("code") != 200:
                failures.append(f"{response.status} {payload}")

    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        started = time.perf_counter()
        await asyncio.gather(*(worker(session) for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    return elapsed, latencies_ms, failures


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--rows", type=int, default=200)
    args = parser.parse_args()

    bodies = build_bodies(args.requests, args.rows)
    with SimulatorProcess() as sim:
        user_id = sim.create_user()
        task_id = sim.create_task(user_id)
        url = f"{sim.base_url}/agent-api/user/{user_id}/task/{task_id}/async_number"
        headers = {**sim.auth_headers, "Content-Type": "application/json"}
        elapsed, latencies, failures = asyncio.run(fire(url, headers, bodies, args.concurrency))
        drained_at = time.perf_counter()
        batches = sim.wait_until_processed(timeout=120)
        drain_s = time.perf_counter() - drained_at
        imported = sum(b["imported"] for b in batches)

    imports_per_s = args.requests / elapsed
    result = {
        "benchmark": "simulator_throughput",
        "requests": args.requests,
        "rows_per_request": args.rows,
        "concurrency": args.concurrency,
        "imports_per_s": round(imports_per_s, 1),
        "rows_per_s": round(imports_per_s * args.rows),
        "p50_ms": round(statistics.median(latencies), 2),
        "p99_ms": round(percentile(latencies, 0.99), 2),
        "failures": len(failures),
        "rows_imported": imported,
        "drain_after_last_answer_s": round(drain_s, 2),
    }
    width = max(len(key) for key in result)
    for key, value in result.items():
        print(f"{key:<{width}}  {value}")
    print(json.dumps(result))
    if failures or imported != args.requests * args.rows:
        raise SystemExit(f"benchmark saw failures: {failures[:3]} imported={imported}")


if __name__ == "__main__":
    main()
