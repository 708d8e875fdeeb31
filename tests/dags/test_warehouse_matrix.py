"""Messy real warehouses: the real lead_load DAG (`airflow dags test`) on SQLite, PostgreSQL and
MariaDB, with the column types and contents real warehouses have.

Each engine gets one database and three runs, each run on a table that holds many cases at
once (a run takes 10-20 s, so cases share runs; each case is its own test below and names
itself on failure):

1. ``numeric`` (2026-11-24): integer lead ids and phones (PostgreSQL BIGINT, MariaDB INT and
   BIGINT, SQLite INTEGER, i.e. 64-bit), NULLs in both, a plain ``timestamp``/``DATETIME``
   ``updated_at``, an integer beyond int64 in a NUMERIC/DECIMAL ``source_id``.
2. ``text1`` (2026-11-25): text lead ids and phones with NUL bytes and control characters,
   unknown enumeration values, duplicate and missing lead ids, and a zone-aware
   ``updated_at`` (PostgreSQL ``timestamptz`` with the database's zone Asia/Shanghai, MariaDB
   ``TIMESTAMP`` with the sessions' ``time_zone`` at +08:00, SQLite text in UTC).
3. ``text2`` (2026-11-26): the same table, some leads changed (a phone moved to another
   lead, a lead's phone changed, a lead re-extracted unchanged), the PostgreSQL database's
   zone now America/New_York and MariaDB's sessions at -05:00.

A (PostgreSQL) database zone, or a MariaDB session zone set by the connection's
``init_command``, stands for a server whose default zone is not UTC: the extract must select
exactly the UTC window anyway. Every case reads what was sent from the simulator's journal
and the calling task's numbers, and what was recorded from the ledger and reject tables.
MariaDB tests need MariaDB on 127.0.0.1:3306 (root, no password), PostgreSQL ones PostgreSQL
on 127.0.0.1:5432; both fail instead of skipping under CI=true.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import text

from tests.dags.conftest import (
    LeadLoadEnv,
    Warehouse,
    make_env,
    mariadb_conn_uri,
    mariadb_warehouse,
    postgres_warehouse,
    sqlite_warehouse,
)

pytestmark = pytest.mark.slow

ENGINES = ("sqlite", "postgres", "mariadb")
ENGINE_MARKS = {
    "sqlite": (),
    "postgres": (pytest.mark.postgres,),
    "mariadb": (pytest.mark.mariadb,),
}

DAY = timedelta(days=1)
D1 = datetime(2026, 11, 24, tzinfo=UTC)  # the numeric run's window: [D1, D1 + 1 day)
D2 = D1 + DAY  # text1
D3 = D2 + DAY  # text2
RUNS = {"numeric": D1, "text1": D2, "text2": D3}

# Each run's zone: PostgreSQL's database time zone, MariaDB's session time_zone (MariaDB here
# has no zone tables, so offsets; New York is on EST, -05:00, in late November).
ZONES = {
    "numeric": ("Asia/Shanghai", "+08:00"),
    "text1": ("Asia/Shanghai", "+08:00"),
    "text2": ("America/New_York", "-05:00"),
}

COLUMNS = (
    "lead_id",
    "phone",
    "name",
    "email",
    "company",
    "sex",
    "source_id",
    "industry_id",
    "grade_id",
    "updated_at",
)
DDL = {
    ("sqlite", "numeric"): (
        "CREATE TABLE leads (lead_id INTEGER, phone INTEGER, name TEXT, email TEXT, "
        "company TEXT, sex TEXT, source_id, industry_id INTEGER, grade_id INTEGER, "
        "updated_at TEXT)"
    ),
    ("postgres", "numeric"): (
        "CREATE TABLE leads (lead_id BIGINT, phone BIGINT, name TEXT, email TEXT, "
        "company TEXT, sex TEXT, source_id NUMERIC(30, 0), industry_id INTEGER, "
        "grade_id BIGINT, updated_at TIMESTAMP)"
    ),
    ("mariadb", "numeric"): (
        "CREATE TABLE leads (lead_id INT, phone BIGINT, name VARCHAR(200), "
        "email VARCHAR(200), company VARCHAR(200), sex VARCHAR(16), source_id DECIMAL(30, 0), "
        "industry_id INT, grade_id BIGINT, updated_at DATETIME NULL)"
    ),
    ("sqlite", "text"): (
        "CREATE TABLE leads (lead_id TEXT, phone TEXT, name TEXT, email TEXT, company TEXT, "
        "sex TEXT, source_id INTEGER, industry_id INTEGER, grade_id INTEGER, updated_at TEXT)"
    ),
    ("postgres", "text"): (
        "CREATE TABLE leads (lead_id TEXT, phone TEXT, name TEXT, email TEXT, company TEXT, "
        "sex TEXT, source_id BIGINT, industry_id INTEGER, grade_id BIGINT, "
        "updated_at TIMESTAMPTZ)"
    ),
    ("mariadb", "text"): (
        "CREATE TABLE leads (lead_id VARCHAR(64), phone VARCHAR(64), name VARCHAR(200), "
        "email VARCHAR(200), company VARCHAR(200), sex VARCHAR(16), source_id BIGINT, "
        "industry_id INT, grade_id BIGINT, updated_at TIMESTAMP NULL DEFAULT NULL)"
    ),
}
INSERT = (
    "INSERT INTO leads (lead_id, phone, name, email, company, sex, source_id, industry_id, "
    "grade_id, updated_at) VALUES (:lead_id, :phone, :name, :email, :company, :sex, "
    ":source_id, :industry_id, :grade_id, :updated_at)"
)


# --- the cases ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Lead:
    """One warehouse row; ``at`` is its updated_at in UTC (written in each column's way)."""

    lead_id: Any
    phone: Any
    at: datetime | None
    name: str | None = "测试"
    email: str | None = None
    company: str | None = None
    sex: str | None = None
    source_id: Any = None
    industry_id: int | None = None
    grade_id: int | None = None


ANY = None  # a ledger row's phone that the case does not pin down (a rejected raw value)


@dataclass(frozen=True)
class Case:
    name: str
    table: str  # "numeric" or "text"
    rows: tuple[Lead, ...]
    # text table only: rows that replace the same lead ids' rows (or are new) before text2
    later: tuple[Lead, ...] = ()
    # phone -> (the run that sends it, fields its posted row carries): posted exactly once
    sent: Mapping[str, tuple[str, Mapping[str, Any]]] = field(default_factory=dict)
    not_sent: tuple[str, ...] = ()  # phones never posted, and not in the calling task
    # (lead key, reason prefix) rows of lead_load_rejects; a key "(no lead id" is a prefix
    rejects: tuple[tuple[str, str], ...] = ()
    # lead key -> its ledger rows, exactly: (phone or ANY, status, reason prefix or None)
    ledger: Mapping[str, tuple[tuple[str | None, str, str | None], ...]] = field(
        default_factory=dict
    )
    unseen: tuple[str, ...] = ()  # lead keys outside every window: no ledger or reject row
    engines: frozenset[str] = frozenset(ENGINES)


def phone(n: int) -> str:
    return f"139{n:08d}"


def at(day: datetime, hhmmss: str) -> datetime:
    h, m, s = map(int, hhmmss.split(":"))
    return day + timedelta(hours=h, minutes=m, seconds=s)


def imported(phone_: str | None) -> tuple[tuple[str | None, str, None], ...]:
    return ((phone_, "imported", None),)


def rejected(reason: str) -> tuple[tuple[None, str, str], ...]:
    return ((ANY, "rejected", reason),)


NOON1, NOON2 = at(D1, "12:00:00"), at(D2, "12:00:00")
BIG_LEAD_ID = 2**53 + 1  # the first integer a float64 cannot hold
CONTROL = "invalid_field: {} contains a control character (U+{:04X})"

NUMERIC_CASES = [
    Case(
        "integer lead id and phone",
        "numeric",
        (Lead(1001, int(phone(1001)), NOON1, sex="女", industry_id=None, grade_id=3),),
        sent={phone(1001): ("numeric", {"extra": "1001", "sex": 2, "grade_id": 3})},
        ledger={"1001": imported(phone(1001))},
    ),
    Case(
        "integer phone with a country prefix",
        "numeric",
        (Lead(1002, int("86" + phone(1002)), NOON1),),
        sent={phone(1002): ("numeric", {"extra": "1002"})},
        ledger={"1002": imported(phone(1002))},
    ),
    Case(
        "NULL integer phone",
        "numeric",
        (Lead(1003, None, NOON1),),
        rejects=(("1003", "missing_phone"),),
        ledger={"1003": rejected("missing_phone")},
    ),
    Case(
        "integer phone that is no mobile",
        "numeric",
        (Lead(1004, 10086, NOON1),),
        not_sent=("10086",),
        rejects=(("1004", "not_mobile"),),
        ledger={"1004": rejected("not_mobile")},
    ),
    Case(
        "NULL integer lead id",
        "numeric",
        (Lead(None, int(phone(1005)), NOON1),),
        not_sent=(phone(1005),),
        rejects=(("(no lead id", "missing_lead_id"),),
    ),
    Case(
        "duplicate integer lead id: the latest row stands for the lead",
        "numeric",
        (
            Lead(1006, int(phone(1061)), at(D1, "10:00:00")),
            Lead(1006, int(phone(1062)), at(D1, "11:00:00")),
        ),
        sent={phone(1062): ("numeric", {"extra": "1006"})},
        not_sent=(phone(1061),),
        rejects=(("(repeat of lead 1006: row ", "duplicate_lead_id"),),
        ledger={"1006": imported(phone(1062))},
    ),
    Case(
        "two leads with one phone: the most recent is sent",
        "numeric",
        (
            Lead(1007, int(phone(1007)), at(D1, "10:00:00")),
            Lead(1008, int(phone(1007)), at(D1, "11:00:00")),
        ),
        sent={phone(1007): ("numeric", {"extra": "1008"})},
        rejects=(("1007", "duplicate_in_run (kept lead 1008)"),),
        ledger={"1007": rejected("duplicate_in_run"), "1008": imported(phone(1007))},
    ),
    Case(
        "source_id beyond int64 in a NUMERIC column",
        "numeric",
        (Lead(1009, int(phone(1009)), NOON1, source_id=2**63),),
        not_sent=(phone(1009),),
        rejects=(("1009", "invalid_field: source_id is out of the API's integer range"),),
        ledger={"1009": rejected("invalid_field: source_id")},
    ),
    Case(
        "largest int64 source_id in a NUMERIC column is sent exactly",
        "numeric",
        (Lead(1010, int(phone(1010)), NOON1, source_id=2**63 - 1),),
        sent={phone(1010): ("numeric", {"extra": "1010", "source_id": 2**63 - 1})},
        ledger={"1010": imported(phone(1010))},
    ),
    Case(
        "unknown sex value 女士",
        "numeric",
        (Lead(1011, int(phone(1011)), NOON1, sex="女士"),),
        not_sent=(phone(1011),),
        rejects=(("1011", "invalid_field: sex value '女士' is not in sex_values"),),
        ledger={"1011": rejected("invalid_field: sex value '女士'")},
    ),
    Case(
        "unknown sex value 3",
        "numeric",
        (Lead(1012, int(phone(1012)), NOON1, sex="3"),),
        not_sent=(phone(1012),),
        rejects=(("1012", "invalid_field: sex value '3' is not in sex_values"),),
        ledger={"1012": rejected("invalid_field: sex value '3'")},
    ),
    Case(
        "int32 max lead id",
        "numeric",
        (Lead(2**31 - 1, int(phone(1013)), NOON1),),
        sent={phone(1013): ("numeric", {"extra": str(2**31 - 1)})},
        ledger={str(2**31 - 1): imported(phone(1013))},
    ),
    Case(
        # The column also holds a NULL lead id (another case), which must not turn the ids
        # into floats that round this one to 2**53.
        "bigint lead id beyond 2**53 in a column with NULLs",
        "numeric",
        (Lead(BIG_LEAD_ID, int(phone(1014)), NOON1),),
        sent={phone(1014): ("numeric", {"extra": str(BIG_LEAD_ID)})},
        ledger={str(BIG_LEAD_ID): imported(phone(1014))},
        engines=frozenset({"sqlite", "postgres"}),  # MariaDB's column here is an INT
    ),
    Case(
        "plain timestamp: window start is in, window end is out",
        "numeric",
        (
            Lead(1015, int(phone(1015)), at(D1, "00:00:00")),
            Lead(1016, int(phone(1016)), at(D1, "23:59:59")),
            Lead(1017, int(phone(1017)), at(D1 + DAY, "00:00:00")),
            Lead(1018, int(phone(1018)), at(D1 - DAY, "23:59:59")),
        ),
        sent={
            phone(1015): ("numeric", {"extra": "1015"}),
            phone(1016): ("numeric", {"extra": "1016"}),
        },
        not_sent=(phone(1017), phone(1018)),
        ledger={"1015": imported(phone(1015)), "1016": imported(phone(1016))},
        unseen=("1017", "1018"),
    ),
    Case(
        "NULL updated_at is in no window",
        "numeric",
        (Lead(1019, int(phone(1019)), None),),
        not_sent=(phone(1019),),
        unseen=("1019",),
    ),
]

TEXT_CASES = [
    Case(
        "messy text phone",
        "text",
        (Lead("T-plain", "+86 139-0000-2001", NOON2, name="王\t五\n", email="w@example.cn"),),
        sent={phone(2001): ("text1", {"extra": "T-plain", "name": "王\t五"})},
        ledger={"T-plain": imported(phone(2001))},
    ),
    Case(
        "NUL byte in name",
        "text",
        (Lead("T-nul-name", phone(2002), NOON2, name="Zhang\x00San"),),
        not_sent=(phone(2002),),
        rejects=(("T-nul-name", CONTROL.format("name", 0)),),
        ledger={"T-nul-name": rejected(CONTROL.format("name", 0))},
        engines=frozenset({"sqlite", "mariadb"}),  # PostgreSQL text cannot hold NUL
    ),
    Case(
        "NUL byte in company",
        "text",
        (Lead("T-nul-company", phone(2003), NOON2, company="ACME\x00 Ltd"),),
        not_sent=(phone(2003),),
        rejects=(("T-nul-company", CONTROL.format("company", 0)),),
        ledger={"T-nul-company": rejected(CONTROL.format("company", 0))},
        engines=frozenset({"sqlite", "mariadb"}),
    ),
    Case(
        "escape character in company",
        "text",
        (Lead("T-esc-company", phone(2004), NOON2, company="ACME\x1b[31m"),),
        not_sent=(phone(2004),),
        rejects=(("T-esc-company", CONTROL.format("company", 0x1B)),),
        ledger={"T-esc-company": rejected(CONTROL.format("company", 0x1B))},
    ),
    Case(
        "bell character in email",
        "text",
        (Lead("T-bel-email", phone(2005), NOON2, email="a\x07@example.cn"),),
        not_sent=(phone(2005),),
        rejects=(("T-bel-email", CONTROL.format("email", 7)),),
        ledger={"T-bel-email": rejected(CONTROL.format("email", 7))},
    ),
    Case(
        "NUL byte in phone",
        "text",
        (Lead("T-nul-phone", "139000\x0002006", NOON2),),
        not_sent=(phone(2006),),
        rejects=(("T-nul-phone", "not_a_phone"),),
        ledger={"T-nul-phone": (("139000\\x0002006", "rejected", "not_a_phone"),)},
        engines=frozenset({"sqlite", "mariadb"}),
    ),
    Case(
        "escape character in phone",
        "text",
        (Lead("T-esc-phone", "1390000\x1b2007", NOON2),),
        not_sent=(phone(2007),),
        rejects=(("T-esc-phone", "not_a_phone"),),
        ledger={"T-esc-phone": rejected("not_a_phone")},
    ),
    Case(
        "control character in lead id",
        "text",
        (Lead("T-\x01-lead", phone(2008), NOON2),),
        not_sent=(phone(2008),),
        rejects=(("T-\x01-lead", "invalid_field: lead_id contains a control character"),),
    ),
    Case(
        "NUL byte in lead id",
        "text",
        (Lead("T-\x00-lead", phone(2009), NOON2),),
        not_sent=(phone(2009),),
        rejects=(("T-\\x00-lead", "invalid_field: lead_id contains a control character"),),
        engines=frozenset({"sqlite", "mariadb"}),
    ),
    Case(
        "NULL and blank text lead ids",
        "text",
        (Lead(None, phone(2010), NOON2), Lead("   ", phone(2011), NOON2)),
        not_sent=(phone(2010), phone(2011)),
        rejects=(("(no lead id", "missing_lead_id"), ("(no lead id", "missing_lead_id")),
    ),
    Case(
        "duplicate text lead id: the latest row stands for the lead",
        "text",
        (
            Lead("T-dup", phone(2121), at(D2, "09:00:00")),
            Lead("T-dup", phone(2122), at(D2, "09:30:00")),
        ),
        sent={phone(2122): ("text1", {"extra": "T-dup"})},
        not_sent=(phone(2121),),
        rejects=(("(repeat of lead T-dup: row ", "duplicate_lead_id"),),
        ledger={"T-dup": imported(phone(2122))},
    ),
    Case(
        "unknown sex value 女士 in a text table",
        "text",
        (Lead("T-sex", phone(2013), NOON2, sex="女士"),),
        not_sent=(phone(2013),),
        rejects=(("T-sex", "invalid_field: sex value '女士'"),),
        ledger={"T-sex": rejected("invalid_field: sex value '女士'")},
    ),
    Case(
        # In the run's zone (+08:00) the in-window rows are on the 25th 08:00 .. 26th 07:59.
        # The row at the window's end is the first of text2's window: sent then, not before.
        "zone-aware updated_at: exactly the UTC window in a +08:00 zone",
        "text",
        (
            Lead("T-edge-start", phone(2014), at(D2, "00:00:00")),
            Lead("T-edge-last", phone(2015), at(D2, "23:59:59")),
            Lead("T-edge-before", phone(2016), at(D2 - DAY, "23:59:59")),
            Lead("T-edge-end", phone(2017), at(D2 + DAY, "00:00:00")),
        ),
        sent={
            phone(2014): ("text1", {"extra": "T-edge-start"}),
            phone(2015): ("text1", {"extra": "T-edge-last"}),
            phone(2017): ("text2", {"extra": "T-edge-end"}),
        },
        not_sent=(phone(2016),),
        ledger={
            "T-edge-start": imported(phone(2014)),
            "T-edge-last": imported(phone(2015)),
            "T-edge-end": imported(phone(2017)),
        },
        unseen=("T-edge-before",),
    ),
    Case(
        # Written before text2, in its zone (-05:00): the 25th 19:00 .. the 26th 18:59.
        "zone-aware updated_at: exactly the UTC window in a -05:00 zone",
        "text",
        (),
        later=(
            Lead("T-ny-start", phone(2018), at(D3, "00:00:00")),
            Lead("T-ny-last", phone(2019), at(D3, "23:59:59")),
            Lead("T-ny-end", phone(2020), at(D3 + DAY, "00:00:00")),
        ),
        sent={
            phone(2018): ("text2", {"extra": "T-ny-start"}),
            phone(2019): ("text2", {"extra": "T-ny-last"}),
        },
        not_sent=(phone(2020),),
        ledger={"T-ny-start": imported(phone(2018)), "T-ny-last": imported(phone(2019))},
        unseen=("T-ny-end",),
    ),
    Case(
        "a number moves to another lead between two runs: not sent twice",
        "text",
        (Lead("M-a", phone(2101), NOON2),),
        later=(Lead("M-b", phone(2101), at(D3, "12:00:00")),),
        sent={phone(2101): ("text1", {"extra": "M-a"})},
        rejects=(("M-b", "phone_already_loaded (by lead M-a)"),),
        ledger={"M-a": imported(phone(2101)), "M-b": ()},
    ),
    Case(
        "a lead's phone changes between two runs: the new number is sent once",
        "text",
        (Lead("C-a", phone(2201), NOON2),),
        later=(Lead("C-a", phone(2202), at(D3, "12:00:00")),),
        sent={
            phone(2201): ("text1", {"extra": "C-a"}),
            phone(2202): ("text2", {"extra": "C-a"}),
        },
        ledger={"C-a": ((phone(2201), "imported", None), (phone(2202), "imported", None))},
    ),
    Case(
        "a lead re-extracted unchanged is not sent again",
        "text",
        (Lead("U-a", phone(2301), NOON2),),
        later=(Lead("U-a", phone(2301), at(D3, "12:00:00")),),
        sent={phone(2301): ("text1", {"extra": "U-a"})},
        ledger={"U-a": imported(phone(2301))},
    ),
]

CASES = NUMERIC_CASES + TEXT_CASES


# --- running the DAG and collecting what it did ---------------------------------------------


@dataclass
class RunResult:
    returncode: int
    log_tail: str
    posted: Counter  # phone -> times posted in this run
    seconds: float


@dataclass
class Outcome:
    """Everything a case asserts on, read after the engine's three runs."""

    engine: str
    runs: dict[str, RunResult]
    posted_rows: dict[str, list[dict]]  # phone -> every row posted for it, all runs
    task_numbers: dict[str, dict]  # phone -> the number in the calling task
    ledger: list[dict]
    rejects: list[dict]
    run_rows: dict[str, dict]  # run label -> its lead_load_runs row

    def context(self, case: Case | None = None) -> str:
        states = ", ".join(
            f"{label}={'ok' if r.returncode == 0 else 'FAILED'} ({r.seconds:.0f} s)"
            for label, r in self.runs.items()
        )
        name = f" case {case.name!r}" if case else ""
        return f"[{self.engine}{name}; runs: {states}]"


def _warehouse(engine: str, tmp_path_factory) -> Warehouse:
    if engine == "sqlite":
        return sqlite_warehouse(tmp_path_factory.mktemp("matrix"))
    if engine == "postgres":
        return postgres_warehouse()
    return mariadb_warehouse()


def _value(engine: str, table: str, column: str, value: Any, run: str) -> Any:
    if column == "updated_at":
        if value is None:
            return None
        if engine == "sqlite":
            return value.strftime("%Y-%m-%d %H:%M:%S")
        if table == "numeric":  # timestamp / DATETIME: naive, in UTC
            return value.replace(tzinfo=None)
        if engine == "postgres":  # timestamptz: the instant, written in the run's zone
            return value.astimezone(ZoneInfo(ZONES[run][0]))
        # MariaDB TIMESTAMP: local time of the inserting session, whose time_zone is set
        sign, hours, minutes = ZONES[run][1][0], *map(int, ZONES[run][1][1:].split(":"))
        offset = timedelta(hours=hours, minutes=minutes) * (1 if sign == "+" else -1)
        return (value + offset).replace(tzinfo=None)
    if engine == "sqlite" and isinstance(value, int) and not -(2**63) <= value < 2**63:
        return str(value)  # sqlite3 binds no integer beyond int64; the column keeps the text
    return value


def _write(env: LeadLoadEnv, engine: str, table: str, rows: list[Lead], run: str) -> None:
    if not rows:
        return
    with env.warehouse.engine.begin() as conn:
        if engine == "mariadb":
            conn.execute(text(f"SET time_zone = '{ZONES[run][1]}'"))
        conn.execute(
            text(INSERT),
            [
                {
                    c: _value(engine, table, c, getattr(row, c if c != "updated_at" else "at"), run)
                    for c in COLUMNS
                }
                for row in rows
            ],
        )


def _set_zone(env: LeadLoadEnv, engine: str, run: str) -> None:
    """The database's (PostgreSQL) or the DAG's sessions' (MariaDB) zone for ``run``."""
    if engine == "postgres":
        database = env.warehouse.engine.url.database
        with env.warehouse.engine.begin() as conn:
            conn.execute(text(f"ALTER DATABASE \"{database}\" SET timezone TO '{ZONES[run][0]}'"))
    elif engine == "mariadb":
        env.env["AIRFLOW_CONN_LEAD_WAREHOUSE"] = mariadb_conn_uri(
            env.warehouse.engine.url.render_as_string(hide_password=False),
            f"SET time_zone = '{ZONES[run][1]}'",
        )


def _run(env: LeadLoadEnv, label: str) -> RunResult:
    before = len(env.posts())
    began = time.monotonic()
    start = RUNS[label]
    result = env.run_dag(
        window_start=start.isoformat(),
        window_end=(start + DAY).isoformat(),
        max_reject_ratio=1.0,  # most rows here are rejects on purpose
    )
    posted = Counter(row["phone"] for post in env.posts()[before:] for row in post["body"]["data"])
    tail = (result.stdout + result.stderr)[-3000:]
    return RunResult(result.returncode, tail, posted, time.monotonic() - began)


def run_matrix(engine: str, env: LeadLoadEnv) -> Outcome:
    cases = [c for c in CASES if engine in c.engines]
    rows = {
        table: [row for c in cases if c.table == table for row in c.rows]
        for table in ("numeric", "text")
    }
    runs: dict[str, RunResult] = {}

    with env.warehouse.engine.begin() as conn:
        conn.execute(text(DDL[engine, "numeric"]))
    _write(env, engine, "numeric", rows["numeric"], "numeric")
    _set_zone(env, engine, "numeric")
    runs["numeric"] = _run(env, "numeric")

    with env.warehouse.engine.begin() as conn:
        conn.execute(text("DROP TABLE leads"))
        conn.execute(text(DDL[engine, "text"]))
    _write(env, engine, "text", rows["text"], "text1")
    _set_zone(env, engine, "text1")
    runs["text1"] = _run(env, "text1")

    later = [row for c in cases for row in c.later]
    with env.warehouse.engine.begin() as conn:
        for lead_id in {row.lead_id for row in later}:
            conn.execute(text("DELETE FROM leads WHERE lead_id = :l"), {"l": lead_id})
    _write(env, engine, "text", later, "text2")
    _set_zone(env, engine, "text2")
    runs["text2"] = _run(env, "text2")

    posted_rows: dict[str, list[dict]] = {}
    for post in env.posts():
        for row in post["body"]["data"]:
            posted_rows.setdefault(row["phone"], []).append(row)
    warehouse = env.warehouse

    def table_rows(sql: str) -> list[dict]:
        try:
            return warehouse.rows(sql, t=env.task_id)
        except Exception:  # a run that failed early may have made no table
            return []

    run_rows = {}
    for row in table_rows("SELECT * FROM lead_load_runs WHERE api_task_id = :t"):
        for label, start in RUNS.items():
            if str(row["window_start"]).startswith(start.date().isoformat()):
                run_rows[label] = row
    return Outcome(
        engine=engine,
        runs=runs,
        posted_rows=posted_rows,
        task_numbers={n["phone"]: n for n in env.sim.task_numbers(env.user_id, env.task_id)},
        ledger=table_rows("SELECT * FROM lead_load_ledger WHERE api_task_id = :t"),
        rejects=table_rows("SELECT * FROM lead_load_rejects WHERE api_task_id = :t"),
        run_rows=run_rows,
    )


@pytest.fixture(scope="module")
def outcome(request, simulator, airflow_db, tmp_path_factory) -> Outcome:
    engine = request.param
    warehouse = _warehouse(engine, tmp_path_factory)
    try:
        yield run_matrix(engine, make_env(simulator, warehouse))
    finally:
        for step in warehouse.cleanup:
            step()


def _engine_param(engine: str):
    return pytest.param(engine, marks=ENGINE_MARKS[engine], id=engine)


def _case_params():
    for engine in ENGINES:
        for case in CASES:
            if engine in case.engines:
                yield pytest.param(
                    engine, case, marks=ENGINE_MARKS[engine], id=f"{engine}-{case.name}"
                )


# --- the tests ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "outcome", [_engine_param(e) for e in ENGINES], indirect=True, scope="module"
)
def test_every_run_finishes(outcome: Outcome):
    """None of the messy rows crashes a run: each run succeeds and records itself finished."""
    for label, run in outcome.runs.items():
        assert run.returncode == 0, f"{outcome.context()} run {label} failed:\n{run.log_tail}"
        row = outcome.run_rows.get(label)
        assert row is not None and row["state"] == "finished", (
            f"{outcome.context()} run {label}'s lead_load_runs row: {row}"
        )


