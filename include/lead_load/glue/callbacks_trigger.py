"""One trigger that waits for the outcome of every batch of a run (``wait_for_callbacks``).

It starts beside the mapped ``post_batch`` tasks and, in a loop, reads the run's plan from the
ledger, polls the callback of each submitted batch by its ``unique_id`` (or, for a post whose
answer was lost, reads the calling task's number list after the grace), records each outcome
in the ledger as soon as the platform has it, and ends the task once no batch is waiting and
Airflow says every post has finished. Which batch to look at when is
``core.callback_watch``; recording is the same step the per-batch wait used.

Why one trigger per run and not one sensor per batch: a waiting mapped task instance costs the
scheduler queries in every loop, and the triggerer starts at most
``[triggerer] max_trigger_to_select_per_loop`` new triggers per loop, so thousands of waits
slowed every DAG of the scheduler and held back the callbacks (docs/scale.md).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from airflow.sdk.exceptions import AirflowFailException
from airflow.triggers.base import BaseTrigger, TaskSuccessEvent, TriggerEvent

from agent_api.exceptions import AgentApiRateLimitedError, AgentApiRetryableError
from agent_api.hooks.agent_api import AgentApiAsyncHook
from agent_api.masking import mask_phones_in
from agent_api.rate_limit import PacerBusy
from agent_api.triggers.callback import MAX_CONSECUTIVE_POLL_FAILURES
from lead_load.core.callback_watch import CallbackWatch, WatchedBatch
from lead_load.core.loads import ledger_run_id
from lead_load.core.run_settings import WAREHOUSE_CONN_ID
from lead_load.glue.batch_steps import lost_answer_grace, record_callback, settle_lost_answer
from lead_load.glue.connections import ledger_conn_id, shared_engine_for
from lead_load.glue.triggers import error_event, run_in_thread
from lead_load.ledger import run_lifecycle

# Task instance states after which a post does nothing more (no retry is coming).
FINISHED_STATES = ["success", "failed", "skipped", "upstream_failed", "removed"]
# Looks (polls, number-list reads, recordings) in flight at once; the connection's
# max_requests_per_second still bounds the rate, and polls yield to posts.
MAX_LOOKS_AT_ONCE = 16
PROGRESS_EVERY_SECONDS = 30.0


def _run_settings(run_id: str, conn_id: str) -> dict[str, Any]:
    """The run's settings from the ledger (a run whose plan is empty has them too)."""
    settings = run_lifecycle.run_settings(shared_engine_for(conn_id), run_id)
    if settings is None:
        raise AirflowFailException(
            f"run {run_id} has no settings in the ledger of connection {conn_id!r}: "
            "recheck_earlier_batches writes them there; was the Variable "
            "lead_load_ledger_conn_id changed during the run? Clear the run to start it again"
        )
    return settings


def all_posts_finished(
    get_ti_count: Callable[..., int], dag_id: str, run_id: str, post_task_id: str, planned: int
) -> bool:
    """Whether Airflow has all ``planned`` posts of the run in a finished state, so no retry
    of one is coming: only then does a batch the ledger shows unposted stay so. (Fewer
    instances than planned: the posts are not mapped yet.)"""
    which = {"dag_id": dag_id, "task_ids": [post_task_id], "run_ids": [run_id]}
    total = get_ti_count(**which)
    return total >= planned and get_ti_count(**which, states=FINISHED_STATES) >= total


def _latest_plan(run_id: str, conn_id: str) -> list[dict[str, Any]]:
    return run_lifecycle.latest_plan(shared_engine_for(conn_id), run_id)


