"""
### lead_load: warehouse leads into the outbound-call platform, exactly once

Every night (02:00 Asia/Shanghai) this DAG loads the leads whose `updated_at` falls in the
run's data interval into a calling task of the platform:

`resolve_settings -> recheck_earlier_batches -> extract_and_stage -> plan_batches ->
post_batch (mapped, one per <=200-row batch) -> wait_for_callback (deferrable, mapped by
unique_id) -> verify_landing -> report`

* **Exactly once**: the ledger table (`lead_load_ledger`) stages each valid lead once per
  target task, and the database allows one active row per phone; retries, re-runs and
  backfills of overlapping days never send a number the task already has.
* **Every row accounted for**: rejects go to `lead_load_rejects` with their reason; the run's
  summary (last XCom, task log, `lead_load_runs`) adds up to the extracted count.
* **Manual runs** have no data interval: set `window_start` and `window_end`.
* Connections: `lead_warehouse` (SQL warehouse, holds the ledger too) and
  `agent_api_default` (the platform). Target task: the `api_task_id` param, else the
  Variable `lead_load_api_task_id`.
"""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path
from typing import Any

import pendulum
from airflow.sdk import (
    Asset,
    CronDataIntervalTimetable,
    Param,
    Variable,
    dag,
    get_current_context,
    task,
)

from lead_load.glue.notifications import failure_notifiers
from lead_load.glue.operators import PostBatchOperator, post_in_triggerer
from lead_load.glue.sensors import LedgerCallbackSensor, wait_in_triggerer

INCLUDE_DIR = Path(__file__).resolve().parents[1] / "include"
TIMEZONE = "Asia/Shanghai"
API_TASK_VARIABLE = "lead_load_api_task_id"
AGENT_API_POOL = "agent_api"
# Outlet of a successful run: downstream DAGs can be scheduled on fresh leads in the task.
IMPORTED_LEADS = Asset("agent-api://calling-task/imported-leads", group="lead_load")
# Read from the environment (no I/O at parse time); tests shorten them.
CALLBACK_TIMEOUT = timedelta(
    seconds=float(os.environ.get("LEAD_LOAD_CALLBACK_TIMEOUT_SECONDS", str(30 * 60)))
)
RETRY_DELAY = timedelta(seconds=float(os.environ.get("LEAD_LOAD_RETRY_DELAY_SECONDS", "60")))

PARAMS = {
    "api_task_id": Param(
        # Nullable, so the trigger form does not demand it when the Variable is set.
        None,
        type=["null", "string"],
        title="Target calling task",
        description=f"Task (campaign) UUID that receives the numbers. Empty: the Variable "
        f"{API_TASK_VARIABLE}.",
    ),
    "window_start": Param(
        None,
        type=["null", "string"],
        title="Window start",
        description="Load leads with updated_at >= this (UTC date or ISO date-time). "
        "Required for manual runs; scheduled runs use their data interval.",
    ),
    "window_end": Param(
        None,
        type=["null", "string"],
        title="Window end",
        description="Load leads with updated_at < this (UTC date or ISO date-time).",
    ),
    "sub_user_id": Param(
        None,
        type=["null", "string"],
        title="Sub-account",
        description="Act on this sub-account of the platform user.",
    ),
    "ignore_crm": Param(
        False,
        type="boolean",
        title="Skip the CRM public pool",
        description="true: numbers go into the task only, not into the CRM public pool.",
    ),
    "encryption": Param(
        False,
        type="boolean",
        title="Values are encrypted",
        description="The warehouse holds phone/company already encrypted for the platform.",
    ),
    "dry_run": Param(
        False,
        type="boolean",
        title="Dry run",
        description="Extract, validate, stage and plan, then report without posting anything.",
    ),
    "batch_size": Param(
        200,
        type="integer",
        minimum=1,
        maximum=200,
        title="Rows per batch",
        description="Rows per import call (the platform takes at most 200).",
    ),
    "stop_running_task": Param(
        False,
        type="boolean",
        title="Stop a running 2.0 task",
        description="On code 6007 (task running), stop the task and import instead of failing.",
    ),
    "max_reject_ratio": Param(
        0.2,
        type="number",
        minimum=0,
        maximum=1,
        title="Max reject ratio",
        description="Fail the run when rejected + not imported exceed this share of the "
        "extracted rows.",
    ),
}


