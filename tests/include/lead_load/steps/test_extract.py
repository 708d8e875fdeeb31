"""The extract step against a real SQLite warehouse."""

from __future__ import annotations

import pytest

from lead_load.steps import extract
from tests.dags.conftest import REPO, sqlite_warehouse


def test_a_column_missing_from_the_extract_query_fails_at_once_naming_it(tmp_path):
    from airflow.sdk.exceptions import AirflowFailException
    from sqlalchemy import text

    warehouse = sqlite_warehouse(tmp_path).engine
    with warehouse.begin() as conn:
        conn.execute(text("CREATE TABLE leads (lead_id TEXT, modified TEXT)"))
    sql = "SELECT * FROM leads WHERE updated_at >= :window_start"
    with pytest.raises(extract.SourceSchemaError, match="no such column: updated_at") as error:
        list(extract.read_in_chunks(warehouse, sql, {"window_start": "2026-11-24"}))
    assert isinstance(error.value, AirflowFailException)  # not retried
    # Other database errors are left alone (and retried).
    with pytest.raises(Exception, match="syntax error") as other:
        list(extract.read_in_chunks(warehouse, "SELEC 1", {}))
    assert not isinstance(other.value, extract.SourceSchemaError)


def test_rows_without_updated_at_are_counted_for_the_summary(tmp_path, caplog):
    from sqlalchemy import text

    warehouse = sqlite_warehouse(tmp_path).engine
    with warehouse.begin() as conn:
        conn.execute(text("CREATE TABLE leads (lead_id TEXT, phone TEXT, updated_at TEXT)"))
        conn.execute(
            text(
                "INSERT INTO leads VALUES ('a', '13800138000', NULL), "
                "('b', '13900139000', '2026-11-24 10:00:00'), ('c', '13700137000', NULL)"
            )
        )
    sql = (REPO / "include" / "sql" / "count_missing_updated_at.sql").read_text()
    assert extract.count_missing_updated_at(warehouse, sql) == 2
    assert "2 rows of the leads table have no updated_at" in caplog.text
    # A count that cannot run (the table is elsewhere) informs, and fails nothing.
    assert extract.count_missing_updated_at(warehouse, "SELECT COUNT(*) FROM nowhere") is None


@pytest.mark.postgres
@pytest.mark.parametrize("column_type", ["TIMESTAMPTZ", "TIMESTAMP"])
def test_the_window_is_exact_whatever_the_database_time_zone(column_type):
    """A database whose sessions default to Asia/Shanghai (UTC+8): the window's UTC bounds
    still select exactly [start, end), for timestamptz and for timestamp kept in UTC."""
    from datetime import UTC, datetime

    from sqlalchemy import text

    from lead_load.core.window import sql_bounds
    from tests.dags.conftest import postgres_warehouse

    warehouse = postgres_warehouse()
    try:
        name = warehouse.engine.url.database
        with warehouse.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as c:
            c.execute(text(f"ALTER DATABASE \"{name}\" SET timezone TO 'Asia/Shanghai'"))
        warehouse.engine.dispose()  # new sessions take the database's zone
        literal = "+00" if column_type == "TIMESTAMPTZ" else ""  # timestamp: UTC by contract
        with warehouse.engine.begin() as conn:
            conn.execute(text(f"CREATE TABLE leads (lead_id TEXT, updated_at {column_type})"))
            for lead, moment in [
                ("before", "2026-11-23 23:59:59"),
                ("first", "2026-11-24 00:00:00"),
                ("eight-hours-in", "2026-11-24 07:30:00"),
                ("last", "2026-11-24 23:59:59"),
                ("after", "2026-11-25 00:00:00"),
            ]:
                cast = f"CAST(:moment AS {column_type})"  # one of the two types above
                conn.execute(
                    text("INSERT INTO leads VALUES (:lead, " + cast + ")"),  # noqa: S608
                    {"lead": lead, "moment": moment + literal},
                )
            assert conn.execute(text("SHOW timezone")).scalar() == "Asia/Shanghai"
        bounds = sql_bounds(
            datetime(2026, 11, 24, tzinfo=UTC), datetime(2026, 11, 25, tzinfo=UTC), "postgresql"
        )
        sql = (
            "SELECT lead_id FROM leads WHERE updated_at >= :window_start "
            "AND updated_at < :window_end ORDER BY updated_at"
        )
        chunks = list(extract.read_in_chunks(warehouse.engine, sql, bounds))
        assert [lead for chunk in chunks for lead in chunk["lead_id"]] == [
            "first",
            "eight-hours-in",
            "last",
        ]
    finally:
        for step in warehouse.cleanup:
            step()


