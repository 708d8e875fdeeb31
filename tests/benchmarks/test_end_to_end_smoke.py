"""The plain asyncio baseline of benchmarks/end_to_end.py, on a few batches.

The full benchmark starts a distributed Airflow (about 40 s before the first run); only the
baseline, which needs nothing but the simulator, runs here.
"""

from __future__ import annotations

from datetime import UTC, datetime

from agent_api_simulator.testing import SimulatorProcess
from benchmarks.plain_asyncio_loader import payload_batches, run
from lead_load_devtools.synthetic import generate

WINDOW = (datetime(2026, 10, 5, tzinfo=UTC), datetime(2026, 10, 6, tzinfo=UTC))


def _leads(count: int):
    return generate(
        count,
        seed=11,
        start=WINDOW[0],
        end=WINDOW[1],
        invalid_share=0,
        duplicate_share=0,
        id_prefix="P",
    )


def _load(sim: SimulatorProcess, batches, rps: float):
    user_id = sim.create_user()
    task_id = sim.create_task(user_id)
    result = run(sim.base_url, sim.token, user_id, task_id, batches, rps)
    phones = [n["phone"] for n in sim.task_numbers(user_id, task_id)]
    return result, phones, sim.journal()


def test_the_baseline_imports_every_phone_once_and_never_trips_the_limit_it_paces_at():
    leads = _leads(2000)
    batches = payload_batches(leads.frame)
    assert [len(b) for b in batches] == [200] * 10
    assert set(batches[0][0]) >= {"phone", "sort", "extra"}  # the API rows the DAG posts

    with SimulatorProcess(faults={"rate_limit_rps": 20}) as sim:
        result, phones, journal = _load(sim, batches, rps=20)

    assert len(phones) == len(set(phones)) == 2000
    assert set(phones) == set(leads.valid_phones)
    assert sorted(result.imported) == sorted(phones)
    assert result.rate_limited == 0
    assert [e for e in journal if e["status"] == 429] == []
    assert result.requests["post"] == 10
    assert result.requests["download"] == 10
    assert result.requests["poll"] >= 10
    assert len(journal) == sum(result.requests.values())
    # Paced, not bursted: n requests at 20/s span at least (n - 1) / 20 s.
    times = sorted(e["time"] for e in journal)
    assert times[-1] - times[0] >= 0.95 * (len(times) - 1) / 20
    assert result.posting_s <= result.wall_s


def test_the_baseline_counts_429s_and_still_loads_everything_when_it_outpaces_the_platform():
    leads = _leads(1000)
    batches = payload_batches(leads.frame)

    with SimulatorProcess(faults={"rate_limit_rps": 5}) as sim:
        result, phones, journal = _load(sim, batches, rps=40)

    assert sorted(phones) == sorted(leads.valid_phones)
    assert result.rate_limited == len([e for e in journal if e["status"] == 429]) > 0
    assert len(journal) == sum(result.requests.values())
