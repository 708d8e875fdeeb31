"""Mapped tasks that start in the triggerer: the operator mix-in and the templates it needs.

The scheduler defers such a task before any worker sees it, so its arguments cannot come
from the operator: the trigger's templates pull them from the upstream tasks' XComs,
rendered by the triggerer for the task's own map index.
"""

from __future__ import annotations

from typing import Any

from airflow.sdk import BaseOperator
from airflow.triggers.base import StartTriggerArgs


def from_xcom(task_id: str, pick: str = "", as_json: bool = True) -> str:
    """A template the triggerer renders: the XCom of unmapped task ``task_id``, then ``pick``."""
    pulled = f"ti.xcom_pull(task_ids='{task_id}', map_indexes=-1){pick}"
    return "{{ " + pulled + (" | tojson" if as_json else "") + " }}"


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
