"""The DAG run's note: the run summary in one line, where the Airflow UI shows it first.

A task cannot set its DAG run's note through the Task SDK in Airflow 3.3 (the execution API
reads notes but offers no call to write one), so the report task asks the api-server's public
REST API, ``PATCH /api/v2/dags/{dag_id}/dagRuns/{run_id}``, with the credentials of the
Airflow connection ``airflow_api`` (docs/run-note.md). The note is a courtesy: no
connection, an unreachable api-server or a missing permission costs a warning, never the load.
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import quote

log = logging.getLogger(__name__)

AIRFLOW_API_CONN_ID = "airflow_api"
TIMEOUT_SECONDS = 10.0


def api_base_url(host: str, schema: str | None = None, port: int | None = None) -> str:
    """The api-server's base URL from a connection's fields: ``host`` may be a whole URL."""
    if "://" in host:
        return host.rstrip("/")
    scheme = schema if schema in ("http", "https") else "http"
    return f"{scheme}://{host}{f':{port}' if port else ''}".rstrip("/")


def set_run_note(dag_id: str, run_id: str, note: str, conn_id: str = AIRFLOW_API_CONN_ID) -> bool:
    """Write ``note`` on the DAG run; True when the api-server took it. Never raises: what
    went wrong is logged as a warning naming what to fix (no token or password in it)."""
    from airflow.sdk import BaseHook
    from airflow.sdk.exceptions import AirflowNotFoundException

    try:
        conn = BaseHook.get_connection(conn_id)
    except AirflowNotFoundException:
        log.warning(
            "Run note not set: there is no Airflow connection %r (the api-server's URL as "
            "host, a user allowed to edit DAG runs as login and password). The summary is in "
            "this log, the report XCom and lead_load_runs.",
            conn_id,
        )
        return False
    if not conn.host:
        log.warning("Run note not set: the connection %r has no host (api-server URL)", conn_id)
        return False
    try:
        _patch_note(conn, dag_id, run_id, note)
    except Exception as error:  # a courtesy: the load's outcome does not depend on it
        log.warning(
            "Run note not set (connection %r, api-server %s): %s",
            conn_id,
            api_base_url(conn.host, conn.schema, conn.port),
            _reason(error),
        )
        return False
    log.info("Run note set: %s", note)
    return True


def _patch_note(conn: Any, dag_id: str, run_id: str, note: str) -> None:
    import httpx

    base = api_base_url(conn.host, conn.schema, conn.port)
    with httpx.Client(base_url=base, timeout=TIMEOUT_SECONDS) as client:
        if conn.login:
            answer = client.post(
                "/auth/token", json={"username": conn.login, "password": conn.password or ""}
            )
            answer.raise_for_status()
            token = answer.json()["access_token"]
        else:  # a ready-made token in the password field
            token = conn.password or ""
        answer = client.patch(
            f"/api/v2/dags/{quote(dag_id, safe='')}/dagRuns/{quote(run_id, safe='')}",
            params={"update_mask": "note"},
            json={"note": note},
            headers={"Authorization": f"Bearer {token}"},
        )
        answer.raise_for_status()


def _reason(error: Exception) -> str:
    """What went wrong, in words that carry no credential: the status and the server's
    ``detail`` for an HTTP error, the exception's class and text otherwise."""
    import httpx

    if isinstance(error, httpx.HTTPStatusError):
        response = error.response
        try:
            detail = response.json().get("detail")
        except ValueError:
            detail = None
        hint = {
            401: "the login or password is wrong",
            403: "the user may not edit this DAG's runs",
        }.get(response.status_code, "")
        words = f"HTTP {response.status_code} from {response.request.url.path}"
        return "; ".join(str(part) for part in (words, hint, detail) if part)
    return f"{type(error).__name__}: {error}"
