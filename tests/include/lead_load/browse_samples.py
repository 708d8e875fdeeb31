"""Two real loads into a simulator task, for the tests of what the ledger shows people
(the tests of ledger/browse/ and of the Lead loads page).

``run-0`` stages two leads and dies before posting (its row says failed); ``run-1`` then
loads the next day's window through the real steps (extract, plan, post to the simulator,
settle, report) and takes run-0's rows over. Every phone starts with 139, so a test can look
for a full number in whatever it renders.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import text

from agent_api.hooks.agent_api import AgentApiHook
from lead_load.core.mapping import FieldMapping
from lead_load.core.window import sql_bounds
from lead_load.ledger import run_lifecycle, schema, settling
from lead_load.steps import extract, plan, post, report, settle
from tests.include.lead_load.samples import run_settings

REPO = Path(__file__).resolve().parents[3]
BATCH_SIZE = 2

# (lead_id, phone as the warehouse holds it, updated_at)
DAY_0 = [
    ("y", "13900000098", "2026-11-23 08:00:00"),
    ("z", "13900000099", "2026-11-23 09:00:00"),
]
DAY_1 = [
    ("a", "13900000001", "2026-11-24 09:00:00"),
    ("b", "139 0000 0002", "2026-11-24 09:00:00"),
    ("c", "+86 13900000003", "2026-11-24 09:00:00"),
    ("d", "13900000004", "2026-11-24 09:00:00"),
    ("e", "13900000005", "2026-11-24 09:00:00"),  # already in the task: not imported
    ("f", "12345", "2026-11-24 09:00:00"),  # not a mobile number
    ("g", "021-5555-12345", "2026-11-24 09:00:00"),  # a fixed line, 12 digits
    ("h", "139-0000-0001", "2026-11-24 08:00:00"),  # a's number, older: duplicate
    ("i", None, "2026-11-24 09:00:00"),  # no phone
]
# The valid leads' numbers, as the load normalises them.
PHONES = {lead: f"139000000{n:02d}" for lead, n in zip("abcde", range(1, 6), strict=True)}
PHONES |= {"y": "13900000098", "z": "13900000099"}


@dataclass
class Loaded:
    task_id: str
    counts: dict  # run-1's extract counts


def load_two_runs(engine, platform) -> Loaded:
    schema.create_tables(engine)
    _leads_table(engine)
    platform.land([PHONES["e"]])  # e's number is in the task before the load
    task = platform.task_id
    day0 = _settings("run-0", task, "2026-11-23")
    run_lifecycle.start_run(engine, "run-0", task, (day0.window_start, day0.window_end))
    _extract(engine, day0)
    run_lifecycle.finish_run(
        engine, "run-0", task, (day0.window_start, day0.window_end), {}, failed=True
    )

    day1 = _settings("run-1", task, "2026-11-24")
    run_lifecycle.start_run(engine, "run-1", task, (day1.window_start, day1.window_end))
    counts = _extract(engine, day1)
    hook = AgentApiHook()
    for batch in plan.plan(day1, engine, 10_000):
        post.post_batch(day1, batch["batch_no"], engine, hook, owner="browse-test")
    platform.sim.wait_until_processed()
    for unique_id in settling.awaiting_callback(engine, "run-1"):
        payload = hook.get_callback(unique_id)
        numbers = set(hook.download_numbers(payload["data"]["url"]))
        settle.apply_outcome(day1, engine, hook, unique_id, numbers)
    report.report(day1, engine, counts, landing={"counts": {}})
    return Loaded(task, counts)


def _settings(run_id: str, task: str, day: str):
    start = datetime.fromisoformat(f"{day}T00:00:00+00:00")
    return run_settings(
        run_id=run_id,
        api_task_id=task,
        window_start=start.isoformat(),
        window_end=(start + timedelta(days=1)).isoformat(),
        batch_size=BATCH_SIZE,
        max_reject_ratio=1.0,
    )


def _extract(engine, settings) -> dict:
    folder = REPO / "include" / "sql"
    if engine.dialect.name == "sqlite":  # its own query: updated_at is text there
        folder = folder / "sqlite"
    window = [
        datetime.fromisoformat(v).astimezone(UTC)
        for v in (settings.window_start, settings.window_end)
    ]
    return extract.extract_and_stage(
        settings,
        (folder / "extract_leads.sql").read_text(),
        sql_bounds(*window, engine.dialect.name),
        engine,
        engine,
        AgentApiHook(),
        FieldMapping.load(),
    )


def _leads_table(engine) -> None:
    with engine.begin() as conn:
        conn.execute(
            text(
                "CREATE TABLE leads (lead_id VARCHAR(64), name VARCHAR(200), phone VARCHAR(64), "
                "email VARCHAR(200), company VARCHAR(200), sex VARCHAR(16), source_id INTEGER, "
                "industry_id INTEGER, grade_id INTEGER, updated_at TIMESTAMP)"
            )
        )
        conn.execute(
            text("INSERT INTO leads (lead_id, phone, updated_at) VALUES (:l, :p, :u)"),
            [{"l": lead, "p": phone, "u": updated} for lead, phone, updated in DAY_0 + DAY_1],
        )


def ledger_rows(engine) -> list[dict]:
    with engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(schema.ledger.select())]
