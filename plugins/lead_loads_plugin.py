"""Registers the Lead loads page (plugins/lead_loads) with Airflow.

The only file of the page that Airflow's plugin loader imports (``lead_loads/`` is in
.airflowignore: the loader would import each of its modules again as a top-level module
named after its file). The api-server mounts the app under ``/lead-loads``; the UI shows it
as a top-level menu entry, as a tab of each DAG run (``{RUN_ID}``) and as a tab of each task
instance (``{MAP_INDEX}``: a batch of ``post_batch``).
"""

from __future__ import annotations

from typing import Any, ClassVar

from airflow.plugins_manager import AirflowPlugin
from lead_loads.app import MOUNTED_AT, app


class LeadLoadsPlugin(AirflowPlugin):
    name = "lead_loads"
    fastapi_apps: ClassVar[list[dict[str, Any]]] = [
        {"app": app, "url_prefix": MOUNTED_AT, "name": "Lead loads"}
    ]
    external_views: ClassVar[list[dict[str, Any]]] = [
        {
            "name": "Lead loads",
            "href": f"{MOUNTED_AT}/",
            "destination": "nav",
            "url_route": "lead-loads",
            "nav_top_level": True,
        },
        {
            "name": "Lead load",
            "href": f"{MOUNTED_AT}/runs/{{RUN_ID}}?dag_id={{DAG_ID}}",
            "destination": "dag_run",
            "url_route": "lead-load",
        },
        {
            "name": "Lead batch",
            "href": f"{MOUNTED_AT}/runs/{{RUN_ID}}/map-index/{{MAP_INDEX}}"
            "?dag_id={DAG_ID}&task_id={TASK_ID}",
            "destination": "task_instance",
            "url_route": "lead-batch",
        },
    ]
