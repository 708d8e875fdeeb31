"""Staging: a run's extracted leads become ledger rows exactly once per calling task.

The extract writes candidates (``add_candidates``) and rejects (``add_rejects``) per chunk as
it streams; ``stage_candidates`` then decides every candidate against the ledger, with the
engine the database gets. ``clear_run`` forgets what an earlier try left, first thing in a
retry. Callers use these names from here; the package's modules:

- ``engines``: the engines' one interface (``StagingEngine``), the one choice of engine by
  dialect (``for_database``), ``add_rejects`` and ``stage_candidates``;
- ``postgres``: the set-based engine (PostgreSQL);
- ``portable``: the engine for any database, slice by slice;
- ``tables``: what both engines share of the candidates and rejects tables and the calling
  task's staging lock, ``add_candidates``, ``payload_json`` and ``clear_run``;
- ``outcomes``: the decisions staging adds, the reasons it writes, ``StagingCounts``.
"""

from lead_load.ledger.staging.engines import add_rejects, stage_candidates
from lead_load.ledger.staging.outcomes import (
    DUPLICATE_IN_RUN,
    PHONE_ALREADY_LOADED,
    StagingCounts,
)
from lead_load.ledger.staging.postgres import refresh_statistics
from lead_load.ledger.staging.tables import add_candidates, clear_run, payload_json

__all__ = [
    "DUPLICATE_IN_RUN",
    "PHONE_ALREADY_LOADED",
    "StagingCounts",
    "add_candidates",
    "add_rejects",
    "clear_run",
    "payload_json",
    "refresh_statistics",
    "stage_candidates",
]
