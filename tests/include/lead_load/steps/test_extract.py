"""The extract step against a real SQLite warehouse."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pandas as pd
import pytest
from airflow.sdk.exceptions import AirflowFailException
from sqlalchemy import create_engine, func, select, text

from lead_load.core.lead_ids import lead_id_texts
from lead_load.core.mapping import FieldMapping
from lead_load.core.window import sql_bounds
from lead_load.ledger import schema
from lead_load.steps import extract
from tests.dags.conftest import REPO, sqlite_warehouse
from tests.include.lead_load.samples import run_settings, statuses


def missing_updated_at(warehouse, sql: str) -> int | None:
    """The rows of the table without updated_at, as the summary counts them."""
    return extract.updated_at_gaps(warehouse, sql)["updated_at_missing_in_table"]


def test_a_column_missing_from_the_extract_query_fails_at_once_naming_it(tmp_path):
    from airflow.sdk.exceptions import AirflowFailException
    from sqlalchemy import text

    warehouse = sqlite_warehouse(tmp_path).engine
    with warehouse.begin() as conn:
        conn.execute(text("CREATE TABLE leads (lead_id TEXT, modified TEXT)"))
    sql = "SELECT * FROM leads WHERE updated_at >= :window_start"
    with pytest.raises(extract.SourceSchemaError, match="no such column: updated_at") as error:
        list(extract.read_in_chunks(warehouse, sql, {"window_start": "2026-11-24"}))
    assert isinstance(error.value, AirflowFailException)  # not retried
    # Other database errors are left alone (and retried).
    with pytest.raises(Exception, match="syntax error") as other:
        list(extract.read_in_chunks(warehouse, "SELEC 1", {}))
    assert not isinstance(other.value, extract.SourceSchemaError)


def test_rows_without_updated_at_are_counted_for_the_summary(tmp_path, caplog):
    from sqlalchemy import text

    warehouse = sqlite_warehouse(tmp_path).engine
    with warehouse.begin() as conn:
        conn.execute(text("CREATE TABLE leads (lead_id TEXT, phone TEXT, updated_at TEXT)"))
        conn.execute(
            text(
                "INSERT INTO leads VALUES ('a', '13800138000', NULL), "
                "('b', '13900139000', '2026-11-24 10:00:00'), ('c', '13700137000', NULL)"
            )
        )
    sql = (REPO / "include" / "sql" / "count_missing_updated_at.sql").read_text()
    assert missing_updated_at(warehouse, sql) == 2
    assert "2 rows of the leads table have no updated_at" in caplog.text
    # A count that cannot run (the table is elsewhere) informs, and fails nothing.
    assert missing_updated_at(warehouse, "SELECT COUNT(*) FROM nowhere") is None


@pytest.mark.postgres
@pytest.mark.parametrize("column_type", ["TIMESTAMPTZ", "TIMESTAMP"])
def test_the_window_is_exact_whatever_the_database_time_zone(column_type):
    """A database whose sessions default to Asia/Shanghai (UTC+8): the window's UTC bounds
    still select exactly [start, end), for timestamptz and for timestamp kept in UTC."""
    from datetime import UTC, datetime

    from sqlalchemy import text

    from lead_load.core.window import sql_bounds
    from tests.dags.conftest import postgres_warehouse

    warehouse = postgres_warehouse()
    try:
        name = warehouse.engine.url.database
        with warehouse.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as c:
            c.execute(text(f"ALTER DATABASE \"{name}\" SET timezone TO 'Asia/Shanghai'"))
        warehouse.engine.dispose()  # new sessions take the database's zone
        literal = "+00" if column_type == "TIMESTAMPTZ" else ""  # timestamp: UTC by contract
        with warehouse.engine.begin() as conn:
            conn.execute(text(f"CREATE TABLE leads (lead_id TEXT, updated_at {column_type})"))
            for lead, moment in [
                ("before", "2026-11-23 23:59:59"),
                ("first", "2026-11-24 00:00:00"),
                ("eight-hours-in", "2026-11-24 07:30:00"),
                ("last", "2026-11-24 23:59:59"),
                ("after", "2026-11-25 00:00:00"),
            ]:
                cast = f"CAST(:moment AS {column_type})"  # one of the two types above
                conn.execute(
                    text("INSERT INTO leads VALUES (:lead, " + cast + ")"),  # noqa: S608
                    {"lead": lead, "moment": moment + literal},
                )
            assert conn.execute(text("SHOW timezone")).scalar() == "Asia/Shanghai"
        bounds = sql_bounds(
            datetime(2026, 11, 24, tzinfo=UTC), datetime(2026, 11, 25, tzinfo=UTC), "postgresql"
        )
        sql = (
            "SELECT lead_id FROM leads WHERE updated_at >= :window_start "
            "AND updated_at < :window_end ORDER BY updated_at"
        )
        chunks = list(extract.read_in_chunks(warehouse.engine, sql, bounds))
        assert [lead for chunk in chunks for lead in chunk["lead_id"]] == [
            "first",
            "eight-hours-in",
            "last",
        ]
    finally:
        for step in warehouse.cleanup:
            step()


DIRTY_LEADS_DDL = (
    "CREATE TABLE leads (lead_id VARCHAR(64), name VARCHAR(200), phone VARCHAR(64), "
    "email VARCHAR(200), company VARCHAR(200), sex VARCHAR(16), source_id INTEGER, "
    "industry_id INTEGER, grade_id INTEGER, updated_at TIMESTAMP)"  # no primary key
)


def test_repeated_and_missing_lead_ids_are_rejects_not_a_crash(engine):
    """A leads table without a primary key: two rows without a lead id, a lead twice in one
    chunk, a lead whose rows straddle two chunks. Each row is accounted for, nothing fails."""
    from sqlalchemy import select, text

    from lead_load.core.mapping import FieldMapping
    from lead_load.core.window import sql_bounds
    from lead_load.ledger import schema
    from tests.include.lead_load.samples import run_settings, statuses

    rows = [  # (lead_id, phone, updated_at), in the extract's lead id order
        ("a", "13800000001", "2026-11-24 01:00:00"),
        ("b", "13800000002", "2026-11-24 01:00:00"),  # b twice in chunk 1: the later one wins
        ("b", "13800000003", "2026-11-24 02:00:00"),
        ("c", "13800000004", "2026-11-24 01:00:00"),  # c straddles chunks 2 and 3
        ("c", "13800000005", "2026-11-24 03:00:00"),
        ("d", "13800000006", "2026-11-24 01:00:00"),
        (None, "13800000007", "2026-11-24 01:00:00"),  # two rows without a lead id
        (None, "13800000008", "2026-11-24 01:00:00"),
    ]
    with engine.begin() as conn:
        conn.execute(text(DIRTY_LEADS_DDL))
        for lead, phone, updated in rows:
            conn.execute(
                text("INSERT INTO leads (lead_id, phone, updated_at) VALUES (:l, :p, :u)"),
                {"l": lead, "p": phone, "u": updated},
            )
    from datetime import UTC, datetime

    bounds = sql_bounds(
        datetime(2026, 11, 24, tzinfo=UTC), datetime(2026, 11, 25, tzinfo=UTC), engine.dialect.name
    )
    sql = (REPO / "include" / "sql" / "extract_leads.sql").read_text()
    # NULL lead ids sort first on SQLite, last on PostgreSQL: chunks of 3 either way put a
    # lead's two rows on both sides of a chunk boundary.
    counts = extract.extract_and_stage(
        run_settings(), sql, bounds, engine, engine, None, FieldMapping.load(), chunk_rows=3
    )

    assert counts["extracted"] == 8
    # The table has no sex column mapped to a value: every lead to send goes as unknown.
    assert counts["sex_unknown"] == counts["staged"] == 4
    assert counts["extracted"] == (
        counts["invalid"]
        + counts["duplicates_in_run"]
        + counts["staged"]
        + counts["already_loaded"]
        + counts["in_flight"]
        + counts["suppressed"]
    )
    with engine.connect() as conn:
        rejected = {
            r.lead_id: r.reason
            for r in conn.execute(select(schema.rejects).where(schema.rejects.c.run_id == "run-1"))
        }
    missing = sorted(lead for lead in rejected if lead.startswith("(no lead id: row "))
    assert len(missing) == 2 and all(rejected[key] == "missing_lead_id" for key in missing)
    repeats = {lead: reason for lead, reason in rejected.items() if lead not in missing}
    # Keyed by row: a lead's repeats, and its own reject if its latest row were bad, all fit.
    # (Row numbers differ: NULL lead ids sort first on SQLite, last on PostgreSQL.)
    keyed = [re.fullmatch(r"\(repeat of lead (\w): row (\d) of the window\)", r) for r in repeats]
    assert sorted(match[1] for match in keyed if match) == ["b", "c"]
    assert all(reason.startswith("duplicate_lead_id") for reason in repeats.values())
    ledger = statuses(engine)
    assert {lead for lead, status in ledger.items() if status == "staged"} == {"a", "b", "c", "d"}
    assert not [lead for lead in ledger if lead.startswith("(no lead id")]  # no fake leads


# --- the warehouse contract, checked before a row is read --------------------------------------

SQLITE_SQL = REPO / "include" / "sql" / "sqlite" / "extract_leads.sql"
SQLITE_COUNT_SQL = REPO / "include" / "sql" / "sqlite" / "count_missing_updated_at.sql"
LEADS_COLUMNS = (
    "lead_id",
    "name",
    "phone",
    "email",
    "company",
    "sex",
    "source_id",
    "industry_id",
    "grade_id",
    "updated_at",
)
WINDOW = (datetime(2026, 11, 24, tzinfo=UTC), datetime(2026, 11, 25, tzinfo=UTC))


class NoPlatform:
    """The agent_api hook of a run whose mapping has no components: never called."""

    def get_template(self):
        raise AssertionError("the template is fetched only for a mapping with components")


def leads_table(engine, rows=(), columns=LEADS_COLUMNS, types=None) -> None:
    """A leads table of ``columns`` (declared ``types``, none by default) holding ``rows``
    (dicts; a missing key is NULL)."""
    declared = types or {}
    ddl = ", ".join(f'"{c}" {declared.get(c, "")}'.strip() for c in columns)
    with engine.begin() as conn:
        conn.execute(text(f"CREATE TABLE leads ({ddl})"))
        if rows:
            names = ", ".join(f'"{c}"' for c in columns)
            values = ", ".join(f":p{i}" for i in range(len(columns)))
            conn.execute(
                text(f"INSERT INTO leads ({names}) VALUES ({values})"),  # noqa: S608 - test's own
                [{f"p{i}": row.get(c) for i, c in enumerate(columns)} for row in rows],
            )


def extract_sqlite(engine, sql_path=SQLITE_SQL, window=WINDOW, **kwargs):
    return extract.extract_and_stage(
        run_settings(),
        sql_path.read_text(),
        sql_bounds(*window, engine.dialect.name),
        engine,
        engine,
        kwargs.pop("agent_api", NoPlatform()),
        kwargs.pop("mapping", FieldMapping.load()),
        **kwargs,
    )


def nothing_staged(engine) -> bool:
    with engine.connect() as conn:
        return not any(
            conn.execute(select(func.count()).select_from(table)).scalar()
            for table in (schema.candidates, schema.rejects, schema.ledger)
        )


def test_a_column_missing_from_the_table_fails_before_anything_is_read(tmp_path):
    engine = sqlite_warehouse(tmp_path).engine
    leads_table(
        engine,
        [{"lead_id": "a", "phone": "13800138000", "updated_at": "2026-11-24 10:00:00"}],
        columns=[c for c in LEADS_COLUMNS if c != "email"],
    )
    with pytest.raises(extract.SourceSchemaError) as error:
        extract_sqlite(engine)
    message = str(error.value)
    assert isinstance(error.value, AirflowFailException)  # not retried
    assert message.startswith(
        "the warehouse breaks the contract: source column(s) missing from the extract: email; "
        "column 'email' (`fields.email` in field_mapping.yaml) is missing"
    )
    assert "add it to the leads table or select it in include/sql/extract_leads.sql" in message
    assert nothing_staged(engine)


def test_a_column_in_another_case_is_named_with_the_spelling_that_exists(tmp_path):
    engine = sqlite_warehouse(tmp_path).engine
    leads_table(engine, columns=["Phone" if c == "phone" else c for c in LEADS_COLUMNS])
    with pytest.raises(extract.SourceSchemaError, match="which has 'Phone'") as error:
        extract_sqlite(engine)
    assert 'SELECT "Phone" AS phone' in str(error.value)


def test_a_column_returned_twice_fails(tmp_path):
    """(SQLite renames the second one in the wrapped look, "phone:1": the first chunk
    shows it.)"""
    engine = sqlite_warehouse(tmp_path).engine
    leads_table(engine, [{"lead_id": "a", "phone": "13800138000", "updated_at": "2026-11-24"}])
    sql = tmp_path / "twice.sql"
    sql.write_text(SQLITE_SQL.read_text().replace("SELECT *", "SELECT *, phone"))
    with pytest.raises(extract.SourceSchemaError, match=r"'phone' .* is returned 2 times"):
        extract_sqlite(engine, sql)


def test_an_extract_that_cannot_be_wrapped_is_checked_on_its_first_chunk(
    tmp_path, monkeypatch, caplog
):
    engine = sqlite_warehouse(tmp_path).engine
    leads_table(engine, [{"lead_id": "a", "phone": "13800138000", "updated_at": "2026-11-24"}])
    monkeypatch.setattr(extract, "_one_statement", lambda sql: "SELEC 1")
    assert extract_sqlite(engine)["staged"] == 1
    assert "Could not look at the extract's columns before reading them" in caplog.text


def test_the_probe_takes_a_trailing_semicolon_and_comment(tmp_path, caplog):
    engine = sqlite_warehouse(tmp_path).engine
    leads_table(engine)
    sql = tmp_path / "semicolon.sql"
    sql.write_text(SQLITE_SQL.read_text() + ";\n-- the end")
    assert extract_sqlite(engine, sql)["extracted"] == 0
    assert "Could not look" not in caplog.text
    assert "the extract returns the 10 columns the load reads" in caplog.text


def test_the_portable_query_on_sqlite_is_warned_about(tmp_path, caplog):
    engine = sqlite_warehouse(tmp_path).engine
    leads_table(engine)
    extract_sqlite(engine, REPO / "include" / "sql" / "extract_leads.sql")
    assert "this extract compares updated_at as text on SQLite" in caplog.text


def test_queries_for_picks_the_dialects_own_queries():
    rendered = {
        "sql": "portable",
        "missing_updated_at_sql": "count",
        "sqlite_sql": "sqlite",
        "sqlite_missing_updated_at_sql": "sqlite count",
    }
    assert extract.queries_for("sqlite", rendered) == ("sqlite", "sqlite count")
    assert extract.queries_for("postgresql", rendered) == ("portable", "count")
    assert extract.queries_for("sqlite", {"sql": "portable"}) == ("portable", None)
    with pytest.raises(ValueError, match="no extract query"):
        extract.queries_for("sqlite", {})


# --- SQLite's text timestamps ------------------------------------------------------------------

# A window from 10:00 to 10:00 UTC, so that a T, an offset or a missing fraction would move a
# row across a bound if the times were compared as text.
TEN_TO_TEN = (datetime(2026, 11, 24, 10, tzinfo=UTC), datetime(2026, 11, 25, 10, tzinfo=UTC))
IN_WINDOW = [
    "2026-11-24 10:00:00",  # the start, plain (UTC)
    "2026-11-24T10:00:00",
    "2026-11-24T10:00:00Z",
    "2026-11-24 18:00:00+08:00",
    "2026-11-24 05:00:00-05:00",
    "2026-11-24 10:00:00.000",
    "2026-11-24 10:00",
    "2026-11-25 09:59:59.999",  # the last millisecond
    "2026-11-25T09:59:59Z",
    "2026-11-25 17:59:59+08:00",
    "2026-11-25 04:59:59 -05:00",
]
OUT_OF_WINDOW = [
    "2026-11-24 09:59:59.999",
    "2026-11-24T09:59:59",  # as text, T sorts after a space: "in" by text comparison
    "2026-11-24 17:59:59+08:00",  # 09:59:59 UTC: "in" by text comparison
    "2026-11-24T09:59:59Z",
    "2026-11-24",  # midnight
    "2026-11-25 10:00:00",  # the end
    "2026-11-25T10:00:00Z",
    "2026-11-25 18:00:00+08:00",
    "2026-11-25 02:00:00-08:00",
    "2026-11-25 09:00:00-05:00",  # 14:00 UTC: "in" by text comparison
]
UNREADABLE = ["24/11/2026 12:00", "2026-11-24 12:00:00+0800", "yesterday", 1795513600]


def test_sqlite_text_timestamps_in_every_documented_format_select_exactly_the_window(tmp_path):
    engine = sqlite_warehouse(tmp_path).engine
    values = [*IN_WINDOW, *OUT_OF_WINDOW, *UNREADABLE, None]
    leads_table(engine, [{"lead_id": str(v), "updated_at": v} for v in values])
    bounds = sql_bounds(*TEN_TO_TEN, "sqlite")

    def selected(sql_path) -> list[str]:
        chunks = extract.read_in_chunks(engine, sql_path.read_text(), bounds)
        return [lead for chunk in chunks for lead in chunk["lead_id"]]

    assert sorted(selected(SQLITE_SQL)) == sorted(IN_WINDOW)
    # Compared as text (the portable query), a T, an offset or a zone falls on the wrong side.
    as_text = selected(REPO / "include" / "sql" / "extract_leads.sql")
    assert {"2026-11-24T09:59:59", "2026-11-24 17:59:59+08:00"} <= set(as_text)
    assert "2026-11-25 17:59:59+08:00" not in as_text

    # What no window selects is counted: NULL and unreadable, apart.
    gaps = extract.updated_at_gaps(engine, SQLITE_COUNT_SQL.read_text())
    assert gaps == {"updated_at_missing_in_table": 1, "updated_at_unreadable_in_table": 4}
    assert missing_updated_at(engine, SQLITE_COUNT_SQL.read_text()) == 1


def test_unreadable_times_are_counted_in_the_summary_and_warned_about(tmp_path, caplog):
    engine = sqlite_warehouse(tmp_path).engine
    rows = [
        {"lead_id": "a", "phone": "13800138000", "updated_at": "2026-11-24T10:00:00+08:00"},
        {"lead_id": "b", "phone": "13900139000", "updated_at": "24/11/2026"},
        {"lead_id": "c", "phone": "13700137000", "updated_at": None},
    ]
    leads_table(engine, rows)
    counts = extract_sqlite(engine, missing_updated_at_sql=SQLITE_COUNT_SQL.read_text())
    assert counts["extracted"] == counts["staged"] == 1
    assert counts["updated_at_missing_in_table"] == 1
    assert counts["updated_at_unreadable_in_table"] == 1
    assert "1 rows of the leads table have an updated_at the database cannot read" in caplog.text
    # The portable count has one column: no unreadable count then.
    portable = (REPO / "include" / "sql" / "count_missing_updated_at.sql").read_text()
    assert extract.updated_at_gaps(engine, portable) == {"updated_at_missing_in_table": 1}


def test_the_latest_of_two_leads_with_one_phone_wins_across_chunks_whatever_the_spelling(
    tmp_path,
):
    """Lead a (02:00 UTC, spelled with +08:00) and lead b (03:00 UTC, plain) share a phone and
    land in two chunks: b, the later one, is staged. As text a's time sorts after b's."""
    engine = sqlite_warehouse(tmp_path).engine
    rows = [
        {"lead_id": "a", "phone": "13800138000", "updated_at": "2026-11-24 10:00:00+08:00"},
        {"lead_id": "b", "phone": "13800138000", "updated_at": "2026-11-24 03:00:00"},
    ]
    leads_table(engine, rows)
    counts = extract_sqlite(engine, chunk_rows=1)
    assert (counts["staged"], counts["duplicates_in_run"]) == (1, 1)
    assert statuses(engine) == {"b": "staged", "a": "rejected"}
    with engine.connect() as conn:
        (reason,) = conn.execute(select(schema.rejects.c.reason)).scalars()
    assert reason == "duplicate_in_run (kept lead b)"


def test_a_lead_spelled_as_integer_and_as_text_in_far_apart_chunks_is_one_lead(tmp_path):
    """A SQLite column of no type keeps 5001 and '5001' as they came, and sorts integers
    before text: the two rows of lead 5001 are chunks apart, and still one lead."""
    engine = sqlite_warehouse(tmp_path).engine
    at = "2026-11-24 10:00:00"
    rows = [
        {"lead_id": 5001, "phone": "13800138000", "updated_at": at},
        {"lead_id": 5002, "phone": "13900139000", "updated_at": at},
        {"lead_id": "a", "phone": "13700137000", "updated_at": at},
        {"lead_id": "5001", "phone": "13600136000", "updated_at": at},
    ]
    leads_table(engine, rows)
    counts = extract_sqlite(engine, chunk_rows=1)
    assert (counts["extracted"], counts["staged"], counts["invalid"]) == (4, 3, 1)
    with engine.connect() as conn:
        (key,) = conn.execute(select(schema.rejects.c.lead_id)).scalars()
    assert key == "(repeat of lead 5001: row 3 of the window)"  # 5001, 5002, '5001', 'a'


# --- PostgreSQL: the contract from the column types --------------------------------------------


@pytest.fixture
def pg_warehouse():
    from tests.dags.conftest import postgres_warehouse

    warehouse = postgres_warehouse()
    yield warehouse.engine
    for step in warehouse.cleanup:
        step()


PG_DDL = (
    "CREATE TABLE leads (lead_id TEXT, name TEXT, phone TEXT, email TEXT, company TEXT, "
    "sex TEXT, source_id INTEGER, industry_id INTEGER, grade_id INTEGER, updated_at {type})"
)


def extract_pg(engine, sql_name="extract_leads.sql"):
    return extract.extract_and_stage(
        run_settings(),
        (REPO / "include" / "sql" / sql_name).read_text(),
        sql_bounds(*TEN_TO_TEN, "postgresql"),
        engine,
        engine,
        NoPlatform(),
        FieldMapping.load(),
    )


@pytest.mark.postgres
def test_a_text_updated_at_on_postgresql_is_compared_as_text_with_a_warning(pg_warehouse, caplog):
    engine = pg_warehouse
    with engine.begin() as conn:
        conn.execute(text(PG_DDL.format(type="VARCHAR(40)")))
        conn.execute(
            text(
                "INSERT INTO leads (lead_id, phone, updated_at) VALUES "
                "('in', '13800138000', '2026-11-24 10:00:00'), "
                "('out', '13900139000', '2026-11-25 10:00:00')"
            )
        )
    counts = extract_pg(engine)  # timestamp bounds against text: "operator does not exist"
    assert (counts["extracted"], counts["staged"]) == (1, 1)
    assert "column 'updated_at' is text (varchar), not a timestamp" in caplog.text
    assert "updated_at is a text column" in caplog.text


@pytest.mark.postgres
@pytest.mark.parametrize(("column_type", "shown"), [("BIGINT", "int8"), ("BOOLEAN", "bool")])
def test_an_updated_at_of_no_time_type_on_postgresql_fails_at_once(
    pg_warehouse, column_type, shown
):  # e.g. Unix seconds
    with pg_warehouse.begin() as conn:
        conn.execute(text(PG_DDL.format(type=column_type)))
    # The query compares a number with timestamp bounds, which PostgreSQL refuses: the check
    # still sees the column's type, and says what is wrong instead of the operator error.
    with pytest.raises(extract.SourceSchemaError) as error:
        extract_pg(pg_warehouse)
    category = "number" if column_type == "BIGINT" else "other"
    assert f"column 'updated_at' is {category} ({shown}), not a timestamp" in str(error.value)
    assert nothing_staged(pg_warehouse)


@pytest.mark.postgres
def test_a_quoted_column_in_another_case_on_postgresql_is_named(pg_warehouse):
    with pg_warehouse.begin() as conn:
        conn.execute(text(PG_DDL.format(type="TIMESTAMPTZ").replace("phone", '"Phone"')))
    with pytest.raises(extract.SourceSchemaError, match="which has 'Phone'"):
        extract_pg(pg_warehouse)


@pytest.mark.postgres
def test_timestamp_and_timestamptz_meet_the_contract_silently(pg_warehouse, caplog):
    with pg_warehouse.begin() as conn:
        conn.execute(text(PG_DDL.format(type="TIMESTAMPTZ")))
    verdict = extract.check_warehouse_contract(
        pg_warehouse,
        (REPO / "include" / "sql" / "extract_leads.sql").read_text(),
        sql_bounds(*TEN_TO_TEN, "postgresql"),
        FieldMapping.load(),
    )
    assert verdict is not None and not verdict.warnings and not verdict.compares_as_text
    assert verdict.updated_at.value == "timestamp"


# --- property: whatever the warehouse holds, the extract never fails and loses no row ----------

FULL_PHONE = re.compile(r"(?<![0-9])1[3-9][0-9]{9}(?![0-9])")
PROPERTY_MAPPING = FieldMapping.from_dict(
    {
        **{key: getattr(FieldMapping.load(), key) for key in ("fields", "sex_values")},
        "components": {"91a4ff5d": "nick", "c87d8629": "score"},
    }
)
PROPERTY_COLUMNS = (*LEADS_COLUMNS, "nick", "score")
TEMPLATE = [  # docs/agent-api.md section 4
    {"id": "91a4ff5d", "name": "姓名", "type": "text", "validate": ["required"]},
    {"id": "c87d8629", "name": "数字", "type": "number", "validate": ["integer"]},
]


class Platform:
    """The platform's side of the extract: the public-pool template, fetched once."""

    def get_template(self):
        return TEMPLATE


