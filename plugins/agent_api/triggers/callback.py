"""A trigger that polls a batch's callback data until the platform has processed it.

The stock ``HttpSensorTrigger`` fires on any non-404 answer; here "answered" is not
"done": the callback-data endpoint answers 200 with empty data while the batch is still
being processed, so this trigger reads the envelope.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Mapping
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from agent_api.exceptions import AgentApiError, AgentApiRateLimitedError, AgentApiRetryableError
from agent_api.hooks.agent_api import AgentApiAsyncHook
from agent_api.rate_limit import PacerBusy

# Consecutive failed polls (5xx, timeouts) tolerated before the trigger gives up.
MAX_CONSECUTIVE_POLL_FAILURES = 10
# The key of a success event that held the calling task before it was ``api_task_id``. A
# trigger that an older release started (or an event it fired) still uses it after an upgrade.
OLD_API_TASK_ID_KEY = "task_id"


def event_api_task_id(event: Mapping[str, Any]) -> str | None:
    """The calling task a success event names: ``api_task_id``, or the older ``task_id``."""
    return event.get("api_task_id", event.get(OLD_API_TASK_ID_KEY))


class AgentApiCallbackTrigger(BaseTrigger):
    """Fire once the batch ``unique_id`` is processed, or at ``deadline`` (epoch seconds).

    Events: ``{"status": "success", "unique_id", "download_url", "api_task_id"}`` (the
    calling task, as the callback data names it), ``{"status": "timeout", "unique_id",
    "message"}`` or ``{"status": "error", ...}``. Read the calling task of an event with
    :func:`event_api_task_id`: an event fired by an older release names it ``task_id``.
    The poll interval starts at ``poll_interval`` and grows by ``backoff`` up to
    ``max_poll_interval``: most batches finish fast, a slow one should not be hammered.
    Under the connection's ``max_requests_per_second``, polls yield to the process's other
    requests (a poll is skipped while posts wait for the rate), so polling never slows posting.
    """

    def __init__(
        self,
        unique_id: str,
        deadline: float,
        agent_api_conn_id: str = AgentApiAsyncHook.default_conn_name,
        sub_user_id: str | None = None,
        poll_interval: float = 2.0,
        backoff: float = 1.5,
        max_poll_interval: float = 60.0,
    ) -> None:
        super().__init__()
        self.unique_id = unique_id
        self.deadline = float(deadline)
        self.agent_api_conn_id = agent_api_conn_id
        self.sub_user_id = sub_user_id
        self.poll_interval = float(poll_interval)
        self.backoff = float(backoff)
        self.max_poll_interval = float(max_poll_interval)

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "unique_id": self.unique_id,
                "deadline": self.deadline,
                "agent_api_conn_id": self.agent_api_conn_id,
                "sub_user_id": self.sub_user_id,
                "poll_interval": self.poll_interval,
                "backoff": self.backoff,
                "max_poll_interval": self.max_poll_interval,
            },
        )

    def _event(self, status: str, **fields: Any) -> TriggerEvent:
        return TriggerEvent({"status": status, "unique_id": self.unique_id, **fields})

    async def run(self) -> AsyncIterator[TriggerEvent]:
        hook = AgentApiAsyncHook(self.agent_api_conn_id)
        interval = self.poll_interval
        failures = 0
        polls = 0
        while True:
            wait = interval
            busy = False
            try:
                polls += 1
                payload = await hook.get_callback(
                    self.unique_id, sub_user_id=self.sub_user_id, yield_to_others=True
                )
                failures = 0
            except PacerBusy:
                # Posts of this process fill the rate limit: try again soon, at the same pace
                # (a skipped poll costs the platform nothing, so it does not back off).
                busy, polls, wait = True, polls - 1, self.poll_interval
            except AgentApiRetryableError as error:
                failures += 1
                if failures >= MAX_CONSECUTIVE_POLL_FAILURES:
                    yield self._event(
                        "error",
                        error=type(error).__name__,
                        message=f"{failures} polls failed in a row: {error}",
                        retryable=True,
                    )
                    return
                if isinstance(error, AgentApiRateLimitedError) and error.retry_after:
                    wait = max(wait, error.retry_after)
                self.log.warning("Poll %d of batch %s failed: %s", polls, self.unique_id, error)
            except AgentApiError as error:
                yield self._event(
                    "error",
                    error=type(error).__name__,
                    message=str(error),
                    retryable=error.retryable,
                )
                return
            else:
                if payload is not None:
                    self.log.info("Batch %s processed after %d polls", self.unique_id, polls)
                    yield self._event(
                        "success",
                        download_url=payload["data"].get("url"),
                        # The callback data's own field is ``task_id``, as the API spells it.
                        api_task_id=payload.get("task_id"),
                    )
                    return
            remaining = self.deadline - time.time()
            if remaining <= 0:
                yield self._event(
                    "timeout",
                    message=f"batch {self.unique_id} not processed after {polls} polls",
                )
                return
            await asyncio.sleep(min(wait, remaining))
            if not busy:
                interval = min(interval * self.backoff, self.max_poll_interval)
