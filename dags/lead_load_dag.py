"""
Warehouse leads into the outbound-call platform, exactly once: one DAG per load configured
in `include/lead_load/loads/` (docs/loads.md). Each scheduled run loads the leads whose
`updated_at` (the column the load's field mapping names) falls in the run's data interval,
in the load's time zone, into the load's calling task. The Airflow UI shows times in UTC.

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
* Connections: the load's warehouse (default `lead_warehouse`, which holds the ledger
  too), its platform (default `agent_api_default`) and, for the run note, `airflow_api` (the
  api-server; without it the note is skipped with a warning). Calling task: the
  `api_task_id` param (its default from the load), else the load's Variable (default
  `lead_load_api_task_id`). Loads aimed at one calling task meet in the ledger: each number
  is sent once, whichever load finds it.
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

from lead_load.core.loads import (
    LoadConfig,
    airflow_run_of,
    ledger_run_id,
    loads_folder,
    read_loads,
)
from lead_load.glue.notifications import failure_notifiers
from lead_load.glue.operators import PostBatchOperator, post_in_triggerer
from lead_load.glue.sensors import RunCallbacksSensor, callbacks_in_triggerer
from lead_load.glue.settings_catalog import callback_timeout, dag_params, retry_delay

INCLUDE_DIR = Path(__file__).resolve().parents[1] / "include"
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


def _doc(load: LoadConfig) -> str:
    when = (
        f"Scheduled `{load.schedule}` in {load.timezone}"
        if load.schedule
        else "Not scheduled: runs are triggered by hand"
    )
    return (
        f"### {load.load_id}: {load.description or 'leads into the outbound-call platform'}\n\n"
        f"{when}; owner {load.owner}; configured in "
        f"`include/lead_load/loads/` (load `{load.load_id}`).\n{__doc__}"
    )


def build(load: LoadConfig):
    """The DAG of one configured load."""
    from lead_load.core.run_settings import LoadWiring

    wiring = LoadWiring(
        load_id=load.load_id,
        api_task_variable=load.api_task_variable,
        warehouse_conn_id=load.connections.warehouse,
        agent_api_conn_id=load.connections.platform,
        ledger_conn_id=load.connections.ledger,
    )
    # Where the triggers find the load's ledger (they read the run's settings from it).
    ledger_kwargs = {
        "ledger_conn_id": load.connections.ledger,
        "warehouse_conn_id": load.connections.warehouse,
    }
    connections = {**ledger_kwargs, "agent_api_conn_id": load.connections.platform}

    def ledger_engine():
        from lead_load.glue.connections import ledger_engine

        return ledger_engine(load.connections.ledger, load.connections.warehouse)

    def run_ledger(settings: dict):
        from lead_load.glue.connections import engine_for, run_ledger_conn_id

        return engine_for(run_ledger_conn_id(_run(settings)))

    def platform(settings: dict):
        from agent_api.hooks.agent_api import AgentApiHook

        return AgentApiHook(_run(settings).agent_api_conn_id)

    @dag(
        dag_id=load.load_id,
        schedule=(
            CronDataIntervalTimetable(load.schedule, timezone=load.timezone)
            if load.schedule
            else None
        ),
        start_date=pendulum.datetime(
            load.start_date.year, load.start_date.month, load.start_date.day, tz=load.timezone
        ),
        catchup=False,
        max_active_runs=1,
        is_paused_upon_creation=load.paused,
        tags=list(load.tags) or ["lead_load"],
        doc_md=_doc(load),
        description=load.description or None,
        params=dag_params(
            {
                "api_task_id": load.api_task_id,
                "sub_user_id": load.sub_user_id,
                "batch_size": load.batch_size,
                "ignore_crm": load.ignore_crm,
                "encryption": load.encryption,
                "max_reject_ratio": load.max_reject_ratio,
            }
        ),
        template_searchpath=[str(INCLUDE_DIR)],
        on_failure_callback=failure_notifiers(),
        default_args={
            "owner": load.owner,
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
            from lead_load.glue.failures import recorded_failure
            from lead_load.glue.settings_catalog import resolve

            ledger_run = ledger_run_id(load.load_id, run_id)
            with recorded_failure(
                "resolve_settings",
                ledger_run,
                params.get("api_task_id"),
                (params.get("window_start"), params.get("window_end")),
                ledger_engine,
                last_try=ti.try_number > ti.max_tries,
            ):
                interval = (dag_run.data_interval_start, dag_run.data_interval_end)
                run_type = dag_run.run_type
                return resolve(
                    params, ledger_run, *interval, run_type=run_type, wiring=wiring
                ).to_dict()

        @task
        def recheck_earlier_batches(settings: dict, ti=None) -> dict:
            from lead_load.glue.failures import this_step
            from lead_load.glue.settings_catalog import settle_period
            from lead_load.steps import settle

            with this_step("recheck_earlier_batches", settings):
                return settle.recheck_earlier_batches(
                    _run(settings),
                    run_ledger(settings),
                    platform(settings),
                    settle_period(),
                    # A ledger run of any load: its own DAG knows its state.
                    airflow_run_state=lambda run: _airflow_run_state(ti, *airflow_run_of(run)),
                )

        @task(
            templates_exts=[".sql"],
            # The load's queries, and its own per warehouse dialect (SQLite compares text:
            # the default load's SQLite queries read updated_at with julianday()).
            templates_dict={
                **load.sql.templates(),
                **({"suppression_sql": load.suppression_sql} if load.suppression_sql else {}),
            },
        )
        def extract_and_stage(settings: dict, templates_dict: dict | None = None) -> dict:
            from datetime import datetime

            from lead_load.core.window import sql_bounds
            from lead_load.glue.connections import warehouse_engine
            from lead_load.glue.failures import this_step
            from lead_load.steps import extract

            with this_step("extract_and_stage", settings):
                run = _run(settings)
                warehouse = warehouse_engine(run.warehouse_conn_id)
                if templates_dict.get("suppression_sql"):
                    from lead_load.steps import suppression_query

                    suppression_query.add_from_query(
                        warehouse,
                        run_ledger(settings),
                        templates_dict["suppression_sql"],
                        load.load_id,
                    )
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
                    run_ledger(settings),
                    platform(settings),
                    load.field_mapping_of(),
                    missing_updated_at_sql=missing_sql,
                    sources=load.sources(warehouse.dialect.name),
                )

        @task
        def plan_batches(settings: dict) -> list[dict]:
            from airflow.sdk.exceptions import AirflowFailException

            from lead_load.glue.failures import this_step
            from lead_load.glue.settings_catalog import max_map_length
            from lead_load.steps import plan

            with this_step("plan_batches", settings):
                try:
                    batches = plan.plan(_run(settings), run_ledger(settings), max_map_length())
                except ValueError as error:  # too many batches: retrying cannot help
                    raise AirflowFailException(str(error)) from None
            return batches

        def planned_batches() -> list[dict] | None:
            """plan_batches' XCom, or None when it did not finish (the all_done tasks below)."""
            return get_current_context()["ti"].xcom_pull("plan_batches")

        @task(trigger_rule="all_done")
        def verify_landing(settings: dict) -> dict:
            from lead_load.steps import landing_check

            if settings is None or planned_batches() is None:
                # An earlier step failed and said why; there is nothing of this run to check.
                return {"skipped": "nothing was planned: an earlier step failed"}
            return landing_check.verify_landing(
                _run(settings), run_ledger(settings), platform(settings)
            )

        @task(trigger_rule="all_done")
        def report(
            settings: dict, extract_counts: dict | None = None, landing: dict | None = None, ti=None
        ) -> dict:
            """The run's summary as one flat XCom (key ``breakdown``: the counts by reason, batch
            status, ...), written on the run as its note; fails the run when it went wrong."""
            from airflow.sdk.exceptions import AirflowFailException

            from lead_load.core.run_summary import failure_note
            from lead_load.glue.failures import settings_failure
            from lead_load.glue.run_note import set_run_note
            from lead_load.steps import report as report_step

            if settings is None:
                # resolve_settings refused the run (and recorded why): end it now, in its words,
                # with no retry; nothing was extracted, staged or sent.
                params = get_current_context()["params"]
                failed_at, problems = settings_failure(
                    ledger_run_id(load.load_id, ti.run_id),
                    params.get("api_task_id"),
                    (params.get("window_start"), params.get("window_end")),
                    ledger_engine,
                )
                set_run_note(ti.dag_id, ti.run_id, failure_note(failed_at, problems))
                raise AirflowFailException("; ".join(problems))
            try:
                result = report_step.report(
                    _run(settings),
                    run_ledger(settings),
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
            start_trigger_args=post_in_triggerer(ledger_kwargs),
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
            connections=connections,
            start_from_trigger=True,
            start_trigger_args=callbacks_in_triggerer(
                CALLBACK_TIMEOUT, POLL_INTERVAL_SECONDS, connections
            ),
        )
        landing = verify_landing(settings)
        publish_imported_leads(report(settings, staged, landing))

        recheck >> staged >> planned >> waited
        [posted, waited] >> landing

    return lead_load()


# One DAG per configured load; a mistake in any load's file is this file's import error,
# naming the file, the load and the key (no load is built from a folder with a broken file).
for _load in read_loads(loads_folder()):
    build(_load)