def _property_strategies():
    """(rows, chunk size, declared column types): each value mostly plausible, so that rows
    get staged, repeat a lead, share a phone and spill over chunks; else anything at all."""
    from datetime import timedelta, timezone

    from hypothesis import strategies as st

    # SQLite stores any text but lone surrogates (no UTF-8 for them).
    texts = st.text(st.characters(exclude_categories=("Cs",)), max_size=12)
    odd_texts = st.sampled_from(
        ["", " ", "\x00", "a\x00b", "\x1b[31m", "\u202e", "\ufeff", "𝟙𝟛𝟠", "NaN", "男", "f"]
    )
    numbers = st.integers(-(2**63), 2**63 - 1) | st.floats() | st.sampled_from([2**63 - 1, -0.0])
    anything = st.none() | texts | odd_texts | numbers | st.binary(max_size=6)

    def mostly(*plausible, odds=3):
        """``odds`` times in ``odds`` + 1 something plausible, else anything. (A plain one_of
        would pick among the leaves of ``anything`` as often as among the plausible ones.)"""
        sane = st.one_of(*plausible)
        return st.sampled_from([sane] * odds + [anything]).flatmap(lambda choice: choice)

    phones = st.sampled_from(
        [
            "13800138000",
            "+86 139 0013 9000",
            "15000150000",
            "0086-138-0013-8000",  # 13800138000 again: one phone, two leads
            "1380013800\x00",
            "010-12345678",  # a fixed line
        ]
    ) | st.sampled_from([13800138000, 13800138000.0, 8613900139000])
    odd_lead_ids = st.sampled_from([" ", "a\x00", "x" * 129, "\x00" * 40, 1e300, b"a", b"\x80"])
    lead_ids = mostly(
        st.sampled_from(["a", "b", "c", "5001", "(x"]),
        st.sampled_from([5001, 5001.0, 7]),
        odd_lead_ids,
    )
    zones = st.sampled_from([UTC, timezone(timedelta(hours=8)), timezone(timedelta(hours=-5))])
    moments = st.integers(-3600, 25 * 3600).map(lambda s: WINDOW[0] + timedelta(seconds=s))
    spellings = st.sampled_from(
        [
            lambda m, z: m.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S"),
            lambda m, z: m.astimezone(z).isoformat(),
            lambda m, z: m.astimezone(z).isoformat(sep=" ", timespec="milliseconds"),
            lambda m, z: m.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        ]
    )
    timed = st.builds(lambda m, z, spell: (m, spell(m, z)), moments, zones, spellings)
    untimed = anything.map(lambda value: (None, value))  # junk: in no window (checked below)
    small = st.none() | st.integers(0, 9) | st.just("3")
    row = st.fixed_dictionaries(
        {
            "lead_id": lead_ids,
            "phone": mostly(phones),
            "updated_at": st.sampled_from([timed, timed, timed, untimed]).flatmap(lambda t: t),
            "name": mostly(st.none(), st.text(max_size=6), odds=7),
            "email": mostly(st.none(), st.just("x@example.com"), odds=7),
            "company": mostly(st.none(), st.text(max_size=6), odds=7),
            "sex": mostly(st.sampled_from(["男", "f", "", None, "0", 1]), odds=7),
            "source_id": mostly(small, odds=7),
            "industry_id": mostly(small, odds=7),
            "grade_id": mostly(small, odds=7),
            "nick": mostly(st.sampled_from(["牛", "x"]), odds=7),  # required by the template
            "score": mostly(small, odds=7),
        }
    )
    declared = st.lists(
        st.sampled_from(["", "TEXT", "INTEGER", "REAL", "NUMERIC"]),
        min_size=len(PROPERTY_COLUMNS),
        max_size=len(PROPERTY_COLUMNS),
    ).map(lambda types: dict(zip(PROPERTY_COLUMNS, types, strict=True)))
    return st.lists(row, min_size=1, max_size=30), st.integers(1, 7), declared


