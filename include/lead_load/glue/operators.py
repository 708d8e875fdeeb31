"""The operator that posts one planned batch (mapped as ``post_batch``)."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

from airflow.triggers.base import StartTriggerArgs

from lead_load.glue.start_in_triggerer import StartsInTriggerer, raise_trigger_error

# How long one batch may take in the triggerer, waits for the request rate included.
POST_TIMEOUT = timedelta(hours=1)


def post_in_triggerer(ledger: dict[str, Any] | None = None) -> StartTriggerArgs:
    """Start each mapped ``PostBatchOperator`` in the triggerer instead of on a worker; the
    trigger reads its settings and batch from the ledger (see ``start_in_triggerer``), which
    ``ledger`` finds (the load's ``ledger_conn_id`` and ``warehouse_conn_id``; Airflow's
    defaults when left out)."""
    return StartTriggerArgs(
        trigger_cls="lead_load.glue.triggers.PostBatchTrigger",
        trigger_kwargs=dict(ledger or {}),
        next_method="execute_complete",
        timeout=POST_TIMEOUT,
    )


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
        # Imported here: parsing the DAG file must not import pandas and the HTTP client.
        from lead_load.glue.batch_steps import post_planned_batch
        from lead_load.steps.post import LeaseHeld

        while True:
            outcome = post_planned_batch(self.settings, self.batch, context["ti"].try_number)
            if not isinstance(outcome, LeaseHeld):
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
        raise_trigger_error(event)
