"""Every setting of a load, where it is set, and how the run reads it from Airflow.

``SETTINGS`` lists them all, whatever the channel: the DAG's Params (the trigger form),
Airflow Variables, the ``agent_api_default`` connection's extra, environment variables read
when the DAG file is parsed, and Airflow's own configuration. Their defaults are defined
once: the run settings' in ``lead_load.core.run_settings.RunSettings``, the connection's
in ``agent_api.connection_settings.AgentApiSettings``, the others here. The DAG builds its
Params from this list, and the README's settings table is ``settings_table()`` (a test holds
them equal).

Everything here that the DAG file calls at parse time reads only the environment: parsing
must not wait on the metadata DB.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass, fields
from datetime import datetime, timedelta
from typing import Any

from airflow.sdk import Param

from agent_api.connection_settings import AgentApiSettings
from agent_api.endpoints import MAX_ROWS_PER_IMPORT
from lead_load.core.run_settings import (
    API_TASK_VARIABLE,
    LEDGER_CONN_VARIABLE,
    WAREHOUSE_CONN_ID,
    LoadWiring,
    RunSettings,
)

log = logging.getLogger(__name__)

PARAM = "param"
VARIABLE = "Variable"
CONNECTION = "connection agent_api_default, extra"
ENVIRONMENT = "environment"
AIRFLOW_CONFIG = "Airflow config"

# A calling task's id: a UUID, as the platform gives them. Empty: the Variable.
UUID_PATTERN = "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
# A window bound: a date, or an ISO date-time (``T`` or a space, minutes at least, an
# optional fraction and offset or Z), as ``lead_load.core.window`` reads them. JSON schema's
# ``format: date-time`` is not used: Airflow checks no date-time format without the
# rfc3339-validator package, and it would refuse a bare date.
WINDOW_PATTERN = (
    r"^[0-9]{4}-[0-9]{2}-[0-9]{2}"
    r"([T ][0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]{1,6})?)?(Z|[+-][0-9]{2}:?[0-9]{2})?)?$"
)


def _or_empty(pattern: str) -> str:
    return f"^$|{pattern}"


@dataclass(frozen=True)
class Setting:
    name: str
    channel: str
    default: Any
    description: str
    title: str = ""
    # JSON-schema type of a Param (the trigger form validates it), and its bounds.
    type: str | list[str] = "string"
    minimum: float | None = None
    maximum: float | None = None
    # A regular expression a string Param must match (null passes: the type allows it).
    pattern: str | None = None


def _field_default(cls: type, name: str) -> Any:
    return next(f.default for f in fields(cls) if f.name == name)


def _connection_setting(key: str, description: str) -> Setting:
    """A setting of the connection's extra, with the default its reader applies."""
    default = _field_default(AgentApiSettings, key)
    return Setting(key, CONNECTION, default, description)