DIRTY_LEADS_DDL = (
    "CREATE TABLE leads (lead_id VARCHAR(64), name VARCHAR(200), phone VARCHAR(64), "
    "email VARCHAR(200), company VARCHAR(200), sex VARCHAR(16), source_id INTEGER, "
    "industry_id INTEGER, grade_id INTEGER, updated_at TIMESTAMP)"  # no primary key
)


def test_repeated_and_missing_lead_ids_are_rejects_not_a_crash(engine):
    """A leads table without a primary key: two rows without a lead id, a lead twice in one
    chunk, a lead whose rows straddle two chunks. Each row is accounted for, nothing fails."""
    from sqlalchemy import select, text

    from lead_load.core.mapping import FieldMapping
    from lead_load.core.window import sql_bounds
    from lead_load.ledger import schema
    from tests.include.lead_load.samples import run_settings, statuses

    rows = [  # (lead_id, phone, updated_at), in the extract's lead id order
        ("a", "13800000001", "2026-11-24 01:00:00"),
        ("b", "13800000002", "2026-11-24 01:00:00"),  # b twice in chunk 1: the later one wins
        ("b", "13800000003", "2026-11-24 02:00:00"),
        ("c", "13800000004", "2026-11-24 01:00:00"),  # c straddles chunks 2 and 3
        ("c", "13800000005", "2026-11-24 03:00:00"),
        ("d", "13800000006", "2026-11-24 01:00:00"),
        (None, "13800000007", "2026-11-24 01:00:00"),  # two rows without a lead id
        (None, "13800000008", "2026-11-24 01:00:00"),
    ]
    with engine.begin() as conn:
        conn.execute(text(DIRTY_LEADS_DDL))
        for lead, phone, updated in rows:
            conn.execute(
                text("INSERT INTO leads (lead_id, phone, updated_at) VALUES (:l, :p, :u)"),
                {"l": lead, "p": phone, "u": updated},
            )
    from datetime import UTC, datetime

    bounds = sql_bounds(
        datetime(2026, 11, 24, tzinfo=UTC), datetime(2026, 11, 25, tzinfo=UTC), engine.dialect.name
    )
    sql = (REPO / "include" / "sql" / "extract_leads.sql").read_text()
    # NULL lead ids sort first on SQLite, last on PostgreSQL: chunks of 3 either way put a
    # lead's two rows on both sides of a chunk boundary.
    counts = extract.extract_and_stage(
        run_settings(), sql, bounds, engine, engine, None, FieldMapping.load(), chunk_rows=3
    )

    assert counts["extracted"] == 8
    # The table has no sex column mapped to a value: every lead to send goes as unknown.
    assert counts["sex_unknown"] == counts["staged"] == 4
    assert counts["extracted"] == (
        counts["rejected"]
        + counts["duplicates_in_run"]
        + counts["staged"]
        + counts["already_loaded"]
        + counts["in_flight"]
    )
    with engine.connect() as conn:
        rejected = {
            r.lead_id: r.reason
            for r in conn.execute(select(schema.rejects).where(schema.rejects.c.run_id == "run-1"))
        }
    missing = sorted(lead for lead in rejected if lead.startswith("(no lead id: row "))
    assert len(missing) == 2 and all(rejected[key] == "missing_lead_id" for key in missing)
    repeats = {lead: reason for lead, reason in rejected.items() if lead not in missing}
    assert set(repeats) == {"b", "c"}
    assert all(reason.startswith("duplicate_lead_id") for reason in repeats.values())
    ledger = statuses(engine)
    assert {lead for lead, status in ledger.items() if status == "staged"} == {"a", "b", "c", "d"}
    assert not [lead for lead in ledger if lead.startswith("(no lead id")]  # no fake leads
