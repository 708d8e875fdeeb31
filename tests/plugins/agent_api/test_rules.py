"""The pure rules of the integration: answer classification, retry delays, masking."""

from __future__ import annotations

import random

import pytest

from agent_api.exceptions import (
    AgentApiAuthError,
    AgentApiError,
    AgentApiNotFoundError,
    AgentApiRateLimitedError,
    AgentApiTaskRunningError,
    AgentApiTransientError,
    AgentApiValidationError,
    error_for_answer,
)
from agent_api.masking import mask_phone, mask_phones_in
from agent_api.retry import RetryPolicy
from tests.plugins.agent_api.conftest import leaks_in


def envelope(code: int, message: str = "m") -> dict:
    return {"code": code, "status": "success" if code == 200 else "error", "message": message}


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (200, envelope(200), None),
        (200, envelope(6007), AgentApiTaskRunningError),
        (200, envelope(401), AgentApiAuthError),  # error code inside an HTTP 200
        (401, envelope(401), AgentApiAuthError),
        (403, None, AgentApiAuthError),
        (422, envelope(422), AgentApiValidationError),
        (400, envelope(400), AgentApiValidationError),
        (404, envelope(404), AgentApiNotFoundError),
        (429, envelope(429), AgentApiRateLimitedError),
        (500, envelope(500), AgentApiTransientError),
        (503, None, AgentApiTransientError),  # a proxy's HTML page
        (200, None, AgentApiTransientError),  # not the envelope at all
        (200, envelope(5001), AgentApiError),  # an undocumented code
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


def test_backoff_grows_is_bounded_and_honours_retry_after():
    policy = RetryPolicy(max_attempts=6, base_seconds=1, max_seconds=8)
    rng = random.Random(0)
    transient = AgentApiTransientError("x")
    ceilings = [1, 2, 4, 8, 8]
    for attempt, ceiling in enumerate(ceilings, start=1):
        delay = policy.delay(transient, attempt, rng)
        assert ceiling / 2 <= delay <= ceiling
    limited = AgentApiRateLimitedError("x", retry_after=5)
    assert policy.delay(limited, 1, rng) >= 5
    assert policy.should_retry(transient, 5) and not policy.should_retry(transient, 6)
    assert not policy.should_retry(AgentApiValidationError("x"), 1)


def test_phone_masking():
    assert mask_phone("13012121211") == "130****1211"
    assert mask_phone("123") == "***"
    assert mask_phones_in("rows 13012121211 and +8613012121211 failed") == (
        "rows 130****1211 and +861******1211 failed"
    )


def test_log_check_finds_a_leaked_token_and_phone():
    text = "token abc-123 sent 13900000001, masked 139****0002"
    assert leaks_in(text, "abc-123", {"13900000001", "13900000002"}) == [
        "the API token",
        "phone 139...01",
    ]
    assert leaks_in("clean", "abc-123", {"13900000001"}) == []


def test_masking_leaves_uuids_and_hex_ids_whole():
    unique_id = "5b1f0c2e-9a77-4d1e-8c1a-70479605ced1"
    numeric_tail = "00000000-0000-4000-8000-123456789012"
    text = f"batch {unique_id} of task {numeric_tail}, trace 3f9a12345678901b, 13012121211 lost"
    assert mask_phones_in(text) == (
        f"batch {unique_id} of task {numeric_tail}, trace 3f9a12345678901b, 130****1211 lost"
    )


def test_masking_catches_phones_in_chinese_text_and_in_structured_dumps():
    assert mask_phones_in("手机号13012121211无效") == "手机号130****1211无效"
    assert mask_phones_in("[parameters: ('13012121211', 'a')]") == (
        "[parameters: ('130****1211', 'a')]"
    )
    assert mask_phones_in('{"phone":"+8613012121211"}') == '{"phone":"+861******1211"}'
