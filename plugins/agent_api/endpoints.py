"""Paths of the agent-api endpoints this project uses (docs/agent-api.md sections 1, 2 and 4).

Every id is quoted, so a value taken from a param cannot change the path.
"""

from __future__ import annotations

from urllib.parse import quote

TOKEN = "/agent-api/token"  # noqa: S105 - a path, not a secret

# Rows one async_number call takes at most (the platform refuses more).
MAX_ROWS_PER_IMPORT = 200


def _q(value: str) -> str:
    return quote(str(value), safe="")


def async_number(user_id: str, api_task_id: str) -> str:
    return f"/agent-api/user/{_q(user_id)}/task/{_q(api_task_id)}/async_number"


def identification(user_id: str, unique_id: str) -> str:
    return f"/agent-api/user/{_q(user_id)}/identification/{_q(unique_id)}"


def template(user_id: str) -> str:
    return f"/agent-api/user/{_q(user_id)}/customer/create"


def task_numbers(user_id: str, api_task_id: str) -> str:
    return f"/agent-api/user/{_q(user_id)}/task/{_q(api_task_id)}/number"


def task_stop(user_id: str, api_task_id: str) -> str:
    """Stop a 2.0 calling task (PUT): the cure for code 6007."""
    return f"/agent-api/new/user/{_q(user_id)}/task_stop/{_q(api_task_id)}"


def task_stop_legacy(user_id: str, api_task_id: str) -> str:
    """Stop a calling task with the older API (GET)."""
    return f"/agent-api/user/{_q(user_id)}/task_stop/{_q(api_task_id)}"


def all_tasks(user_id: str) -> str:
    return f"/agent-api/user/{_q(user_id)}/all_task"
