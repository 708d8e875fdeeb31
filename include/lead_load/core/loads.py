"""Loads defined in configuration: one YAML file per load under ``include/lead_load/loads/``.

A load is one DAG: its calling task, schedule, extract SQL, field mapping, connections and
run defaults. ``read_loads`` reads a folder of them and checks every file against
``LoadConfig`` (pydantic, strict: an unknown key is a mistake, not a comment); any mistake
raises ``LoadConfigError`` naming the file, the load and the key, and no load of the folder
is built (``dags/lead_load_dag.py`` lets it surface as the DAG file's import error).

Loads meet in the ledger: its rows are keyed by calling task, so two loads aimed at one
calling task share every exactly-once guarantee. Each load's runs are kept apart by their
ledger run id (``ledger_run_id``): Airflow's run ids are unique per DAG only.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from datetime import date
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, field_validator

from agent_api.endpoints import MAX_ROWS_PER_IMPORT
from lead_load.core.mapping import FieldMapping, MappingError
from lead_load.core.warehouse_contract import Sources

# The load whose DAG id, Variables and ledger run ids predate configured loads.
DEFAULT_LOAD_ID = "lead_load"
DEFAULT_API_TASK_VARIABLE = "lead_load_api_task_id"
INCLUDE_DIR = Path(__file__).resolve().parents[2]
LOADS_DIR = INCLUDE_DIR / "lead_load" / "loads"
LOADS_DIR_VARIABLE = "LEAD_LOAD_LOADS_DIR"

# A DAG id Airflow accepts, short enough that "<load id>/<run id>" fits the ledger's 250.
LOAD_ID_PATTERN = r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$"
UUID_PATTERN = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
CONN_ID_PATTERN = r"^[A-Za-z0-9_.-]{1,250}$"
LEDGER_RUN_ID_MAX = 250

ConnId = Annotated[str, Field(pattern=CONN_ID_PATTERN)]


class LoadConfigError(ValueError):
    """A load's configuration is malformed; the message names the file, the load and the key."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Connections(_Strict):
    """Airflow connection ids. ``ledger`` empty: the Variable ``lead_load_ledger_conn_id``,
    else the warehouse's connection (the ledger lives beside the leads)."""

    warehouse: ConnId = "lead_warehouse"
    platform: ConnId = "agent_api_default"
    ledger: ConnId | None = None


class DialectSql(_Strict):
    extract: str
    missing_updated_at: str | None = None


class ExtractSql(_Strict):
    """The extract query and the query counting rows without ``updated_at``: a path under
    ``include/`` ending in ``.sql`` (a Jinja template, as Airflow reads it) or the SQL itself.
    ``dialects``: the same two for one warehouse dialect (``sqlite``, ``postgresql``, ...)."""

    extract: str
    missing_updated_at: str | None = None
    dialects: dict[str, DialectSql] = Field(default_factory=dict)

    def templates(self) -> dict[str, str]:
        """The extract task's ``templates_dict`` (keys as ``steps.extract.queries_for`` reads)."""
        found = {"sql": self.extract}
        if self.missing_updated_at:
            found["missing_updated_at_sql"] = self.missing_updated_at
        for dialect, sql in self.dialects.items():
            found[f"{dialect}_sql"] = sql.extract
            if sql.missing_updated_at:
                found[f"{dialect}_missing_updated_at_sql"] = sql.missing_updated_at
        return found


