"""Engines from Airflow connections, and errors that name the connection and what to fix
(against the local PostgreSQL over its socket)."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from lead_load.glue.connections import DatabaseLoginRefused, DatabaseUnreachable, engine_for

pytestmark = pytest.mark.postgres


def test_a_working_connection_gives_a_working_engine(monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_LEDGER_OK", "postgresql://postgres@127.0.0.1:5432/test")
    with engine_for("ledger_ok").connect() as conn:
        assert conn.execute(text("SELECT 1")).scalar() == 1


def test_an_unreachable_server_is_retryable_and_names_the_connection(monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_LEDGER_DOWN", "postgresql://loader:s3cretpw@127.0.0.1:1/db")
    with pytest.raises(DatabaseUnreachable) as error:
        engine_for("ledger_down").connect()
    message = str(error.value)
    assert "'ledger_down'" in message and "127.0.0.1:1" in message
    assert "AIRFLOW_CONN_LEDGER_DOWN" in message
    assert "s3cretpw" not in message


def test_a_refused_login_fails_without_retries_saying_what_to_fix(monkeypatch):
    monkeypatch.setenv(
        "AIRFLOW_CONN_LEDGER_NOLOGIN", "postgresql://postgres@127.0.0.1:5432/no_such_database_x"
    )
    with pytest.raises(DatabaseLoginRefused, match="refused the login") as error:
        engine_for("ledger_nologin").connect()
    assert "retrying cannot help" in str(error.value)


def test_a_failed_statement_does_not_print_its_parameters(monkeypatch):
    """A driver error's text (which reaches task logs) keeps the bound values out."""
    monkeypatch.setenv("AIRFLOW_CONN_LEDGER_OK", "postgresql://postgres@127.0.0.1:5432/test")
    with pytest.raises(DBAPIError) as error, engine_for("ledger_ok").connect() as conn:
        conn.execute(text("SELECT CAST(:phone AS TEXT), 1 / 0"), {"phone": "13012121211"})
    assert "13012121211" not in str(error.value)
    assert "hidden" in str(error.value)
