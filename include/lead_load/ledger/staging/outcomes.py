"""What staging decides for a run's candidates, and how the decisions are counted.

Both engines decide with ``core.ledger_rules.decide_staging`` (the set-based one through a
SQL expression built from it), add the two decisions below of their own, write the same two
reasons, and count into the same ``StagingCounts``. The order of the decisions is
``decide_staging``'s docstring: duplicates in the run and this run's own earlier rows first,
then a phone on the suppression list, then the ledger's decisions.
"""

from __future__ import annotations

from dataclasses import dataclass

from lead_load.core.ledger_rules import StagingDecision
from lead_load.core.reject_reasons import (
    DUPLICATE_IN_RUN_TEMPLATE,
    PHONE_ALREADY_LOADED_TEMPLATE,
    SUPPRESSED_REASON,
)

# The reasons staging writes itself ("{}": the other lead).
DUPLICATE_IN_RUN = DUPLICATE_IN_RUN_TEMPLATE
PHONE_ALREADY_LOADED = PHONE_ALREADY_LOADED_TEMPLATE
SUPPRESSED = SUPPRESSED_REASON

# What staging decides for a candidate besides decide_staging's decisions: it lost its phone
# to a more recent lead of the run, or an earlier try of this same run staged it.
DUPLICATE = "duplicate_in_run"
STAGED_BY_THIS_RUN = "staged_by_this_run"


@dataclass
class StagingCounts:
    staged: int = 0
    duplicates_in_run: int = 0
    already_loaded: int = 0
    in_flight: int = 0
    suppressed: int = 0

    def as_dict(self) -> dict[str, int]:
        return dict(self.__dict__)

    def add(self, decision: str, leads: int) -> None:
        """Count ``leads`` candidates decided ``decision`` (a StagingDecision, DUPLICATE or
        STAGED_BY_THIS_RUN)."""
        if decision == DUPLICATE:
            self.duplicates_in_run += leads
        elif decision in (STAGED_BY_THIS_RUN, StagingDecision.STAGE_NEW, StagingDecision.RESTAGE):
            self.staged += leads
        elif decision in (StagingDecision.ALREADY_LOADED, StagingDecision.PHONE_TAKEN):
            self.already_loaded += leads
        elif decision == StagingDecision.IN_FLIGHT:
            self.in_flight += leads
        elif decision == StagingDecision.SUPPRESSED:
            self.suppressed += leads
        else:
            raise ValueError(f"unknown staging decision {decision!r}")
