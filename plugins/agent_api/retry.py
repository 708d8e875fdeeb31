"""When to try a request again, and how long to wait first."""

from __future__ import annotations

import random
from dataclasses import dataclass

from agent_api.exceptions import AgentApiError, AgentApiRateLimitedError


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with full jitter, bounded in attempts and in one delay.

    A 429's ``Retry-After`` is a floor: the server said when it will take requests again.
    """

    max_attempts: int = 5
    base_seconds: float = 1.0
    max_seconds: float = 60.0

    def should_retry(self, error: AgentApiError, attempt: int) -> bool:
        """``attempt`` is the number of the attempt that just failed, starting at 1."""
        return error.retryable and attempt < self.max_attempts

    def delay(self, error: AgentApiError, attempt: int, rng: random.Random | None = None) -> float:
        ceiling = min(self.max_seconds, self.base_seconds * (2 ** (attempt - 1)))
        jittered = (rng or random).uniform(ceiling / 2, ceiling)
        if isinstance(error, AgentApiRateLimitedError) and error.retry_after is not None:
            return max(jittered, min(error.retry_after, self.max_seconds))
        return jittered
