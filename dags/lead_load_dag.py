"""
### lead_load: warehouse leads into the outbound-call platform, exactly once

Every night at **02:00 Asia/Shanghai (18:00 UTC the day before)** this DAG loads the leads
whose `updated_at` falls in the run's data interval, `[02:00, 02:00)` Asia/Shanghai, into a
calling task of the platform. The Airflow UI shows times in UTC: the run of 2026-11-25 02:00
Asia/Shanghai is listed at 2026-11-24 18:00.

`resolve_settings -> recheck_earlier_batches -> extract_and_stage -> plan_batches ->
post_batch (mapped, one per <=200-row batch) beside wait_for_callbacks (one deferrable
sensor for the run) -> verify_landing -> report -> publish_imported_leads`. The wait polls
each batch's callback by its `unique_id` as soon as its post is accepted, and records the
outcome; a batch's page in **Browse > Lead loads** shows both.

* **Exactly once**: the ledger table (`lead_load_ledger`) stages each valid lead once per
  calling task, and the database allows one active row per phone; retries, re-runs and
  backfills of overlapping days never send a number the calling task already has.
* **Every row accounted for**: the run note (top of the run's page), the `report` XCom
  (one flat table; key `breakdown` has the counts by reason), the task log and
  `lead_load_runs` say `extracted = invalid + duplicates_in_run + already_loaded +
  in_flight + staged`, `rejected = invalid + duplicates_in_run`, `staged + carried_over =
  submitted + not_sent`, `submitted = imported + not_imported + awaiting_callback`.
* **Window**: `window_start`/`window_end` (UTC; add `+08:00` for Asia/Shanghai time) win.
  Without them scheduled runs and backfills load their data interval, and a **manual run
  loads the interval Airflow infers from its logical date** (the last whole day before it,
  i.e. the previous night's load): its log warns and its run note says so. A manual run
  created without a logical date (REST API) must set both.
* **Asset** `agent-api://calling-task/imported-leads`: an event only when a run imported
  something, with the counts and the `api_task_id` as its extra (`publish_imported_leads`
  is skipped otherwise).
* Connections: `lead_warehouse` (SQL warehouse, holds the ledger too),
  `agent_api_default` (the platform) and, for the run note, `airflow_api` (the api-server;
  without it the note is skipped with a warning). Calling task: the `api_task_id` param,
  else the Variable `lead_load_api_task_id`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pendulum
from airflow.sdk import (
    Asset,
    CronDataIntervalTimetable,
    dag,
    get_current_context,
    task,
)

from lead_load.glue.notifications import failure_notifiers
from lead_load.glue.operators import PostBatchOperator, post_in_triggerer
from lead_load.glue.sensors import RunCallbacksSensor, callbacks_in_triggerer
from lead_load.glue.settings_catalog import callback_timeout, dag_params, retry_delay

INCLUDE_DIR = Path(__file__).resolve().parents[1] / "include"
TIMEZONE = "Asia/Shanghai"
AGENT_API_POOL = "agent_api"
# Outlet of a run that imported leads: downstream DAGs can be scheduled on fresh leads in the
# task (publish_imported_leads emits it, with the counts as the event's extra).
IMPORTED_LEADS = Asset("agent-api://calling-task/imported-leads", group="lead_load")
# From the environment (no I/O at parse time); tests shorten them. Defaults and the whole
# list of settings: lead_load.core.run_settings, and the README's settings table.
CALLBACK_TIMEOUT = callback_timeout()
RETRY_DELAY = retry_delay()
POLL_INTERVAL_SECONDS = 2.0


def _airflow_run_state(ti, dag_id: str, run_id: str) -> str | None:
    """A run's state as Airflow has it; None when it is not a run of this DAG."""
    try:
        return str(ti.get_dagrun_state(dag_id=dag_id, run_id=run_id))
    except Exception:  # not found: another DAG's run, or one deleted since
        return None


def _run(settings: dict):
    from lead_load.core.run_settings import RunSettings

    return RunSettings.from_dict(settings)


