"""The ledger's tables, and how they are created and upgraded.

Works on any SQLAlchemy engine (SQLite, PostgreSQL and MariaDB are tested). Tables:

- ``lead_load_ledger``: one row per (calling task, lead, phone): a lead whose phone changes
  gets a row for the new number, the old number's row stays as it was (its history). Rules
  in ``core.ledger_rules``. A partial unique index allows one *active* row per (calling task,
  phone).
- ``lead_load_candidates``: a run's valid leads before the cross-chunk de-duplication.
- ``lead_load_batches``: one row per planned batch, its lease and its ``unique_id``.
- ``lead_load_rejects``: every row a run did not send, with the reason.
- ``lead_load_runs``: one row per run: its state, lease, settings, plan (first batch number)
  and summary.
- ``lead_load_task_locks``: one row per calling task, the staging lock.
- ``lead_load_suppressions``: the phones that must never be called (normalised as a lead's
  phone is), for every calling task (``suppressions``, docs/suppression.md).

Every reader and writer streams in slices of ``CHUNK`` rows, so memory stays bounded
whatever the run's size.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, datetime
from itertools import islice
from typing import Any

from sqlalchemy import (
    DDL,
    Boolean,
    Column,
    DateTime,
    Engine,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    bindparam,
    event,
    func,
    inspect,
    literal,
    literal_column,
    select,
    text,
)
from sqlalchemy.dialects import mysql
from sqlalchemy.exc import DBAPIError
from sqlalchemy.schema import CreateIndex, CreateTable
from sqlalchemy.sql import FromClause

from lead_load.core.ledger_rules import (
    ACTIVE_STATUSES,
    Status,
)

CHUNK = 5000
metadata = MetaData()
# Microseconds everywhere: MySQL's DATETIME keeps whole seconds unless told otherwise, and
# the ledger's conditional writes compare updated_at to tell a row that changed meanwhile.
TIMESTAMP = DateTime(timezone=True).with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")
_active = [s.value for s in ACTIVE_STATUSES]


def is_active(table: FromClause) -> Any:
    """``table``'s row holds its phone. The statuses are written into the SQL, as in the
    partial index's WHERE: a database only uses a partial index for a query that repeats its
    condition, which bound parameters do not in SQLite or in a PostgreSQL generic plan (the
    look-up would scan the calling task's rows)."""
    statuses = bindparam("active_statuses", _active, expanding=True, literal_execute=True)
    return table.c.status.in_(statuses)


ledger = Table(
    "lead_load_ledger",
    metadata,
    Column("api_task_id", String(64), primary_key=True),
    Column("lead_id", String(128), primary_key=True),
    Column("phone", String(32), primary_key=True),
    Column("status", String(16), nullable=False),
    Column("reason", Text),
    Column("run_id", String(250)),
    Column("batch_no", Integer),
    Column("unique_id", String(64)),
    Column("payload", Text),
    # The run this row was taken over from (see planning.plan), for the summary.
    Column("carried_from", String(250)),
    Column("created_at", TIMESTAMP, nullable=False),
    Column("updated_at", TIMESTAMP, nullable=False),
    Index("ix_lead_load_ledger_run_batch", "run_id", "batch_no"),
    Index("ix_lead_load_ledger_unique_id", "unique_id"),
)
# The database, not the code, guarantees one active row per phone and calling task: a partial
# unique index on SQLite and PostgreSQL. MySQL and MariaDB have no partial indexes; there a
# generated column holds the phone of active rows only (NULL otherwise, and NULLs never
# collide), with a unique index on it (_MYSQL_ACTIVE_PHONE).
Index(
    "ux_lead_load_ledger_active_phone",
    ledger.c.api_task_id,
    ledger.c.phone,
    unique=True,
    sqlite_where=ledger.c.status.in_(_active),
    postgresql_where=ledger.c.status.in_(_active),
).ddl_if(dialect=("sqlite", "postgresql"))
_MYSQL_ACTIVE_PHONE = DDL(
    "ALTER TABLE lead_load_ledger ADD COLUMN active_phone VARCHAR(32) GENERATED ALWAYS AS "
    f"(CASE WHEN status IN ({', '.join(repr(s) for s in _active)}) THEN phone END) STORED, "
    "ADD UNIQUE INDEX ux_lead_load_ledger_active_phone (api_task_id, active_phone)"
)
event.listen(ledger, "after_create", _MYSQL_ACTIVE_PHONE.execute_if(dialect=("mysql", "mariadb")))

candidates = Table(
    "lead_load_candidates",
    metadata,
    Column("run_id", String(250), primary_key=True),
    Column("lead_id", String(128), primary_key=True),
    Column("phone", String(32), nullable=False),
    Column("updated_at", String(40)),
    Column("payload", Text, nullable=False),
    # For the portable staging's look-ups by phone. PostgreSQL stages set-based (it sorts the
    # run's candidates once): there the index only slowed writing them down (_tune_postgres).
    Index("ix_lead_load_candidates_phone", "run_id", "phone").ddl_if(
        callable_=lambda ddl, target, bind, **kw: kw["dialect"].name != "postgresql"
    ),
)

batches = Table(
    "lead_load_batches",
    metadata,
    Column("run_id", String(250), primary_key=True),
    Column("batch_no", Integer, primary_key=True),
    Column("api_task_id", String(64), nullable=False),
    Column("rows", Integer, nullable=False),
    Column("status", String(16), nullable=False),  # ledger_rules.BatchStatus
    Column("unique_id", String(64)),
    Column("answer_lost", Boolean, nullable=False, default=False),
    Column("imported", Integer),
    Column("error", Text),
    Column("posted_at", TIMESTAMP),
    Column("processed_at", TIMESTAMP),
    # The claim of a sending batch: who posts it, the token its writes must carry, and when
    # another process may reconcile it (batch_lifecycle).
    Column("lease_owner", String(400)),
    Column("lease_token", String(64)),
    Column("lease_expires_at", TIMESTAMP),
    Column("claims", Integer, nullable=False, default=0),
    # POST attempts the owners of the batch started (counted by the fence before each one):
    # 0 proves the platform never saw this batch. NULL (a ledger from before it was counted)
    # proves nothing.
    Column("sends", Integer),
    Column("carried_to", String(250)),
    Index("ix_lead_load_batches_unique_id", "unique_id"),
    Index("ix_lead_load_batches_task_status", "api_task_id", "status"),
)

rejects = Table(
    "lead_load_rejects",
    metadata,
    Column("run_id", String(250), primary_key=True),
    Column("lead_id", String(128), primary_key=True),
    Column("api_task_id", String(64), nullable=False),
    Column("raw_phone", Text),
    Column("reason", Text, nullable=False),
    Column("rejected_at", TIMESTAMP, nullable=False),
    # Whether the reject has a ledger row (False: no lead of its own, or a lead whose phone
    # another lead holds). On PostgreSQL staging writes those rows from here, in one go.
    Column("in_ledger", Boolean),
)

runs = Table(
    "lead_load_runs",
    metadata,
    Column("run_id", String(250), primary_key=True),
    Column("api_task_id", String(64), nullable=False),
    Column("window_start", String(40)),
    Column("window_end", String(40)),
    Column("summary", Text),
    Column("finished_at", TIMESTAMP),
    Column("state", String(16)),  # ledger_rules.RunState
    Column("started_at", TIMESTAMP),
    Column("lease_expires_at", TIMESTAMP),
    # What the run's batches start from in the triggerer without asking Airflow for XComs
    # (run_lifecycle.run_context): its settings (JSON) and its plan's first batch number.
    Column("settings", Text),
    Column("first_batch_no", Integer),
)


# One row per calling task, locked by every transaction that decides and writes staging
# (see staging.tables.lock_calling_task): two runs staging the same window at once then decide
# each slice on what the other has committed, instead of both inserting the same lead or phone.
# The table keeps the name earlier releases created it under.
task_locks = Table(
    "lead_load_task_locks",
    metadata,
    Column("api_task_id", String(64), primary_key=True),
    Column("locked_at", TIMESTAMP),
)


# The suppression list: phones never to be called, in every calling task. ``phone`` holds the
# normalised form (core.phones), as the ledger's ``phone`` does, so the two compare as text.
suppressions = Table(
    "lead_load_suppressions",
    metadata,
    Column("phone", String(32), primary_key=True),
    Column("reason", Text),
    Column("added_at", TIMESTAMP, nullable=False),
    Column("added_by", String(250)),
)


def is_suppressed(phone: Any) -> Any:
    """SQL: ``phone`` (a column or expression holding a normalised phone) is on the
    suppression list. A correlated look-up by the list's primary key: one plan, whatever the
    list's size or statistics."""
    return select(suppressions.c.phone).where(suppressions.c.phone == phone).exists()


def one_batch(run_id: str, batch_no: int) -> tuple:
    """The conditions that pick one batch's row (``lead_load_batches``)."""
    return (batches.c.run_id == run_id, batches.c.batch_no == batch_no)


def rows_of_batch(run_id: str, batch_no: int, status: Status) -> tuple:
    """The conditions that pick a batch's ledger rows in ``status``."""
    return (ledger.c.run_id == run_id, ledger.c.batch_no == batch_no, ledger.c.status == status)


def now() -> datetime:
    return datetime.now(UTC)


# Columns renamed since an earlier release: old name -> new name (CHANGELOG.md, "one name per
# concept").
RENAMED_COLUMNS = {"target_task_id": "api_task_id"}


def create_tables(engine: Engine) -> None:
    """Create the ledger's tables, and upgrade a ledger made by an older release: rename
    the columns it has under an old name, and add the columns it lacks (every added column
    is nullable or has a default)."""
    metadata.create_all(engine, checkfirst=True)
    _rename_old_columns(engine)
    existing = inspect(engine)
    for table in metadata.sorted_tables:
        have = {c["name"] for c in existing.get_columns(table.name)}
        missing = [c for c in table.columns if c.name not in have]
        if not missing:
            continue
        with engine.begin() as conn:
            for column in missing:
                kind = column.type.compile(dialect=engine.dialect)
                default = " NOT NULL DEFAULT 0" if column.name == "claims" else ""
                conn.execute(
                    text(f"ALTER TABLE {table.name} ADD COLUMN {column.name} {kind}{default}")
                )
        for index in table.indexes:
            index.create(engine, checkfirst=True)
    _widen_ledger_key(engine)
    if engine.dialect.name == "postgresql":
        _tune_postgres(engine)


def _tune_postgres(engine: Engine) -> None:
    """The candidates table on PostgreSQL: UNLOGGED, and without the phone index.

    A run's candidates live from its extract to its staging, within one try of one task: a
    crash that empties an UNLOGGED table fails that try, and its retry starts the step
    afresh. Not writing them to the WAL, nor into a second index in random order, took
    copying a million of them from 7.2 s to 2.9 s (benchmarks/RESULTS.md). Done in place on
    a table made by an older release; two processes at once: the one that loses finds it
    done.
    """
    name = candidates.name
    with engine.begin() as conn:
        logged, indexed = conn.execute(
            text(
                "SELECT relpersistence = 'p', to_regclass(:index) IS NOT NULL FROM pg_class "
                "WHERE oid = to_regclass(:table)"
            ),
            {"table": name, "index": "ix_lead_load_candidates_phone"},
        ).one()
        if indexed:
            conn.execute(text("DROP INDEX IF EXISTS ix_lead_load_candidates_phone"))
        if logged:
            conn.execute(text(f"ALTER TABLE {name} SET UNLOGGED"))


def _rename_old_columns(engine: Engine) -> None:
    """``ALTER TABLE ... RENAME COLUMN`` (SQLite 3.25+, PostgreSQL, MySQL 8, MariaDB 10.5+);
    the databases carry the indexes over. Two processes upgrading at once: the one that
    loses finds the column renamed already."""
    for table in metadata.sorted_tables:
        for old, new in RENAMED_COLUMNS.items():
            have = {c["name"] for c in inspect(engine).get_columns(table.name)}
            if old not in have or new in have or new not in table.c:
                continue
            try:
                with engine.begin() as conn:
                    conn.execute(text(f"ALTER TABLE {table.name} RENAME COLUMN {old} TO {new}"))
            except DBAPIError:
                have = {c["name"] for c in inspect(engine).get_columns(table.name)}
                if new not in have:
                    raise


# The ledger's primary key before a lead's changed phone got a row of its own.
_LEDGER_KEY_BEFORE_PHONE = ["api_task_id", "lead_id"]


def _widen_ledger_key(engine: Engine) -> None:
    """Key a ledger made by an older release on (calling task, lead, phone) instead of
    (calling task, lead), keeping its rows. Two processes upgrading at once: the one that
    loses finds it done."""
    if _ledger_key(engine) != _LEDGER_KEY_BEFORE_PHONE:
        return
    try:
        if engine.dialect.name == "sqlite":
            _rebuild_sqlite_ledger(engine)
        else:
            name = inspect(engine).get_pk_constraint(ledger.name)["name"]
            drop = (
                "DROP PRIMARY KEY"
                if engine.dialect.name in ("mysql", "mariadb")
                else f"DROP CONSTRAINT {name}"
            )
            with engine.begin() as conn:
                conn.execute(
                    text(
                        f"ALTER TABLE {ledger.name} {drop}, "
                        "ADD PRIMARY KEY (api_task_id, lead_id, phone)"
                    )
                )
    except DBAPIError:
        if _ledger_key(engine) == _LEDGER_KEY_BEFORE_PHONE:
            raise


def _ledger_key(engine: Engine) -> list[str]:
    return inspect(engine).get_pk_constraint(ledger.name)["constrained_columns"]


def _rebuild_sqlite_ledger(engine: Engine) -> None:
    """SQLite cannot change a primary key: copy the rows into a new table, in one
    ``BEGIN IMMEDIATE`` transaction (Python's sqlite3 would commit each DDL statement on its
    own, and a crash half-way would leave no ledger table)."""
    old = f"{ledger.name}_keyed_by_lead"
    columns = ", ".join(c.name for c in ledger.columns)
    old_indexes = [i["name"] for i in inspect(engine).get_indexes(ledger.name) if i.get("name")]
    statements = [
        f"ALTER TABLE {ledger.name} RENAME TO {old}",
        *(f'DROP INDEX "{name}"' for name in old_indexes),
        str(CreateTable(ledger).compile(dialect=engine.dialect)),
        *(str(CreateIndex(i).compile(dialect=engine.dialect)) for i in ledger.indexes),
        f"INSERT INTO {ledger.name} ({columns}) SELECT {columns} FROM {old}",  # noqa: S608 - our own names
        f"DROP TABLE {old}",
    ]
    raw = engine.raw_connection()
    try:
        driver = raw.driver_connection
        isolation = driver.isolation_level
        driver.isolation_level = None  # autocommit mode: the transaction is ours to open
        cursor = driver.cursor()
        try:
            cursor.execute("BEGIN IMMEDIATE")
            info = cursor.execute(f"PRAGMA table_info({ledger.name})").fetchall()
            key = [row[1] for row in sorted(info, key=lambda row: row[5]) if row[5]]
            if key == _LEDGER_KEY_BEFORE_PHONE:  # another process has not done it meanwhile
                for statement in statements:
                    cursor.execute(statement)
            cursor.execute("COMMIT")
        except BaseException:
            if driver.in_transaction:
                cursor.execute("ROLLBACK")
            raise
        finally:
            driver.isolation_level = isolation
    finally:
        raw.close()


def chunks(items: Sequence[Any], size: int | None = None) -> Iterator[Sequence[Any]]:
    size = size or CHUNK  # read at call time, so tests can make the slices small
    for start in range(0, len(items), size):
        yield items[start : start + size]


def slices(rows: Iterable[Any]) -> Iterator[list[Any]]:
    """``rows`` as lists of at most ``CHUNK`` items, consumed lazily: whatever the caller
    passes (a generator over a whole run, say), at most one slice is in memory."""
    rows = iter(rows)
    while slice_ := list(islice(rows, CHUNK)):
        yield slice_


def database_now(engine: Engine, seconds: float = 0.0) -> Any:
    """The database's clock in UTC, plus ``seconds``, as an SQL expression: leases and every
    "how old is this" comparison use it, so hosts whose clocks disagree still agree on when
    a lease expired (each database in the format its timestamp columns hold)."""
    name = engine.dialect.name
    if name == "postgresql":
        return func.now() + func.make_interval(0, 0, 0, 0, 0, 0, literal(float(seconds)))
    if name in ("mysql", "mariadb"):
        return func.timestampadd(
            literal_column("MICROSECOND"), int(seconds * 1_000_000), func.utc_timestamp(6)
        )
    # SQLite: text in SQLAlchemy's layout; its milliseconds sort with the stored microseconds.
    return func.strftime("%Y-%m-%d %H:%M:%f", "now", f"{float(seconds):+.3f} seconds")


def typed_value(value: Any, column: Column) -> Any:
    """A constant typed like ``column``: each database gets it in the column's format
    (SQLite stores datetimes as SQLAlchemy-formatted text)."""
    return literal(value, column.type)


def typed_key(name: str, column: Column) -> Any:
    """A per-row parameter of an executemany statement, typed like ``column``."""
    return bindparam(name, type_=column.type)
