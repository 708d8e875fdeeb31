"""A step that fails leaves a trace people can read, and no phone number.

``recorded_failure`` wraps the body of a step that runs before anything is sent
(resolve_settings, recheck_earlier_batches, extract_and_stage, plan_batches). When it raises:

- on the step's last try (or an ``AirflowFailException``, which Airflow does not retry),
  the run's row in ``lead_load_runs`` is written (state ``failed``, the step it reached,
  the error text with phones masked), also when the run had no row yet: a run that died in
  its first step is in the ledger like any other. Not before the last try: a failed run's
  staged rows are free for other runs to take over, and a retry is still coming;
- an error whose text holds a phone-shaped number, or any database error (a PostgreSQL
  ``DETAIL`` line repeats the offending values, whatever ``hide_parameters`` hides), is
  logged with its traceback masked and re-raised as a masked copy, so Airflow's own log of
  the failure shows no phone either. The copy keeps the retry behaviour: an
  ``AirflowFailException`` stays one (no retry), anything else is retried as before.

A cleared and re-run step marks the run ``running`` again (``run_lifecycle.start_run``)
and the report writes over the record.
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException
from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError

from agent_api.masking import mask_phones_in
from lead_load.ledger import counts, run_lifecycle, schema

log = logging.getLogger(__name__)

# A stored error keeps its first lines; the log has the whole (masked) traceback.
_STORED_CHARS = 2000


class MaskedError(RuntimeError):
    """A step's error with phone numbers masked; retried like the original."""


class MaskedFailure(AirflowFailException):
    """A step's non-retryable error with phone numbers masked."""


def masked_text(error: BaseException) -> str:
    """The error's message with every phone-shaped number masked (type name if empty)."""
    text = str(error).strip() or type(error).__name__
    return mask_phones_in(text)


@contextmanager
def recorded_failure(
    stage: str,
    run_id: str,
    api_task_id: str | None,
    window: tuple[str | None, str | None],
    ledger_engine: Callable[[], Engine],
    last_try: bool = True,
) -> Iterator[None]:
    """Record and mask a failure of ``stage`` (see the module's docstring).

    ``ledger_engine`` is called only on failure: a step that cannot even reach the ledger
    fails with its own error, and the record is skipped with a warning.
    """
    try:
        yield
    except AirflowSkipException:
        raise
    except Exception as error:
        message = masked_text(error)
        if last_try or isinstance(error, AirflowFailException):
            record(stage, run_id, api_task_id, window, message, ledger_engine)
        if message == (str(error).strip() or type(error).__name__) and not isinstance(
            error, DBAPIError
        ):
            raise
        log.error(
            "%s failed:\n%s", stage, mask_phones_in("".join(traceback.format_exception(error)))
        )
        copy = MaskedFailure if isinstance(error, AirflowFailException) else MaskedError
        raise copy(f"{type(error).__name__}: {message}") from None


def record(
    stage: str,
    run_id: str,
    api_task_id: str | None,
    window: tuple[str | None, str | None],
    message: str,
    ledger_engine: Callable[[], Engine],
) -> None:
    """Write the run's row as failed at ``stage``; never raises over the step's own error."""
    summary: dict[str, Any] = {
        "window": list(window),
        "api_task_id": api_task_id,
        "failed_at": stage,
        "problems": [f"{stage} failed: {message[:_STORED_CHARS]}"],
    }
    try:
        engine = ledger_engine()
        schema.create_tables(engine)  # a run that failed first thing, on a new ledger
        run_lifecycle.finish_run(
            engine,
            run_id,
            api_task_id or "",
            window,
            summary,
            failed=True,
        )
    except Exception as error:
        log.warning(
            "Could not record the failure of run %s in the ledger: %s", run_id, masked_text(error)
        )


def settings_failure(
    run_id: str,
    api_task_id: str | None,
    window: tuple[str | None, str | None],
    ledger_engine: Callable[[], Engine],
) -> tuple[str, list[str]]:
    """Why ``resolve_settings`` failed, for a later task of the run (``report``) that ends the
    run at once instead of reporting on settings it never got: ``(failed_at, problems)``, in
    the words resolve_settings recorded on the run's row. When it recorded nothing (it could
    not reach the ledger, or died without a Python error), a line pointing at its log is
    recorded now. Never raises: the run fails either way."""
    stage = "resolve_settings"
    try:
        recorded = counts.recorded_summary(ledger_engine(), run_id)
    except Exception as error:
        log.warning("Could not read run %s's record: %s", run_id, masked_text(error))
        recorded = {}
    if recorded.get("failed_at") == stage and recorded.get("problems"):
        return stage, list(recorded["problems"])
    message = "it ended without settings; see its log"
    record(stage, run_id, api_task_id, window, message, ledger_engine)
    return stage, [f"{stage} failed: {message}"]


def this_step(stage: str, settings: dict[str, Any]) -> Any:
    """``recorded_failure`` for a step of the running task, given the run's settings dict:
    recorded in the run's own ledger (its load's)."""
    from airflow.sdk import get_current_context

    from lead_load.core.run_settings import RunSettings
    from lead_load.glue.connections import engine_for, run_ledger_conn_id

    ti = get_current_context()["ti"]
    run = RunSettings.from_dict(settings)
    return recorded_failure(
        stage,
        run.run_id,
        run.api_task_id,
        (run.window_start, run.window_end),
        lambda: engine_for(run_ledger_conn_id(run)),
        last_try=ti.try_number > ti.max_tries,
    )
