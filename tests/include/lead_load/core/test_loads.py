"""Loads in configuration: every kind of mistake is refused naming the file, the load and
the key; the shipped loads read; ledger run ids keep loads apart."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from lead_load.core.loads import (
    DEFAULT_LOAD_ID,
    LOADS_DIR,
    LoadConfigError,
    airflow_run_of,
    ledger_run_id,
    loads_folder,
    read_load,
    read_loads,
)

INCLUDE = Path(__file__).resolve().parents[4] / "include"
GOOD = {
    "load_id": "new_signups",
    "api_task_id": "123e4567-e89b-12d3-a456-426614174000",
    "schedule": "15 1 * * *",
    "timezone": "Europe/Berlin",
    "sql": {"extract": "sql/extract_leads.sql"},
}


def write(folder: Path, name: str, data: object) -> Path:
    path = folder / f"{name}.yaml"
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data), encoding="utf-8")
    return path


def refusal(tmp_path: Path, data: object) -> str:
    path = write(tmp_path, "broken", data)
    with pytest.raises(LoadConfigError) as raised:
        read_load(path, INCLUDE)
    message = str(raised.value)
    assert str(path) in message  # every line names the file
    return message


def test_the_shipped_loads_read_and_the_default_keeps_its_id() -> None:
    loads = {load.load_id: load for load in read_loads(LOADS_DIR, INCLUDE)}
    assert set(loads) == {DEFAULT_LOAD_ID, "lapsed_customers"}
    default = loads[DEFAULT_LOAD_ID]
    assert (default.schedule, default.timezone) == ("0 2 * * *", "Asia/Shanghai")
    assert default.connections.warehouse == "lead_warehouse"
    assert default.connections.ledger is None
    assert default.field_mapping_of(INCLUDE).lead_id == "lead_id"
    second = loads["lapsed_customers"]
    assert second.paused and second.schedule != default.schedule
    assert second.field_mapping_of(INCLUDE).fields["phone"] == "mobile"
    assert second.sql.templates()["sqlite_sql"].endswith("sqlite/extract.sql")


def test_a_minimal_load_takes_the_defaults(tmp_path: Path) -> None:
    load = read_load(write(tmp_path, "new_signups", GOOD), INCLUDE)
    assert load.batch_size == 200 and load.max_reject_ratio == 0.2
    assert load.connections.platform == "agent_api_default"
    assert load.sql.templates() == {"sql": "sql/extract_leads.sql"}


@pytest.mark.parametrize(
    ("change", "key", "words"),
    [
        ({"schedul": "0 2 * * *"}, "schedul", "unknown key"),
        ({"load_id": "has space"}, "load_id", "it is the DAG id"),
        ({"api_task_id": "campaign-7"}, "api_task_id", "UUID"),
        ({"schedule": "every night"}, "schedule", "not a cron expression"),
        ({"timezone": "Mars/Olympus"}, "timezone", "unknown time zone"),
        ({"batch_size": 500}, "batch_size", "less than or equal to 200"),
        ({"max_reject_ratio": -0.1}, "max_reject_ratio", "greater than or equal to 0"),
        ({"ignore_crm": "sometimes"}, "ignore_crm", "boolean"),
        ({"connections": {"warehouse": "my warehouse"}}, "connections.warehouse", "connection"),
        ({"connections": {"ledgr": "x"}}, "connections.ledgr", "unknown key"),
        ({"sql": {}}, "sql.extract", "required"),
        ({"sql": {"extract": "sql/nope.sql"}}, "sql.extract", "no file"),
        ({"suppression_sql": "sql/opt_outs.sql"}, "suppression_sql", "no file"),
        (
            {"sql": {"extract": "sql/extract_leads.sql", "dialects": {"sqlite": {}}}},
            "sql.dialects.sqlite.extract",
            "required",
        ),
        ({"field_mapping": "lead_load/core/nope.yaml"}, "field_mapping", "cannot read"),
        ({"field_mapping": {"fields": {"name": "n"}}}, "field_mapping", "must map `phone`"),
        ({"tags": "outbound"}, "tags", "tuple"),
    ],
)
def test_each_kind_of_mistake_names_the_file_the_load_and_the_key(
    tmp_path: Path, change: dict, key: str, words: str
) -> None:
    message = refusal(tmp_path, {**GOOD, **change})
    name = change.get("load_id", GOOD["load_id"])
    assert f"load {name!r}" in message
    assert f"key {key}" in message
    assert words in message


def test_a_missing_load_id_or_a_file_that_is_no_mapping_is_refused(tmp_path: Path) -> None:
    without_id = {k: v for k, v in GOOD.items() if k != "load_id"}
    message = refusal(tmp_path, without_id)
    assert "load 'broken'" in message and "key load_id: required" in message
    assert "must be a YAML mapping" in refusal(tmp_path, "- a list\n- not a load\n")
    assert "cannot read it" in refusal(tmp_path, "load_id: [unclosed\n")


def test_a_folder_with_any_broken_file_builds_no_load_and_lists_every_mistake(
    tmp_path: Path,
) -> None:
    write(tmp_path, "good", GOOD)
    write(tmp_path, "bad_one", {**GOOD, "load_id": "bad_one", "batch_size": 0})
    write(tmp_path, "bad_two", {**GOOD, "load_id": "bad_two", "timezone": "Nowhere"})
    with pytest.raises(LoadConfigError) as raised:
        read_loads(tmp_path, INCLUDE)
    message = str(raised.value)
    assert "bad_one.yaml: load 'bad_one': key batch_size" in message
    assert "bad_two.yaml: load 'bad_two': key timezone" in message


def test_two_files_with_one_load_id_are_refused(tmp_path: Path) -> None:
    write(tmp_path, "a", GOOD)
    write(tmp_path, "b", GOOD)
    with pytest.raises(LoadConfigError, match=r"b\.yaml: load 'new_signups': key load_id: also"):
        read_loads(tmp_path, INCLUDE)


def test_an_empty_or_missing_folder_is_refused(tmp_path: Path) -> None:
    with pytest.raises(LoadConfigError, match="no load configured"):
        read_loads(tmp_path, INCLUDE)
    with pytest.raises(LoadConfigError, match="no such folder"):
        read_loads(tmp_path / "nope", INCLUDE)


def test_the_folder_comes_from_the_environment_when_set(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("LEAD_LOAD_LOADS_DIR", raising=False)
    assert loads_folder() == LOADS_DIR
    monkeypatch.setenv("LEAD_LOAD_LOADS_DIR", str(tmp_path))
    assert loads_folder() == tmp_path


def test_ledger_run_ids_keep_loads_apart_and_leave_the_default_load_as_it_was() -> None:
    run = "scheduled__2026-11-24T18:00:00+00:00"
    assert ledger_run_id(DEFAULT_LOAD_ID, run) == run
    other = ledger_run_id("lapsed_customers", run)
    assert other != run
    assert airflow_run_of(other) == ("lapsed_customers", run)
    assert airflow_run_of(run) == (DEFAULT_LOAD_ID, run)
    with pytest.raises(ValueError, match="too long for the ledger"):
        ledger_run_id("lapsed_customers", "manual__" + "x" * 240)


def test_a_loads_errors_name_its_own_query_and_mapping(tmp_path: Path) -> None:
    shipped = {load.load_id: load for load in read_loads(LOADS_DIR, INCLUDE)}
    default = shipped[DEFAULT_LOAD_ID].sources("postgresql")
    assert default.extract_sql == "include/sql/extract_leads.sql"
    assert default.mapping == "include/lead_load/core/field_mapping.yaml"
    assert (
        shipped[DEFAULT_LOAD_ID]
        .sources("sqlite")
        .extract_sql.endswith("sql/sqlite/extract_leads.sql")
    )
    lapsed = shipped["lapsed_customers"].sources("postgresql")
    assert lapsed.extract_sql == "include/sql/lapsed_customers/extract.sql"
    assert lapsed.mapping.endswith("lapsed_customers.yaml (key field_mapping)")
    inline = read_load(
        write(tmp_path, "inline", {**GOOD, "sql": {"extract": "SELECT * FROM signups"}}), INCLUDE
    )
    assert inline.sources().extract_sql == f"{tmp_path / 'inline.yaml'} (key sql)"
