"""The run note, written through a real api-server's REST API (tests/dags/api_server.py)."""

from __future__ import annotations

import json
import logging
from urllib.parse import quote

import pytest

from lead_load.glue.run_note import api_base_url, set_run_note
from tests.dags.conftest import api_server  # noqa: F401 - the fixture
from tests.distributed.stack import free_port

DAG_ID = "lead_load"


@pytest.fixture
def dag_run(api_server):
    """A queued run of lead_load (no scheduler runs in the tests), deleted afterwards."""
    answer = api_server.request(
        "POST",
        f"/dags/{DAG_ID}/dagRuns",
        json={
            "logical_date": None,
            "conf": {"window_start": "2026-11-24", "window_end": "2026-11-25"},
        },
    )
    assert answer.status_code == 200, answer.text
    run_id = answer.json()["dag_run_id"]
    yield run_id
    api_server.request("DELETE", f"/dags/{DAG_ID}/dagRuns/{quote(run_id, safe='')}")


def use_connection(monkeypatch, uri: str) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_AIRFLOW_API", uri)


@pytest.mark.parametrize(
    ("host", "schema", "port", "url"),
    [
        ("http://api:8080/", None, None, "http://api:8080"),
        ("api", "https", 8443, "https://api:8443"),
        ("api", "", 8080, "http://api:8080"),
    ],
)
def test_the_api_servers_url_comes_from_the_connections_fields(host, schema, port, url):
    assert api_base_url(host, schema, port) == url


def test_the_note_is_written_on_the_run(api_server, dag_run, monkeypatch):
    use_connection(monkeypatch, api_server.conn_uri("loader"))
    assert set_run_note(DAG_ID, dag_run, "imported 3 of 5 extracted") is True
    assert api_server.dag_run(DAG_ID, dag_run)["note"] == "imported 3 of 5 extracted"


def test_a_user_without_the_permission_costs_a_warning_not_the_load(
    api_server,
    dag_run,
    monkeypatch,
    caplog,
):
    use_connection(monkeypatch, api_server.conn_uri("watcher"))
    with caplog.at_level(logging.WARNING, logger="lead_load.glue.run_note"):
        assert set_run_note(DAG_ID, dag_run, "imported 3 of 5 extracted") is False
    assert "HTTP 403" in caplog.text and "may not edit" in caplog.text
    assert api_server.passwords["watcher"] not in caplog.text
    assert api_server.dag_run(DAG_ID, dag_run)["note"] is None


def test_a_wrong_password_says_so_without_repeating_it(api_server, dag_run, monkeypatch, caplog):
    uri = api_server.conn_uri("loader").replace(
        quote(api_server.passwords["loader"], safe=""), "not-the-password"
    )
    use_connection(monkeypatch, uri)
    with caplog.at_level(logging.WARNING, logger="lead_load.glue.run_note"):
        assert set_run_note(DAG_ID, dag_run, "note") is False
    assert "HTTP 401" in caplog.text and "not-the-password" not in caplog.text


def test_an_unreachable_api_server_or_no_connection_costs_a_warning(monkeypatch, caplog):
    use_connection(monkeypatch, f"http://loader:s3cret-pw@127.0.0.1:{free_port()}")
    with caplog.at_level(logging.WARNING, logger="lead_load.glue.run_note"):
        assert set_run_note(DAG_ID, "manual__x", "note") is False
    assert "ConnectError" in caplog.text and "s3cret-pw" not in caplog.text

    monkeypatch.delenv("AIRFLOW_CONN_AIRFLOW_API")
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="lead_load.glue.run_note"):
        assert set_run_note(DAG_ID, "manual__x", "note") is False
    assert "no Airflow connection 'airflow_api'" in caplog.text


def test_a_ready_made_token_in_the_password_field_is_used_as_is(
    api_server,
    dag_run,
    monkeypatch,
):
    host = api_server.base_url.removeprefix("http://").split(":")
    conn = {
        "conn_type": "http",
        "host": host[0],
        "port": int(host[1]),
        "password": api_server.token(),
    }
    monkeypatch.setenv("AIRFLOW_CONN_AIRFLOW_API", json.dumps(conn))
    assert set_run_note(DAG_ID, dag_run, "by token") is True
    assert api_server.dag_run(DAG_ID, dag_run)["note"] == "by token"
