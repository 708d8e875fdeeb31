"""What the staging tests share: which engine a ledger gets, ledger rows to start from, and
the statements a staging sends."""

from __future__ import annotations

from sqlalchemy import event

from lead_load.ledger import schema, staging
from tests.include.lead_load.samples import TASK, candidate


def set_based(engine) -> bool:
    return engine.dialect.name == "postgresql"


def ledger_row(lead_id: str, phone: str, status: str, **values) -> dict:
    return {
        "api_task_id": TASK,
        "lead_id": lead_id,
        "phone": phone,
        "status": status,
        "reason": None,
        "run_id": "run-0",
        "created_at": schema.now(),
        "updated_at": schema.now(),
        **values,
    }


def staging_statements(engine, leads: int, task: str = TASK) -> tuple[list, list]:
    """(statements while writing candidates and rejects, statements while staging) for
    ``leads`` candidates in 4 extract chunks, the last quarter reusing the phones of the
    first and newer (so they win: a quarter loses to a lead of another chunk), and 30 bad
    rows. Each statement: (SQL, rows, bound values)."""
    statements: list[tuple[str, int, int]] = []

    def record(conn, cursor, statement, parameters, context, executemany):
        rows = list(parameters) if executemany else [parameters]
        statements.append((statement, len(rows), sum(len(row or ()) for row in rows)))

    run = f"run-for-{task}"
    quarter = leads // 4
    rows = [
        candidate(f"l{i:04d}", f"139{i % (3 * quarter):08d}", f"2026-11-24 {i // quarter:02d}:00")
        for i in range(leads)
    ]
    event.listen(engine, "before_cursor_execute", record)
    try:
        for start in range(0, leads, quarter):
            staging.add_candidates(engine, run, rows[start : start + quarter])
        bad = ({"lead_id": f"x{i}", "raw_phone": "n/a", "reason": "not_a_phone"} for i in range(30))
        staging.add_rejects(engine, run, task, bad)
        staging_starts = len(statements)
        counts = staging.stage_candidates(engine, run, task)
    finally:
        event.remove(engine, "before_cursor_execute", record)
    assert (counts.staged, counts.duplicates_in_run) == (3 * quarter, quarter)
    return statements[:staging_starts], statements[staging_starts:]
