"""The set-based engine (PostgreSQL): as many statements for any run, each planned on fresh
statistics, decisions in SQL that are decide_staging's, and the candidates table it wants.
On the other databases of the fixture these tests skip."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from lead_load.core.ledger_rules import StagingDecision, Status, decide_staging
from lead_load.ledger import schema
from lead_load.ledger.staging import postgres
from tests.include.lead_load.ledger.staging.staging_samples import set_based, staging_statements


def test_set_based_staging_sends_as_many_statements_for_any_run(engine):
    """PostgreSQL stages a run with the same statements whatever its size, each planned on
    fresh statistics: the candidates are ANALYZEd before the statement that decides them (the
    ledger and the rejects too when autovacuum would have), and every statement is planned
    with its parameters (no generic plan)."""
    if not set_based(engine):
        pytest.skip("the portable path sends a few statements per slice")
    _, small = staging_statements(engine, 40, task="task-1")
    _, large = staging_statements(engine, 400, task="task-2")

    def shape(statements):
        sqls = [" ".join(sql.split())[:50] for sql, _, _ in statements]
        return [
            sql
            for sql in sqls
            if sql not in {"ANALYZE lead_load_ledger", "ANALYZE lead_load_rejects"}
        ]

    assert shape(small) == shape(large)
    sqls = shape(large)
    analyze = sqls.index("ANALYZE lead_load_candidates")
    custom_plans = next(i for i, sql in enumerate(sqls) if "plan_cache_mode" in sql)
    decide = next(i for i, sql in enumerate(sqls) if "INTO lead_load_staging_decisions" in sql)
    assert analyze < custom_plans < decide
    assert len(sqls) <= 25


def test_the_sql_decisions_are_decide_staging(engine):
    """PostgreSQL decides in SQL: the expression, built from decide_staging, gives what the
    function gives for every status (and one it does not know), every kind of holder, and a
    phone on the suppression list or not."""
    if not set_based(engine):
        pytest.skip("the portable path calls decide_staging itself")
    statuses_ = [None, *Status, "a_later_status"]
    holders = [None, "lead", "another lead"]
    cases = [
        (status, holder, listed)
        for status in statuses_
        for holder in holders
        for listed in (False, True)
    ]
    values = ", ".join(
        f"({i}, CAST(:s{i} AS TEXT), CAST(:h{i} AS TEXT), CAST(:l{i} AS BOOLEAN))"
        for i in range(len(cases))
    )
    params = {f"s{i}": status for i, (status, _, _) in enumerate(cases)}
    params |= {f"h{i}": holder for i, (_, holder, _) in enumerate(cases)}
    params |= {f"l{i}": listed for i, (_, _, listed) in enumerate(cases)}
    expression = postgres._decide_staging_sql("status", "holder", "'lead'", "listed")
    query = f"SELECT i, {expression} FROM (VALUES {values}) AS c (i, status, holder, listed)"  # noqa: S608
    with engine.connect() as conn:
        got = dict(conn.execute(text(query), params).all())
    expected = {
        i: decide_staging(status, holder, "lead", listed)
        for i, (status, holder, listed) in enumerate(cases)
    }
    assert {i: StagingDecision(d) for i, d in got.items()} == expected


def test_the_candidates_table_on_postgres_is_unlogged_and_has_no_phone_index(engine):
    """Also for a table an older release made (logged, with the phone index)."""
    if not set_based(engine):
        pytest.skip("PostgreSQL's set-based staging only")

    def shape():
        with engine.connect() as conn:
            return conn.execute(
                text(
                    "SELECT relpersistence, to_regclass('ix_lead_load_candidates_phone') "
                    "FROM pg_class WHERE oid = to_regclass('lead_load_candidates')"
                )
            ).one()

    assert tuple(shape()) == ("u", None)
    with engine.begin() as conn:
        conn.execute(text("ALTER TABLE lead_load_candidates SET LOGGED"))
        conn.execute(
            text(
                "CREATE INDEX ix_lead_load_candidates_phone ON lead_load_candidates (run_id, phone)"
            )
        )
    schema.create_tables(engine)
    assert tuple(shape()) == ("u", None)
