"""Who may see the Lead loads page: Airflow decides, through the api-server's auth manager.

The page shows the ledger of the loads, so every route needs read access to the default
load's DAG, ``lead_load`` (its runs, its task instances for a batch), checked exactly as
Airflow's own REST routes check it: ``requires_access_dag`` reads the user from the JWT in
the ``Authorization`` header or the UI's ``_token`` cookie and asks the configured auth
manager. That DAG is fixed here, never taken from the request, so a query parameter cannot
widen what is checked. A page of another load's run needs read access to that load's DAG
as well (``read_this_load``), and the list shows only the runs of loads the user may read
(``readable_loads``): both only ever narrow what the fixed check allows.
"""

from __future__ import annotations

from collections.abc import Iterable

from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity, DagDetails
from airflow.api_fastapi.core_api.security import GetUserDep, requires_access_dag
from fastapi import Depends, Request

from lead_loads.views import DAG_ID

read_dag = Depends(requires_access_dag("GET", param_dag_id=DAG_ID))
read_runs = Depends(requires_access_dag("GET", DagAccessEntity.RUN, param_dag_id=DAG_ID))
read_task_instances = Depends(
    requires_access_dag("GET", DagAccessEntity.TASK_INSTANCE, param_dag_id=DAG_ID)
)


def _load_asked(request: Request) -> str | None:
    """The load a run route is about: its path's ``dag_id`` (``/loads/<dag_id>/...``), else
    the ``dag_id`` Airflow's tab adds to the query."""
    return request.path_params.get("dag_id") or request.query_params.get("dag_id")


def _read_this_load(request: Request, user: GetUserDep) -> None:
    dag_id = _load_asked(request)
    if dag_id and dag_id not in (DAG_ID, "~"):
        requires_access_dag("GET", DagAccessEntity.RUN, param_dag_id=dag_id)(request, user)


read_this_load = Depends(_read_this_load)


def readable_loads(loads: Iterable[str], user) -> list[str]:
    """The loads among ``loads`` whose runs the user may read."""
    from airflow.api_fastapi.app import get_auth_manager

    manager = get_auth_manager()
    return [
        load
        for load in loads
        if manager.is_authorized_dag(
            method="GET",
            access_entity=DagAccessEntity.RUN,
            details=DagDetails(id=load),
            user=user,
        )
    ]
