"""What type a column of the extract is, from what the database driver says of it.

``cursor.description`` gives each column a type code: PostgreSQL's drivers a type OID,
MySQL's and MariaDB's a field type number, other drivers one of the DB-API's type objects
(``DATETIME``, ``STRING``, ``NUMBER``), SQLite's driver nothing at all. ``described_columns``
reads a description into the ``ExtractColumn``s that ``lead_load.core.warehouse_contract``
judges: each column's ``TypeCategory`` and, for messages, the database's own name of its type.

Pure: the caller (``lead_load.steps.extract``) runs the query and hands over the description,
the dialect's name and its DB-API module.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from lead_load.core.warehouse_contract import ExtractColumn, TypeCategory

# What a column's type is, from the type code the driver puts in cursor.description:
# PostgreSQL's type OIDs (psycopg and psycopg2 alike) ...
_POSTGRES_TYPES = {
    1114: ("timestamp", TypeCategory.TIMESTAMP),
    1184: ("timestamptz", TypeCategory.TIMESTAMP),
    1082: ("date", TypeCategory.DATE),
    25: ("text", TypeCategory.TEXT),
    1043: ("varchar", TypeCategory.TEXT),
    1042: ("char", TypeCategory.TEXT),
    19: ("name", TypeCategory.TEXT),
    20: ("int8", TypeCategory.NUMBER),
    21: ("int2", TypeCategory.NUMBER),
    23: ("int4", TypeCategory.NUMBER),
    700: ("float4", TypeCategory.NUMBER),
    701: ("float8", TypeCategory.NUMBER),
    1700: ("numeric", TypeCategory.NUMBER),
    16: ("bool", TypeCategory.OTHER),
    17: ("bytea", TypeCategory.OTHER),
    114: ("json", TypeCategory.OTHER),
    3802: ("jsonb", TypeCategory.OTHER),
    1083: ("time", TypeCategory.OTHER),
    1266: ("timetz", TypeCategory.OTHER),
    1186: ("interval", TypeCategory.OTHER),
    2950: ("uuid", TypeCategory.OTHER),
}
# ... MySQL's and MariaDB's field types (FIELD_TYPE in mysqlclient and PyMySQL) ...
_MYSQL_TYPES = {
    7: ("timestamp", TypeCategory.TIMESTAMP),
    12: ("datetime", TypeCategory.TIMESTAMP),
    10: ("date", TypeCategory.DATE),
    14: ("date", TypeCategory.DATE),
    15: ("varchar", TypeCategory.TEXT),
    253: ("varchar", TypeCategory.TEXT),
    254: ("char", TypeCategory.TEXT),
    252: ("text", TypeCategory.TEXT),  # TEXT and BLOB columns alike
    0: ("decimal", TypeCategory.NUMBER),
    246: ("decimal", TypeCategory.NUMBER),
    1: ("tinyint", TypeCategory.NUMBER),
    2: ("smallint", TypeCategory.NUMBER),
    3: ("int", TypeCategory.NUMBER),
    4: ("float", TypeCategory.NUMBER),
    5: ("double", TypeCategory.NUMBER),
    8: ("bigint", TypeCategory.NUMBER),
    9: ("mediumint", TypeCategory.NUMBER),
    13: ("year", TypeCategory.NUMBER),
    11: ("time", TypeCategory.OTHER),
    16: ("bit", TypeCategory.OTHER),
    245: ("json", TypeCategory.OTHER),
}
_TYPES_BY_DIALECT = {"postgresql": _POSTGRES_TYPES, "mysql": _MYSQL_TYPES, "mariadb": _MYSQL_TYPES}
# ... and elsewhere the DB-API's type objects, where the driver has them. SQLite's driver
# reports no types at all: SQLite keeps a date-time as text in a column of any type.
_DBAPI_TYPES = (
    ("DATETIME", TypeCategory.TIMESTAMP),
    ("STRING", TypeCategory.TEXT),
    ("NUMBER", TypeCategory.NUMBER),
)


def column_type(code: Any, dialect_name: str, dbapi: Any) -> tuple[TypeCategory, str | None]:
    """(category, the database's name of the type) of a cursor.description type code, from a
    database of ``dialect_name`` (SQLAlchemy's name) whose DB-API module is ``dbapi``."""
    if code is None:
        return TypeCategory.UNKNOWN, None
    known = _TYPES_BY_DIALECT.get(dialect_name)
    if known is not None:
        name, category = known.get(code, (None, TypeCategory.UNKNOWN))
        return category, name or f"type code {code}"
    for attribute, category in _DBAPI_TYPES:
        type_object = getattr(dbapi, attribute, None)
        try:
            if type_object is not None and code == type_object:
                return category, str(code)
        except Exception:  # noqa: S112 - a driver's odd comparison: the next one, or unknown
            continue
    return TypeCategory.UNKNOWN, str(code)


def described_columns(
    description: Sequence[Sequence[Any]], dialect_name: str, dbapi: Any
) -> list[ExtractColumn]:
    """The columns of a ``cursor.description`` (name first, type code second per entry)."""
    return [
        ExtractColumn(str(entry[0]), *column_type(entry[1], dialect_name, dbapi))
        for entry in description
    ]


def type_words(category: TypeCategory | None) -> str:
    """A column's type in words for a log line ("a timestamp column"), or that the driver
    did not say it."""
    if category is None or category == TypeCategory.UNKNOWN:
        return "of a type the database driver does not report"
    return f"a {category.value} column"
