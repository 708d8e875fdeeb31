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
