"""Airflow's plugins manager finds the Lead loads page in the plugins folder, and the UI gets
its three entries with the placeholders the UI fills in."""

from __future__ import annotations

import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "plugins" / "lead_loads"


def test_the_plugins_manager_loads_the_page_from_the_plugins_folder():
    from airflow import plugins_manager

    plugins, errors = plugins_manager._get_plugins()
    assert not {path: error for path, error in errors.items() if "lead_loads" in path}
    (plugin,) = [p for p in plugins if p.name == "lead_loads"]
    (mounted,) = plugin.fastapi_apps
    assert mounted["url_prefix"] == "/lead-loads"
    assert mounted["app"] is sys.modules["lead_loads.app"].app
    views = {v["destination"]: v for v in plugin.external_views}
    assert set(views) == {"nav", "dag_run", "task_instance"}
    assert views["nav"]["href"] == "/lead-loads/" and views["nav"]["nav_top_level"]
    assert views["dag_run"]["href"].startswith("/lead-loads/runs/{RUN_ID}")
    assert views["task_instance"]["href"].startswith(
        "/lead-loads/runs/{RUN_ID}/map-index/{MAP_INDEX}"
    )
    assert len({v["url_route"] for v in plugin.external_views}) == 3


def test_the_packages_modules_are_not_loaded_again_under_their_file_names():
    from airflow import plugins_manager

    plugins_manager._get_plugins()
    for name in ("app", "views", "access", "__init__"):
        module = sys.modules.get(name)
        assert not str(getattr(module, "__file__", "")).startswith(str(PACKAGE))
