"""The settings registry: the DAG's Params, the environment's settings, the README's table."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path

import pytest

from agent_api.settings import AgentApiSettings
from lead_load.core.settings import RunSettings
from lead_load.glue import settings

README = Path(__file__).resolve().parents[4] / "README.md"


def test_the_readme_table_is_the_registry() -> None:
    text = README.read_text()
    assert settings.settings_table() in text, (
        "README's settings table is out of date: replace it with the output of "
        "python -c 'from lead_load.glue.settings import settings_table; print(settings_table())'"
    )


def test_params_are_the_run_settings_with_their_defaults() -> None:
    params = settings.dag_params()
    run_fields = {f.name: f.default for f in fields(RunSettings)}
    # window_source is resolved with the window, not entered.
    assert set(params) == set(run_fields) - {"run_id", "window_source"}
    for name, param in params.items():
        if name not in ("api_task_id", "window_start", "window_end"):
            assert param.value == run_fields[name], name
    assert params["batch_size"].schema["maximum"] == 200


def test_connection_defaults_are_the_readers() -> None:
    for f in fields(AgentApiSettings):
        if f.name in settings.BY_NAME:
            assert settings.default(f.name) == f.default


def test_environment_settings_fall_back_to_their_defaults(monkeypatch) -> None:
    monkeypatch.delenv("LEAD_LOAD_CALLBACK_TIMEOUT_SECONDS", raising=False)
    assert settings.callback_timeout().total_seconds() == 1800
    monkeypatch.setenv("LEAD_LOAD_CALLBACK_TIMEOUT_SECONDS", "12")
    assert settings.callback_timeout().total_seconds() == 12
    monkeypatch.setenv("LEAD_LOAD_ALERT_EMAILS", " a@x.cn, ,b@x.cn ")
    assert settings.alert_emails() == ["a@x.cn", "b@x.cn"]


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"api_task_id": ""}, "no target task"),
        ({"api_task_id": "t", "window_start": "yesterday"}, "window_start"),
    ],
)
def test_a_configuration_error_fails_at_once_saying_what_to_set(params, message, monkeypatch):
    from airflow.sdk.exceptions import AirflowFailException

    monkeypatch.delenv("AIRFLOW_VAR_LEAD_LOAD_API_TASK_ID", raising=False)
    with pytest.raises(AirflowFailException, match=message):
        settings.resolve(params, "run-1", None, None)
