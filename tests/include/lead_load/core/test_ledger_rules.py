"""The ledger's pure rules."""

from __future__ import annotations

import pytest

from lead_load.core.ledger_rules import (
    StagingDecision,
    Status,
    batch_count,
    check_map_limit,
    decide_staging,
    first_batch_no,
    outcome_statuses,
)


@pytest.mark.parametrize(
    ("status", "holder", "expected"),
    [
        # No row for this lead and phone: a new lead, or a known lead with a new phone.
        (None, None, StagingDecision.STAGE_NEW),
        (None, "other-lead", StagingDecision.PHONE_TAKEN),
        ("rejected", None, StagingDecision.RESTAGE),
        ("imported", "lead", StagingDecision.ALREADY_LOADED),
        ("not_imported", None, StagingDecision.ALREADY_LOADED),
        ("submitted", "lead", StagingDecision.IN_FLIGHT),
        ("sending", "lead", StagingDecision.IN_FLIGHT),
        ("staged", "lead", StagingDecision.IN_FLIGHT),
    ],
)
def test_staging_decisions(status, holder, expected):
    assert decide_staging(status, holder, "lead") == expected


@pytest.mark.parametrize("status", [None, *Status, "a status of a later release"])
@pytest.mark.parametrize("holder", [None, "lead", "other-lead"])
def test_a_suppressed_phone_is_decided_before_anything_the_ledger_says(status, holder):
    assert decide_staging(status, holder, "lead", suppressed=True) == StagingDecision.SUPPRESSED


def test_outcome_uses_the_callback_and_what_the_task_holds():
    statuses = outcome_statuses(["a", "b", "c"], imported={"a"}, found_in_calling_task={"c"})
    assert statuses == {"a": Status.IMPORTED, "b": Status.NOT_IMPORTED, "c": Status.IMPORTED}


def test_batch_count_and_its_bounds():
    assert batch_count(0, 200) == 0
    assert batch_count(401, 200) == 3
    with pytest.raises(ValueError, match="between 1 and 200"):
        batch_count(10, 201)


def test_map_limit_names_the_setting():
    check_map_limit(1024, 1024)
    with pytest.raises(ValueError, match=r"\[core\] max_map_length"):
        check_map_limit(1025, 1024)


def test_the_map_limit_message_says_what_a_shorter_window_can_do():
    with pytest.raises(ValueError, match="load a shorter window"):
        check_map_limit(1025, 1024)
    with pytest.raises(ValueError, match="900 of the rows to send were left staged") as error:
        check_map_limit(1025, 1024, carried_rows=900)
    assert "shorter window does not shrink" in str(error.value)
    check_map_limit(1024, 1024)  # at the limit: fine


def test_the_first_batch_number_of_a_consecutive_plan():
    assert first_batch_no([4, 5, 6]) == 4
    assert first_batch_no([0]) == 0
    with pytest.raises(ValueError, match="not consecutive"):
        first_batch_no([4, 6, 7])
    with pytest.raises(ValueError, match="empty plan"):
        first_batch_no([])
