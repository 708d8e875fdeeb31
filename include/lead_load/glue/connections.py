"""The Airflow connections the DAG uses, and engines built from them."""

from __future__ import annotations

import re
import threading
from typing import Any

from airflow.sdk.exceptions import AirflowException, AirflowFailException
from sqlalchemy import Engine, event

from agent_api import lookup_cache
from lead_load.core.run_settings import LEDGER_CONN_VARIABLE, WAREHOUSE_CONN_ID, RunSettings

# The ledger lives in the warehouse unless the Variable lead_load_ledger_conn_id names
# another connection (any SQLAlchemy-capable database Airflow can reach).

# The server answered and refused us (PostgreSQL, MySQL wording): a login or database name
# to fix, which no retry can cure. Anything else (refused, timed out, unknown host) may pass.
_LOGIN_REFUSED = re.compile(
    r"authentication failed|role \S+ does not exist|database \S+ does not exist"
    r"|no pg_hba\.conf entry|access denied|unknown database",
    re.IGNORECASE,
)


class DatabaseUnreachable(AirflowException):
    """The connection's database cannot be reached now; Airflow retries the task."""


class DatabaseLoginRefused(AirflowFailException):
    """The database refused the connection's login; fails the task without retries."""


def engine_for(conn_id: str, conn: Any = None) -> Engine:
    from airflow.sdk import BaseHook

    conn = conn or BaseHook.get_connection(conn_id)
    hook = conn.get_hook()
    # A failed statement's parameters (phone numbers among them) stay out of the error text.
    engine_kwargs: dict[str, Any] = {"hide_parameters": True}
    if hook.get_uri().startswith("sqlite"):
        # Mapped tasks may write at the same time: wait for SQLite's lock instead of failing.
        engine_kwargs["connect_args"] = {"timeout": 60}
    engine = hook.get_sqlalchemy_engine(engine_kwargs=engine_kwargs)
    _explain_connect_errors(engine, conn_id, conn)
    return engine


def _explain_connect_errors(engine: Engine, conn_id: str, conn: Any) -> None:
    """Turn a failure to connect into an error that names the connection and what to fix.

    Without this a task fails with the driver's bare OperationalError (and its traceback):
    it names neither the Airflow connection to fix nor whether a retry can help, and a
    refused login was retried like an unreachable server.
    """
    where = _describe(conn)
    env_var = f"AIRFLOW_CONN_{conn_id.upper()}"

    @event.listens_for(engine, "handle_error")
    def explain(context) -> None:
        if context.connection is not None:  # a statement failed: not a connection problem
            return
        reason = " ".join(str(context.original_exception).split())
        if conn.password and len(conn.password) >= 5:  # shorter ones would mangle words
            reason = reason.replace(conn.password, "***")  # in case a driver echoes it
        if _LOGIN_REFUSED.search(reason):
            raise DatabaseLoginRefused(
                f"the database of Airflow connection {conn_id!r} ({where}) refused the login: "
                f"{reason} - fix the login, password or database (schema) of connection "
                f"{conn_id!r} (Admin -> Connections, or {env_var}); retrying cannot help."
            )
        raise DatabaseUnreachable(
            f"cannot connect to the database of Airflow connection {conn_id!r} ({where}): "
            f"{reason} - check that the database is up and reachable from the workers, and "
            f"the host and port of connection {conn_id!r} (Admin -> Connections, or "
            f"{env_var}); the task is retried."
        )


def _describe(conn: Any) -> str:
    """Where a connection points, without its password."""
    if conn.conn_type == "sqlite":
        return f"SQLite file {conn.schema or conn.host}"
    where = f"{conn.conn_type} at {conn.host}" + (f":{conn.port}" if conn.port else "")
    if conn.schema:
        where += f", database {conn.schema}"
    if conn.login:
        where += f", user {conn.login}"
    return where


_shared_engines: dict[tuple[str, str], Engine] = {}
_shared_engines_lock = threading.Lock()


def shared_engine_for(conn_id: str) -> Engine:
    """One engine (and connection pool) per connection per process.

    For the triggerer, which runs hundreds of posts and callback waits in one process: an
    engine of their own would open a database connection for each. Keyed by the connection's
    URI too, so an edited connection gets a new engine (once the look-up cache lets go of it).
    """
    from airflow.sdk import BaseHook

    conn = lookup_cache.connection(conn_id, BaseHook.get_connection)
    key = (conn_id, conn.get_uri())
    with _shared_engines_lock:
        if key not in _shared_engines:
            _shared_engines[key] = engine_for(conn_id, conn)
        return _shared_engines[key]


def warehouse_engine(conn_id: str = WAREHOUSE_CONN_ID) -> Engine:
    return engine_for(conn_id)


def ledger_conn_id(configured: str | None = None, warehouse: str = WAREHOUSE_CONN_ID) -> str:
    """The ledger's connection: the load's own (``connections.ledger`` of its configuration),
    else the Variable's, else the warehouse's."""
    if configured:
        return configured
    from airflow.sdk import Variable

    named = lookup_cache.variables.get(
        LEDGER_CONN_VARIABLE, lambda: Variable.get(LEDGER_CONN_VARIABLE, default=None)
    )
    return named or warehouse


def ledger_engine(configured: str | None = None, warehouse: str = WAREHOUSE_CONN_ID) -> Engine:
    return engine_for(ledger_conn_id(configured, warehouse))


def run_ledger_conn_id(run: RunSettings) -> str:
    """The ledger of a run: resolved by its first task (runs recorded before configured loads
    did not record it: resolved again, as then)."""
    return run.ledger_conn_id or ledger_conn_id(None, run.warehouse_conn_id)