SETTINGS: tuple[Setting, ...] = (
    Setting(
        "api_task_id",
        PARAM,
        None,
        f"The calling task (campaign) UUID that receives the numbers. Empty: the Variable "
        f"{API_TASK_VARIABLE}. The run first checks that the platform has it for this user "
        "(and sub-account).",
        title="Target calling task",
        type=["null", "string"],
        pattern=_or_empty(UUID_PATTERN),
    ),
    Setting(
        "window_start",
        PARAM,
        None,
        "Load leads with updated_at >= this, in UTC like every time in the Airflow UI (the "
        "schedule runs at 02:00 Asia/Shanghai = 18:00 UTC): a date or an ISO date-time, e.g. "
        "2026-11-24 or 2026-11-24T02:00:00+08:00. Set both or neither. Neither: scheduled and "
        "backfill runs load their data interval, a manual run the one Airflow infers from its "
        "logical date (the last whole day before it, 02:00 to 02:00 Asia/Shanghai), as its log "
        "and run note say. Refused on scheduled and backfill runs.",
        title="Window start",
        type=["null", "string"],
        pattern=_or_empty(WINDOW_PATTERN),
    ),
    Setting(
        "window_end",
        PARAM,
        None,
        "Load leads with updated_at < this, in UTC (date or ISO date-time; add +08:00 for "
        "Asia/Shanghai time); after window_start.",
        title="Window end",
        type=["null", "string"],
        pattern=_or_empty(WINDOW_PATTERN),
    ),
    Setting(
        "sub_user_id",
        PARAM,
        _field_default(RunSettings, "sub_user_id"),
        "Act on this sub-account of the platform user.",
        title="Sub-account",
        type=["null", "string"],
    ),
    Setting(
        "ignore_crm",
        PARAM,
        _field_default(RunSettings, "ignore_crm"),
        "true: numbers go into the calling task only, not into the CRM public pool.",
        title="Skip the CRM public pool",
        type="boolean",
    ),
    Setting(
        "encryption",
        PARAM,
        _field_default(RunSettings, "encryption"),
        "The warehouse holds phone/company already encrypted for the platform.",
        title="Values are encrypted",
        type="boolean",
    ),
    Setting(
        "dry_run",
        PARAM,
        _field_default(RunSettings, "dry_run"),
        "Extract, validate, stage and plan, then report without posting anything.",
        title="Dry run",
        type="boolean",
    ),
    Setting(
        "batch_size",
        PARAM,
        _field_default(RunSettings, "batch_size"),
        f"Rows per import call (the platform takes at most {MAX_ROWS_PER_IMPORT}).",
        title="Rows per batch",
        type="integer",
        minimum=1,
        maximum=MAX_ROWS_PER_IMPORT,
    ),
    Setting(
        "stop_running_task",
        PARAM,
        _field_default(RunSettings, "stop_running_task"),
        "On code 6007 (calling task running), stop it and import instead of failing.",
        title="Stop a running 2.0 calling task",
        type="boolean",
    ),
    Setting(
        "max_reject_ratio",
        PARAM,
        _field_default(RunSettings, "max_reject_ratio"),
        "Fail the run when invalid + not imported rows exceed this share of the extracted rows "
        "(duplicates in the run do not count).",
        title="Max reject ratio",
        type="number",
        minimum=0,
        maximum=1,
    ),
    Setting(
        API_TASK_VARIABLE,
        VARIABLE,
        None,
        "The calling task when the api_task_id param is empty (scheduled runs).",
    ),
    Setting(
        LEDGER_CONN_VARIABLE,
        VARIABLE,
        WAREHOUSE_CONN_ID,
        "The Airflow connection of the ledger's database (default: the warehouse's).",
    ),
    _connection_setting(
        "request_timeout", "Seconds before a request to the platform counts as lost."
    ),
    _connection_setting(
        "max_attempts",
        "Attempts of one request for retryable errors, the first included, within one "
        "Airflow try (see 'Retries' below).",
    ),
    _connection_setting("backoff_seconds", "First retry delay; doubles each time, jittered."),
    _connection_setting("backoff_max_seconds", "Cap of one retry delay."),
    _connection_setting(
        "lost_answer_grace_seconds",
        "Wait before wait_for_callbacks first looks for a batch whose post's answer was lost "
        "in the calling task's number list (nothing is ever posted again within the run).",
    ),
    _connection_setting(
        "max_requests_per_second",
        "Pace each process's requests to the platform to at most this many (0: no limit).",
    ),
    Setting(
        "LEAD_LOAD_LOADS_DIR",
        ENVIRONMENT,
        "include/lead_load/loads",
        "The folder of load files, one YAML file per load and DAG (docs/loads.md); a broken "
        "file is the DAG file's import error and no load is built.",
    ),
    Setting(
        "LEAD_LOAD_CALLBACK_TIMEOUT_SECONDS",
        ENVIRONMENT,
        30 * 60,
        "How long wait_for_callbacks waits for one batch's callback before it gives up "
        "(the next run re-checks the batch).",
    ),
    Setting(
        "LEAD_LOAD_SETTLE_SECONDS",
        ENVIRONMENT,
        2 * 30 * 60,
        "How long after a post the platform has surely processed it. Rows whose post's "
        "answer was lost (or whose callback is gone) and that the calling task's number list does "
        "not show by then are sent again by the next run; before then, never. Keep it no "
        "shorter than LEAD_LOAD_CALLBACK_TIMEOUT_SECONDS (docs/leases.md).",
    ),
    Setting(
        "LEAD_LOAD_RETRY_DELAY_SECONDS",
        ENVIRONMENT,
        60,
        "First delay before Airflow retries a failed task (exponential backoff after it).",
    ),
    Setting(
        "LEAD_LOAD_ALERT_EMAILS",
        ENVIRONMENT,
        "",
        "Comma-separated addresses mailed when a run fails (connection smtp_default).",
    ),
    Setting(
        "core.max_map_length",
        AIRFLOW_CONFIG,
        1024,
        "Most batches one run may post (one mapped post_batch instance each): Airflow's "
        "default; the project's own setups ship 10000 (README, 'How big a window one load "
        "takes').",
    ),
    Setting(
        "triggerer.max_trigger_to_select_per_loop",
        AIRFLOW_CONFIG,
        50,
        "New triggers a triggerer starts per loop. Keep Airflow's default: 200 was no faster "
        "at 5,000 batches, and 500 hung Airflow 3.3.2's triggerer on its own log pipe within "
        "a minute of a 40,000-lead load (docs/scale.md).",
    ),
)

