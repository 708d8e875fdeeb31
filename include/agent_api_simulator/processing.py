"""Asynchronous import of accepted batches into their tasks.

The platform answers async_number at once and imports later. A background asyncio task plays
that part: batches are imported strictly in arrival order, each no earlier than its due time,
so "first occurrence wins" for duplicates holds across batches exactly as they arrived.
"""

import asyncio
import base64
import contextlib
import secrets
import time
from collections import deque

from agent_api_simulator import assumptions as assumed
from agent_api_simulator.state import Batch, ImportedNumber, SimState


def new_download_key() -> str:
    # Opaque, base64 with "==" padding like the documented example; URL-safe alphabet so the
    # key survives a query string without escaping.
    return base64.urlsafe_b64encode(secrets.token_bytes(16)).decode("ascii")


def import_batch(state: SimState, batch: Batch) -> None:
    """Import the batch's valid, not-yet-present phones into its task (silently skip others)."""
    task = state.users[batch.user_id].tasks[batch.task_id]
    known = task.phones
    numbers = task.numbers
    # Never earlier than the last import: the number list stays in time order, which its
    # time-bounded reads rely on (Task.imported_between), whatever the host clock does.
    now = max(time.time(), numbers[-1].imported_at) if numbers else time.time()
    imported = []
    match_valid = assumed.VALID_PHONE.fullmatch
    for row in batch.rows:
        phone = row["phone"].strip()
        valid = bool(phone) if batch.encryption else match_valid(phone) is not None
        if not valid or phone in known:
            continue
        known.add(phone)
        numbers.append(ImportedNumber(phone, row, batch.unique_id, now))
        imported.append(phone)
    batch.imported_phones = imported
    batch.processed_at = now
    batch.download_key = new_download_key()
    state.downloads[batch.download_key] = batch


class BatchProcessor:
    """FIFO of batches waiting for their due time; `run` is the background worker."""

    def __init__(self, state: SimState) -> None:
        self.state = state
        self.queue: deque[Batch] = deque()
        self.wake = asyncio.Event()

    def submit(self, batch: Batch) -> None:
        if batch.due_at is None:
            return  # the "callback_never" fault: never processed, stays pending
        self.queue.append(batch)
        self.wake.set()

    def reset(self, state: SimState) -> None:
        self.state = state
        self.queue.clear()
        self.wake.set()

    def process_all_now(self) -> int:
        """Import every queued batch immediately, ignoring due times. Return how many."""
        count = 0
        while self.queue:
            import_batch(self.state, self.queue.popleft())
            count += 1
        return count

    async def run(self) -> None:
        while True:
            self.wake.clear()
            if not self.queue:
                await self.wake.wait()
                continue
            wait_s = self.queue[0].due_at - time.time()
            if wait_s > 0:
                # Woken early by a reset or /_sim/process; re-examine the queue either way.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.wake.wait(), timeout=wait_s)
                continue
            import_batch(self.state, self.queue.popleft())
            await asyncio.sleep(0)  # let request handlers in between batches of a backlog
