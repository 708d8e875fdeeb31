"""
### canary: how long Airflow keeps a trivial DAG waiting

A test and benchmark DAG, never shipped: it lives outside `dags/`, and only the distributed
test stack (`tests/distributed/stack.py`) loads it, as a second DAG bundle. One task that does
nothing. `tests/distributed/canary.py` triggers it every few seconds while a big `lead_load`
runs on the same scheduler, executor and triggerer, and reads how long each run waited from
its creation to its task starting and ending: a load must leave the shared Airflow free for
everybody else's DAGs (`benchmarks/shared_airflow.py`).
"""

from __future__ import annotations

import pendulum
from airflow.sdk import dag, task


@dag(
    dag_id="canary",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["canary", "test"],
    doc_md=__doc__,
)
def canary():
    @task
    def chirp() -> None:
        """Nothing to do: only when it starts and ends matters."""

    chirp()


canary()