class RunCallbacksTrigger(BaseTrigger):
    """Wait for and record the outcome of every batch of one run; end the task with counts.

    ``run_id`` and ``dag_id`` default to the task instance the triggerer attached; the DAG id
    is the load's, which names the run in the ledger (``loads.ledger_run_id``).
    ``ledger_conn_id`` and ``warehouse_conn_id``: the load's, to find its ledger
    (``connections.ledger_conn_id``).
    ``timeout`` is each batch's own, from the moment it was seen submitted. ``end_task``: end
    the task from here (started from the triggerer) or hand the event to the sensor's
    ``execute_complete`` (deferred from a worker).
    """

    def __init__(
        self,
        run_id: str | None = None,
        dag_id: str | None = None,
        timeout: float = 3600.0,
        poll_interval: float = 2.0,
        backoff: float = 1.5,
        max_poll_interval: float = 60.0,
        post_task_id: str = "post_batch",
        end_task: bool = True,
        agent_api_conn_id: str = AgentApiAsyncHook.default_conn_name,
        ledger_conn_id: str | None = None,
        warehouse_conn_id: str = WAREHOUSE_CONN_ID,
    ) -> None:
        super().__init__()
        self.run_id = run_id
        self.dag_id = dag_id
        self.timeout = float(timeout)
        self.poll_interval = float(poll_interval)
        self.backoff = float(backoff)
        self.max_poll_interval = float(max_poll_interval)
        self.post_task_id = post_task_id
        self.end_task = end_task
        self.agent_api_conn_id = agent_api_conn_id
        self.ledger_conn_id = ledger_conn_id
        self.warehouse_conn_id = warehouse_conn_id

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "run_id": self.run_id,
                "dag_id": self.dag_id,
                "timeout": self.timeout,
                "poll_interval": self.poll_interval,
                "backoff": self.backoff,
                "max_poll_interval": self.max_poll_interval,
                "post_task_id": self.post_task_id,
                "end_task": self.end_task,
                "agent_api_conn_id": self.agent_api_conn_id,
                "ledger_conn_id": self.ledger_conn_id,
                "warehouse_conn_id": self.warehouse_conn_id,
            },
        )

    def _attached(self, name: str) -> str:
        value = getattr(self, name) or getattr(getattr(self, "task_instance", None), name, None)
        if not value:
            raise AirflowFailException(f"the trigger was given no {name} and no task instance")
        return value

    async def posts_finished(self, planned: int) -> bool:
        """Whether Airflow has every ``post_batch`` of the run finished (see
        ``all_posts_finished``), asked through the triggerer's supervisor."""
        from airflow.sdk.execution_time.task_runner import RuntimeTaskInstance
        from asgiref.sync import sync_to_async

        ask = sync_to_async(all_posts_finished)
        return await ask(
            RuntimeTaskInstance.get_ti_count,
            self._attached("dag_id"),
            self._attached("run_id"),
            self.post_task_id,
            planned,
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        try:
            run_id = ledger_run_id(self._attached("dag_id"), self._attached("run_id"))
            # In a thread: the Variable's look-up is a request to the triggerer's supervisor,
            # which the event loop would wait for while it is the one to read the answer.
            ledger = await run_in_thread(
                ledger_conn_id, self.ledger_conn_id, self.warehouse_conn_id, pool="record"
            )
            settings = await run_in_thread(_run_settings, run_id, ledger, pool="record")
            grace = await run_in_thread(lost_answer_grace, settings, pool="record")
        except Exception as error:
            yield error_event(error)
            return
        watch = CallbackWatch(
            self.timeout, self.poll_interval, grace, self.backoff, self.max_poll_interval
        )
        hook = AgentApiAsyncHook(self.agent_api_conn_id)
        looks = asyncio.Semaphore(MAX_LOOKS_AT_ONCE)
        next_progress = time.monotonic() + PROGRESS_EVERY_SECONDS
        try:
            while True:
                plan = await run_in_thread(_latest_plan, run_id, ledger, pool="record")
                now = time.time()
                watch.update(plan, now)
                for batch in watch.expire(now):
                    self.log.warning(
                        "Batch %s: no outcome within %gs; it stays submitted (a later run "
                        "settles it)",
                        batch.batch_no,
                        self.timeout,
                    )
                due = watch.due(now)
                if due:
                    await asyncio.gather(
                        *(self._look(batch, watch, settings, hook, looks) for batch in due)
                    )
                if time.monotonic() >= next_progress:
                    next_progress = time.monotonic() + PROGRESS_EVERY_SECONDS
                    self._log_progress(watch)
                if not watch.waiting and await self._all_posted(watch, run_id, ledger):
                    break
                await asyncio.sleep(watch.seconds_to_next_look(time.time(), self.poll_interval))
        except Exception as error:
            self.log.warning("Waiting for the callbacks failed: %s", mask_phones_in(str(error)))
            yield error_event(error)
            return
        self._log_progress(watch)
        summary = watch.summary()
        if summary["timed_out"]:
            yield TriggerEvent(
                {
                    "status": "timeout",
                    "message": f"{len(summary['timed_out'])} batches had no outcome within "
                    f"{self.timeout:g}s of their post (batches "
                    f"{', '.join(map(str, summary['timed_out'][:20]))}"
                    f"{', ...' if len(summary['timed_out']) > 20 else ''})",
                    "summary": summary,
                }
            )
        elif self.end_task:
            yield TaskSuccessEvent(xcoms={"return_value": summary})
        else:
            yield TriggerEvent({"status": "success", "summary": summary})

    async def _all_posted(self, watch: CallbackWatch, run_id: str, ledger: str) -> bool:
        """No batch is left to post, or Airflow says no post will run again. Asked of Airflow
        only when nothing is waiting; the plan is read once more after its answer, since a
        post may have ended between the two reads."""
        if watch.posts_outstanding == 0:
            return True
        if not await self.posts_finished(watch.planned):
            return False
        plan = await run_in_thread(_latest_plan, run_id, ledger, pool="record")
        watch.update(plan, time.time())
        return not watch.waiting

    async def _look(
        self,
        batch: WatchedBatch,
        watch: CallbackWatch,
        settings: dict[str, Any],
        hook: AgentApiAsyncHook,
        looks: asyncio.Semaphore,
    ) -> None:
        async with looks:
            if batch.unique_id is None:
                counts = await run_in_thread(
                    settle_lost_answer, settings, {"batch_no": batch.batch_no}, pool="record"
                )
                if counts is None:
                    watch.looked(batch, time.time())
                else:
                    watch.settle(batch, counts)
                return
            try:
                payload = await hook.get_callback(
                    batch.unique_id,
                    sub_user_id=settings.get("sub_user_id"),
                    yield_to_others=True,
                )
            except PacerBusy:  # posts fill the rate limit: a skipped poll costs nothing
                watch.looked(batch, time.time(), skipped=True)
                return
            except AgentApiRetryableError as error:
                retry_after = (
                    error.retry_after or 0.0 if isinstance(error, AgentApiRateLimitedError) else 0.0
                )
                failures = watch.look_failed(batch, time.time(), retry_after)
                if failures >= MAX_CONSECUTIVE_POLL_FAILURES:
                    raise
                self.log.warning("Poll of batch %s failed: %s", batch.batch_no, error)
                return
            if payload is None:
                watch.looked(batch, time.time())
                return
            counts = await run_in_thread(
                record_callback,
                settings,
                batch.unique_id,
                payload["data"].get("url"),
                payload.get("task_id"),  # the callback data's own name for the calling task
                pool="record",
            )
            watch.settle(batch, counts)

    def _log_progress(self, watch: CallbackWatch) -> None:
        self.log.info(
            "%d of %d batches recorded here (%d imported rows), %d settled before, %d waiting, "
            "%d given up on, %d not posted yet",
            len(watch.settled),
            watch.planned,
            sum(int(c.get("imported") or 0) for c in watch.settled.values()),
            len(watch.settled_elsewhere),
            len(watch.waiting),
            len(watch.timed_out),
            watch.posts_outstanding,
        )
