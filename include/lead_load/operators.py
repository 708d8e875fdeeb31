"""Airflow operators of the lead_load DAG that need more than TaskFlow."""

from __future__ import annotations

from typing import Any

from agent_api.sensors.callback import AgentApiCallbackSensor, BatchOutcome
from lead_load import pipeline
from lead_load.connections import ledger_engine


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
