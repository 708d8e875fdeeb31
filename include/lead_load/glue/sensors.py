"""The sensors that wait for batches' callbacks and record them: ``RunCallbacksSensor``, one
per run (``wait_for_callbacks``), and ``LedgerCallbackSensor``, one per batch."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

from airflow.sdk import BaseSensorOperator, timezone
from airflow.sdk.exceptions import (
    AirflowRescheduleException,
    AirflowSensorTimeout,
    AirflowSkipException,
)
from airflow.triggers.base import StartTriggerArgs

from agent_api.sensors.callback import (
    DEFERRAL_TIMEOUT_MARGIN,
    AgentApiCallbackSensor,
    BatchOutcome,
)
from lead_load.core.run_settings import WAREHOUSE_CONN_ID
from lead_load.glue.start_in_triggerer import StartsInTriggerer, resumed_event


def wait_in_triggerer(timeout: timedelta, poll_interval: float) -> StartTriggerArgs:
    """Start each mapped ``LedgerCallbackSensor`` in the triggerer (see ``start_in_triggerer``):
    the trigger reads its settings, its batch and the batch's ``unique_id`` from the ledger."""
    return StartTriggerArgs(
        trigger_cls="lead_load.glue.triggers.LedgerCallbackTrigger",
        trigger_kwargs={"timeout": timeout.total_seconds(), "poll_interval": poll_interval},
        next_method="execute_complete",
        # The trigger reports its own timeout first; this only bounds a stuck trigger.
        timeout=timeout + DEFERRAL_TIMEOUT_MARGIN,
    )


class LedgerCallbackSensor(StartsInTriggerer, AgentApiCallbackSensor):
    """Waits for one posted batch's callback, then records each of its rows in the ledger.

    ``batch`` is the planned batch (``{"batch_no", "rows"}``); its ``unique_id`` is read
    from the ledger when the wait starts, so the sensor waits for whichever copy of the post
    was accepted. The imported numbers go straight from the platform to the ledger; the
    task's XCom holds only counts. With ``start_trigger_args=wait_in_triggerer(...)`` and
    ``start_from_trigger=True`` the whole wait runs in the triggerer (``LedgerCallbackTrigger``).
    """

    template_fields = (*AgentApiCallbackSensor.template_fields, "settings", "batch")

    def __init__(self, *, settings: dict[str, Any], batch: dict[str, Any], **kwargs: Any) -> None:
        kwargs.setdefault("unique_id", "")  # read from the ledger in execute()
        super().__init__(**kwargs)
        self.settings = settings
        self.batch = batch

    def execute(self, context: Any) -> Any:
        if self._lost_answer():
            return self._settle_from_number_list()
        if not self._read_unique_id():
            return self._no_callback()
        return super().execute(context)

    def resume_execution(
        self, next_method: str, next_kwargs: dict[str, Any] | None, context: Any
    ) -> Any:
        resumed_event(next_kwargs)  # an error fails the try, past soft_fail
        return super().resume_execution(next_method, next_kwargs, context)

    def execute_complete(self, context: Any, event: dict[str, Any]) -> Any:
        if self._lost_answer():  # the trigger's wait on the number list timed out
            raise AirflowSensorTimeout(
                f"{event.get('message')}; its rows stay maybe accepted, never sent again "
                "before the settle period has passed (a later run settles them)"
            )
        # A deferred task resumes on a fresh copy of the operator: read the id again.
        if not self._read_unique_id():
            return self._no_callback()
        return super().execute_complete(context, event)

    def _lost_answer(self) -> bool:
        """The batch's post's answer was lost (no unique_id): no callback to wait for."""
        from lead_load.glue.batch_steps import FROM_NUMBER_LIST, callback_to_wait_for

        if self.unique_id:
            return False
        found = callback_to_wait_for(self.settings, self.batch)
        if found is FROM_NUMBER_LIST:
            return True
        self.unique_id = found or ""
        return False

    def _read_unique_id(self) -> str | None:
        return self.unique_id or None

    def _settle_from_number_list(self) -> dict[str, Any]:
        """The worker's form of ``LedgerCallbackTrigger._settle_from_number_list``."""
        from lead_load.glue.batch_steps import lost_answer_grace, settle_lost_answer

        deadline = time.monotonic() + float(self.timeout)
        delay = lost_answer_grace(self.settings)
        while True:
            time.sleep(max(0.0, min(delay, deadline - time.monotonic())))
            counts = settle_lost_answer(self.settings, self.batch)
            if counts is not None:
                return counts
            if time.monotonic() >= deadline:
                message = (
                    f"batch {self.batch['batch_no']}: its post's answer was lost and not all "
                    f"its rows showed in the calling task within {float(self.timeout):.0f}s; they "
                    "stay maybe accepted, never sent again before the settle period has passed"
                )
                if self.soft_fail:  # as Airflow's sensors do for a timeout
                    raise AirflowSkipException(message)
                raise AirflowSensorTimeout(message)
            delay = min(max(delay, self.poll_interval) * self.poll_backoff, self.max_poll_interval)

    def _no_callback(self) -> dict[str, Any]:
        from lead_load.glue.batch_steps import no_callback_result  # not at DAG parse time

        return no_callback_result(self.batch)

    def on_outcome(self, context: Any, outcome: BatchOutcome) -> dict[str, Any]:
        from lead_load.glue.batch_steps import record_outcome  # not at DAG parse time

        return record_outcome(self.settings, self.hook, outcome)


