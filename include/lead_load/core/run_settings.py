"""What one run works on: ``RunSettings``, resolved once by the run's first task and passed
to the others as a small dict. Its defaults are the only definition of the run settings'
defaults: the DAG's Params and the README's settings table take them from here
(``lead_load.glue.settings_catalog``).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from agent_api.endpoints import MAX_ROWS_PER_IMPORT

API_TASK_VARIABLE = "lead_load_api_task_id"
LEDGER_CONN_VARIABLE = "lead_load_ledger_conn_id"
WAREHOUSE_CONN_ID = "lead_warehouse"


@dataclass(frozen=True)
class RunSettings:
    """What one run works on; resolved by the first task, passed between tasks as a dict."""

    run_id: str
    api_task_id: str
    window_start: str
    window_end: str
    sub_user_id: str | None = None
    ignore_crm: bool | None = False
    encryption: bool | None = False
    dry_run: bool = False
    batch_size: int = MAX_ROWS_PER_IMPORT
    stop_running_task: bool = False
    max_reject_ratio: float = 0.2
    # Where the window came from (lead_load.core.window.window_source), for the summary.
    window_source: str = "window_start/window_end params"
    # The load (DAG) the run belongs to and its connections (lead_load.core.loads); runs
    # recorded before configured loads read as the default load's.
    load_id: str = "lead_load"
    warehouse_conn_id: str = WAREHOUSE_CONN_ID
    agent_api_conn_id: str = "agent_api_default"
    # Resolved by the first task; empty on runs recorded before: the Variable, else warehouse.
    ledger_conn_id: str | None = None

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> RunSettings:
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)

    @classmethod
    def from_params(
        cls,
        params: dict[str, Any],
        run_id: str,
        api_task_id: str,
        window: tuple[str, str],
        window_source: str | None = None,
        wiring: LoadWiring | None = None,
        ledger_conn_id: str | None = None,
    ) -> RunSettings:
        """From the run's Params, the calling task and window resolved by the caller; a Param
        left empty takes the default defined here."""
        values: dict[str, Any] = {}
        for f in fields(cls):
            raw = params.get(f.name)
            values[f.name] = f.default if raw is None or raw == "" else raw
        return cls(
            run_id=run_id,
            api_task_id=api_task_id,
            window_start=window[0],
            window_end=window[1],
            sub_user_id=values["sub_user_id"] or None,
            ignore_crm=bool(values["ignore_crm"]),
            encryption=bool(values["encryption"]),
            dry_run=bool(values["dry_run"]),
            batch_size=int(values["batch_size"]),
            stop_running_task=bool(values["stop_running_task"]),
            max_reject_ratio=float(values["max_reject_ratio"]),
            window_source=window_source or values["window_source"],
            load_id=(wiring or LoadWiring()).load_id,
            warehouse_conn_id=(wiring or LoadWiring()).warehouse_conn_id,
            agent_api_conn_id=(wiring or LoadWiring()).agent_api_conn_id,
            ledger_conn_id=ledger_conn_id,
        )


@dataclass(frozen=True)
class LoadWiring:
    """What the run's first task needs of its load's configuration (lead_load.core.loads)
    that the trigger form does not set: where the calling task and the connections come from."""

    load_id: str = "lead_load"
    api_task_variable: str = API_TASK_VARIABLE
    warehouse_conn_id: str = WAREHOUSE_CONN_ID
    agent_api_conn_id: str = "agent_api_default"
    # Empty: the Variable lead_load_ledger_conn_id, else the warehouse's connection.
    ledger_conn_id: str | None = None
