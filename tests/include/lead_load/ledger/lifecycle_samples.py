"""What the tests of the ledger's lifecycle modules (runs, planning, batches, settling) share:
a calling task, a window, and leads staged by a live run."""

from __future__ import annotations

from lead_load.ledger import batch_lifecycle, run_lifecycle, staging
from tests.include.lead_load.samples import candidate

TASK = "task-1"
WINDOW = ("2026-11-24T00:00:00+00:00", "2026-11-25T00:00:00+00:00")


def staged(engine, run_id: str, leads: dict[str, str]) -> None:
    run_lifecycle.start_run(engine, run_id, TASK, WINDOW)
    staging.add_candidates(
        engine, run_id, [candidate(lead, phone) for lead, phone in leads.items()]
    )
    staging.stage_candidates(engine, run_id, TASK)


def five_leads(prefix: str = "l") -> dict[str, str]:
    return {f"{prefix}{i}": f"1390000000{i}" for i in range(5)}


def batch_status(engine, run_id: str, batch_no: int) -> str:
    return batch_lifecycle.batch_state(engine, run_id, batch_no)["status"]
