"""A short-lived, process-wide memory of Airflow connection and Variable look-ups.

In a task process a look-up costs little and happens a few times. In the triggerer, hundreds
of posts and callback waits run in one process, and each look-up of a connection or
Variable not defined in the environment is a round trip through the triggerer's supervisor
(which is also busy assigning and cleaning triggers): those round trips, not the posts,
set the pace. Remembering an answer for ``ttl`` seconds removes them; an edited connection
or Variable takes effect within that time.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable
from typing import Any, TypeVar

T = TypeVar("T")

DEFAULT_TTL_SECONDS = 60.0


class TtlCache:
    """``get(key, load)``: the remembered value while it is fresh, else ``load()``'s.

    Thread-safe; ``load`` runs outside the lock, so a slow look-up blocks nobody else (two
    threads may then both load the same key, which is harmless here).
    """

    def __init__(
        self, ttl: float = DEFAULT_TTL_SECONDS, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.ttl = float(ttl)
        self._clock = clock
        self._lock = threading.Lock()
        self._values: dict[Hashable, tuple[float, Any]] = {}

    def get(self, key: Hashable, load: Callable[[], T]) -> T:
        now = self._clock()
        with self._lock:
            hit = self._values.get(key)
        if hit is not None and now - hit[0] < self.ttl:
            return hit[1]
        value = load()
        with self._lock:
            self._values[key] = (self._clock(), value)
        return value

    def clear(self) -> None:
        with self._lock:
            self._values.clear()


# One of each per process: connections by id (every hook of this package uses it) and
# Variables by key.
connections = TtlCache()
variables = TtlCache()