def test_no_warehouse_content_crashes_the_extract_or_loses_a_row(tmp_path_factory, caplog):
    """Rows of arbitrary text (NUL bytes, control characters, odd unicode), numbers (huge
    ints, floats, inf), blobs and NULLs in every column, repeated and missing lead ids, in
    SQLite columns of every affinity; times in the documented spellings, in and around the
    window, or junk. The real extract never raises, every row it reads is accounted for
    exactly once, every lead it reads is in the ledger or the rejects, and no full phone
    number reaches a log."""
    import sqlite3
    import tempfile

    from hypothesis import HealthCheck, given, settings

    rows_strategy, chunk_rows_strategy, declared_strategy = _property_strategies()
    sqlite = sqlite3.connect(":memory:")
    start, end = (
        sqlite.execute("SELECT julianday(?)", (b,)).fetchone()[0]
        for b in (sql_bounds(*WINDOW, "sqlite").values())
    )

    def in_window(moment, value) -> bool:
        if moment is not None:
            return WINDOW[0] <= moment < WINDOW[1]
        day = sqlite.execute("SELECT julianday(?)", (value,)).fetchone()[0]
        return day is not None and start <= day < end  # junk SQLite happens to read

    @settings(
        max_examples=40,
        deadline=None,
        database=None,  # no .hypothesis folder in the repo; a failure prints its example
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(rows_strategy, chunk_rows_strategy, declared_strategy)
    def check(rows, chunk_rows, declared):
        caplog.clear()
        stored = [{**row, "updated_at": row["updated_at"][1]} for row in rows]
        with tempfile.TemporaryDirectory(dir=tmp_path_factory.getbasetemp()) as folder:
            engine = create_engine(f"sqlite:///{folder}/warehouse.db")
            try:
                leads_table(engine, stored, PROPERTY_COLUMNS, declared)
                expected = sum(in_window(*row["updated_at"]) for row in rows)
                counts = extract_sqlite(
                    engine,
                    agent_api=Platform(),
                    mapping=PROPERTY_MAPPING,
                    chunk_rows=chunk_rows,
                    missing_updated_at_sql=SQLITE_COUNT_SQL.read_text(),
                )
                assert_accounted(engine, counts, expected)
            finally:
                engine.dispose()
        leaked = FULL_PHONE.findall(caplog.text)
        assert not leaked, f"full phone numbers in the log: {leaked}"

    check()


def assert_accounted(engine, counts: dict, expected: int) -> None:
    """Each row read is staged, rejected or a duplicate, once; each lead it read is in the
    ledger (staged) or in the rejects under its own id, each other row under a key of its
    own."""
    assert counts["extracted"] == expected
    assert counts["extracted"] == (
        counts["invalid"]
        + counts["duplicates_in_run"]
        + counts["staged"]
        + counts["already_loaded"]
        + counts["in_flight"]
        + counts["suppressed"]
    )
    assert counts["already_loaded"] == counts["in_flight"] == 0  # a fresh ledger
    with engine.connect() as conn:
        staged = set(
            conn.execute(
                select(schema.ledger.c.lead_id).where(
                    schema.ledger.c.run_id == "run-1", schema.ledger.c.status == "staged"
                )
            ).scalars()
        )
        rejected = list(
            conn.execute(
                select(schema.rejects.c.lead_id).where(schema.rejects.c.run_id == "run-1")
            ).scalars()
        )
        read = list(
            conn.execute(text(SQLITE_SQL.read_text()), sql_bounds(*WINDOW, "sqlite")).mappings()
        )
    assert len(staged) == counts["staged"]
    assert len(rejected) == counts["invalid"] + counts["duplicates_in_run"]
    assert len(staged) + len(rejected) == counts["extracted"] == len(read)
    # Every lead read is there under its own id, unless it has none or cannot key the ledger.
    leads = {
        lead.replace("\x00", "\\x00")
        for lead in lead_id_texts(pd.Series([r["lead_id"] for r in read], dtype=object))
        if lead is not None and lead.strip() and len(lead) + 3 * lead.count("\x00") <= 128
    }
    own = {key for key in rejected if not key.startswith(("(no lead id", "(repeat of lead"))}
    own = {key for key in own if not key.startswith("(lead id too long")}
    assert leads == staged | own


# --- MariaDB: the same contract from MySQL's field types --------------------------------------


@pytest.fixture
def mariadb_engine():
    from tests.dags.conftest import mariadb_warehouse

    warehouse = mariadb_warehouse()
    yield warehouse.engine
    for step in warehouse.cleanup:
        step()


@pytest.mark.mariadb
@pytest.mark.parametrize(
    ("column_type", "verdict"),
    [
        ("DATETIME", "timestamp"),
        ("TIMESTAMP NULL", "timestamp"),
        ("VARCHAR(40)", "warning: text (varchar)"),
        ("BIGINT", "problem: number (bigint)"),
    ],
)
def test_the_contract_on_mariadb(mariadb_engine, column_type, verdict, caplog):
    with mariadb_engine.begin() as conn:
        conn.execute(text(PG_DDL.format(type=column_type)))
        conn.execute(
            text("INSERT INTO leads (lead_id, phone, updated_at) VALUES ('in', :p, :u)"),
            {"p": "13800138000", "u": "2026-11-24 10:00:00" if "INT" not in column_type else 1},
        )
    run = lambda: extract.extract_and_stage(  # noqa: E731
        run_settings(),
        (REPO / "include" / "sql" / "extract_leads.sql").read_text(),
        sql_bounds(*TEN_TO_TEN, mariadb_engine.dialect.name),
        mariadb_engine,
        mariadb_engine,
        NoPlatform(),
        FieldMapping.load(),
    )
    if verdict.startswith("problem: "):
        with pytest.raises(extract.SourceSchemaError, match=re.escape(f"is {verdict[9:]}, not")):
            run()
        return
    assert run()["staged"] == 1
    if verdict.startswith("warning: "):
        assert f"column 'updated_at' is {verdict[9:]}, not a timestamp" in caplog.text
    else:
        assert f"updated_at is a {verdict} column" in caplog.text
        assert "not a timestamp" not in caplog.text
