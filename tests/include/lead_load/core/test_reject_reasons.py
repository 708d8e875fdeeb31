"""Reject reasons: one spelling per kind, read back the same way by every counter."""

from __future__ import annotations

import pytest

from lead_load.core import reject_reasons
from lead_load.core.reject_reasons import (
    DUPLICATE_IN_RUN_TEMPLATE,
    NO_REASON,
    RejectKind,
    RejectReason,
    by_kind,
    figure_of,
    invalid_by_kind,
    kind_of,
    parse,
)


@pytest.mark.parametrize(
    ("stored", "kind"),
    [
        ("not_mobile", "not_mobile"),
        ("invalid_field: grade_id must be an integer (got 'abc')", "invalid_field"),
        ("invalid_field:no space", "invalid_field"),
        ("duplicate_in_run (kept lead 7)", "duplicate_in_run"),
        ("duplicate_in_run(kept lead 7)", "duplicate_in_run"),
        ("  phone_already_loaded (by lead x)", "phone_already_loaded"),
        ("component_invalid: 数字 must be an integer", "component_invalid"),
        ("", NO_REASON),
        (None, NO_REASON),
        (": detail without a kind", NO_REASON),
    ],
)
def test_the_kind_is_read_the_same_whatever_follows_it(stored, kind):
    assert kind_of(stored) == kind


def test_reasons_are_written_in_the_spellings_the_ledger_holds():
    assert str(RejectReason(RejectKind.NOT_MOBILE)) == "not_mobile"
    assert str(RejectReason.invalid_field("name is too long")) == "invalid_field: name is too long"
    assert str(RejectReason.duplicate_in_run(7)) == "duplicate_in_run (kept lead 7)"
    assert str(RejectReason.phone_already_loaded("x")) == "phone_already_loaded (by lead x)"
    assert DUPLICATE_IN_RUN_TEMPLATE.format("k") == "duplicate_in_run (kept lead k)"
    assert str(RejectReason.suppressed()) == "suppressed"
    assert str(RejectReason.suppressed(3)) == "suppressed: taken out of batch 3 before posting"


@pytest.mark.parametrize(
    "reason",
    [
        RejectReason(RejectKind.MISSING_PHONE),
        RejectReason.invalid_field("sex value 'x' is not in sex_values"),
        RejectReason.duplicate_in_run("lead (with parentheses)"),
        RejectReason.phone_already_loaded(12),
        RejectReason.suppressed(),
        RejectReason.suppressed(7),
    ],
)
def test_a_written_reason_parses_back_to_itself(reason):
    assert parse(str(reason)) == RejectReason(reason.kind, reason.detail, reason.yields)
    assert str(parse(str(reason))) == str(reason)


def test_each_kind_counts_in_one_figure():
    assert figure_of("duplicate_in_run") == "duplicates_in_run"
    assert figure_of("phone_already_loaded") == "already_loaded"
    # A suppressed phone is no bad data: its own figure, not invalid (nor the reject ratio).
    assert figure_of(kind_of(str(RejectReason.suppressed(2)))) == "suppressed"
    assert "suppressed" not in reject_reasons.INVALID_KINDS
    assert {figure_of(kind) for kind in reject_reasons.INVALID_KINDS} == {"invalid"}
    assert figure_of("a_kind_of_an_older_release") == "invalid"


def test_counts_are_summed_per_kind_most_frequent_first():
    counts = {
        "invalid_field:": 2,  # a first word as SQL groups it
        "invalid_field": 1,
        "not_mobile": 4,
        "duplicate_in_run": 3,
        "suppressed": 2,
        None: 1,
    }
    assert list(by_kind(counts).items()) == [
        ("not_mobile", 4),
        ("duplicate_in_run", 3),
        ("invalid_field", 3),
        ("suppressed", 2),
        (NO_REASON, 1),
    ]
    assert invalid_by_kind(by_kind(counts)) == {
        "not_mobile": 4,
        "invalid_field": 3,
        NO_REASON: 1,
    }
