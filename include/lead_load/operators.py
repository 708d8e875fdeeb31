"""Airflow operators of the lead_load DAG that need more than TaskFlow."""

from __future__ import annotations

import os
import socket
import time
from datetime import timedelta
from typing import Any

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowException, AirflowFailException
from airflow.triggers.base import StartTriggerArgs

from agent_api.exceptions import AgentApiError
from agent_api.hooks.agent_api import AgentApiHook
from agent_api.sensors.callback import (
    DEFERRAL_TIMEOUT_MARGIN,
    AgentApiCallbackSensor,
    BatchOutcome,
)
from lead_load import pipeline
from lead_load.connections import ledger_conn_id, shared_engine_for

# How long one batch may take in the triggerer, waits for the request rate included.
POST_TIMEOUT = timedelta(hours=1)


def post_planned_batch(
    settings: dict[str, Any], batch: dict[str, Any], try_number: int | str
) -> dict[str, Any] | pipeline.LeaseHeld:
    """Post one batch of ``plan_batches`` through the ledger; the same step on either path.

    The owner named in the batch's lease says which run, try and process posts it.
    """
    run_settings = pipeline.RunSettings.from_dict(settings)
    owner = (
        f"run {run_settings.run_id} batch {batch['batch_no']} try {try_number} "
        f"on {socket.gethostname()}:{os.getpid()}"
    )
    return pipeline.post_batch(
        run_settings, batch["batch_no"], shared_engine_for(ledger_conn_id()), AgentApiHook(), owner
    )


def _from_xcom(task_id: str, pick: str = "", as_json: bool = True) -> str:
    """A template the triggerer renders: the XCom of unmapped task ``task_id``, then ``pick``."""
    pulled = f"ti.xcom_pull(task_ids='{task_id}', map_indexes=-1){pick}"
    return "{{ " + pulled + (" | tojson" if as_json else "") + " }}"


def post_in_triggerer(settings_task_id: str, plan_task_id: str) -> StartTriggerArgs:
    """Start each mapped ``PostBatchOperator`` in the triggerer instead of on a worker.

    The scheduler defers such a task before any worker sees it, so its arguments cannot come
    from the operator: the trigger's templates pull them from the upstream tasks' XComs,
    rendered by the triggerer for the task's own map index.
    """
    return StartTriggerArgs(
        trigger_cls="lead_load.triggers.PostBatchTrigger",
        trigger_kwargs={
            "settings": _from_xcom(settings_task_id),
            "batch": _from_xcom(plan_task_id, "[ti.map_index]"),
            "try_number": "{{ ti.try_number }}",
        },
        next_method="execute_complete",
        timeout=POST_TIMEOUT,
    )


class StartsInTriggerer(BaseOperator):
    """Takes ``start_from_trigger`` and ``start_trigger_args`` as arguments, mapped or not.

    Airflow reads both off the operator, but ``.partial()`` only accepts names that an
    ``__init__`` of the operator's classes declares.
    """

    def __init__(
        self,
        *,
        start_from_trigger: bool = False,
        start_trigger_args: StartTriggerArgs | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.start_from_trigger = start_from_trigger
        self.start_trigger_args = start_trigger_args


class PostBatchOperator(StartsInTriggerer):
    """Post one planned batch (``{"batch_no", "rows"}``) to the platform; returns its receipt.

    Map it over ``plan_batches``. With ``start_trigger_args=post_in_triggerer(...)`` and
    ``start_from_trigger=True`` the post runs in the triggerer; otherwise (and under
    ``airflow dags test``, which runs every task on the spot) ``execute`` posts from the
    worker. Either way the XCom is ``{"batch_no", "unique_id", "rows"}``, no phone numbers.
    """

    template_fields = ("settings", "batch")
    ui_color = "#fdf2e8"

    def __init__(self, *, settings: dict[str, Any], batch: dict[str, Any], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.settings = settings
        self.batch = batch

    def execute(self, context: Any) -> dict[str, Any]:
        while True:
            outcome = post_planned_batch(self.settings, self.batch, context["ti"].try_number)
            if not isinstance(outcome, pipeline.LeaseHeld):
                return outcome
            self.log.info(
                "Batch %s is held by %s; looking again in %.0fs",
                self.batch["batch_no"],
                outcome.holder,
                outcome.seconds,
            )
            time.sleep(outcome.seconds)

    def execute_complete(self, context: Any, event: dict[str, Any]) -> Any:
        """The trigger ended without a receipt: fail here, where the task log shows why."""
        message = f"{event.get('error', 'error')}: {event.get('message')}"
        if event.get("retryable"):
            raise AirflowException(message)
        raise AirflowFailException(message)


def record_outcome(
    settings: dict[str, Any], hook: AgentApiHook, outcome: BatchOutcome
) -> dict[str, Any]:
    """Write a processed batch's outcome to the ledger; returns counts (no phone numbers)."""
    counts = pipeline.apply_outcome(
        pipeline.RunSettings.from_dict(settings),
        shared_engine_for(ledger_conn_id()),
        hook,
        outcome.unique_id,
        set(outcome.imported_numbers),
    )
    return {**outcome.summary(), **counts}


def record_callback(
    settings: dict[str, Any], unique_id: str, download_url: str | None, task_id: str | None
) -> dict[str, Any]:
    """Download what a processed batch imported and record it (the triggerer's path)."""
    if not download_url:
        raise AgentApiError(f"callback of batch {unique_id} has no download URL")
    hook = AgentApiHook()
    numbers = frozenset(hook.download_numbers(download_url))
    return record_outcome(settings, hook, BatchOutcome(unique_id, numbers, task_id))


def wait_in_triggerer(
    settings_task_id: str, unique_ids_task_id: str, timeout: timedelta, poll_interval: float
) -> StartTriggerArgs:
    """Start each mapped ``LedgerCallbackSensor`` in the triggerer (see ``post_in_triggerer``)."""
    return StartTriggerArgs(
        trigger_cls="lead_load.triggers.LedgerCallbackTrigger",
        trigger_kwargs={
            "settings": _from_xcom(settings_task_id),
            "unique_id": _from_xcom(unique_ids_task_id, "[ti.map_index]", as_json=False),
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
        return record_outcome(self.settings, self.hook, outcome)