@pytest.mark.parametrize(
    "outcome", [_engine_param(e) for e in ENGINES], indirect=True, scope="module"
)
def test_nothing_but_the_expected_numbers_is_sent(outcome: Outcome):
    expected = {p for c in CASES if outcome.engine in c.engines for p in c.sent}
    unexpected = set(outcome.posted_rows) - expected
    assert not unexpected, f"{outcome.context()} posted unexpectedly: {sorted(unexpected)}"
    assert set(outcome.task_numbers) <= expected, outcome.context()


@pytest.mark.parametrize(
    "outcome", [_engine_param(e) for e in ENGINES], indirect=True, scope="module"
)
def test_rows_without_updated_at_are_counted_not_loaded(outcome: Outcome):
    row = outcome.run_rows.get("numeric")
    assert row is not None, f"{outcome.context()} the numeric run recorded no row"
    summary = json.loads(row["summary"])
    assert summary.get("updated_at_missing_in_table") == 1, (outcome.context(), summary)


@pytest.mark.parametrize(
    ("outcome", "case"), list(_case_params()), indirect=["outcome"], scope="module"
)
def test_case(outcome: Outcome, case: Case):
    where = outcome.context(case)

    # What the platform got: each expected number posted exactly once, by the expected run,
    # with the expected fields, and in the calling task; the others never.
    for number, (run, fields) in case.sent.items():
        posts = outcome.posted_rows.get(number, [])
        assert len(posts) == 1, f"{where} {number} was posted {len(posts)} times (want 1)"
        assert outcome.runs[run].posted[number] == 1, f"{where} {number} not posted by {run}"
        row = posts[0]
        got = {key: row.get(key, "<absent>") for key in fields}
        assert got == dict(fields), f"{where} {number} was posted as {row}"
        assert number in outcome.task_numbers, f"{where} {number} is not in the calling task"
        assert outcome.task_numbers[number]["extra"] == fields.get(
            "extra", outcome.task_numbers[number]["extra"]
        ), f"{where} {number} is in the task as {outcome.task_numbers[number]}"
    for number in case.not_sent:
        assert number not in outcome.posted_rows, f"{where} {number} was posted"
        assert number not in outcome.task_numbers, f"{where} {number} is in the calling task"

    # What the ledger recorded for each lead of the case.
    for lead, want in case.ledger.items():
        rows = sorted((r for r in outcome.ledger if r["lead_id"] == lead), key=lambda r: r["phone"])
        got = [(r["phone"], r["status"], r["reason"]) for r in rows]
        assert len(got) == len(want), f"{where} ledger rows of lead {lead!r}: {got}"
        for (phone_, status, reason), (want_phone, want_status, want_reason) in zip(
            got, sorted(want, key=lambda w: w[0] or ""), strict=True
        ):
            assert want_phone is ANY or phone_ == want_phone, f"{where} lead {lead!r}: {got}"
            assert status == want_status, f"{where} lead {lead!r}: {got}"
            if want_reason is not None:
                assert (reason or "").startswith(want_reason), f"{where} lead {lead!r}: {got}"

    # Every reject the case expects, with its reason.
    unmatched = list(outcome.rejects)
    for key, reason in case.rejects:
        found = next(
            (
                r
                for r in unmatched
                if (
                    r["lead_id"].startswith(key)
                    if key.startswith("(")  # a generated key: "(no lead id: row N ...)"
                    else r["lead_id"] == key
                )
                and r["reason"].startswith(reason)
                and (not key.startswith("(no lead id") or _raw_phone_of_case(r, case))
            ),
            None,
        )
        assert found is not None, (
            f"{where} no reject ({key!r}, {reason!r}); rejects of the case's leads: "
            f"{[r for r in outcome.rejects if _belongs(r, case)]}"
        )
        unmatched.remove(found)

    # Rows outside every window were never read.
    for lead in case.unseen:
        assert not [r for r in outcome.ledger if r["lead_id"] == lead], f"{where} {lead} in ledger"
        assert not [r for r in outcome.rejects if r["lead_id"] == lead], f"{where} {lead} rejected"


