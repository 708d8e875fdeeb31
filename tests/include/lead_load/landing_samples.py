"""A simulator task with real numbers in it, and the ledger rows a run would have left:
the material of the landing-check tests and of the command's."""

import itertools
import json
from dataclasses import dataclass

from sqlalchemy import insert, select, update

from agent_api.hooks.agent_api import AgentApiHook
from lead_load.core.ledger_rules import Status
from lead_load.ledger import schema

RUN = "run-1"
_numbers = itertools.count(1)


@dataclass
class Platform:
    sim: object
    user_id: str
    task_id: str
    conn_json: str

    @property
    def hook(self) -> AgentApiHook:
        return AgentApiHook()

    def land(self, phones: list[str]) -> str:
        """Really import ``phones`` into the task; returns the batch's unique_id."""
        rows = [{"phone": phone, "sort": 0} for phone in phones]
        unique_id = self.hook.post_async_number(self.task_id, rows)
        self.sim.process()
        return unique_id


def phones(count: int) -> list[str]:
    return [f"137{next(_numbers):08d}" for _ in range(count)]


def add_row(engine, task, lead, phone, status, run_id=RUN, batch_no=None, unique_id=None):
    stamp = schema.now()
    with engine.begin() as conn:
        conn.execute(
            insert(schema.ledger).values(
                api_task_id=task,
                lead_id=lead,
                phone=phone,
                status=status.value,
                run_id=run_id,
                batch_no=batch_no,
                unique_id=unique_id,
                payload=json.dumps({"phone": phone, "sort": 0, "extra": lead}),
                created_at=stamp,
                updated_at=stamp,
            )
        )


def set_row(engine, lead, **values):
    """A write by someone else: another connection, its own transaction."""
    values.setdefault("updated_at", schema.now())
    with engine.begin() as conn:
        conn.execute(update(schema.ledger).where(schema.ledger.c.lead_id == lead).values(**values))


def rows(engine) -> dict[str, dict]:
    with engine.connect() as conn:
        return {r.lead_id: dict(r._mapping) for r in conn.execute(select(schema.ledger))}


def clean_ledger(engine, platform: Platform) -> dict[str, str]:
    """What a finished run leaves: returns each lead's phone.

    a-d imported in one batch; e refused by the platform (absent); f staged for the next
    run; g rejected; h refused as a duplicate of a's number (a holds it); z imported by an
    earlier run.
    """
    ph = dict(zip("abcdefgz", phones(8), strict=True))
    ph["h"] = ph["a"]
    batch = platform.land([ph[lead] for lead in "abcd"])
    earlier = platform.land([ph["z"]])
    task = platform.task_id
    for lead in "abcd":
        add_row(engine, task, lead, ph[lead], Status.IMPORTED, batch_no=0, unique_id=batch)
    add_row(engine, task, "e", ph["e"], Status.NOT_IMPORTED, batch_no=0, unique_id=batch)
    add_row(engine, task, "f", ph["f"], Status.STAGED)
    add_row(engine, task, "g", ph["g"], Status.REJECTED)
    add_row(engine, task, "h", ph["h"], Status.NOT_IMPORTED, batch_no=0, unique_id=batch)
    add_row(engine, task, "z", ph["z"], Status.IMPORTED, "run-0", 0, earlier)
    with engine.begin() as conn:
        conn.execute(
            insert(schema.runs).values(
                run_id=RUN,
                api_task_id=task,
                window_start="2026-11-24T00:00:00+00:00",
                window_end="2026-11-25T00:00:00+00:00",
            )
        )
    return ph


def corrupt(engine) -> None:
    """The three corruptions: b present but not_imported, f imported but absent, e submitted
    but absent."""
    set_row(engine, "b", status=Status.NOT_IMPORTED.value, reason="absent from the callback")
    set_row(engine, "f", status=Status.IMPORTED.value, batch_no=0, unique_id="u-lost")
    set_row(engine, "e", status=Status.SUBMITTED.value)
