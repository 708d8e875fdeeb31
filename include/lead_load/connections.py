"""The Airflow connections the DAG uses, and engines built from them."""

from __future__ import annotations

from sqlalchemy import Engine

WAREHOUSE_CONN_ID = "lead_warehouse"
# The ledger lives in the warehouse unless the Variable lead_load_ledger_conn_id names
# another connection (any SQLAlchemy-capable database Airflow can reach).
LEDGER_CONN_VARIABLE = "lead_load_ledger_conn_id"


def engine_for(conn_id: str) -> Engine:
    from airflow.sdk import BaseHook

    hook = BaseHook.get_connection(conn_id).get_hook()
    engine_kwargs = {}
    if hook.get_uri().startswith("sqlite"):
        # Mapped tasks may write at the same time: wait for SQLite's lock instead of failing.
        engine_kwargs["connect_args"] = {"timeout": 60}
    return hook.get_sqlalchemy_engine(engine_kwargs=engine_kwargs)


def warehouse_engine() -> Engine:
    return engine_for(WAREHOUSE_CONN_ID)


def ledger_engine() -> Engine:
    from airflow.sdk import Variable

    conn_id = Variable.get(LEDGER_CONN_VARIABLE, default=None) or WAREHOUSE_CONN_ID
    return engine_for(conn_id)
