"""Triggers that let the DAG's mapped tasks start and finish in the triggerer.

Starting a task instance on a worker costs seconds (queueing, a new process, parsing the DAG
file); one batch's post costs milliseconds. With ``start_from_trigger`` the scheduler hands
each mapped ``post_batch`` straight to the triggerer, where :class:`PostBatchTrigger` runs the
very same ``steps.post.post_batch`` step in a thread and ends the task with its XCom, so a few
hundred batches go out at the rate the platform allows instead of the rate workers start.

A trigger that fails does not decide the task's fate itself: it hands the error to the
operator's ``execute_complete`` on a worker, which raises it there, so the task log shows
the same message and Airflow applies the same retry rules as for a post made on a worker.
"""

from __future__ import annotations

import asyncio
import contextvars
import json
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from airflow.sdk.exceptions import AirflowFailException
from airflow.triggers.base import BaseTrigger, TaskSuccessEvent, TriggerEvent

from agent_api.hooks.agent_api import AgentApiAsyncHook
from agent_api.masking import mask_phones_in
from agent_api.triggers.callback import AgentApiCallbackTrigger, event_api_task_id
from lead_load.core.loads import ledger_run_id
from lead_load.core.run_settings import WAREHOUSE_CONN_ID
from lead_load.glue.batch_steps import (
    FROM_NUMBER_LIST,
    callback_to_wait_for,
    lost_answer_grace,
    no_callback_result,
    planned_batch_of,
    post_planned_batch,
    record_callback,
    settle_lost_answer,
)
from lead_load.steps.post import LeaseHeld

# Posts and outcome recordings run in threads, not in the event loop: the ledger and the HTTP
# client are synchronous. Each has a pool of its own, so that while hundreds of posts queue
# for theirs, a batch whose post was accepted still looks its unique_id up and records its
# callback at once (no barrier behind the last post). The pools bound how many batches one
# triggerer works on at once; the connection's max_requests_per_second bounds the rate.
POST_THREADS = 16
RECORD_THREADS = 8
_pools: dict[str, ThreadPoolExecutor] = {}


def _threads(kind: str) -> ThreadPoolExecutor:
    if kind not in _pools:
        size = POST_THREADS if kind == "post" else RECORD_THREADS
        _pools[kind] = ThreadPoolExecutor(size, thread_name_prefix=f"lead_load_{kind}")
    return _pools[kind]


async def run_in_thread(func: Callable[..., Any], *args: Any, pool: str = "post") -> Any:
    """``func(*args)`` in the ``pool`` threads ("post" or "record"), with this trigger's log
    context."""
    context = contextvars.copy_context()  # so the thread's log lines land in the trigger's log
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(_threads(pool), lambda: context.run(func, *args))


def error_event(error: BaseException, **fields: Any) -> TriggerEvent:
    """An event that carries a failure to the worker; no phone number, no token."""
    return TriggerEvent(
        {
            "status": "error",
            "error": type(error).__name__,
            "message": mask_phones_in(str(error))[:2000],
            "retryable": not isinstance(error, AirflowFailException),
            **fields,
        }
    )


def parsed(value: str | dict | list) -> Any:
    """A rendered ``| tojson`` template, or the value itself when it was never a template."""
    return json.loads(value) if isinstance(value, str) else value


async def settings_and_batch(trigger: Any, pool: str) -> tuple[dict, dict]:
    """The trigger's ``settings`` and ``batch`` kwargs when it was given settings, else, as
    the DAG starts it, the ledger's record of its task instance's run and the batch at its
    map index."""
    if trigger.settings is not None:
        return parsed(trigger.settings), parsed(trigger.batch or {})
    ti = trigger.task_instance
    run_id = ledger_run_id(ti.dag_id, ti.run_id)
    # A trigger that takes no ledger of its own (the per-batch wait) reads the default's.
    ledger = (
        getattr(trigger, "ledger_conn_id", None),
        getattr(trigger, "warehouse_conn_id", WAREHOUSE_CONN_ID),
    )
    return await run_in_thread(planned_batch_of, run_id, ti.map_index, ledger, pool=pool)


class PostBatchTrigger(BaseTrigger):
    """Post one planned batch through the ledger, then end the task with its receipt.

    ``settings`` and ``batch`` (``{"batch_no"}``), as dicts or JSON, say what to post. The
    DAG gives neither: the trigger then reads them from the ledger for the task instance the
    triggerer attached (its run and map index, see ``batch_steps.planned_batch_of``), which
    costs the triggerer's supervisor no request. ``ledger_conn_id`` and ``warehouse_conn_id``
    (the load's) say where that ledger is.
    """

    def __init__(
        self,
        settings: str | dict | None = None,
        batch: str | dict | None = None,
        try_number: str | int = 0,
        ledger_conn_id: str | None = None,
        warehouse_conn_id: str = WAREHOUSE_CONN_ID,
    ) -> None:
        super().__init__()
        self.settings = settings
        self.batch = batch
        self.try_number = try_number
        self.ledger_conn_id = ledger_conn_id
        self.warehouse_conn_id = warehouse_conn_id

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "settings": self.settings,
                "batch": self.batch,
                "try_number": self.try_number,
                "ledger_conn_id": self.ledger_conn_id,
                "warehouse_conn_id": self.warehouse_conn_id,
            },
        )

    def current_try_number(self) -> int | str:
        """The try this post belongs to (named in the batch's lease): the triggerer attaches
        the task instance, but renders only the kwargs that are template fields of the
        operator, so a ``{{ ti.try_number }}`` kwarg would stay a template."""
        ti = getattr(self, "task_instance", None)
        return getattr(ti, "try_number", None) or self.try_number

    async def run(self) -> AsyncIterator[TriggerEvent]:
        try:
            settings, batch = await settings_and_batch(self, pool="post")
        except Exception as error:
            self.log.warning("Finding the batch failed: %s", mask_phones_in(str(error)))
            yield error_event(error)
            return
        while True:
            try:
                outcome = await run_in_thread(
                    post_planned_batch, settings, batch, self.current_try_number()
                )
            except Exception as error:
                self.log.warning("Posting failed: %s", mask_phones_in(str(error)))
                yield error_event(error)
                return
            if not isinstance(outcome, LeaseHeld):
                break
            # Another copy of this trigger (a triggerer that was taken for dead, say) holds
            # the batch: wait here, not in a posting thread, until it finishes or its lease
            # expires. Cancelling this trigger cancels the wait.
            self.log.info(
                "Batch %s is held by %s; looking again in %.0fs",
                batch["batch_no"],
                outcome.holder,
                outcome.seconds,
            )
            await asyncio.sleep(outcome.seconds)
        yield TaskSuccessEvent(xcoms={"return_value": outcome})


