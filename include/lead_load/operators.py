"""Airflow operators of the lead_load DAG that need more than TaskFlow."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowException, AirflowFailException
from airflow.triggers.base import StartTriggerArgs

from agent_api.sensors.callback import AgentApiCallbackSensor, BatchOutcome
from lead_load import pipeline
from lead_load.connections import ledger_engine

# How long one batch may take in the triggerer, waits for the request rate included.
POST_TIMEOUT = timedelta(hours=1)


def post_planned_batch(settings: dict[str, Any], batch: dict[str, Any]) -> dict[str, Any]:
    """Post one batch of ``plan_batches`` through the ledger; the same step on either path."""
    from agent_api.hooks.agent_api import AgentApiHook

    engine = ledger_engine()
    try:
        return pipeline.post_batch(
            pipeline.RunSettings.from_dict(settings), batch["batch_no"], engine, AgentApiHook()
        )
    finally:
        engine.dispose()


def post_in_triggerer(settings_task_id: str, plan_task_id: str) -> StartTriggerArgs:
    """Start each mapped ``PostBatchOperator`` in the triggerer instead of on a worker.

    The scheduler defers such a task before any worker sees it, so its arguments cannot come
    from the operator: the trigger's templates pull them from the upstream tasks' XComs,
    rendered by the triggerer for the task's own map index.
    """
    xcom = "ti.xcom_pull(task_ids='{}', map_indexes=-1)"
    return StartTriggerArgs(
        trigger_cls="lead_load.triggers.PostBatchTrigger",
        trigger_kwargs={
            "settings": "{{ " + xcom.format(settings_task_id) + " | tojson }}",
            "batch": "{{ " + xcom.format(plan_task_id) + "[ti.map_index] | tojson }}",
        },
        next_method="execute_complete",
        timeout=POST_TIMEOUT,
    )


class PostBatchOperator(BaseOperator):
    """Post one planned batch (``{"batch_no", "rows"}``) to the platform; returns its receipt.

    Map it over ``plan_batches``. With ``start_trigger_args=post_in_triggerer(...)`` and
    ``start_from_trigger=True`` the post runs in the triggerer; otherwise (and under
    ``airflow dags test``, which runs every task on the spot) ``execute`` posts from the
    worker. Either way the XCom is ``{"batch_no", "unique_id", "rows"}``, no phone numbers.
    """

    template_fields = ("settings", "batch")
    ui_color = "#fdf2e8"

    def __init__(
        self,
        *,
        settings: dict[str, Any],
        batch: dict[str, Any],
        start_from_trigger: bool = False,
        start_trigger_args: StartTriggerArgs | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.settings = settings
        self.batch = batch
        # Named here so that .partial() accepts them; Airflow reads them off the operator.
        self.start_from_trigger = start_from_trigger
        self.start_trigger_args = start_trigger_args

    def execute(self, context: Any) -> dict[str, Any]:
        return post_planned_batch(self.settings, self.batch)

    def execute_complete(self, context: Any, event: dict[str, Any]) -> Any:
        """The trigger ended without a receipt: fail here, where the task log shows why."""
        if event.get("xcoms"):  # `dags test` resumes here even when the trigger succeeded
            return event["xcoms"].get("return_value")
        message = f"{event.get('error', 'error')}: {event.get('message')}"
        if event.get("retryable"):
            raise AirflowException(message)
        raise AirflowFailException(message)


class LedgerCallbackSensor(AgentApiCallbackSensor):
    """Waits for one batch's callback, then records each of its rows in the ledger.

    The imported numbers go straight from the platform to the ledger; the task's XCom
    holds only counts.
    """

    template_fields = (*AgentApiCallbackSensor.template_fields, "settings")

    def __init__(self, *, settings: dict[str, Any], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.settings = settings

    def on_outcome(self, context: Any, outcome: BatchOutcome) -> dict[str, Any]:
        settings = pipeline.RunSettings.from_dict(self.settings)
        counts = pipeline.apply_outcome(
            settings, ledger_engine(), self.hook, outcome.unique_id, set(outcome.imported_numbers)
        )
        return {**outcome.summary(), **counts}
