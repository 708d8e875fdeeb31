"""How staging's decisions are counted."""

from __future__ import annotations

import pytest

from lead_load.core.ledger_rules import StagingDecision
from lead_load.ledger import staging
from lead_load.ledger.staging.outcomes import DUPLICATE, STAGED_BY_THIS_RUN, StagingCounts


def test_counting_an_unknown_decision_fails_loudly():
    with pytest.raises(ValueError, match="unknown staging decision"):
        staging.StagingCounts().add("made_up", 1)


def test_each_decision_counts_in_one_figure():
    counts = StagingCounts()
    for decision in (*StagingDecision, DUPLICATE, STAGED_BY_THIS_RUN):
        counts.add(decision, 1)
    assert counts.as_dict() == {
        "staged": 3,  # new, staged again, staged by an earlier try of the run
        "duplicates_in_run": 1,
        "already_loaded": 2,  # loaded before, or the phone another lead's
        "in_flight": 1,
        "suppressed": 1,  # the phone is on the suppression list
    }
