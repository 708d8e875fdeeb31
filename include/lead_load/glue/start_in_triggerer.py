"""Mapped tasks that start in the triggerer: the operator mix-in and the templates it needs.

The scheduler defers such a task before any worker sees it, so its arguments cannot come
from the operator: the trigger's templates pull them from the upstream tasks' XComs,
rendered by the triggerer for the task's own map index.

The triggerer can only fetch whole XComs (its supervisor serves no item of a list), so a
template must never pull the plan to pick one batch out of it: every one of n triggers
would fetch all n batches, and a 5,000-batch load spent its first half hour doing only
that. The plan task publishes its first batch number instead (``FIRST_BATCH_KEY``); a
plan's numbers are consecutive, so map index ``i`` is batch ``first + i``.
"""

from __future__ import annotations

from typing import Any, NoReturn

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowException, AirflowFailException
from airflow.triggers.base import StartTriggerArgs

from lead_load.core.ledger_rules import first_batch_no


def from_xcom(task_id: str, pick: str = "", as_json: bool = True) -> str:
    """A template the triggerer renders: the XCom of unmapped task ``task_id``, then ``pick``."""
    pulled = f"ti.xcom_pull(task_ids='{task_id}', map_indexes=-1){pick}"
    return "{{ " + pulled + (" | tojson" if as_json else "") + " }}"


FIRST_BATCH_KEY = "first_batch_no"


def batch_at_map_index(plan_task_id: str) -> str:
    """A template the triggerer renders: ``{"batch_no": first + map_index}`` as JSON, from
    the scalar XCom ``FIRST_BATCH_KEY`` of ``plan_task_id`` (one small fetch per trigger)."""
    first = f"ti.xcom_pull(task_ids='{plan_task_id}', key='{FIRST_BATCH_KEY}', map_indexes=-1)"
    return "{{ {'batch_no': " + first + " + ti.map_index} | tojson }}"


def publish_first_batch_no(ti: Any, batches: list[dict[str, Any]]) -> None:
    """Push the plan's first batch number for ``batch_at_map_index`` (nothing for an empty
    plan: no task is mapped over it)."""
    if batches:
        ti.xcom_push(key=FIRST_BATCH_KEY, value=first_batch_no([b["batch_no"] for b in batches]))


def raise_trigger_error(event: dict[str, Any]) -> NoReturn:
    """Raise, on the worker, the error a trigger ended with (``triggers.error_event``), so
    the task log shows it and Airflow's retries apply: retried unless the event says no
    retry can help."""
    message = f"{event.get('error', 'error')}: {event.get('message')}"
    if event.get("retryable", True):
        raise AirflowException(message)
    raise AirflowFailException(message)


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
