"""The baseline of ``end_to_end.py``: the same batches, loaded by a plain asyncio script.

No Airflow, no ledger, no database. One ``TokenBucket`` paces every request the script sends
(posts, callback polls, downloads) at ``rps``. The script posts every batch, then polls each
batch's callback until the platform has processed it and downloads the numbers it imported:
the platform-side work of the DAG's ``post_batch`` and ``wait_for_callbacks`` tasks. Polls
start after the last post, so the posting phase holds posts only: the fastest a load can
post at ``rps``. (The DAG's sensors start as soon as their own batch is accepted, so their
polls overlap the remaining posts.)

A 429 is counted and the request is sent again after its ``Retry-After``; with the bucket at
or below the platform's limit there should be none.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from dataclasses import dataclass, field

import aiohttp
import pandas as pd

from lead_load.core.mapping import FieldMapping
from lead_load.core.transform import transform_leads

BATCH_SIZE = 200
POLL_INTERVAL_S = 0.5
CONCURRENCY = 8


class PlainLoadError(RuntimeError):
    """The platform refused a request (other than with 429)."""


class TokenBucket:
    """At most ``rate`` acquisitions per second, ``burst`` of them at once (GCRA form).

    The default burst of 1 spaces requests evenly, which keeps the platform's own bucket
    (one second's worth) nearly full: jitter between our send and its arrival cannot make a
    request exceed its limit.
    """

    def __init__(self, rate: float, burst: int = 1) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("rate must be positive and burst at least 1")
        self.interval = 1.0 / rate
        self.tolerance = (burst - 1) * self.interval
        self._theoretical_arrival = 0.0

    async def acquire(self) -> None:
        # No await between reading and moving the schedule: callers get distinct slots.
        now = asyncio.get_running_loop().time()
        arrival = max(self._theoretical_arrival, now)
        send_at = max(now, arrival - self.tolerance)
        self._theoretical_arrival = arrival + self.interval
        if send_at > now:
            await asyncio.sleep(send_at - now)


@dataclass
class PlainResult:
    wall_s: float  # first request sent -> last download answered
    posting_s: float  # first post sent -> last post answered
    requests: Counter = field(default_factory=Counter)  # post / poll / download attempts
    rate_limited: int = 0  # 429s received
    unique_ids: list[str] = field(default_factory=list)
    imported: list[str] = field(default_factory=list)  # numbers the downloads listed


def payload_batches(leads: pd.DataFrame, batch_size: int = BATCH_SIZE) -> list[list[dict]]:
    """The API rows the DAG would post for ``leads``, in batches (the project's transform)."""
    result = transform_leads(leads, FieldMapping.load())
    lead_ids = result.valid["lead_id"].tolist()
    order = sorted(range(len(lead_ids)), key=lead_ids.__getitem__)
    rows = [result.payloads[i] for i in order]
    return [rows[i : i + batch_size] for i in range(0, len(rows), batch_size)]


class _Client:
    def __init__(self, session: aiohttp.ClientSession, bucket: TokenBucket) -> None:
        self.session = session
        self.bucket = bucket
        self.requests: Counter = Counter()
        self.rate_limited = 0

    async def call(self, kind: str, method: str, url: str, *, envelope: bool = True, **kwargs):
        while True:
            await self.bucket.acquire()
            self.requests[kind] += 1
            async with self.session.request(method, url, **kwargs) as response:
                body = await response.json(content_type=None)
                if response.status == 429:
                    self.rate_limited += 1
                    await asyncio.sleep(float(response.headers.get("Retry-After", "1")))
                    continue
                ok = response.status == 200 and (not envelope or body.get("code") == 200)
                if not ok:
                    raise PlainLoadError(f"{method} {url}: HTTP {response.status} {body}")
                return body["data"] if envelope else body


async def load(
    base_url: str,
    token: str,
    user_id: str,
    task_id: str,
    batches: list[list[dict]],
    rps: float,
    *,
    poll_interval: float = POLL_INTERVAL_S,
    concurrency: int = CONCURRENCY,
) -> PlainResult:
    """Post ``batches`` into the task, then wait for and download every batch's callback."""
    api = f"{base_url}/agent-api/user/{user_id}"
    headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
    slots = asyncio.Semaphore(concurrency)
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector, headers=headers) as session:
        client = _Client(session, TokenBucket(rps))

        async def post(rows: list[dict]) -> str:
            # The body the hook sends for the DAG's default params.
            body = {"data": rows, "ignore_crm": False, "encryption": False}
            async with slots:
                data = await client.call(
                    "post", "POST", f"{api}/task/{task_id}/async_number", json=body
                )
            return str(data["unique_id"])

        async def collect(unique_id: str) -> list[str]:
            while True:
                async with slots:
                    callback = await client.call("poll", "GET", f"{api}/identification/{unique_id}")
                    if callback:
                        url = callback["data"]["url"]
                        answer = await client.call("download", "GET", url, envelope=False)
                        return [str(number) for number in answer["numbers"]]
                await asyncio.sleep(poll_interval)

        started = time.perf_counter()
        unique_ids = await asyncio.gather(*(post(rows) for rows in batches))
        posted = time.perf_counter()
        numbers = await asyncio.gather(*(collect(u) for u in unique_ids))
        finished = time.perf_counter()
    return PlainResult(
        wall_s=finished - started,
        posting_s=posted - started,
        requests=client.requests,
        rate_limited=client.rate_limited,
        unique_ids=list(unique_ids),
        imported=[n for batch in numbers for n in batch],
    )


def run(
    base_url: str,
    token: str,
    user_id: str,
    task_id: str,
    batches: list[list[dict]],
    rps: float,
    **options,
) -> PlainResult:
    """:func:`load`, from synchronous code."""
    return asyncio.run(load(base_url, token, user_id, task_id, batches, rps, **options))
