"""The per-process memory of connection and Variable look-ups (a clock of the test's own)."""

from __future__ import annotations

import json

from agent_api import lookup_cache
from agent_api.lookup_cache import ParsedExtraConnection, TtlCache


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_value_is_looked_up_once_while_fresh_then_again():
    clock = Clock()
    cache = TtlCache(ttl=60, clock=clock)
    loads = []

    def load():
        loads.append(clock.now)
        return f"value@{clock.now}"

    assert cache.get("conn", load) == "value@100.0"
    clock.now += 59
    assert cache.get("conn", load) == "value@100.0"
    assert loads == [100.0]
    clock.now += 2  # 61 s after the look-up: stale
    assert cache.get("conn", load) == "value@161.0"
    assert loads == [100.0, 161.0]


def test_keys_are_separate_and_clear_forgets_everything():
    cache = TtlCache(ttl=60, clock=Clock())
    assert cache.get("a", lambda: 1) == 1
    assert cache.get("b", lambda: 2) == 2
    assert cache.get("a", lambda: 3) == 1
    cache.clear()
    assert cache.get("a", lambda: 4) == 4


def test_a_failed_look_up_is_not_remembered():
    cache = TtlCache(ttl=60, clock=Clock())

    def fail():
        raise LookupError("not defined")

    for _ in range(2):
        try:
            cache.get("missing", fail)
        except LookupError:
            pass
        else:
            raise AssertionError("the failure was remembered")
    assert cache.get("missing", lambda: "defined now") == "defined now"


async def test_an_async_look_up_is_awaited_once_while_fresh():
    clock = Clock()
    cache = TtlCache(ttl=60, clock=clock)
    loads = []

    async def load():
        loads.append(clock.now)
        return f"value@{clock.now}"

    assert await cache.aget("conn", load) == "value@100.0"
    assert await cache.aget("conn", load) == "value@100.0"
    assert cache.get("conn", lambda: "not used") == "value@100.0"  # one memory for both
    clock.now += 61
    assert await cache.aget("conn", load) == "value@161.0"
    assert loads == [100.0, 161.0]


class CountedParses:
    """Counts Airflow's secret registrations: one per parse of a connection's extra."""

    def __init__(self, monkeypatch) -> None:
        import airflow.sdk.log

        self.calls = 0
        real = airflow.sdk.log.mask_secret

        def counted(secret, name=None):
            self.calls += 1
            real(secret, name)

        monkeypatch.setattr(airflow.sdk.log, "mask_secret", counted)


def a_connection():
    from airflow.sdk import Connection

    return Connection(
        conn_id="warehouse",
        conn_type="postgres",
        host="db.example",
        login="loader",
        password="s3cret-pw",
        schema="leads",
        extra=json.dumps({"sslmode": "require", "api_key": "k-123"}),
    )


def test_a_parsed_connection_parses_its_extra_once_and_hands_out_copies(monkeypatch):
    parses = CountedParses(monkeypatch)
    conn = ParsedExtraConnection(a_connection())
    assert parses.calls == 1
    first = conn.extra_dejson
    first["sslmode"] = "changed by a caller"
    assert conn.extra_dejson == {"sslmode": "require", "api_key": "k-123"}
    assert conn.get_uri() == a_connection().get_uri()
    calls_after_uri = parses.calls
    assert conn.get_uri() == conn.get_uri()
    assert parses.calls == calls_after_uri  # the URI is built once too
    assert (conn.host, conn.login, conn.password, conn.schema) == (
        "db.example",
        "loader",
        "s3cret-pw",
        "leads",
    )


def test_connection_looks_up_and_parses_once_per_ttl(monkeypatch):
    parses = CountedParses(monkeypatch)
    lookups = []

    def look_up(conn_id):
        lookups.append(conn_id)
        return a_connection()

    lookup_cache.connections.clear()
    try:
        for _ in range(5):
            conn = lookup_cache.connection("warehouse", look_up)
            assert conn.extra_dejson["sslmode"] == "require"
        assert lookups == ["warehouse"]
        assert parses.calls == 1
    finally:
        lookup_cache.connections.clear()


async def test_aconnection_parses_with_the_async_masking(monkeypatch):
    import airflow.sdk.log

    registered = []

    async def amask(secret, name=None):
        registered.append(secret)

    monkeypatch.setattr(airflow.sdk.log, "amask_secret", amask)
    parses = CountedParses(monkeypatch)
    lookups = []

    async def look_up(conn_id):
        lookups.append(conn_id)
        return a_connection()

    lookup_cache.connections.clear()
    try:
        for _ in range(3):
            conn = await lookup_cache.aconnection("warehouse", look_up)
            assert conn.extra_dejson["api_key"] == "k-123"
        assert lookups == ["warehouse"]
        assert registered == [{"sslmode": "require", "api_key": "k-123"}]
        assert parses.calls == 0  # the sync registration would block the event loop
    finally:
        lookup_cache.connections.clear()


def test_threads_that_want_a_key_being_loaded_wait_for_that_one_load():
    import threading
    import time

    cache = TtlCache(ttl=60)
    loads = []

    def slow_load():
        loads.append(threading.get_ident())
        time.sleep(0.2)  # a round trip through a busy supervisor
        return "conn"

    results = []
    threads = [
        threading.Thread(target=lambda: results.append(cache.get("c", slow_load))) for _ in range(8)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == ["conn"] * 8
    assert len(loads) == 1


def test_a_parsed_connection_survives_copies():
    import copy

    conn = ParsedExtraConnection(a_connection())
    for copied in (copy.copy(conn), copy.deepcopy(conn)):
        assert copied.host == "db.example"
        assert copied.extra_dejson == conn.extra_dejson
