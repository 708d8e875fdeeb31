"""The endpoints' paths: each one the API spec documents, every id kept inside its own path
segment, and the row limit of an import the one the platform enforces."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import requests

from agent_api import endpoints
from tests.plugins.agent_api.conftest import new_phones, rows_for

SPEC = Path("/work/shared/agent-api/SPEC.md")
# `GET /agent-api/user/{user_id}/all_task` and the like, as the spec writes its routes.
DOCUMENTED = re.compile(r"`(?:GET|POST|PUT|DELETE|PATCH) (/agent-api/[^`?\s]*)`")

PATHS = {
    "token": endpoints.TOKEN,
    "async_number": endpoints.async_number("U", "T"),
    "identification": endpoints.identification("U", "B"),
    "template": endpoints.template("U"),
    "task_numbers": endpoints.task_numbers("U", "T"),
    "task_stop": endpoints.task_stop("U", "T"),
    "task_stop_legacy": endpoints.task_stop_legacy("U", "T"),
    "all_tasks": endpoints.all_tasks("U"),
}


def documented_routes() -> list[re.Pattern]:
    if not SPEC.exists():
        pytest.skip(f"the API spec is not at {SPEC}")
    routes = set(DOCUMENTED.findall(SPEC.read_text(encoding="utf-8")))
    assert len(routes) >= len(PATHS), routes
    return [re.compile(re.sub(r"\\\{\w+\\\}", "[^/]+", re.escape(route))) for route in routes]


@pytest.mark.parametrize("name", sorted(PATHS))
def test_every_path_is_a_route_the_spec_documents(name):
    assert any(route.fullmatch(PATHS[name]) for route in documented_routes()), PATHS[name]


def test_every_function_of_the_module_is_checked_against_the_spec():
    functions = {
        name
        for name, value in vars(endpoints).items()
        if callable(value) and not name.startswith("_") and value.__module__ == endpoints.__name__
    }
    assert functions == set(PATHS) - {"token"}


def test_ids_cannot_leave_their_path_segment():
    assert endpoints.async_number("u/../../token", "t?x=1#y") == (
        "/agent-api/user/u%2F..%2F..%2Ftoken/task/t%3Fx%3D1%23y/async_number"
    )
    assert endpoints.identification("u", "a b") == "/agent-api/user/u/identification/a%20b"
    assert endpoints.task_stop("u", "任务") == "/agent-api/new/user/u/task_stop/%E4%BB%BB%E5%8A%A1"


def test_the_platform_takes_at_most_max_rows_per_import(account):
    """Sent raw, past the hook (which refuses more rows before sending anything)."""
    url = account.sim.base_url + endpoints.async_number(account.user_id, account.task_id)
    phones = new_phones(endpoints.MAX_ROWS_PER_IMPORT + 1)

    def post(rows: list[dict]) -> dict:
        answer = requests.post(
            url, json={"data": rows}, headers=account.sim.auth_headers, timeout=10
        )
        return answer.json()

    assert post(rows_for(phones[1:]))["code"] == 200
    assert post(rows_for(phones))["code"] in (400, 422)