BY_NAME = {s.name: s for s in SETTINGS}


def default(name: str) -> Any:
    return BY_NAME[name].default


def param_settings() -> list[Setting]:
    return [s for s in SETTINGS if s.channel == PARAM]


def settings_table() -> str:
    """The README's settings table (markdown)."""
    lines = ["| setting | where | default | what it does |", "|---|---|---|---|"]
    for s in SETTINGS:
        shown = "(none)" if s.default in (None, "") else f"`{s.default}`"
        lines.append(f"| `{s.name}` | {s.channel} | {shown} | {s.description} |")
    return "\n".join(lines)


def dag_params(defaults: dict[str, Any] | None = None) -> dict[str, Param]:
    """The trigger form: one Param per setting of the ``param`` channel; ``defaults``: a
    load's own defaults for some of them (``lead_load.core.loads``)."""
    defaults = defaults or {}
    params = {}
    for s in param_settings():
        bounds = {
            k: v
            for k, v in (("minimum", s.minimum), ("maximum", s.maximum), ("pattern", s.pattern))
            if v is not None
        }
        params[s.name] = Param(
            defaults.get(s.name, s.default),
            type=s.type,
            title=s.title,
            description=s.description,
            **bounds,
        )
    return params


def _seconds_from_environment(name: str) -> timedelta:
    return timedelta(seconds=float(os.environ.get(name) or default(name)))


def callback_timeout() -> timedelta:
    return _seconds_from_environment("LEAD_LOAD_CALLBACK_TIMEOUT_SECONDS")


def settle_period() -> timedelta:
    """Read when a run rechecks earlier batches; never shorter than the callback timeout (a
    shorter one would re-send rows whose batch's wait may still see them land)."""
    return max(_seconds_from_environment("LEAD_LOAD_SETTLE_SECONDS"), callback_timeout())


def retry_delay() -> timedelta:
    return _seconds_from_environment("LEAD_LOAD_RETRY_DELAY_SECONDS")


def alert_emails() -> list[str]:
    raw = os.environ.get("LEAD_LOAD_ALERT_EMAILS") or default("LEAD_LOAD_ALERT_EMAILS")
    return [e.strip() for e in raw.split(",") if e.strip()]


def max_map_length() -> int:
    from airflow.sdk import conf

    return conf.getint("core", "max_map_length", fallback=default("core.max_map_length"))


def resolve(
    params: dict[str, Any],
    run_id: str,
    data_interval_start: datetime | None,
    data_interval_end: datetime | None,
    run_type: object = None,
    agent_api: Any = None,
    wiring: LoadWiring | None = None,
) -> RunSettings:
    """The run's settings, or an ``AirflowFailException`` that says in one line what to fix
    (a configuration error: retrying cannot help). Logs the window in UTC and Asia/Shanghai,
    with a warning when it is an interval Airflow inferred for a manual run.

    Refused: no calling task, or one that is not a UUID (the Variable's; the trigger form
    refuses the param's); one window bound without the other, a malformed one, a start not
    before the end; window params on a scheduled or backfill run (``run_type``: text or
    Airflow's enum), which would make every run load the same window; and a calling task the
    platform does not list for this user (``agent_api``: an ``AgentApiHook``, by default one
    that asks once, without retries). A platform that cannot be reached does not fail the
    run here: the posts retry. ``wiring``: the load's Variable and connections (the default
    load's when left out); ``run_id`` is the ledger's (``loads.ledger_run_id``).
    """
    from airflow.sdk import Variable
    from airflow.sdk.exceptions import AirflowFailException

    from lead_load.core.window import (
        WindowError,
        describe_window,
        is_inferred,
        resolve_window,
        window_source,
    )
    from lead_load.glue.connections import ledger_conn_id

    wiring = wiring or LoadWiring()
    variable = wiring.api_task_variable
    param_task = (params.get("api_task_id") or "").strip()
    api_task_id = param_task or (Variable.get(variable, default="") or "").strip()
    if not api_task_id:
        raise AirflowFailException(
            f"no calling task: set the api_task_id param (or the load's api_task_id) or the "
            f"Variable {variable}"
        )
    if not re.fullmatch(UUID_PATTERN, api_task_id):
        where = "the api_task_id param" if param_task else f"the Variable {variable}"
        raise AirflowFailException(
            f"api_task_id {api_task_id!r} (from {where}) is not a calling task id: the "
            "platform's calling task ids are UUIDs, e.g. 123e4567-e89b-12d3-a456-426614174000"
        )
    window_start, window_end = params.get("window_start"), params.get("window_end")
    kind = getattr(run_type, "value", run_type)
    if (window_start or window_end) and kind in ("scheduled", "backfill"):
        raise AirflowFailException(
            f"window_start/window_end are set on a {kind} run: every {kind} run would load "
            "that same window instead of its own data interval; remove them from the run's "
            "conf (or the DAG's param defaults), or trigger a manual run to load a chosen window"
        )
    try:
        start, end = resolve_window(
            window_start, window_end, data_interval_start, data_interval_end
        )
    except WindowError as error:
        raise AirflowFailException(str(error)) from None
    source = window_source(window_start, window_end, run_type)
    log.info("Window: %s, from the %s", describe_window(start, end), source)
    if is_inferred(source):
        log.warning(
            "No window_start/window_end: this %s run loads the data interval Airflow inferred "
            "from its logical date, %s. Trigger it with window_start and window_end (UTC) to "
            "load another window.",
            kind or "manual",
            describe_window(start, end),
        )
    run = RunSettings.from_params(
        params,
        run_id,
        api_task_id,
        (start.isoformat(), end.isoformat()),
        source,
        wiring,
        ledger_conn_id(wiring.ledger_conn_id, wiring.warehouse_conn_id),
    )
    check_calling_task(agent_api, run.api_task_id, run.sub_user_id, wiring)
    return run


