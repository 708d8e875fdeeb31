"""When to try a request again, and how long to wait first.

The policy is the rules (which errors, how many attempts, which delays); ``retrying()``
turns it into a tenacity ``Retrying``, the loop the http provider's hooks use too.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass

import tenacity

from agent_api.exceptions import AgentApiError, AgentApiRateLimitedError


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with full jitter, bounded in attempts and in one delay.

    A 429's ``Retry-After`` is a floor: the server said when it will take requests again.
    """

    max_attempts: int = 5
    base_seconds: float = 1.0
    max_seconds: float = 60.0

    def should_retry(self, error: BaseException, attempt: int) -> bool:
        """``attempt`` is the number of the attempt that just failed, starting at 1."""
        return isinstance(error, AgentApiError) and error.retryable and attempt < self.max_attempts

    def delay(self, error: AgentApiError, attempt: int, rng: random.Random | None = None) -> float:
        ceiling = min(self.max_seconds, self.base_seconds * (2 ** (attempt - 1)))
        jittered = (rng or random).uniform(ceiling / 2, ceiling)
        if isinstance(error, AgentApiRateLimitedError) and error.retry_after is not None:
            return max(jittered, min(error.retry_after, self.max_seconds))
        return jittered

    def retrying(
        self,
        *,
        rng: random.Random | None = None,
        on_retry: Callable[[BaseException, int, float], None] | None = None,
        min_delay: Callable[[BaseException], float] | None = None,
    ) -> tenacity.Retrying:
        """A tenacity loop for this policy: retryable errors only, the last error re-raised.

        ``on_retry(error, attempt, delay)`` runs before each wait (to log it); ``min_delay``
        may lengthen the wait after a given error.
        """

        def wait(state: tenacity.RetryCallState) -> float:
            error = state.outcome.exception()
            delay = self.delay(error, state.attempt_number, rng)
            return max(delay, min_delay(error)) if min_delay else delay

        def before_sleep(state: tenacity.RetryCallState) -> None:
            if on_retry:
                on_retry(state.outcome.exception(), state.attempt_number, state.upcoming_sleep)

        return tenacity.Retrying(
            retry=tenacity.retry_if_exception(
                lambda error: isinstance(error, AgentApiError) and error.retryable
            ),
            stop=tenacity.stop_after_attempt(self.max_attempts),
            wait=wait,
            before_sleep=before_sleep,
            sleep=lambda seconds: time.sleep(seconds),  # looked up per call: tests may patch it
            reraise=True,
        )
