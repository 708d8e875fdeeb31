"""The sensor that waits for one batch's callback and records it (mapped as
``wait_for_callback``)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from airflow.triggers.base import StartTriggerArgs

from agent_api.sensors.callback import (
    DEFERRAL_TIMEOUT_MARGIN,
    AgentApiCallbackSensor,
    BatchOutcome,
)
from lead_load.glue.start_in_triggerer import StartsInTriggerer, from_xcom


def wait_in_triggerer(
    settings_task_id: str, unique_ids_task_id: str, timeout: timedelta, poll_interval: float
) -> StartTriggerArgs:
    """Start each mapped ``LedgerCallbackSensor`` in the triggerer (see ``start_in_triggerer``)."""
    return StartTriggerArgs(
        trigger_cls="lead_load.glue.triggers.LedgerCallbackTrigger",
        trigger_kwargs={
            "settings": from_xcom(settings_task_id),
            "unique_id": from_xcom(unique_ids_task_id, "[ti.map_index]", as_json=False),
            "timeout": timeout.total_seconds(),
            "poll_interval": poll_interval,
        },
        next_method="execute_complete",
        # The trigger reports its own timeout first; this only bounds a stuck trigger.
        timeout=timeout + DEFERRAL_TIMEOUT_MARGIN,
    )


class LedgerCallbackSensor(StartsInTriggerer, AgentApiCallbackSensor):
    """Waits for one batch's callback, then records each of its rows in the ledger.

    The imported numbers go straight from the platform to the ledger; the task's XCom
    holds only counts. With ``start_trigger_args=wait_in_triggerer(...)`` and
    ``start_from_trigger=True`` the whole wait runs in the triggerer (``LedgerCallbackTrigger``).
    """

    template_fields = (*AgentApiCallbackSensor.template_fields, "settings")

    def __init__(self, *, settings: dict[str, Any], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.settings = settings

    def on_outcome(self, context: Any, outcome: BatchOutcome) -> dict[str, Any]:
        from lead_load.glue.batch_steps import record_outcome  # not at DAG parse time

        return record_outcome(self.settings, self.hook, outcome)
