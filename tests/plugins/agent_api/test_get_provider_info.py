"""The provider metadata: valid by Airflow's own schemas, a form field for every setting of the
connection's extra, and registered by Airflow's ProvidersManager through the installed entry
point (the connection type, its hook and its form)."""

from __future__ import annotations

import json
from dataclasses import MISSING, fields
from importlib import import_module
from pathlib import Path

import airflow
import jsonschema
import pytest
from airflow._shared.module_loading import import_string

from agent_api.connection_settings import SETTING_KEYS, AgentApiSettings
from agent_api.get_provider_info import get_provider_info

AIRFLOW_DIR = Path(airflow.__file__).parent
INFO = get_provider_info()
(CONNECTION,) = INFO["connection-types"]


def schema(name: str) -> dict:
    return json.loads((AIRFLOW_DIR / name).read_text(encoding="utf-8"))


def test_the_info_is_valid_by_the_schema_providers_manager_checks():
    jsonschema.validate(INFO, schema("provider_info.schema.json"))


def test_the_connection_type_is_valid_by_the_provider_yaml_schema():
    """The stricter schema of provider.yaml also describes conn-fields and ui-field-behaviour."""
    connection_types = schema("provider.yaml.schema.json")["properties"]["connection-types"]
    jsonschema.validate(INFO["connection-types"], connection_types)


def types_of(name: str) -> list[str]:
    declared = CONNECTION["conn-fields"][name]["schema"]["type"]
    return declared if isinstance(declared, list) else [declared]


def test_the_form_has_a_field_for_every_setting_with_its_default():
    conn_fields = CONNECTION["conn-fields"]
    assert set(conn_fields) == SETTING_KEYS
    for f in fields(AgentApiSettings):
        if isinstance(f.default, int | float):
            assert types_of(f.name) == ["number", "null"], f.name
            assert conn_fields[f.name]["schema"]["default"] == f.default, f.name
        else:  # the ids
            assert "string" in types_of(f.name), f.name
    assert all(field["label"] and field["description"] for field in conn_fields.values())


def test_the_form_requires_exactly_the_settings_the_connection_cannot_do_without():
    """Airflow's form marks a field required when its type does not allow null."""
    for f in fields(AgentApiSettings):
        required = f.default is MISSING
        assert ("null" in types_of(f.name)) is not required, f.name
        if required:  # an empty text is no value either
            assert CONNECTION["conn-fields"][f.name]["schema"].get("minLength") == 1, f.name


def test_the_form_shows_the_fields_the_hook_reads_and_hides_the_others():
    behaviour = CONNECTION["ui-field-behaviour"]
    assert set(behaviour["hidden-fields"]) == {"schema", "login", "port"}
    assert behaviour["relabeling"] == {"host": "Base URL", "password": "API token"}
    assert set(behaviour["placeholders"]) <= {"host", "password"}


def test_the_hook_modules_and_class_it_names_exist():
    hook = import_string(CONNECTION["hook-class-name"])
    assert (hook.conn_type, hook.hook_name) == (
        CONNECTION["connection-type"],
        CONNECTION["hook-name"],
    )
    for kind in ("hooks", "triggers", "sensors"):
        for module in INFO[kind][0]["python-modules"]:
            import_module(module)


@pytest.fixture(scope="module")
def providers_manager():
    from airflow.providers_manager import ProvidersManager

    return ProvidersManager()


def test_providers_manager_reads_this_info_through_the_entry_point(providers_manager):
    data = providers_manager.providers[INFO["package-name"]].data
    assert {key: data[key] for key in INFO} == INFO


def test_providers_manager_registers_the_connection_type_and_its_hook(providers_manager):
    (metadata,) = [
        m
        for m in providers_manager.iter_connection_type_hook_ui_metadata()
        if m.connection_type == "agent_api"
    ]
    assert metadata.hook_class_name == "agent_api.hooks.agent_api.AgentApiHook"
    assert metadata.hook_name == "Agent API (outbound calls)"
    assert metadata.field_behaviour["hidden_fields"] == ["schema", "login", "port"]
    assert metadata.field_behaviour["relabeling"] == {"host": "Base URL", "password": "API token"}


def test_providers_manager_draws_a_form_widget_for_every_setting(providers_manager):
    widgets = {
        widget.field_name: widget
        for name, widget in providers_manager.connection_form_widgets.items()
        if name.startswith("extra__agent_api__")
    }
    assert set(widgets) == SETTING_KEYS
    assert widgets["request_timeout"].field["value"] == AgentApiSettings.request_timeout
    assert widgets["user_id"].field["schema"]["title"] == "User ID"
    assert not any(widget.is_sensitive for widget in widgets.values())  # the token is the password