def _ask_once(conn_id: str) -> Any:
    """A hook on the platform's connection that sends one request, no retries."""
    from agent_api.hooks.agent_api import AgentApiHook
    from agent_api.retry import RetryPolicy

    return AgentApiHook(conn_id, retry_policy=RetryPolicy(max_attempts=1))


def check_calling_task(
    agent_api: Any, api_task_id: str, sub_user_id: str | None, wiring: LoadWiring | None = None
) -> None:
    """Ask the platform once whether the user (or its sub-account) has the calling task,
    before anything is extracted or staged. Fails (``AirflowFailException``) when it does not,
    when the token is refused, or when the user or sub-account is unknown; a platform that
    cannot be reached, or an answer of an unknown shape, only logs a warning."""
    from airflow.sdk.exceptions import AirflowFailException

    from agent_api.exceptions import AgentApiAuthError, AgentApiError, AgentApiNotFoundError

    wiring = wiring or LoadWiring()
    hook = agent_api if agent_api is not None else _ask_once(wiring.agent_api_conn_id)
    try:
        sub_user = sub_user_id or hook.settings.sub_user_id
        owner = f"user {hook.user_id}" + (f" (sub-account {sub_user})" if sub_user else "")
        calling_tasks = hook.all_tasks(sub_user_id=sub_user_id)
    except AgentApiAuthError as error:
        raise AirflowFailException(
            f"cannot check calling task {api_task_id}: {error.platform_message}"
        ) from None
    except AgentApiNotFoundError as error:
        raise AirflowFailException(
            f"cannot check calling task {api_task_id}: the platform does not know {owner} "
            f"({error.platform_message}); check extra.user_id of the connection "
            f"{hook.agent_api_conn_id!r} and the sub_user_id param or extra.sub_user_id"
        ) from None
    except AgentApiError as error:
        log.warning(
            "Could not check that calling task %s exists (%s); going on: the posts retry",
            api_task_id,
            error,
        )
        return
    # ``id`` and ``task_id``: the fields of the platform's answer, as the API spells them.
    ids = {str(t.get("id", t.get("task_id"))) for t in calling_tasks if isinstance(t, dict)}
    ids -= {"None"}
    if calling_tasks and not ids:
        log.warning(
            "The platform's list of calling tasks has no ids (an unknown answer shape); "
            "calling task %s is not checked",
            api_task_id,
        )
        return
    if api_task_id.lower() not in {i.lower() for i in ids}:
        raise AirflowFailException(
            f"calling task {api_task_id} not found for {owner} ({len(calling_tasks)} calling "
            "tasks there); "
            f"check the api_task_id param or the Variable {wiring.api_task_variable} (and "
            "sub_user_id)"
        )
    log.info(
        "Calling task %s is one of the %d calling tasks of %s",
        api_task_id,
        len(calling_tasks),
        owner,
    )
