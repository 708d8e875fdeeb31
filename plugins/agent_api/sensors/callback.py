"""A sensor that waits for the platform to process one imported batch."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseSensorOperator, PokeReturnValue
from airflow.sdk.exceptions import AirflowSensorTimeout

from agent_api.connection_settings import DEFAULT_CONN_ID
from agent_api.exceptions import AgentApiError

if TYPE_CHECKING:
    from agent_api.hooks.agent_api import AgentApiHook

# The trigger reports its own deadline; Airflow's deferral timeout is only a safety net.
DEFERRAL_TIMEOUT_MARGIN = timedelta(minutes=5)


@dataclass(frozen=True)
class BatchOutcome:
    """What the platform did with a batch: the numbers it actually imported into the calling
    task."""

    unique_id: str
    imported_numbers: frozenset[str]
    api_task_id: str | None = None  # the calling task, as the callback data names it

    def summary(self) -> dict[str, Any]:
        """Safe to log and to return as an XCom: counts only, no phone numbers."""
        return {"unique_id": self.unique_id, "imported": len(self.imported_numbers)}


class AgentApiCallbackSensor(BaseSensorOperator):
    """Wait until batch ``unique_id`` is processed, then fetch the numbers it imported.

    Deferrable by default: the wait happens in the triggerer (``AgentApiCallbackTrigger``)
    and costs no worker slot. With ``deferrable=False`` it pokes from the worker, in
    ``mode="poke"`` or ``mode="reschedule"``.

    Subclasses override :meth:`on_outcome` to act on the imported numbers (the project's DAG
    writes them to its ledger); by default the task returns ``BatchOutcome.summary()``, which
    carries no phone numbers.
    """

    template_fields = ("unique_id", "sub_user_id")
    ui_color = "#e8f4fd"

    def __init__(
        self,
        *,
        unique_id: str,
        agent_api_conn_id: str = DEFAULT_CONN_ID,
        sub_user_id: str | None = None,
        deferrable: bool = True,
        poll_interval: float = 2.0,
        poll_backoff: float = 1.5,
        max_poll_interval: float = 60.0,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("timeout", 60 * 60)
        kwargs.setdefault("poke_interval", poll_interval)
        super().__init__(**kwargs)
        self.unique_id = unique_id
        self.agent_api_conn_id = agent_api_conn_id
        self.sub_user_id = sub_user_id
        self.deferrable = deferrable
        self.poll_interval = poll_interval
        self.poll_backoff = poll_backoff
        self.max_poll_interval = max_poll_interval

    @cached_property
    def hook(self) -> AgentApiHook:
        # Imported here, as the trigger below: a DAG file that uses this sensor then parses
        # without the HTTP clients (the dag-processor parses it every few minutes).
        from agent_api.hooks.agent_api import AgentApiHook

        return AgentApiHook(self.agent_api_conn_id)

    def execute(self, context: Any) -> Any:
        if not self.deferrable:
            return super().execute(context)
        # One cheap look first: a batch processed already needs no trip through the triggerer.
        if (done := self.poke(context)) and isinstance(done, PokeReturnValue):
            return done.xcom_value
        from agent_api.triggers.callback import AgentApiCallbackTrigger

        self.defer(
            trigger=AgentApiCallbackTrigger(
                unique_id=self.unique_id,
                deadline=time.time() + float(self.timeout),
                agent_api_conn_id=self.agent_api_conn_id,
                sub_user_id=self.sub_user_id,
                poll_interval=self.poll_interval,
                backoff=self.poll_backoff,
                max_poll_interval=self.max_poll_interval,
            ),
            method_name="execute_complete",
            timeout=timedelta(seconds=float(self.timeout)) + DEFERRAL_TIMEOUT_MARGIN,
        )

    def poke(self, context: Any) -> bool | PokeReturnValue:
        payload = self.hook.get_callback(self.unique_id, sub_user_id=self.sub_user_id)
        if payload is None:
            self.log.info("Batch %s is still being processed", self.unique_id)
            return False
        # The callback data names the calling task ``task_id``, as the API spells it.
        return PokeReturnValue(
            True, self._finish(context, payload["data"].get("url"), payload.get("task_id"))
        )

    def execute_complete(self, context: Any, event: dict[str, Any]) -> Any:
        status = event.get("status")
        if status == "success":
            from agent_api.triggers.callback import event_api_task_id

            return self._finish(context, event.get("download_url"), event_api_task_id(event))
        if status == "timeout":
            raise AirflowSensorTimeout(
                f"{event.get('message')}; the batch stays 'submitted' and is re-checked by its "
                "unique_id on the next run"
            )
        raise AgentApiError(str(event.get("message") or f"unexpected trigger event {status!r}"))

    def _finish(self, context: Any, download_url: str | None, api_task_id: str | None) -> Any:
        if not download_url:
            raise AgentApiError(f"callback of batch {self.unique_id} has no download URL")
        numbers = frozenset(self.hook.download_numbers(download_url))
        outcome = BatchOutcome(self.unique_id, numbers, api_task_id)
        self.log.info("Batch %s processed: %d numbers imported", self.unique_id, len(numbers))
        return self.on_outcome(context, outcome)

    def on_outcome(self, context: Any, outcome: BatchOutcome) -> Any:
        """Act on a processed batch; the return value becomes the task's XCom."""
        return outcome.summary()
