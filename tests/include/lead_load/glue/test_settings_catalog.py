"""The settings registry: the DAG's Params, the environment's settings, the README's table."""

from __future__ import annotations

import json
import logging
import os
import socket
from dataclasses import fields
from datetime import UTC, datetime
from pathlib import Path

import pytest

from agent_api import lookup_cache
from agent_api.connection_settings import AgentApiSettings
from lead_load.core.run_settings import RunSettings
from lead_load.glue import settings_catalog
from tests.plugins.agent_api.conftest import account  # noqa: F401 (a fixture)

README = Path(__file__).resolve().parents[4] / "README.md"
TASK = "123e4567-e89b-12d3-a456-426614174000"


def test_the_readme_table_is_the_registry() -> None:
    text = README.read_text()
    assert settings_catalog.settings_table() in text, (
        "README's settings table is out of date: replace it with the output of "
        "python -c 'from lead_load.glue.settings_catalog import settings_table; "
        "print(settings_table())'"
    )


def test_params_are_the_run_settings_with_their_defaults() -> None:
    params = settings_catalog.dag_params()
    run_fields = {f.name: f.default for f in fields(RunSettings)}
    # window_source is resolved with the window, not entered; the load and its connections
    # come from the load's configuration (lead_load.core.loads).
    wiring = {"load_id", "warehouse_conn_id", "agent_api_conn_id", "ledger_conn_id"}
    assert set(params) == set(run_fields) - {"run_id", "window_source", *wiring}
    for name, param in params.items():
        if name not in ("api_task_id", "window_start", "window_end"):
            assert param.value == run_fields[name], name
    assert params["batch_size"].schema["maximum"] == 200


def test_a_load_gives_the_trigger_form_its_own_defaults() -> None:
    params = settings_catalog.dag_params({"batch_size": 50, "ignore_crm": True})
    assert params["batch_size"].value == 50
    assert params["ignore_crm"].value is True
    # The form's checks stay: a load's default does not widen them.
    assert params["batch_size"].schema["maximum"] == 200
    assert params["max_reject_ratio"].value == 0.2


def test_connection_defaults_are_the_readers() -> None:
    for f in fields(AgentApiSettings):
        if f.name in settings_catalog.BY_NAME:
            assert settings_catalog.default(f.name) == f.default


def test_environment_settings_fall_back_to_their_defaults(monkeypatch) -> None:
    monkeypatch.delenv("LEAD_LOAD_CALLBACK_TIMEOUT_SECONDS", raising=False)
    assert settings_catalog.callback_timeout().total_seconds() == 1800
    monkeypatch.setenv("LEAD_LOAD_CALLBACK_TIMEOUT_SECONDS", "12")
    assert settings_catalog.callback_timeout().total_seconds() == 12
    monkeypatch.setenv("LEAD_LOAD_ALERT_EMAILS", " a@x.cn, ,b@x.cn ")
    assert settings_catalog.alert_emails() == ["a@x.cn", "b@x.cn"]


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"api_task_id": ""}, "no calling task"),
        ({"api_task_id": TASK, "window_start": "yesterday"}, "window_start"),
    ],
)
def test_a_configuration_error_fails_at_once_saying_what_to_set(params, message, monkeypatch):
    from airflow.sdk.exceptions import AirflowFailException

    monkeypatch.delenv("AIRFLOW_VAR_LEAD_LOAD_API_TASK_ID", raising=False)
    with pytest.raises(AirflowFailException, match=message):
        settings_catalog.resolve(params, "run-1", None, None)


# --- the trigger form refuses what it can ---------------------------------------------------


def _accepts(name: str, value) -> bool:
    from airflow.sdk.definitions.param import ParamValidationError

    try:
        settings_catalog.dag_params()[name].resolve(value)
    except ParamValidationError:
        return False
    return True


@pytest.mark.parametrize("value", [None, "", TASK, TASK.upper()])
def test_the_form_takes_a_uuid_or_nothing_as_the_calling_task(value) -> None:
    assert _accepts("api_task_id", value)


