"""One error hierarchy for every answer of the platform.

The platform wraps every answer in ``{"code", "status", "message", "data"}``; whether errors
also come with a 4xx/5xx HTTP status is not documented, so :func:`error_for_answer` looks at
both and the DAG only ever deals with these classes:

===============================  ==========================================  ======================
class                            when                                        retried?
===============================  ==========================================  ======================
AgentApiAuthError                HTTP 401/403 or envelope code 401/403       never (fix the token)
AgentApiValidationError          HTTP 400/422 or envelope code 400/422       never (fix the data)
AgentApiNotFoundError            HTTP 404 or envelope code 404               never
AgentApiCallingTaskRunningError  envelope code 6007 (2.0 calling task runs)  never (stop it)
AgentApiRateLimitedError         HTTP 429                                    yes, after Retry-After
AgentApiTransientError           5xx, timeouts, connection errors            yes, with backoff
AgentApiIncompleteRead           a calling task's number list came in short  not here (read again)
AgentApiAnswerLost               a post's answer lost (it may be accepted)   never (see the hook)
AgentApiError                    any other error code                        never
===============================  ==========================================  ======================

Messages carry the endpoint's path and the platform's message, never the token.
"""

from __future__ import annotations

from typing import Any

from airflow.sdk.exceptions import AirflowException, AirflowFailException

CALLING_TASK_RUNNING_CODE = 6007


class AgentApiError(AirflowException):
    """An error answer from the platform (or no usable answer at all)."""

    retryable = False

    def __init__(
        self,
        message: str,
        *,
        http_status: int | None = None,
        code: int | None = None,
        path: str | None = None,
    ) -> None:
        self.http_status = http_status
        self.code = code
        self.path = path
        self.platform_message = message
        where = f" on {path}" if path else ""
        status = ", ".join(
            part
            for part in (
                f"HTTP {http_status}" if http_status is not None else "",
                f"code {code}" if code is not None else "",
            )
            if part
        )
        super().__init__(
            f"agent-api error{where}" + (f" ({status})" if status else "") + f": {message}"
        )


class AgentApiPermanentError(AgentApiError, AirflowFailException):
    """Retrying cannot help; Airflow fails the task without using its retries."""


class AgentApiAuthError(AgentApiPermanentError):
    """The token is wrong, expired or lacks access: renew it in the connection's password."""


class AgentApiValidationError(AgentApiPermanentError):
    """The platform rejected the request body."""


class AgentApiNotFoundError(AgentApiPermanentError):
    """Unknown user, calling task, sub-account or unique_id."""


class AgentApiCallingTaskRunningError(AgentApiPermanentError):
    """Code 6007: the calling task is a running 2.0 one, which refuses imports until stopped."""


class AgentApiRetryableError(AgentApiError):
    """The request did not succeed but may on a later attempt."""

    retryable = True


class AgentApiRateLimitedError(AgentApiRetryableError):
    """HTTP 429: wait ``retry_after`` seconds (when the server said) before the next request."""

    def __init__(self, message: str, *, retry_after: float | None = None, **kwargs: Any) -> None:
        self.retry_after = retry_after
        super().__init__(message, **kwargs)


class AgentApiTransientError(AgentApiRetryableError):
    """5xx answers, timeouts and connection errors.

    ``maybe_accepted`` is true when the request reached the server and its answer was lost or
    unusable: a POST may then have been applied even though it looks failed.
    """

    def __init__(self, message: str, *, maybe_accepted: bool = True, **kwargs: Any) -> None:
        self.maybe_accepted = maybe_accepted
        super().__init__(message, **kwargs)


class AgentApiAnswerLost(AgentApiTransientError):
    """A post reached the platform and its answer was lost or unusable (a timeout, a broken
    connection, a 5xx, an undocumented error code): the platform may have accepted the batch.
    Never retried: the post carries no idempotency key, so only the calling task's number list,
    read once the platform has surely processed, can tell what landed (the caller keeps
    the rows "maybe accepted" until then)."""

    retryable = False


class AgentApiIncompleteRead(AgentApiTransientError):
    """A calling task's number list was read to its end, but what came in disagrees with what the
    answers said (an empty or short page before the reported total or last page, or a row
    count other than the total). Numbers missing from such a read may well be in the calling task:
    it proves nothing absent. Nothing was posted, so ``maybe_accepted`` is false."""

    def __init__(self, message: str, *, maybe_accepted: bool = False, **kwargs: Any) -> None:
        super().__init__(message, maybe_accepted=maybe_accepted, **kwargs)


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header (the platform uses the delta-seconds form)."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


def error_for_answer(
    http_status: int,
    body: Any,
    *,
    path: str,
    retry_after: str | None = None,
    conn_id: str | None = None,
) -> AgentApiError | None:
    """The exception that an answer stands for, or None when it is a success.

    ``conn_id`` names the Airflow connection in the hint of an authentication error.
    """
    envelope = body if isinstance(body, dict) else {}
    code = envelope.get("code") if isinstance(envelope.get("code"), int) else None
    message = str(envelope.get("message") or "") or f"unexpected answer (HTTP {http_status})"

    if http_status == 429 or code == 429:
        return AgentApiRateLimitedError(
            message,
            retry_after=parse_retry_after(retry_after),
            http_status=http_status,
            code=code,
            path=path,
        )
    if http_status >= 500:
        return AgentApiTransientError(message, http_status=http_status, code=code, path=path)
    if code == CALLING_TASK_RUNNING_CODE:
        return AgentApiCallingTaskRunningError(
            f"{message} - the calling task is a running 2.0 one; stop it on the platform "
            "(or trigger the DAG with stop_running_task=true) and run again",
            http_status=http_status,
            code=code,
            path=path,
        )
    status = code if code not in (None, 200) else http_status
    by_status: dict[int, type[AgentApiError]] = {
        400: AgentApiValidationError,
        422: AgentApiValidationError,
        404: AgentApiNotFoundError,
    }
    if status in (401, 403):
        # The platform only says "Unauthenticated.": tell the user what to change, as 6007 does.
        connection = (
            f"the Airflow connection {conn_id!r}" if conn_id else "the agent_api connection"
        )
        hint = (
            f"the platform rejected the token (wrong or expired): put a valid partner token in "
            f"the password of {connection} and run again"
            if status == 401
            else f"the token has no access here: check the token (password) and the "
            f"extra.user_id / sub_user_id of {connection}"
        )
        return AgentApiAuthError(
            f"{message} - {hint}", http_status=http_status, code=code, path=path
        )
    if status in by_status:
        return by_status[status](message, http_status=http_status, code=code, path=path)
    if http_status >= 400 or (code is not None and code != 200):
        return AgentApiError(message, http_status=http_status, code=code, path=path)
    if code is None:
        return AgentApiTransientError(
            "answer is not the platform's JSON envelope", http_status=http_status, path=path
        )
    return None
