"""Client-side pacing: at most N requests per second to the platform from this process.

Every hook of a process that talks to the same base URL with the same limit shares one
:class:`RequestPacer` (see :func:`shared_pacer`), whether it runs in a task, in a triggerer
worker thread (sync hooks via ``asyncio.to_thread``) or in the triggerer's event loop
(async hooks). Requests start at least ``1 / N`` seconds apart, with no burst.

A caller reserves a slot and then sleeps by itself, ``time.sleep`` or ``asyncio.sleep``:
the lock is held only for the arithmetic, never while waiting, so it cannot block an
event loop.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class PacerBusy(Exception):
    """A request that yields to others found other requests queued: it was not sent."""


class RequestPacer:
    """Hands out request start times spaced ``1 / max_per_second`` seconds apart.

    :param clock: seconds on a monotonic scale; injectable for tests.
    """

    def __init__(self, max_per_second: float, clock: Callable[[], float] = time.monotonic) -> None:
        if max_per_second <= 0:
            raise ValueError(f"max_per_second must be > 0, got {max_per_second!r}")
        self.max_per_second = float(max_per_second)
        self.interval = 1.0 / self.max_per_second
        self._clock = clock
        self._lock = threading.Lock()
        self._next_slot: float | None = None  # earliest start of the next request
        self._first_come_until: float | None = None  # start of the latest post's slot

    def reserve(self, *, first_come: bool = False) -> float:
        """Claim the next free slot; return the seconds to wait before sending (>= 0).

        ``first_come``: a request that others yield to (a post): while one holds a slot
        ahead, ``reserve_unless_first_come_queued`` refuses.
        """
        with self._lock:
            return self._reserve(self._clock(), first_come)

    def reserve_unless_first_come_queued(self) -> float | None:
        """Claim the next free slot unless a first-come request (a post) holds one ahead;
        None: busy, nothing was reserved.

        For requests that can come later at no cost, such as a callback poll: with a rate
        limit, a poll sent while posts queue delays every one of them by a slot, so polls take
        only the rate the posts leave free. Other requests (downloads, other polls) do not
        hold a poll back: once posting is over, polls queue with them like any request.
        """
        with self._lock:
            now = self._clock()
            if self._first_come_until is not None and self._first_come_until > now:
                return None
            return self._reserve(now, first_come=False)

    def _reserve(self, now: float, first_come: bool) -> float:
        # An idle pacer does not save up slots: after a pause, the next request goes at once
        # and the one after it waits a full interval.
        slot = now if self._next_slot is None else max(now, self._next_slot)
        self._next_slot = slot + self.interval
        if first_come:
            self._first_come_until = slot
        return slot - now


_pacers: dict[tuple[str, float], RequestPacer] = {}
_pacers_lock = threading.Lock()


def shared_pacer(base_url: str, max_per_second: float) -> RequestPacer | None:
    """The process-wide pacer for this base URL and limit; None when the limit is 0 (off)."""
    if max_per_second <= 0:
        return None
    key = (base_url.rstrip("/"), float(max_per_second))
    with _pacers_lock:
        pacer = _pacers.get(key)
        if pacer is None:
            pacer = _pacers[key] = RequestPacer(max_per_second)
        return pacer
