"""The per-process memory of connection and Variable look-ups (a clock of the test's own)."""

from __future__ import annotations

import json

from agent_api.lookup_cache import ParsedExtraConnection, TtlCache
from tests.plugins.agent_api.conftest import account  # noqa: F401 (a fixture)


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


class CountingConnection:
    """Stands in for Airflow's Connection: counts how often its extra is parsed."""

    host = "platform.example"
    extra = '{"user_id": "u-1", "headers": {"X-A": "1"}}'

    def __init__(self) -> None:
        self.parsed = 0

    @property
    def extra_dejson(self) -> dict:
        self.parsed += 1
        return json.loads(self.extra)


def test_a_remembered_connection_parses_its_extra_once():
    conn = CountingConnection()
    remembered = ParsedExtraConnection(conn)
    for _ in range(5):
        extra = remembered.extra_dejson
    assert conn.parsed == 1
    extra["user_id"] = "changed by a caller"
    extra["headers"]["X-A"] = "2"
    assert remembered.extra_dejson == {"user_id": "u-1", "headers": {"X-A": "1"}}
    assert remembered.host == "platform.example"  # the rest is the connection's own


def test_hooks_of_one_process_parse_the_connection_extra_once(account, monkeypatch):
    """In the triggerer each parse is a round trip through its supervisor (the masking of
    the extra's secrets): posts used to make three per request."""
    from airflow.sdk.definitions.connection import Connection

    from agent_api import lookup_cache
    from agent_api.hooks.agent_api import AgentApiHook

    parses = []
    parse = Connection.extra_dejson.fget

    def counted(self):
        parses.append(self.conn_id)
        return parse(self)

    monkeypatch.setattr(Connection, "extra_dejson", property(counted))
    lookup_cache.connections.clear()
    AgentApiHook.get_connection(AgentApiHook.default_conn_name)  # the look-up parses it
    assert parses
    looked_up = len(parses)
    for _ in range(3):
        hook = AgentApiHook()
        assert hook.settings.user_id == account.user_id
        for _ in range(2):
            session = hook.get_conn()
            assert session.headers["Authorization"].startswith("Bearer ")
    assert len(parses) == looked_up  # the hooks parsed nothing more
