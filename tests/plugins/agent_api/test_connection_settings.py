"""AgentApiSettings.from_extra: the connection's token and extra read, defaulted and checked,
with errors that name the connection and what to put where."""

from __future__ import annotations

from dataclasses import fields

import pytest
from airflow.sdk.exceptions import AirflowFailException

from agent_api.connection_settings import (
    DEFAULT_CONN_ID,
    SETTING_KEYS,
    AgentApiConnectionError,
    AgentApiSettings,
)
from agent_api.hooks.agent_api import AgentApiAsyncHook, AgentApiHook

# Each number of the extra and the least value it takes.
MINIMUMS = {
    "request_timeout": 0.01,
    "max_attempts": 1,
    "backoff_seconds": 0,
    "backoff_max_seconds": 0,
    "lost_answer_grace_seconds": 0,
    "max_requests_per_second": 0,
}


def read(extra: dict, token: str | None = "partner-token") -> AgentApiSettings:  # noqa: S107
    return AgentApiSettings.from_extra("my_api", extra, token)


def test_a_user_id_and_a_token_are_enough():
    settings = read({"user_id": "u-1"})
    assert settings == AgentApiSettings(user_id="u-1")
    assert (settings.request_timeout, settings.max_attempts) == (30.0, 5)
    assert settings.max_requests_per_second == 0  # no client-side limit


def test_numbers_typed_as_text_in_the_form_are_read_as_numbers():
    settings = read(
        {
            "user_id": "u",
            "request_timeout": "2.5",
            "max_attempts": "3",
            "backoff_seconds": 0,
            "max_requests_per_second": "2.5",
        }
    )
    assert settings.request_timeout == 2.5 and settings.max_requests_per_second == 2.5
    assert settings.max_attempts == 3 and isinstance(settings.max_attempts, int)
    assert settings.backoff_seconds == 0


def test_ids_are_trimmed_and_an_empty_sub_account_is_none():
    assert read({"user_id": " u-1 ", "sub_user_id": " s-1 "}).sub_user_id == "s-1"
    assert read({"user_id": " u-1 ", "sub_user_id": "  "}) == AgentApiSettings(user_id="u-1")
    assert read({"user_id": "u", "sub_user_id": None}).sub_user_id is None


@pytest.mark.parametrize("token", [None, ""])
def test_a_connection_without_a_token_says_where_it_goes(token):
    with pytest.raises(AgentApiConnectionError) as error:
        read({"user_id": "u"}, token)
    assert str(error.value).endswith(
        "connection 'my_api' has no token: put the partner token in its password"
    )


@pytest.mark.parametrize("extra", [{}, {"user_id": ""}, {"user_id": "   "}, {"user_id": None}])
def test_a_connection_without_a_user_id_says_where_it_goes(extra):
    with pytest.raises(AgentApiConnectionError, match="connection 'my_api' has no user_id: set"):
        read(extra)


@pytest.mark.parametrize("key", sorted(MINIMUMS))
@pytest.mark.parametrize("raw", ["fast", [1], {"a": 1}])
def test_a_setting_that_is_no_number_is_refused_by_name(key, raw):
    with pytest.raises(AgentApiConnectionError) as error:
        read({"user_id": "u", key: raw})
    assert f"connection 'my_api': extra.{key} must be a number, got {raw!r}" in str(error.value)


@pytest.mark.parametrize("key", sorted(MINIMUMS))
def test_a_setting_below_its_minimum_or_nan_is_refused_by_name(key):
    for raw in (MINIMUMS[key] - 1, "nan"):
        with pytest.raises(AgentApiConnectionError, match=f"extra.{key} must be >= "):
            read({"user_id": "u", key: raw})
    assert getattr(read({"user_id": "u", key: MINIMUMS[key]}), key) == MINIMUMS[key]


def test_a_broken_connection_fails_the_task_at_once():
    """Retrying cannot mend a connection: Airflow must not spend its retries on it."""
    with pytest.raises(AirflowFailException):
        read({})


def test_every_setting_is_a_key_of_the_extra_and_none_else():
    """The hook strips exactly these keys from the HTTP headers, so each must be a setting."""
    assert {f.name for f in fields(AgentApiSettings)} == SETTING_KEYS
    assert set(MINIMUMS) == SETTING_KEYS - {"user_id", "sub_user_id"}


def test_both_hooks_default_to_the_connection_the_readme_names():
    assert AgentApiHook.default_conn_name == DEFAULT_CONN_ID == "agent_api_default"
    assert AgentApiAsyncHook.default_conn_name == DEFAULT_CONN_ID
