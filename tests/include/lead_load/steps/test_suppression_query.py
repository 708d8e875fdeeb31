"""A load's own suppression query, run on a real warehouse (the ``engine`` fixture: SQLite,
PostgreSQL, MariaDB) into that database's suppression list."""

from __future__ import annotations

import logging

import pytest
from sqlalchemy import text

from lead_load.ledger import suppressions
from lead_load.ledger.suppressions import Entry
from lead_load.steps import suppression_query
from lead_load.steps.suppression_query import SuppressionQueryError, add_from_query

OPT_OUTS = [
    ("+86 139 0000 0001", "asked by phone"),
    ("139-0000-0002", None),
    ("12345", "not a mobile number"),
    (None, "no number at all"),
    ("13900000001", "the same number again"),
]


def opt_outs(engine) -> None:
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE crm_opt_outs (mobile VARCHAR(40), why VARCHAR(200))"))
        conn.execute(
            text("INSERT INTO crm_opt_outs VALUES (:mobile, :why)"),
            [{"mobile": m, "why": w} for m, w in OPT_OUTS],
        )


def test_the_querys_numbers_go_on_the_list_normalised_and_bad_ones_are_skipped(
    engine, caplog: pytest.LogCaptureFixture
):
    opt_outs(engine)
    suppressions.add(engine, [Entry("13900000002", "added by hand")], added_by="ops")
    sql = "SELECT mobile AS phone, why AS reason FROM crm_opt_outs"
    with caplog.at_level(logging.INFO):
        counts = add_from_query(engine, engine, sql, "win_back")
    # 13900000001 is returned twice and added once; 13900000002 was listed by hand.
    assert counts == {"returned": 5, "added": 1, "already": 1, "unreadable": 2}
    listed = {s.phone: s for s in suppressions.listed(engine)}
    assert set(listed) == {"13900000001", "13900000002"}
    assert listed["13900000001"].reason == "asked by phone"
    assert listed["13900000001"].added_by == suppression_query.added_by("win_back")
    assert listed["13900000002"].added_by == "ops"  # there before: left as it was
    said = caplog.text
    assert "5 numbers returned, 1 added to the suppression list, 1 on it already, 2 no " in said
    assert "13900000001" not in said and "12345" not in said

    # Run again: nothing changes; and a number the query stops returning stays listed.
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM crm_opt_outs WHERE why = 'asked by phone'"))
    again = add_from_query(engine, engine, sql, "win_back")
    assert again["added"] == 0
    assert {s.phone for s in suppressions.listed(engine)} == {"13900000001", "13900000002"}


def test_a_query_without_a_phone_column_fails_saying_what_it_returns(engine):
    opt_outs(engine)
    with pytest.raises(SuppressionQueryError, match=r"must return a column named phone.*mobile"):
        add_from_query(engine, engine, "SELECT mobile, why FROM crm_opt_outs", "win_back")
    assert list(suppressions.listed(engine)) == []


def test_a_reason_holding_a_number_is_kept_masked(engine):
    sql = "SELECT '13900000007' AS phone, 'called back on 13900000008' AS reason"
    add_from_query(engine, engine, sql, "win_back")
    (entry,) = suppressions.listed(engine)
    assert entry.reason == "called back on 139****0008"
