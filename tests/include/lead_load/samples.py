"""Sample values for the lead_load tests: run settings, candidates to stage, ledger statuses."""

from __future__ import annotations

from lead_load.core.run_settings import RunSettings
from lead_load.ledger import schema

TASK = "task-1"


def candidate(lead_id: str, phone: str, updated_at: str = "2026-11-24 10:00:00") -> dict:
    return {
        "lead_id": lead_id,
        "phone": phone,
        "updated_at": updated_at,
        "payload": {"phone": phone, "sort": 0, "extra": lead_id},
    }


def statuses(engine) -> dict[str, str]:
    with engine.connect() as conn:
        rows = conn.execute(schema.ledger.select().where(schema.ledger.c.api_task_id == TASK))
        return {r.lead_id: r.status for r in rows}


def run_settings(**overrides) -> RunSettings:
    values = {
        "run_id": "run-1",
        "api_task_id": TASK,
        "window_start": "2026-11-24T00:00:00+00:00",
        "window_end": "2026-11-25T00:00:00+00:00",
        "batch_size": 2,
        **overrides,
    }
    return RunSettings(**values)
