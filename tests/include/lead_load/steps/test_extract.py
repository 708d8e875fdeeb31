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