@pytest.mark.parametrize("value", ["not-a-uuid;DROP", "t", TASK + "x", " " + TASK, TASK[:-1]])
def test_the_form_refuses_a_calling_task_that_is_not_a_uuid(value) -> None:
    assert not _accepts("api_task_id", value)


WINDOW_VALUES = [
    "2026-11-24",
    "2026-11-24T02:00",
    "2026-11-24 02:00:00",
    "2026-11-24T02:00:00+08:00",
    "2026-11-24T02:00:00.123456Z",
    "2026-11-24T02:00:00+0800",
]


@pytest.mark.parametrize("name", ["window_start", "window_end"])
@pytest.mark.parametrize("value", [None, "", *WINDOW_VALUES])
def test_the_form_takes_a_date_or_an_iso_date_time_or_nothing(name, value) -> None:
    assert _accepts(name, value)


@pytest.mark.parametrize("name", ["window_start", "window_end"])
@pytest.mark.parametrize(
    "value", ["yesterday", "24/11/2026", "2026-11-24'; DROP TABLE leads; --", "2026-11-24T2"]
)
def test_the_form_refuses_what_is_not_a_date(name, value) -> None:
    assert not _accepts(name, value)


@pytest.mark.parametrize("value", WINDOW_VALUES)
def test_every_window_value_the_form_takes_is_one_the_run_reads(value) -> None:
    from lead_load.core.window import resolve_window

    start, end = resolve_window(value, "2027-01-01", None, None)
    assert start < end


@pytest.mark.parametrize(
    ("name", "good", "bad"),
    [("batch_size", [1, 200], [0, 201]), ("max_reject_ratio", [0, 0.5, 1], [-0.1, 1.5])],
)
def test_the_form_bounds_batch_size_and_max_reject_ratio(name, good, bad) -> None:
    assert all(_accepts(name, v) for v in good)
    assert not any(_accepts(name, v) for v in bad)


# --- resolve() refuses the rest, one clear line each ----------------------------------------


def _refusal(params, monkeypatch, *, run_type=None, variable=None, interval=(None, None)):
    from airflow.sdk.exceptions import AirflowFailException

    if variable is None:
        monkeypatch.delenv("AIRFLOW_VAR_LEAD_LOAD_API_TASK_ID", raising=False)
    else:
        monkeypatch.setenv("AIRFLOW_VAR_LEAD_LOAD_API_TASK_ID", variable)
    with pytest.raises(AirflowFailException) as refused:
        settings_catalog.resolve(params, "run-1", *interval, run_type=run_type)
    message = str(refused.value)
    assert "\n" not in message
    return message


WINDOW = {"window_start": "2026-11-24", "window_end": "2026-11-25"}


def test_one_window_bound_alone_is_refused(monkeypatch) -> None:
    message = _refusal({"api_task_id": TASK, "window_start": "2026-11-24"}, monkeypatch)
    assert "set both window_start and window_end" in message
    message = _refusal({"api_task_id": TASK, "window_end": "2026-11-24"}, monkeypatch)
    assert "set both window_start and window_end" in message


@pytest.mark.parametrize("end", ["2026-11-24", "2026-11-23T23:00:00"])
def test_a_start_not_before_the_end_is_refused(end, monkeypatch) -> None:
    params = {"api_task_id": TASK, "window_start": "2026-11-24", "window_end": end}
    assert "must be before window_end" in _refusal(params, monkeypatch)


@pytest.mark.parametrize("run_type", ["scheduled", "backfill"])
def test_window_params_on_a_scheduled_or_backfill_run_are_refused(run_type, monkeypatch) -> None:
    from airflow.utils.types import DagRunType

    interval = (datetime(2026, 11, 23, 18, tzinfo=UTC), datetime(2026, 11, 24, 18, tzinfo=UTC))
    for kind in (run_type, DagRunType(run_type)):  # as text, and as the context gives it
        message = _refusal({"api_task_id": TASK, **WINDOW}, monkeypatch, run_type=kind)
        assert f"set on a {run_type} run" in message
        assert "same window" in message
    # One bound alone says the same: it is the param, not the pair, that does not belong.
    message = _refusal(
        {"api_task_id": TASK, "window_end": "2026-11-25"},
        monkeypatch,
        run_type=run_type,
        interval=interval,
    )
    assert f"set on a {run_type} run" in message