def callbacks_in_triggerer(
    timeout: timedelta, poll_interval: float, connections: dict[str, Any] | None = None
) -> StartTriggerArgs:
    """Start ``RunCallbacksSensor`` in the triggerer: its trigger finds the run from the task
    instance the triggerer attaches, and ends the task itself when every batch is settled.
    ``timeout`` is each batch's, from its post; the wait as a whole lasts as long as the
    posts do, so the deferral has no bound of its own. ``connections``: the load's
    (``agent_api_conn_id``, ``ledger_conn_id``, ``warehouse_conn_id``; Airflow's defaults
    when left out)."""
    return StartTriggerArgs(
        trigger_cls="lead_load.glue.callbacks_trigger.RunCallbacksTrigger",
        trigger_kwargs={
            "timeout": timeout.total_seconds(),
            "poll_interval": poll_interval,
            **(connections or {}),
        },
        next_method="execute_complete",
        timeout=None,
    )


class RunCallbacksSensor(StartsInTriggerer, BaseSensorOperator):
    """Waits for the outcome of every batch of its run, polling each batch's callback by its
    ``unique_id`` as soon as its post is accepted, and records it in the ledger.

    One task per run beside the mapped posts (``RunCallbacksTrigger`` does the work). With
    ``start_trigger_args=callbacks_in_triggerer(...)`` and ``start_from_trigger=True`` it
    starts and ends in the triggerer. On a worker (``airflow dags test`` runs tasks one at a
    time) it first waits, rescheduled, until every post has finished, then defers.
    ``callback_timeout`` (seconds) is each batch's; batches past it are given up on for this
    run and the task skips (``soft_fail``): they stay submitted and the report names them.
    """

    def __init__(
        self,
        *,
        callback_timeout: float,
        post_task_id: str = "post_batch",
        connections: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("soft_fail", True)
        super().__init__(**kwargs)
        self.callback_timeout = float(callback_timeout)
        self.post_task_id = post_task_id
        # The load's connections, as callbacks_in_triggerer takes them.
        self.connections = dict(connections or {})

    def poke(self, context: Any) -> bool:
        """Every post of the run has finished (Airflow's word: no retry is coming)."""
        from lead_load.core.loads import ledger_run_id
        from lead_load.glue.callbacks_trigger import _latest_plan, all_posts_finished
        from lead_load.glue.connections import ledger_conn_id

        ti = context["ti"]
        ledger = ledger_conn_id(
            self.connections.get("ledger_conn_id"),
            self.connections.get("warehouse_conn_id", WAREHOUSE_CONN_ID),
        )
        planned = len(_latest_plan(ledger_run_id(ti.dag_id, ti.run_id), ledger))
        return all_posts_finished(ti.get_ti_count, ti.dag_id, ti.run_id, self.post_task_id, planned)

    def execute(self, context: Any) -> Any:
        from lead_load.glue.callbacks_trigger import RunCallbacksTrigger

        if not self.poke(context):
            raise AirflowRescheduleException(
                timezone.utcnow() + timedelta(seconds=self.poke_interval)
            )
        ti = context["ti"]
        self.defer(
            trigger=RunCallbacksTrigger(
                run_id=ti.run_id,
                dag_id=ti.dag_id,
                timeout=self.callback_timeout,
                poll_interval=self.poke_interval,
                post_task_id=self.post_task_id,
                end_task=False,
                **self.connections,
            ),
            method_name="execute_complete",
        )

    def resume_execution(
        self, next_method: str, next_kwargs: dict[str, Any] | None, context: Any
    ) -> Any:
        event = resumed_event(next_kwargs)  # an error fails the try, past soft_fail
        # Airflow's skip would say only "soft_fail": a timeout says which batches it gave up on.
        if event is not None and event.get("status") == "timeout":
            message = (
                f"{event.get('message')}: they stay submitted, never sent again before the "
                "settle period has passed (a later run settles them)"
            )
            self.log.warning("%s", message)
            if self.soft_fail:
                raise AirflowSkipException(message)
            raise AirflowSensorTimeout(message)
        return super().resume_execution(next_method, next_kwargs, context)

    def execute_complete(self, context: Any, event: dict[str, Any]) -> Any:
        """The counts of a wait that ended well (errors and timeouts end in
        ``resume_execution``)."""
        return event.get("summary")
