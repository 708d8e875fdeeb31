"""The per-process memory of connection and Variable look-ups (a clock of the test's own)."""

from __future__ import annotations

from agent_api.lookup_cache import TtlCache


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