def _settings():
    from airflow.sdk.exceptions import AirflowFailException

    from lead_load.core.settings import RunSettings

    values = get_current_context()["ti"].xcom_pull("resolve_settings")
    if not values:
        raise AirflowFailException("resolve_settings did not finish; see its log for why")
    return RunSettings.from_dict(values)


@dag(
    dag_id="lead_load",
    schedule=CronDataIntervalTimetable("0 2 * * *", timezone=TIMEZONE),
    start_date=pendulum.datetime(2026, 11, 1, tz=TIMEZONE),
    catchup=False,
    max_active_runs=1,
    tags=["lead_load", "agent-api", "outbound"],
    doc_md=__doc__,
    params=PARAMS,
    template_searchpath=[str(INCLUDE_DIR)],
    on_failure_callback=failure_notifiers(),
    default_args={
        "owner": "data-engineering",
        "retries": 2,
        "retry_delay": RETRY_DELAY,
        "retry_exponential_backoff": True,
    },
)
def lead_load():
    @task
    def resolve_settings(params: dict[str, Any], dag_run=None, run_id: str | None = None) -> dict:
        from airflow.sdk.exceptions import AirflowFailException

        from lead_load.core.settings import RunSettings
        from lead_load.core.window import WindowError, resolve_window

        api_task_id = (params.get("api_task_id") or "").strip() or Variable.get(
            API_TASK_VARIABLE, default=""
        )
        # Configuration errors: retrying cannot help, so fail at once with the reason.
        if not api_task_id:
            raise AirflowFailException(
                f"no target task: set the api_task_id param or the Variable {API_TASK_VARIABLE}"
            )
        try:
            start, end = resolve_window(
                params.get("window_start"),
                params.get("window_end"),
                dag_run.data_interval_start,
                dag_run.data_interval_end,
            )
        except WindowError as error:
            raise AirflowFailException(str(error)) from None
        settings = RunSettings(
            run_id=run_id,
            api_task_id=api_task_id,
            window_start=start.isoformat(),
            window_end=end.isoformat(),
            sub_user_id=params.get("sub_user_id") or None,
            ignore_crm=bool(params.get("ignore_crm")),
            encryption=bool(params.get("encryption")),
            dry_run=bool(params.get("dry_run")),
            batch_size=int(params.get("batch_size") or 200),
            stop_running_task=bool(params.get("stop_running_task")),
            max_reject_ratio=float(params.get("max_reject_ratio", 0.2)),
        )
        return settings.__dict__

    @task
    def recheck_earlier_batches() -> dict:
        from agent_api.hooks.agent_api import AgentApiHook
        from lead_load.glue.connections import ledger_engine
        from lead_load.steps import settle

        return settle.recheck_earlier_batches(_settings(), ledger_engine(), AgentApiHook())

    @task(templates_exts=[".sql"], templates_dict={"sql": "sql/extract_leads.sql"})
    def extract_and_stage(templates_dict: dict | None = None) -> dict:
        from datetime import datetime

        from agent_api.hooks.agent_api import AgentApiHook
        from lead_load.core.mapping import FieldMapping
        from lead_load.core.window import sql_bounds
        from lead_load.glue.connections import ledger_engine, warehouse_engine
        from lead_load.steps import extract

        settings = _settings()
        warehouse = warehouse_engine()
        bounds = sql_bounds(
            datetime.fromisoformat(settings.window_start),
            datetime.fromisoformat(settings.window_end),
            warehouse.dialect.name,
        )
        return extract.extract_and_stage(
            settings,
            templates_dict["sql"],
            bounds,
            warehouse,
            ledger_engine(),
            AgentApiHook(),
            FieldMapping.load(),
        )

    @task
    def plan_batches() -> list[dict]:
        from airflow.sdk import conf
        from airflow.sdk.exceptions import AirflowFailException

        from lead_load.glue.connections import ledger_engine
        from lead_load.steps.plan import plan

        try:
            return plan(
                _settings(), ledger_engine(), conf.getint("core", "max_map_length", fallback=1024)
            )
        except ValueError as error:  # too many batches: retrying cannot help
            raise AirflowFailException(str(error)) from None

    @task(trigger_rule="all_done")
    def collect_unique_ids() -> list[str]:
        from airflow.sdk.exceptions import AirflowSkipException

        from lead_load.glue.connections import ledger_engine
        from lead_load.ledger import batch_lifecycle

        planned = get_current_context()["ti"].xcom_pull("plan_batches")
        if planned is None:  # an earlier step failed and said why; nothing was posted
            raise AirflowSkipException("no batches were planned")
        if not planned:
            return []
        # From the ledger rather than post_batch's XComs: it also knows batches that an
        # earlier try posted, and batches whose post failed are simply not there.
        return batch_lifecycle.awaiting_callback(ledger_engine(), _settings().run_id)

    @task(trigger_rule="all_done")
    def verify_landing() -> dict:
        from agent_api.hooks.agent_api import AgentApiHook
        from lead_load.glue.connections import ledger_engine
        from lead_load.steps.landing_check import verify_landing as check_landing

        if get_current_context()["ti"].xcom_pull("plan_batches") is None:
            # An earlier step failed and said why; there is nothing of this run to check.
            return {"skipped": "nothing was planned: an earlier step failed"}
        return check_landing(_settings(), ledger_engine(), AgentApiHook())

    @task(trigger_rule="all_done", outlets=[IMPORTED_LEADS])
    def report(extract_counts: dict | None = None, landing: dict | None = None) -> dict:
        from airflow.sdk.exceptions import AirflowFailException

        from lead_load.glue.connections import ledger_engine
        from lead_load.steps.report import RunFailed
        from lead_load.steps.report import report as summarise

        try:
            return summarise(_settings(), ledger_engine(), extract_counts, landing)
        except RunFailed as error:  # the verdict on finished work: no retry
            raise AirflowFailException(str(error)) from None

    settings = resolve_settings()
    recheck = recheck_earlier_batches()
    staged = extract_and_stage()
    planned = plan_batches()
    # Each batch starts in the triggerer: no worker start per post (docs/throughput.md).
    posted = PostBatchOperator.partial(
        task_id="post_batch",
        settings=settings,
        pool=AGENT_API_POOL,
        retries=3,
        start_from_trigger=True,
        start_trigger_args=post_in_triggerer("resolve_settings", "plan_batches"),
        map_index_template="batch {{ task.batch.batch_no }} ({{ task.batch.rows }} rows)",
    ).expand(batch=planned)
    unique_ids = collect_unique_ids()
    # The callback waits start in the triggerer too, and record the outcome there.
    waited = LedgerCallbackSensor.partial(
        task_id="wait_for_callback",
        settings=settings,
        deferrable=True,
        start_from_trigger=True,
        start_trigger_args=wait_in_triggerer(
            "resolve_settings", "collect_unique_ids", CALLBACK_TIMEOUT, poll_interval=2.0
        ),
        poll_interval=2.0,
        timeout=CALLBACK_TIMEOUT.total_seconds(),
        soft_fail=True,
        map_index_template="{{ task.unique_id }}",
    ).expand(unique_id=unique_ids)
    landing = verify_landing()
    report(staged, landing)

    settings >> recheck >> staged >> planned
    posted >> unique_ids
    waited >> landing


lead_load()