class LoadConfig(_Strict):
    """One load: a DAG of its own, every run default of its trigger form from here."""

    load_id: str = Field(pattern=LOAD_ID_PATTERN)
    description: str = ""
    # The calling task (a UUID); empty: the Variable named by api_task_variable.
    api_task_id: str | None = Field(default=None, pattern=UUID_PATTERN)
    api_task_variable: str = DEFAULT_API_TASK_VARIABLE
    sub_user_id: str | None = None
    # A cron expression in ``timezone``, or empty for a load run only by hand.
    schedule: str | None = None
    timezone: str = "UTC"
    start_date: date = date(2026, 11, 1)
    paused: bool = False  # paused when Airflow first sees the DAG
    sql: ExtractSql
    # A query on the warehouse returning `phone` (and `reason`): numbers put on the
    # suppression list before each run stages (steps.suppression_query). File or SQL.
    suppression_sql: str | None = None
    # A path under include/ to a mapping YAML, or the mapping itself.
    field_mapping: str | dict[str, Any] = "lead_load/core/field_mapping.yaml"
    connections: Connections = Field(default_factory=Connections)
    batch_size: int = Field(default=MAX_ROWS_PER_IMPORT, ge=1, le=MAX_ROWS_PER_IMPORT)
    ignore_crm: bool = False
    encryption: bool = False
    max_reject_ratio: float = Field(default=0.2, ge=0, le=1)
    owner: str = "data-engineering"
    tags: tuple[str, ...] = ()
    # The file it was read from (read_load), for messages.
    _file: str = PrivateAttr(default="")

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"unknown time zone {value!r} (an IANA name, e.g. Asia/Shanghai)"
            ) from None
        return value

    @field_validator("schedule")
    @classmethod
    def _cron(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        from croniter import croniter

        if not croniter.is_valid(value):
            raise ValueError(f"{value!r} is not a cron expression (e.g. '0 2 * * *')")
        return value

    def sources(self, dialect: str | None = None) -> Sources:
        """Where its extract query (the dialect's own, if it has one) and its field mapping
        are, as the warehouse contract's errors name them."""
        where = self._file or f"the configuration of load {self.load_id!r}"
        own = self.sql.dialects.get(dialect or "")
        extract = own.extract if own else self.sql.extract
        return Sources(
            extract_sql=f"include/{extract}" if _is_file(extract) else f"{where} (key sql)",
            mapping=(
                f"include/{self.field_mapping}"
                if isinstance(self.field_mapping, str)
                else f"{where} (key field_mapping)"
            ),
        )

    def field_mapping_of(self, include_dir: Path = INCLUDE_DIR) -> FieldMapping:
        if isinstance(self.field_mapping, dict):
            return FieldMapping.from_dict(self.field_mapping)
        return FieldMapping.load(include_dir / self.field_mapping)


def ledger_run_id(load_id: str, airflow_run_id: str) -> str:
    """The run's id in the ledger: Airflow's own for the default load (ledgers written before
    configured loads keep their meaning), ``<load id>/<run id>`` for the others (Airflow's run
    ids have no ``/``, and are unique per DAG only)."""
    if load_id == DEFAULT_LOAD_ID:
        return airflow_run_id
    key = f"{load_id}/{airflow_run_id}"
    if len(key) > LEDGER_RUN_ID_MAX:
        raise ValueError(
            f"run id {airflow_run_id!r} of load {load_id!r} is too long for the ledger "
            f"({len(key)} characters with the load id; at most {LEDGER_RUN_ID_MAX})"
        )
    return key


def airflow_run_of(ledger_run: str) -> tuple[str, str]:
    """(DAG id, Airflow run id) of a ledger run id: the inverse of ``ledger_run_id``."""
    load_id, slash, run_id = ledger_run.partition("/")
    return (load_id, run_id) if slash else (DEFAULT_LOAD_ID, ledger_run)


def loads_folder() -> Path:
    """The folder of load files: ``LEAD_LOAD_LOADS_DIR`` when set (a deployment keeping its
    loads elsewhere, the tests), else ``include/lead_load/loads/``."""
    configured = os.environ.get(LOADS_DIR_VARIABLE, "").strip()
    return Path(configured) if configured else LOADS_DIR


def read_loads(folder: Path = LOADS_DIR, include_dir: Path = INCLUDE_DIR) -> list[LoadConfig]:
    """Every ``*.yaml`` of ``folder``, checked, in load id order; ``LoadConfigError`` listing
    every mistake of every file when any is wrong."""
    if not folder.is_dir():
        raise LoadConfigError(f"{folder}: no such folder of load configurations")
    loads: list[LoadConfig] = []
    problems: list[str] = []
    seen: dict[str, Path] = {}
    for path in sorted(folder.glob("*.yaml")):
        try:
            load = read_load(path, include_dir)
        except LoadConfigError as error:
            problems.append(str(error))
            continue
        if load.load_id in seen:
            problems.append(
                f"{path}: load {load.load_id!r}: key load_id: also the id of {seen[load.load_id]}"
            )
            continue
        seen[load.load_id] = path
        loads.append(load)
    if problems:
        raise LoadConfigError("\n".join(problems))
    if not loads:
        raise LoadConfigError(f"{folder}: no load configured (no *.yaml file)")
    return sorted(loads, key=lambda load: load.load_id)


def read_load(path: Path, include_dir: Path = INCLUDE_DIR) -> LoadConfig:
    """One load's file, checked: its schema, then that its SQL files and mapping exist and
    that the mapping is sound (``FieldMapping``'s own checks)."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as error:
        raise LoadConfigError(f"{path}: cannot read it: {_one_line(error)}") from None
    if not isinstance(data, dict):
        raise LoadConfigError(f"{path}: must be a YAML mapping of keys (load_id, sql, ...)")
    name = data.get("load_id") if isinstance(data.get("load_id"), str) else path.stem
    where = f"{path}: load {name!r}"
    try:
        load = LoadConfig.model_validate(data)
    except ValidationError as error:
        raise LoadConfigError(
            "\n".join(f"{where}: {problem}" for problem in _problems(error))
        ) from None
    problems = [
        f"{where}: key {key}: no file {include_dir / sql} (paths are under include/)"
        for key, sql in _sql_files(load)
        if not (include_dir / sql).is_file()
    ]
    load._file = str(path)
    try:
        load.field_mapping_of(include_dir)
    except MappingError as error:
        problems.append(f"{where}: key field_mapping: {_one_line(error)}")
    if problems:
        raise LoadConfigError("\n".join(problems))
    return load


def _sql_files(load: LoadConfig) -> Iterable[tuple[str, str]]:
    """(key, path) of each SQL given as a file."""
    sql = load.sql
    candidates = [("sql.extract", sql.extract), ("sql.missing_updated_at", sql.missing_updated_at)]
    for dialect, own in sql.dialects.items():
        candidates.append((f"sql.dialects.{dialect}.extract", own.extract))
        candidates.append((f"sql.dialects.{dialect}.missing_updated_at", own.missing_updated_at))
    candidates.append(("suppression_sql", load.suppression_sql))
    return [(key, value) for key, value in candidates if value and _is_file(value)]


def _is_file(sql: str) -> bool:
    return sql.strip().endswith(".sql") and "\n" not in sql.strip()


def _problems(error: ValidationError) -> list[str]:
    """pydantic's errors as "key a.b: what is wrong" lines, without its links."""
    lines = []
    for problem in error.errors(include_url=False):
        key = ".".join(str(part) for part in problem["loc"]) or "(the file)"
        message = problem["msg"]
        if problem["type"] == "extra_forbidden":
            message = "unknown key (see docs/loads.md for the keys a load takes)"
        elif problem["type"] == "missing":
            message = "required, and missing"
        elif problem["type"] == "string_pattern_mismatch":
            message = f"{problem.get('input')!r} is not valid here ({_pattern_words(key)})"
        lines.append(f"key {key}: {message.removeprefix('Value error, ')}")
    return lines


def _pattern_words(key: str) -> str:
    if key == "load_id":
        return "letters, digits, _ . -; at most 64 characters; it is the DAG id"
    if key == "api_task_id":
        return "a calling task id is a UUID, e.g. 123e4567-e89b-12d3-a456-426614174000"
    return "an Airflow connection id: letters, digits, _ . -"


def _one_line(error: BaseException) -> str:
    return re.sub(r"\s+", " ", str(error)).strip()
