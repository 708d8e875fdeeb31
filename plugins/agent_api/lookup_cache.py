"""A short-lived, process-wide memory of Airflow connection and Variable look-ups.

In a task process a look-up costs little and happens a few times. In the triggerer, hundreds
of posts and callback waits run in one process, and each look-up of a connection or
Variable not defined in the environment is a round trip through the triggerer's supervisor
(which is also busy assigning and cleaning triggers): those round trips, not the posts,
set the pace. Remembering an answer for ``ttl`` seconds removes them; an edited connection
or Variable takes effect within that time.
"""

from __future__ import annotations

import copy
import threading
import time
from collections.abc import Awaitable, Callable, Hashable
from typing import Any, TypeVar

T = TypeVar("T")

DEFAULT_TTL_SECONDS = 60.0


class TtlCache:
    """``get(key, load)``: the remembered value while it is fresh, else ``load()``'s.

    Thread-safe, one load per key at a time: threads that want a key being loaded wait for
    that load and take its answer (16 posting threads starting together in the triggerer
    used to make every look-up 16 times, each a round trip through its busy supervisor).
    A failed load is not remembered; the next thread in line loads again.
    """

    def __init__(
        self, ttl: float = DEFAULT_TTL_SECONDS, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.ttl = float(ttl)
        self._clock = clock
        self._lock = threading.Lock()
        self._values: dict[Hashable, tuple[float, Any]] = {}
        self._loading: dict[Hashable, threading.Lock] = {}

    def get(self, key: Hashable, load: Callable[[], T]) -> T:
        hit = self._fresh(key)
        if hit is not None:
            return hit[0]
        with self._lock:
            loading = self._loading.setdefault(key, threading.Lock())
        with loading:
            hit = self._fresh(key)  # loaded by the thread this one waited for
            if hit is not None:
                return hit[0]
            return self._keep(key, load())

    async def aget(self, key: Hashable, load: Callable[[], Awaitable[T]]) -> T:
        """``get`` for an event loop: ``load`` is awaited (nothing blocks the loop, so two
        coroutines may both load a key)."""
        hit = self._fresh(key)
        if hit is not None:
            return hit[0]
        return self._keep(key, await load())

    def _fresh(self, key: Hashable) -> tuple[Any] | None:
        now = self._clock()
        with self._lock:
            hit = self._values.get(key)
        if hit is not None and now - hit[0] < self.ttl:
            return (hit[1],)
        return None

    def _keep(self, key: Hashable, value: T) -> T:
        with self._lock:
            self._values[key] = (self._clock(), value)
        return value

    def clear(self) -> None:
        with self._lock:
            self._values.clear()


class ParsedExtraConnection:
    """A looked-up connection whose extra was parsed, and its secrets registered for masking,
    once: when it was looked up.

    Airflow's ``Connection.extra_dejson`` parses the JSON and registers its secrets on every
    access; in the triggerer each registration is a round trip through the supervisor, which
    answers between loops of its own. ``HttpHook.get_conn`` reads it twice per session, the
    hook's settings once more and ``get_uri()`` once: a profile of the triggerer showed the
    posting threads queued behind those round trips. Everything else is the connection's own.
    """

    def __init__(self, connection: Any, extra: dict | None = None) -> None:
        self._connection = connection
        self._extra = connection.extra_dejson if extra is None else extra
        self._uri: str | None = None

    @property
    def extra_dejson(self) -> dict:
        return copy.deepcopy(self._extra)  # callers may change what they get

    def get_uri(self) -> str:
        if self._uri is None:  # two threads may both build it: the same string
            self._uri = self._connection.get_uri()
        return self._uri

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") or name in ("_connection", "_extra", "_uri"):
            # Not the connection's: copy and pickle probe a bare instance for these.
            raise AttributeError(name)
        return getattr(self._connection, name)


# One of each per process: connections by id (every hook of this package uses it) and
# Variables by key.
connections = TtlCache()
variables = TtlCache()


def connection(conn_id: str, look_up: Callable[[str], Any]) -> ParsedExtraConnection:
    """Connection ``conn_id``, remembered with its extra parsed (``look_up(conn_id)`` when
    it is not fresh); how every hook and engine of this project reads a connection."""
    return connections.get(conn_id, lambda: ParsedExtraConnection(look_up(conn_id)))


async def aconnection(
    conn_id: str, look_up: Callable[[str], Awaitable[Any]]
) -> ParsedExtraConnection:
    """``connection`` for an event loop: the look-up and the parse are awaited."""

    async def load() -> ParsedExtraConnection:
        conn = await look_up(conn_id)
        return ParsedExtraConnection(conn, await conn.aextra_dejson())

    return await connections.aget(conn_id, load)