def test_a_variable_that_is_not_a_uuid_is_refused_naming_the_variable(monkeypatch) -> None:
    message = _refusal(WINDOW, monkeypatch, variable="not-a-uuid;DROP")
    assert "'not-a-uuid;DROP'" in message
    assert "the Variable lead_load_api_task_id" in message
    assert "UUID" in message


# --- resolve() asks the platform once whether the calling task exists ----------------------


def _all_task_requests(account) -> list[dict]:
    return [e for e in account.sim.journal() if e["path"].endswith("/all_task")]


def test_a_calling_task_the_platform_has_is_resolved_after_one_question(account, monkeypatch):
    monkeypatch.delenv("AIRFLOW_VAR_LEAD_LOAD_API_TASK_ID", raising=False)
    run = settings_catalog.resolve({"api_task_id": account.task_id, **WINDOW}, "run-1", None, None)
    assert run.api_task_id == account.task_id
    assert len(_all_task_requests(account)) == 1
    assert account.posts() == []


def test_an_unknown_calling_task_is_refused_saying_where_it_looked(account, monkeypatch):
    other = account.sim.create_task(account.user_id)
    message = _refusal(WINDOW, monkeypatch, variable=TASK)
    assert message == (
        f"calling task {TASK} not found for user {account.user_id} (2 calling tasks there); check "
        "the api_task_id param or the Variable lead_load_api_task_id (and sub_user_id)"
    )
    assert other not in message
    assert len(_all_task_requests(account)) == 1


def test_the_calling_task_is_looked_up_in_the_sub_account(account, monkeypatch):
    from tests.plugins.agent_api.conftest import Account

    sub = "sub-7"
    user = account.sim.create_user(sub_user_ids=[sub])
    main_task = account.sim.create_task(user)
    task = account.sim.create_task(user, sub_user_id=sub)
    Account(account.sim, user, main_task).connect(monkeypatch)
    params = {"api_task_id": task, "sub_user_id": sub, **WINDOW}
    monkeypatch.delenv("AIRFLOW_VAR_LEAD_LOAD_API_TASK_ID", raising=False)
    assert settings_catalog.resolve(params, "run-1", None, None).sub_user_id == sub
    # The main account's task is not the sub-account's.
    message = _refusal({**params, "api_task_id": main_task}, monkeypatch)
    assert f"not found for user {user} (sub-account {sub}) (1 calling tasks there)" in message
    # The sub-account from the connection counts the same.
    Account(account.sim, user, main_task).connect(monkeypatch, sub_user_id=sub)
    assert settings_catalog.resolve(
        {**params, "sub_user_id": None}, "run-1", None, None
    ).api_task_id


def test_a_rejected_token_is_refused_naming_the_connection(account, monkeypatch):
    account.sim.set_faults(expired_token=True)
    message = _refusal({"api_task_id": account.task_id, **WINDOW}, monkeypatch)
    assert "the platform rejected the token" in message
    assert "'agent_api_default'" in message
    assert account.sim.token not in message


def test_an_unreachable_platform_does_not_fail_the_run(account, monkeypatch, caplog):
    conn = json.loads(os.environ["AIRFLOW_CONN_AGENT_API_DEFAULT"])
    conn["host"] = f"http://127.0.0.1:{_closed_port()}"
    monkeypatch.setenv("AIRFLOW_CONN_AGENT_API_DEFAULT", json.dumps(conn))
    lookup_cache.connections.clear()
    monkeypatch.delenv("AIRFLOW_VAR_LEAD_LOAD_API_TASK_ID", raising=False)
    with caplog.at_level(logging.WARNING):
        run = settings_catalog.resolve({"api_task_id": TASK, **WINDOW}, "run-1", None, None)
    assert run.api_task_id == TASK
    assert f"Could not check that calling task {TASK} exists" in caplog.text


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]