def _case_phones(case: Case) -> set[str]:
    return {str(row.phone) for row in case.rows + case.later if row.phone is not None}


def _raw_phone_of_case(reject: dict, case: Case) -> bool:
    """A reject without a lead id is the case's when its raw phone is one of the case's."""
    raw = (reject["raw_phone"] or "").removesuffix(".0")
    return raw in _case_phones(case)


def _belongs(reject: dict, case: Case) -> bool:
    keys = {str(row.lead_id) for row in case.rows + case.later}
    return reject["lead_id"] in keys or _raw_phone_of_case(reject, case)


# --- SQLite text timestamps in other ISO 8601 spellings ---------------------------------------


def test_sqlite_text_timestamp_formats(sqlite_lead_load_env):
    """SQLite keeps ``updated_at`` as text. Besides ``YYYY-MM-DD HH:MM:SS`` (the cases above),
    warehouses write the ISO 8601 ``T`` separator, a ``Z`` or ``+08:00`` offset and fractional
    seconds; each row must be loaded iff its instant is in the UTC window [D1, D1 + 1 day)."""
    env = sqlite_lead_load_env
    inside = {
        "F-t": "2026-11-24T10:00:00",
        "F-offset": "2026-11-24 10:00:00+08:00",  # 02:00 UTC
        "F-z": "2026-11-24T10:00:00Z",
        "F-fraction": "2026-11-24 10:00:00.123456",
        "F-fraction-z": "2026-11-24T23:59:59.999Z",
        "F-offset-next-day": "2026-11-25 06:00:00+08:00",  # 22:00 UTC on the 24th
    }
    outside = {
        "F-offset-day-before": "2026-11-24 07:00:00+08:00",  # 23:00 UTC on the 23rd
        "F-end-z": "2026-11-25T00:00:00Z",
        "F-end-offset": "2026-11-25 08:00:00+08:00",  # the window's end, excluded
    }
    numbers = {lead: phone(3001 + i) for i, lead in enumerate([*inside, *outside])}
    with env.warehouse.engine.begin() as conn:
        conn.execute(text(DDL["sqlite", "text"]))
        conn.execute(
            text("INSERT INTO leads (lead_id, phone, updated_at) VALUES (:l, :p, :u)"),
            [{"l": lead, "p": numbers[lead], "u": u} for lead, u in {**inside, **outside}.items()],
        )

    result = env.run_dag(window_start=D1.isoformat(), window_end=(D1 + DAY).isoformat())
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]

    posted = Counter(row["phone"] for post in env.posts() for row in post["body"]["data"])
    in_task = {n["phone"]: n["extra"] for n in env.sim.task_numbers(env.user_id, env.task_id)}
    problems = []
    for lead, stamp in inside.items():
        if posted[numbers[lead]] != 1 or in_task.get(numbers[lead]) != lead:
            problems.append(f"{lead} ({stamp}) is in the window: posted {posted[numbers[lead]]}x")
    for lead, stamp in outside.items():
        if posted[numbers[lead]] or numbers[lead] in in_task:
            problems.append(f"{lead} ({stamp}) is outside the window but was sent")
    ledger = {r["lead_id"] for r in env.warehouse.rows("SELECT lead_id FROM lead_load_ledger")}
    for lead, stamp in outside.items():
        if lead in ledger:
            problems.append(f"{lead} ({stamp}) is outside the window but in the ledger")
    assert not problems, "\n".join(problems)
