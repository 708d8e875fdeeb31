"""The error taxonomy: which class every answer of the platform maps to, which are retried,
and what their messages say."""

from __future__ import annotations

import pytest
from airflow.sdk.exceptions import AirflowException, AirflowFailException

from agent_api.exceptions import (
    AgentApiAnswerLost,
    AgentApiAuthError,
    AgentApiCallingTaskRunningError,
    AgentApiError,
    AgentApiNotFoundError,
    AgentApiRateLimitedError,
    AgentApiTransientError,
    AgentApiValidationError,
    error_for_answer,
    parse_retry_after,
)


def envelope(code: int, message: str = "m") -> dict:
    return {"code": code, "status": "success" if code == 200 else "error", "message": message}


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (200, envelope(200), None),
        (200, envelope(6007), AgentApiCallingTaskRunningError),
        (200, envelope(401), AgentApiAuthError),  # error code inside an HTTP 200
        (401, envelope(401), AgentApiAuthError),
        (403, None, AgentApiAuthError),
        (422, envelope(422), AgentApiValidationError),
        (400, envelope(400), AgentApiValidationError),
        (404, envelope(404), AgentApiNotFoundError),
        (429, envelope(429), AgentApiRateLimitedError),
        (200, envelope(429), AgentApiRateLimitedError),
        (500, envelope(500), AgentApiTransientError),
        (503, None, AgentApiTransientError),  # a proxy's HTML page
        (200, None, AgentApiTransientError),  # not the envelope at all
        (200, envelope(5001), AgentApiError),  # an undocumented code
        (418, None, AgentApiError),  # an undocumented status
    ],
)
def test_every_answer_maps_to_one_error_class(status, body, expected):
    error = error_for_answer(status, body, path="/p")
    if expected is None:
        assert error is None
    else:
        assert type(error) is expected


@pytest.mark.parametrize(
    ("status", "hint"),
    [
        (
            401,
            "the platform rejected the token (wrong or expired): put a valid partner token in "
            "the password of the Airflow connection 'my_api'",
        ),
        (
            403,
            "check the token (password) and the extra.user_id / sub_user_id of the Airflow "
            "connection 'my_api'",
        ),
    ],
)
def test_auth_errors_say_which_connection_to_fix(status, hint):
    error = error_for_answer(
        status, envelope(status, "Unauthenticated."), path="/p", conn_id="my_api"
    )
    assert "Unauthenticated." in str(error)
    assert hint in str(error)
    assert not error.retryable


def test_permanent_errors_are_not_retryable_and_transient_ones_are():
    assert not error_for_answer(422, envelope(422), path="/p").retryable
    assert not error_for_answer(200, envelope(6007), path="/p").retryable
    assert error_for_answer(502, None, path="/p").retryable
    assert error_for_answer(429, None, path="/p", retry_after="7").retry_after == 7


@pytest.mark.parametrize(
    "cls",
    [
        AgentApiAuthError,
        AgentApiValidationError,
        AgentApiNotFoundError,
        AgentApiCallingTaskRunningError,
    ],
)
def test_a_permanent_error_fails_the_task_without_airflows_retries(cls):
    error = cls("m")
    assert isinstance(error, AgentApiError) and isinstance(error, AirflowFailException)
    assert error.retryable is False


@pytest.mark.parametrize("cls", [AgentApiRateLimitedError, AgentApiTransientError])
def test_a_retryable_error_leaves_airflows_retries_to_apply(cls):
    error = cls("m")
    assert isinstance(error, AirflowException) and not isinstance(error, AirflowFailException)
    assert error.retryable is True


def test_a_lost_answer_is_maybe_accepted_and_never_retried_here():
    """Retrying could post the batch twice: the caller settles it from the task instead."""
    error = AgentApiAnswerLost("no answer within 30s")
    assert isinstance(error, AgentApiTransientError) and error.maybe_accepted
    assert error.retryable is False


def test_an_undocumented_code_is_neither_retried_nor_a_task_failure_of_its_own():
    error = error_for_answer(200, envelope(5001), path="/p")
    assert error.retryable is False and not isinstance(error, AirflowFailException)


def test_a_transient_error_may_have_been_accepted_unless_told_otherwise():
    assert error_for_answer(500, None, path="/p").maybe_accepted is True
    assert AgentApiTransientError("refused", maybe_accepted=False).maybe_accepted is False


def test_messages_name_the_path_the_status_the_code_and_the_platforms_words():
    error = error_for_answer(422, envelope(422, "phone 字段必填"), path="/agent-api/x")
    assert str(error) == "agent-api error on /agent-api/x (HTTP 422, code 422): phone 字段必填"
    assert (error.http_status, error.code, error.path) == (422, 422, "/agent-api/x")
    assert error.platform_message == "phone 字段必填"
    no_body = error_for_answer(503, None, path="/p")
    assert str(no_body) == "agent-api error on /p (HTTP 503): unexpected answer (HTTP 503)"


def test_a_running_task_says_how_to_get_past_it():
    error = error_for_answer(200, envelope(6007, "2.0任务启动中,请先停止任务"), path="/p")
    assert "stop it on the platform" in str(error)
    assert "stop_running_task=true" in str(error)


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        ("7", 7.0),
        ("0.5", 0.5),
        ("-3", 0.0),  # never a negative wait
        ("Wed, 21 Oct 2026 07:28:00 GMT", None),  # the date form: not what the platform sends
        ("", None),
        (None, None),
    ],
)
def test_retry_after_is_read_in_seconds(header, seconds):
    assert parse_retry_after(header) == seconds
    limited = error_for_answer(429, None, path="/p", retry_after=header)
    assert limited.retry_after == seconds
