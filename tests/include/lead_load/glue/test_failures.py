"""A failed step's record and its masked error, on real ledger databases."""

from __future__ import annotations

import json
import logging

import pytest
from airflow.sdk.exceptions import AirflowFailException
from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError

from lead_load.glue.failures import MaskedError, MaskedFailure, recorded_failure
from lead_load.ledger import schema
from tests.include.lead_load.samples import TASK

WINDOW = ("2026-11-24T00:00:00+00:00", "2026-11-25T00:00:00+00:00")
PHONE = "13900000001"


def _run_row(engine):
    with engine.connect() as conn:
        return conn.execute(select(schema.runs)).one_or_none()


def _duplicate_active_phone(engine) -> None:
    """A real database error: a second active row for one phone (PostgreSQL's DETAIL line
    repeats the phone)."""
    row = {"api_task_id": TASK, "phone": PHONE, "status": "staged"}
    stamps = {"created_at": schema.now(), "updated_at": schema.now()}
    with engine.begin() as conn:
        conn.execute(insert(schema.ledger).values(lead_id="a", **row, **stamps))
    with engine.begin() as conn:
        conn.execute(insert(schema.ledger).values(lead_id="b", **row, **stamps))


def test_a_database_error_is_recorded_and_reraised_masked(engine, caplog):
    caplog.set_level(logging.INFO)
    with (
        pytest.raises(MaskedError) as raised,
        recorded_failure("extract_and_stage", "run-1", TASK, WINDOW, lambda: engine),
    ):
        _duplicate_active_phone(engine)
    assert raised.value.__cause__ is None and raised.value.__suppress_context__
    assert str(raised.value).startswith("IntegrityError: ")
    assert PHONE not in str(raised.value)
    assert PHONE not in caplog.text and "extract_and_stage failed" in caplog.text
    run = _run_row(engine)
    summary = json.loads(run.summary)
    assert (run.state, run.api_task_id, run.window_start) == ("failed", TASK, WINDOW[0])
    assert summary["failed_at"] == "extract_and_stage"
    assert summary["problems"][0].startswith("extract_and_stage failed: (")
    assert any(word in summary["problems"][0].lower() for word in ("unique", "duplicate"))
    assert PHONE not in run.summary


def test_a_failure_before_the_last_try_is_masked_but_not_recorded(engine):
    with (
        pytest.raises(MaskedError, match=r"ValueError: bad row 139\*\*\*\*0001"),
        recorded_failure("plan_batches", "run-1", TASK, WINDOW, lambda: engine, last_try=False),
    ):
        raise ValueError(f"bad row {PHONE}")
    assert _run_row(engine) is None  # a retry comes: the run's rows stay its own


def test_a_non_retryable_failure_is_recorded_on_any_try_and_stays_non_retryable(engine):
    with (
        pytest.raises(MaskedFailure) as raised,
        recorded_failure(
            "resolve_settings", "run-1", None, (None, None), lambda: engine, last_try=False
        ),
    ):
        raise AirflowFailException(f"phone {PHONE} is not a window")
    assert isinstance(raised.value, AirflowFailException)
    run = _run_row(engine)
    assert (run.state, run.api_task_id, run.window_start) == ("failed", "", None)


def test_an_error_without_a_phone_is_reraised_as_it_is(engine):
    error = RuntimeError("warehouse unreachable")
    with (
        pytest.raises(RuntimeError) as raised,
        recorded_failure("extract_and_stage", "run-1", TASK, WINDOW, lambda: engine),
    ):
        raise error
    assert raised.value is error
    assert json.loads(_run_row(engine).summary)["problems"] == [
        "extract_and_stage failed: warehouse unreachable"
    ]


def test_an_unreachable_ledger_is_logged_and_the_steps_own_error_raised(caplog):
    def no_ledger():
        raise IntegrityError("SELECT 1", {}, Exception(f"ledger down {PHONE}"))

    with (
        pytest.raises(RuntimeError, match="the step's own"),
        recorded_failure("extract_and_stage", "run-1", TASK, WINDOW, no_ledger),
    ):
        raise RuntimeError("the step's own error")
    assert "Could not record the failure of run run-1" in caplog.text
    assert PHONE not in caplog.text


def test_a_later_task_ends_a_refused_run_in_resolve_settings_words(engine):
    from lead_load.glue.failures import settings_failure

    with (
        pytest.raises(AirflowFailException),
        recorded_failure("resolve_settings", "run-1", None, WINDOW, lambda: engine),
    ):
        raise AirflowFailException("set both window_start and window_end, or neither")
    assert settings_failure("run-1", None, WINDOW, lambda: engine) == (
        "resolve_settings",
        ["resolve_settings failed: set both window_start and window_end, or neither"],
    )


def test_a_refusal_nobody_recorded_is_recorded_by_the_later_task(engine):
    from lead_load.glue.failures import settings_failure

    failed_at, problems = settings_failure("run-2", TASK, WINDOW, lambda: engine)
    assert (failed_at, problems) == (
        "resolve_settings",
        ["resolve_settings failed: it ended without settings; see its log"],
    )
    run = _run_row(engine)
    assert (run.state, run.api_task_id) == ("failed", TASK)
    assert json.loads(run.summary)["problems"] == problems


def test_an_unreachable_ledger_still_gives_a_reason(caplog):
    from lead_load.glue.failures import settings_failure

    def broken():
        raise RuntimeError("ledger down")

    assert settings_failure("run-3", None, (None, None), broken)[0] == "resolve_settings"
    assert "Could not read run run-3's record" in caplog.text
