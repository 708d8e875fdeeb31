"""The staging engines' one interface, which engine a database gets, and the two calls of a
run that go through it.

A staging engine turns a run's candidates and rejects into ledger rows, exactly once per
calling task: each candidate that lost its phone to a more recent lead of the run (in
another extract chunk) is rejected as a duplicate, every other one is decided with
``core.ledger_rules.decide_staging``. Two engines, the same rows, rejects and counts:

- ``postgres``: set-based, a fixed handful of statements for the whole run;
- ``portable``: any database (PostgreSQL too), slice by slice, every row found by key.

Both hold the calling task's staging lock (``tables.lock_calling_task``) while they decide
and write, so two runs staging the same leads at once stage each lead once; the partial
unique index (one active row per calling task and phone) stays the last guard.

Memory: candidates and rejects are written in slices of at most ``CHUNK`` rows (or streamed
through COPY), and an engine reads at most a slice at a time (portable) or nothing but
counts (set-based), so the Python process never holds a run.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Protocol, runtime_checkable

from sqlalchemy import Engine

from lead_load.ledger.staging import portable, postgres
from lead_load.ledger.staging.outcomes import StagingCounts
from lead_load.ledger.staging.tables import ensure_calling_task_lock, forget_candidates, reject_row


@runtime_checkable
class StagingEngine(Protocol):
    """What an engine does for a run; the modules ``portable`` and ``postgres`` are the two.

    Two methods, not one: an engine writes a reject's ledger row either as the reject comes
    (portable) or with the whole run (set-based: a statement per slice was planned badly
    there), so the engine that stages a run is the one that recorded its rejects.
    """

    def add_rejects(
        self, engine: Engine, run_id: str, api_task_id: str, rows: Iterable[dict[str, Any]]
    ) -> int:
        """Record rejects (rows of ``tables.reject_row``) in ``lead_load_rejects``; their
        ledger rows are written here or by ``stage``. The number of rejects recorded."""
        ...

    def stage(self, engine: Engine, run_id: str, api_task_id: str) -> StagingCounts:
        """Decide every candidate of the run and write the decisions and the ledger rows of
        the run's rejects, holding the calling task's staging lock (its row exists). The candidates
        are left for the caller to forget."""
        ...


def for_database(engine: Engine) -> StagingEngine:
    """The engine that stages on ``engine``'s database: the one place the choice is made.

    PostgreSQL stages set-based: its statements are PostgreSQL's own SQL (``DISTINCT ON``,
    ``UPDATE ... FROM``, ``ANALYZE``, ``plan_cache_mode``), and they are only safe where the
    statistics can be refreshed and every plan made for its values. Any other database gets
    the portable engine, whose look-ups by key have only one plan.
    """
    return postgres if engine.dialect.name == "postgresql" else portable


def add_rejects(
    engine: Engine, run_id: str, api_task_id: str, rows: Iterable[dict[str, Any]]
) -> int:
    """Record rows that will not be sent (lead_id, raw_phone, reason), in both tables.

    The ledger only gets a ``rejected`` row where the lead has none or a rejected one: a lead
    imported before stays imported when a later extract of it is bad. The set-based engine
    writes the ledger's rows with ``stage_candidates``, those of the whole run in one go; the
    portable one here, a slice at a time.
    """
    return for_database(engine).add_rejects(engine, run_id, api_task_id, map(reject_row, rows))


def stage_candidates(engine: Engine, run_id: str, api_task_id: str) -> StagingCounts:
    """Turn this run's candidates into staged ledger rows, one per phone, exactly once.

    The engine of the database decides and writes under the calling task's staging lock, so that two
    runs at once decide on what the other has committed: PostgreSQL the whole run in one
    transaction, in SQL; elsewhere slice by slice in lead id order, one transaction per
    slice. The candidates are deleted at the end, so each slice sees the whole run when it
    looks for the lead kept for a phone.
    """
    ensure_calling_task_lock(engine, api_task_id)
    counts = for_database(engine).stage(engine, run_id, api_task_id)
    forget_candidates(engine, run_id)
    return counts
