"""Only users Airflow lets read the lead_load DAG see the page: the api-server's own auth
manager decides, from the JWT in the cookie or the Authorization header."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from tests.plugins.lead_loads.conftest import NOBODY, READER, token_for

ROUTES = [
    ("get", "/lead-loads/"),
    ("get", "/lead-loads/runs/run-1"),
    ("get", "/lead-loads/runs/run-1/live"),
    ("get", "/lead-loads/runs/run-1/rejects.csv"),
    ("get", "/lead-loads/runs/run-1/batches/0"),
    ("get", "/lead-loads/runs/run-1/map-index/0"),
    ("get", "/lead-loads/loads/lapsed_customers/runs/run-1"),
    ("get", "/lead-loads/loads/lapsed_customers/runs/run-1/batches/0"),
    ("get", "/lead-loads/leads?lead_id=a"),
    ("post", "/lead-loads/leads"),
]


@pytest.mark.parametrize(("method", "path"), ROUTES)
def test_without_credentials_every_route_is_refused(anonymous, method, path):
    answer = getattr(anonymous, method)(path)
    assert answer.status_code == 401
    assert "lead" not in answer.text.lower()


@pytest.mark.parametrize(("method", "path"), ROUTES)
def test_a_user_without_read_access_to_the_dag_is_refused(api_server, method, path):
    client = TestClient(api_server)
    client.cookies.set("_token", token_for(NOBODY))
    assert getattr(client, method)(path).status_code == 403


def test_a_forged_token_is_refused(api_server):
    client = TestClient(api_server)
    forged = token_for(READER)[:-4] + "AAAA"
    assert client.get(
        "/lead-loads/", headers={"Authorization": f"Bearer {forged}"}
    ).status_code in (
        401,
        403,
    )


def test_a_query_parameter_names_no_user_and_no_other_dag(anonymous, api_server):
    """Identity comes from the token only; the DAG checked is lead_load whatever is asked."""
    for params in ({"user": "admin", "role": "admin"}, {"dag_id": "~"}, {"token": "x"}):
        assert anonymous.get("/lead-loads/", params=params).status_code == 401
    client = TestClient(api_server)
    client.cookies.set("_token", token_for(NOBODY))
    assert client.get("/lead-loads/runs/run-1", params={"dag_id": "other"}).status_code == 403


def test_a_reader_gets_in_with_the_header_as_with_the_cookie(api_server, ledger):
    client = TestClient(api_server)
    bearer = {"Authorization": f"Bearer {token_for(READER)}"}
    assert client.get("/lead-loads/", headers=bearer).status_code == 200
