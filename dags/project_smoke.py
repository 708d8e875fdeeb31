"""A one-task DAG that proves the Airflow install, dags/ and include/ work together."""

from __future__ import annotations

import pendulum
from airflow.sdk import dag, task

import lead_load


@dag(
    dag_id="project_smoke",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["lead_load", "smoke"],
    doc_md=__doc__,
    default_args={"owner": "data-engineering", "retries": 2},
)
def project_smoke():
    @task
    def check_project_imports() -> str:
        return lead_load.__doc__.splitlines()[0]

    check_project_imports()


project_smoke()
