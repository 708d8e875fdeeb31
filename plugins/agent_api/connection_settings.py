"""What an ``agent_api`` connection holds, read and checked in one place.

- ``host``: base URL, e.g. ``https://ai.api.longlonglong.cn`` (scheme included)
- ``password``: the partner token, sent as ``Authorization: Bearer <token>``
- ``extra.user_id``: the account's user id (UUID), part of every path; required
- ``extra.sub_user_id``: optional default sub-account to act on
- ``extra.request_timeout``: seconds before a request counts as lost (default 30)
- ``extra.max_attempts``: attempts for retryable errors, the first included (default 5)
- ``extra.backoff_seconds``: first retry delay; doubles each time, with jitter (default 1)
- ``extra.backoff_max_seconds``: cap of one retry delay (default 60)
- ``extra.lost_answer_grace_seconds``: wait before the first look in the calling task's number list
  after a post whose answer was lost (default 5)
- ``extra.max_requests_per_second``: pace this process's requests to the platform to at most
  this many per second, shared by every hook of the process (default 0: no limit)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from agent_api.exceptions import AgentApiAuthError

# The connection the hooks, triggers and sensors use unless told otherwise.
DEFAULT_CONN_ID = "agent_api_default"

# Keys of the connection's extra that are settings of this integration; the http provider
# would otherwise send every unknown extra as an HTTP header.
SETTING_KEYS = frozenset(
    {
        "user_id",
        "sub_user_id",
        "request_timeout",
        "max_attempts",
        "backoff_seconds",
        "backoff_max_seconds",
        "lost_answer_grace_seconds",
        "max_requests_per_second",
    }
)


class AgentApiConnectionError(AgentApiAuthError):
    """The Airflow connection is incomplete or malformed."""


@dataclass(frozen=True)
class AgentApiSettings:
    user_id: str
    sub_user_id: str | None = None
    request_timeout: float = 30.0
    max_attempts: int = 5
    backoff_seconds: float = 1.0
    backoff_max_seconds: float = 60.0
    lost_answer_grace_seconds: float = 5.0
    max_requests_per_second: float = 0.0  # 0: no client-side limit

    @classmethod
    def from_extra(cls, conn_id: str, extra: dict[str, Any], token: str | None) -> AgentApiSettings:
        if not token:
            raise AgentApiConnectionError(
                f"connection {conn_id!r} has no token: put the partner token in its password"
            )
        user_id = str(extra.get("user_id") or "").strip()
        if not user_id:
            raise AgentApiConnectionError(
                f"connection {conn_id!r} has no user_id: set extra.user_id to the account's user id"
            )

        def number(key: str, default: float, minimum: float) -> float:
            raw = extra.get(key, default)
            try:
                value = float(raw)
            except (TypeError, ValueError):
                raise AgentApiConnectionError(
                    f"connection {conn_id!r}: extra.{key} must be a number, got {raw!r}"
                ) from None
            if not value >= minimum:  # also refuses NaN
                raise AgentApiConnectionError(
                    f"connection {conn_id!r}: extra.{key} must be >= {minimum}, got {raw!r}"
                )
            return value

        return cls(
            user_id=user_id,
            sub_user_id=str(extra.get("sub_user_id") or "").strip() or None,
            request_timeout=number("request_timeout", cls.request_timeout, 0.01),
            max_attempts=int(number("max_attempts", cls.max_attempts, 1)),
            backoff_seconds=number("backoff_seconds", cls.backoff_seconds, 0),
            backoff_max_seconds=number("backoff_max_seconds", cls.backoff_max_seconds, 0),
            lost_answer_grace_seconds=number(
                "lost_answer_grace_seconds", cls.lost_answer_grace_seconds, 0
            ),
            max_requests_per_second=number(
                "max_requests_per_second", cls.max_requests_per_second, 0
            ),
        )