@dag(
    dag_id="lead_load",
    schedule=CronDataIntervalTimetable("0 2 * * *", timezone=TIMEZONE),
    start_date=pendulum.datetime(2026, 11, 1, tz=TIMEZONE),
    catchup=False,
    max_active_runs=1,
    tags=["lead_load", "agent-api", "outbound"],
    doc_md=__doc__,
    params=dag_params(),
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
    def resolve_settings(
        params: dict[str, Any], dag_run=None, run_id: str | None = None, ti=None
    ) -> dict:
        """The run's settings and window (logged in UTC and Asia/Shanghai)."""
        from lead_load.glue.connections import ledger_engine
        from lead_load.glue.failures import recorded_failure
        from lead_load.glue.settings_catalog import resolve

        with recorded_failure(
            "resolve_settings",
            run_id,
            params.get("api_task_id"),
            (params.get("window_start"), params.get("window_end")),
            ledger_engine,
            last_try=ti.try_number > ti.max_tries,
        ):
            interval = (dag_run.data_interval_start, dag_run.data_interval_end)
            return resolve(params, run_id, *interval, run_type=dag_run.run_type).to_dict()

    @task
    def recheck_earlier_batches(settings: dict, dag_run=None, ti=None) -> dict:
        from agent_api.hooks.agent_api import AgentApiHook
        from lead_load.glue.connections import ledger_engine
        from lead_load.glue.failures import this_step
        from lead_load.glue.settings_catalog import settle_period
        from lead_load.steps import settle

        with this_step("recheck_earlier_batches", settings):
            return settle.recheck_earlier_batches(
                _run(settings),
                ledger_engine(),
                AgentApiHook(),
                settle_period(),
                airflow_run_state=lambda run_id: _airflow_run_state(ti, dag_run.dag_id, run_id),
            )

    @task(
        templates_exts=[".sql"],
        templates_dict={
            "sql": "sql/extract_leads.sql",
            "missing_updated_at_sql": "sql/count_missing_updated_at.sql",
            # SQLite compares text: its own queries read updated_at with julianday().
            "sqlite_sql": "sql/sqlite/extract_leads.sql",
            "sqlite_missing_updated_at_sql": "sql/sqlite/count_missing_updated_at.sql",
        },
    )
    def extract_and_stage(settings: dict, templates_dict: dict | None = None) -> dict:
        from datetime import datetime

        from agent_api.hooks.agent_api import AgentApiHook
        from lead_load.core.mapping import FieldMapping
        from lead_load.core.window import sql_bounds
        from lead_load.glue.connections import ledger_engine, warehouse_engine
        from lead_load.glue.failures import this_step
        from lead_load.steps import extract

        with this_step("extract_and_stage", settings):
            run = _run(settings)
            warehouse = warehouse_engine()
            bounds = sql_bounds(
                datetime.fromisoformat(run.window_start),
                datetime.fromisoformat(run.window_end),
                warehouse.dialect.name,
            )
            sql, missing_sql = extract.queries_for(warehouse.dialect.name, templates_dict)
            return extract.extract_and_stage(
                run,
                sql,
                bounds,
                warehouse,
                ledger_engine(),
                AgentApiHook(),
                FieldMapping.load(),
                missing_updated_at_sql=missing_sql,
            )

    @task
    def plan_batches(settings: dict) -> list[dict]:
        from airflow.sdk.exceptions import AirflowFailException

        from lead_load.glue.connections import ledger_engine
        from lead_load.glue.failures import this_step
        from lead_load.glue.settings_catalog import max_map_length
        from lead_load.steps import plan

        with this_step("plan_batches", settings):
            try:
                batches = plan.plan(_run(settings), ledger_engine(), max_map_length())
            except ValueError as error:  # too many batches: retrying cannot help
                raise AirflowFailException(str(error)) from None
        return batches

    def planned_batches() -> list[dict] | None:
        """plan_batches' XCom, or None when it did not finish (the all_done tasks below)."""
        return get_current_context()["ti"].xcom_pull("plan_batches")

    @task(trigger_rule="all_done")
    def verify_landing(settings: dict) -> dict:
        from agent_api.hooks.agent_api import AgentApiHook
        from lead_load.glue.connections import ledger_engine
        from lead_load.steps import landing_check

        if settings is None or planned_batches() is None:
            # An earlier step failed and said why; there is nothing of this run to check.
            return {"skipped": "nothing was planned: an earlier step failed"}
        return landing_check.verify_landing(_run(settings), ledger_engine(), AgentApiHook())

    @task(trigger_rule="all_done")
    def report(
        settings: dict, extract_counts: dict | None = None, landing: dict | None = None, ti=None
    ) -> dict:
        """The run's summary as one flat XCom (key ``breakdown``: the counts by reason, batch
        status, ...), written on the run as its note; fails the run when it went wrong."""
        from airflow.sdk.exceptions import AirflowFailException

        from lead_load.core.run_summary import failure_note
        from lead_load.glue.connections import ledger_engine
        from lead_load.glue.failures import settings_failure
        from lead_load.glue.run_note import set_run_note
        from lead_load.steps import report as report_step

        if settings is None:
            # resolve_settings refused the run (and recorded why): end it now, in its words,
            # with no retry; nothing was extracted, staged or sent.
            params = get_current_context()["params"]
            failed_at, problems = settings_failure(
                ti.run_id,
                params.get("api_task_id"),
                (params.get("window_start"), params.get("window_end")),
                ledger_engine,
            )
            set_run_note(ti.dag_id, ti.run_id, failure_note(failed_at, problems))
            raise AirflowFailException("; ".join(problems))
        try:
            result = report_step.report(
                _run(settings),
                ledger_engine(),
                extract_counts,
                landing,
                planned=planned_batches() is not None,
            )
        except report_step.RunFailed as error:  # the verdict on finished work: no retry
            set_run_note(ti.dag_id, ti.run_id, error.note)
            raise AirflowFailException(str(error)) from None
        set_run_note(ti.dag_id, ti.run_id, result.note)
        ti.xcom_push(key="breakdown", value=result.breakdown)
        return result.summary

    @task(outlets=[IMPORTED_LEADS])
    def publish_imported_leads(summary: dict, outlet_events=None) -> None:
        """The imported-leads asset event, only when this run imported something."""
        from airflow.sdk.exceptions import AirflowSkipException

        from lead_load.core.run_summary import asset_extra

        if not summary.get("imported"):
            raise AirflowSkipException("nothing was imported: no imported-leads asset event")
        outlet_events[IMPORTED_LEADS].extra = asset_extra(summary)

    settings = resolve_settings()
    recheck = recheck_earlier_batches(settings)
    staged = extract_and_stage(settings)
    planned = plan_batches(settings)
    # One mapped post per batch; both start in the triggerer (docs/throughput.md).
    posted = PostBatchOperator.partial(
        task_id="post_batch",
        settings=settings,
        pool=AGENT_API_POOL,
        retries=3,
        start_from_trigger=True,
        start_trigger_args=post_in_triggerer(),
        map_index_template="batch {{ task.batch.batch_no }} ({{ task.batch.rows }} "
        "row{{ '' if task.batch.rows == 1 else 's' }})",
    ).expand(batch=planned)
    # One wait for the whole run beside the posts: it polls each batch's callback as soon as
    # the batch's post is accepted (no barrier behind the last post), and the scheduler has
    # one waiting task per run to check, not one per batch (docs/scale.md).
    waited = RunCallbacksSensor(
        task_id="wait_for_callbacks",
        callback_timeout=CALLBACK_TIMEOUT.total_seconds(),
        poke_interval=POLL_INTERVAL_SECONDS,
        start_from_trigger=True,
        start_trigger_args=callbacks_in_triggerer(CALLBACK_TIMEOUT, POLL_INTERVAL_SECONDS),
    )
    landing = verify_landing(settings)
    publish_imported_leads(report(settings, staged, landing))

    recheck >> staged >> planned >> waited
    [posted, waited] >> landing


lead_load()
