"""Mapped tasks that start in the triggerer: the operator mix-in, and how such a task ends
on a worker when its trigger failed.

The scheduler defers such a task before any worker sees it, so its arguments cannot come
from the operator. They come from the ledger instead: the run's first task records the
run's settings there and ``plan_batches`` its first batch number; a plan's numbers are
consecutive, so map index ``i`` is batch ``first + i`` (``batch_steps.planned_batch_of``).

Why not templates that pull the upstream XComs: the triggerer renders them through its
supervisor, one request per XCom per task. Pulling the whole plan made n triggers fetch n
batches each (a 5,000-batch load spent its first half hour on it); two small XComs per
task still took a third of the supervisor's time while 200 batches started, queued ahead
of every other request of the posts (benchmarks/RESULTS.md).
"""

from __future__ import annotations

from typing import Any, NoReturn

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowException, AirflowFailException
from airflow.triggers.base import StartTriggerArgs


def raise_trigger_error(event: dict[str, Any]) -> NoReturn:
    """Raise, on the worker, the error a trigger ended with (``triggers.error_event``), so
    the task log shows it and Airflow's retries apply: retried unless the event says no
    retry can help."""
    message = f"{event.get('error', 'error')}: {event.get('message')}"
    if event.get("retryable", True):
        raise AirflowException(message)
    raise AirflowFailException(message)


def resumed_event(next_kwargs: dict[str, Any] | None) -> dict[str, Any] | None:
    """The event a trigger resumed a sensor with; an error event is raised here.

    Airflow's sensor turns any error into a skip under ``soft_fail``, which is for outcomes
    that never came (the next run re-checks those batches). An error while waiting or
    recording (a download refused with 429, a ledger that went away) would then leave
    batches unrecorded with no retry, so a sensor's ``resume_execution`` calls this first.
    """
    event = (next_kwargs or {}).get("event")
    if not isinstance(event, dict):
        return None
    if event.get("status") == "error":
        raise_trigger_error(event)
    return event


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
