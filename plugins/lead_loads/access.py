"""Who may see the Lead loads page: Airflow decides, through the api-server's auth manager.

The page shows the ledger of the ``lead_load`` DAG, so every route needs read access to
that DAG (its runs, its task instances for a batch), checked exactly as Airflow's own REST
routes check it: ``requires_access_dag`` reads the user from the JWT in the ``Authorization``
header or the UI's ``_token`` cookie and asks the configured auth manager. The DAG is fixed
here, never taken from the request, so a query parameter cannot widen what is checked.
"""

from __future__ import annotations

from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity
from airflow.api_fastapi.core_api.security import requires_access_dag
from fastapi import Depends

from lead_loads.views import DAG_ID

read_dag = Depends(requires_access_dag("GET", param_dag_id=DAG_ID))
read_runs = Depends(requires_access_dag("GET", DagAccessEntity.RUN, param_dag_id=DAG_ID))
read_task_instances = Depends(
    requires_access_dag("GET", DagAccessEntity.TASK_INSTANCE, param_dag_id=DAG_ID)
)