class LedgerCallbackTrigger(AgentApiCallbackTrigger):
    """Wait for a batch's callback, record its outcome in the ledger, end the task.

    The batch is ``unique_id``, or, when that is empty, the planned ``batch`` whose
    ``unique_id`` the ledger holds once its post was accepted. The DAG gives neither
    ``settings`` nor ``batch``: both are then read from the ledger for the attached task
    instance, as ``PostBatchTrigger`` does.

    The triggerer-started form of ``LedgerCallbackSensor``: polling, the download of the
    imported numbers and the ledger update all happen here, and the task ends with the same
    counts as its XCom. A timeout or an error goes to the sensor's ``execute_complete`` on a
    worker, which fails (or, with ``soft_fail``, skips) the task as it always did.
    """

    def __init__(
        self,
        settings: str | dict | None = None,
        unique_id: str = "",
        timeout: float = 3600.0,
        batch: str | dict | None = None,
        poll_interval: float = 2.0,
        backoff: float = 1.5,
        max_poll_interval: float = 60.0,
        agent_api_conn_id: str = AgentApiAsyncHook.default_conn_name,
    ) -> None:
        # The deadline is set when the wait starts, in run(): the kwargs are fixed in the DAG.
        super().__init__(
            unique_id=unique_id,
            deadline=0,
            agent_api_conn_id=agent_api_conn_id,
            poll_interval=poll_interval,
            backoff=backoff,
            max_poll_interval=max_poll_interval,
        )
        self.settings = settings
        self.timeout = float(timeout)
        self.batch = batch

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "settings": self.settings,
                "unique_id": self.unique_id,
                "timeout": self.timeout,
                "batch": self.batch,
                "poll_interval": self.poll_interval,
                "backoff": self.backoff,
                "max_poll_interval": self.max_poll_interval,
                "agent_api_conn_id": self.agent_api_conn_id,
            },
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        self.deadline = time.time() + self.timeout
        try:
            settings, batch = await settings_and_batch(self, pool="record")
        except Exception as error:
            yield error_event(error)
            return
        self.sub_user_id = settings.get("sub_user_id")
        if not self.unique_id:
            try:
                unique_id = await run_in_thread(
                    callback_to_wait_for, settings, batch, pool="record"
                )
            except Exception as error:
                yield error_event(error)
                return
            if unique_id is None:
                yield TaskSuccessEvent(xcoms={"return_value": no_callback_result(batch)})
                return
            if unique_id is FROM_NUMBER_LIST:
                async for event in self._settle_from_number_list(settings, batch):
                    yield event
                return
            self.unique_id = unique_id
        async for event in super().run():
            if event.payload.get("status") != "success":
                yield event
                return
            try:
                counts = await run_in_thread(
                    record_callback,
                    settings,
                    self.unique_id,
                    event.payload.get("download_url"),
                    event_api_task_id(event.payload),
                    pool="record",
                )
            except Exception as error:
                self.log.warning(
                    "Recording batch %s failed: %s", self.unique_id, mask_phones_in(str(error))
                )
                yield error_event(error, unique_id=self.unique_id)
                return
            yield TaskSuccessEvent(xcoms={"return_value": counts})
            return

    async def _settle_from_number_list(
        self, settings: dict, batch: dict
    ) -> AsyncIterator[TriggerEvent]:
        """A batch whose post's answer was lost: look for its rows in the calling task's number list
        until all show (imported) or the wait's deadline passes (they stay maybe accepted;
        a later run settles them after the settle period)."""
        try:
            delay = await run_in_thread(lost_answer_grace, settings, pool="record")
            while True:
                await asyncio.sleep(max(0.0, min(delay, self.deadline - time.time())))
                counts = await run_in_thread(settle_lost_answer, settings, batch, pool="record")
                if counts is not None:
                    yield TaskSuccessEvent(xcoms={"return_value": counts})
                    return
                if time.time() >= self.deadline:
                    yield TriggerEvent(
                        {
                            "status": "timeout",
                            "unique_id": None,
                            "message": f"batch {batch['batch_no']}: its post's answer was lost "
                            f"and not all its rows showed in the calling task within "
                            f"{self.timeout:.0f}s",
                        }
                    )
                    return
                delay = min(max(delay, self.poll_interval) * self.backoff, self.max_poll_interval)
        except Exception as error:
            self.log.warning(
                "Settling batch %s from the calling task's number list failed: %s",
                batch.get("batch_no"),
                mask_phones_in(str(error)),
            )
            yield error_event(error)
