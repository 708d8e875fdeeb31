"""RetryPolicy: its delays, and retrying(), the tenacity loop the hook's requests run in."""

from __future__ import annotations

import random

import pytest

from agent_api.exceptions import (
    AgentApiRateLimitedError,
    AgentApiTransientError,
    AgentApiValidationError,
)
from agent_api.retry import RetryPolicy


def run(policy: RetryPolicy, errors: list[Exception], monkeypatch, **options):
    """Attempts that raise ``errors`` in turn, then succeed; returns (result, calls, waits)."""
    waits: list[float] = []
    monkeypatch.setattr("time.sleep", waits.append)
    calls = 0
    for attempt in policy.retrying(rng=random.Random(1), **options):
        with attempt:
            calls += 1
            if calls <= len(errors):
                raise errors[calls - 1]
            return "done", calls, waits
    raise AssertionError("unreachable")


def test_retryable_errors_are_retried_until_one_succeeds(monkeypatch):
    seen = []
    result = run(
        RetryPolicy(max_attempts=3, base_seconds=1, max_seconds=8),
        [AgentApiTransientError("a"), AgentApiTransientError("b")],
        monkeypatch,
        on_retry=lambda error, attempt, delay: seen.append((str(error), attempt, delay)),
    )
    assert result[:2] == ("done", 3)
    assert [(message[-1], attempt) for message, attempt, _ in seen] == [("a", 1), ("b", 2)]
    assert [delay for *_, delay in seen] == result[2]  # what was logged is what was waited
    assert 0.5 <= result[2][0] <= 1 and 1 <= result[2][1] <= 2


def test_the_last_error_is_raised_after_max_attempts(monkeypatch):
    with pytest.raises(AgentApiTransientError, match="3"):
        run(
            RetryPolicy(max_attempts=3),
            [AgentApiTransientError(str(n)) for n in (1, 2, 3)],
            monkeypatch,
        )


def test_a_permanent_error_is_raised_at_once(monkeypatch):
    waits: list[float] = []
    monkeypatch.setattr("time.sleep", waits.append)
    with pytest.raises(AgentApiValidationError):
        run(RetryPolicy(max_attempts=5), [AgentApiValidationError("bad row")], monkeypatch)
    assert waits == []


def test_min_delay_lengthens_the_wait(monkeypatch):
    _, _, waits = run(
        RetryPolicy(max_attempts=2, base_seconds=0.01, max_seconds=0.01),
        [AgentApiTransientError("lost")],
        monkeypatch,
        min_delay=lambda error: 3.0,
    )
    assert waits == [3.0]


def test_backoff_grows_is_bounded_and_honours_retry_after():
    policy = RetryPolicy(max_attempts=6, base_seconds=1, max_seconds=8)
    rng = random.Random(0)
    transient = AgentApiTransientError("x")
    ceilings = [1, 2, 4, 8, 8]
    for attempt, ceiling in enumerate(ceilings, start=1):
        delay = policy.delay(transient, attempt, rng)
        assert ceiling / 2 <= delay <= ceiling
    limited = AgentApiRateLimitedError("x", retry_after=5)
    assert policy.delay(limited, 1, rng) >= 5
    assert policy.should_retry(transient, 5) and not policy.should_retry(transient, 6)
    assert not policy.should_retry(AgentApiValidationError("x"), 1)
