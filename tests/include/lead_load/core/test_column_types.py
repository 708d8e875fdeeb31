"""A column's type from what the database driver says of it in ``cursor.description``."""

from types import SimpleNamespace

import pytest

from lead_load.core.column_types import column_type, described_columns, type_words
from lead_load.core.warehouse_contract import ExtractColumn, TypeCategory


@pytest.mark.parametrize(
    ("dialect", "code", "expected"),
    [
        ("postgresql", 1184, (TypeCategory.TIMESTAMP, "timestamptz")),
        ("postgresql", 1114, (TypeCategory.TIMESTAMP, "timestamp")),
        ("postgresql", 1043, (TypeCategory.TEXT, "varchar")),
        ("postgresql", 20, (TypeCategory.NUMBER, "int8")),
        ("postgresql", 16, (TypeCategory.OTHER, "bool")),
        ("postgresql", 99999, (TypeCategory.UNKNOWN, "type code 99999")),
        ("mysql", 12, (TypeCategory.TIMESTAMP, "datetime")),
        ("mariadb", 12, (TypeCategory.TIMESTAMP, "datetime")),  # MySQL's field types
        ("mariadb", 252, (TypeCategory.TEXT, "text")),
        ("mysql", 8, (TypeCategory.NUMBER, "bigint")),
        ("sqlite", None, (TypeCategory.UNKNOWN, None)),  # SQLite's driver says nothing
    ],
)
def test_a_drivers_type_code_tells_the_category_and_the_databases_name(dialect, code, expected):
    assert column_type(code, dialect, None) == expected


class TypeObject:
    """A DB-API type object: equal to each type code of its group."""

    def __init__(self, *codes):
        self.codes = codes

    def __eq__(self, other):
        return other in self.codes

    __hash__ = None


class UnComparable:
    def __eq__(self, other):
        raise TypeError("this driver cannot compare")

    __hash__ = None


def test_other_drivers_are_read_through_the_dbapi_type_objects():
    dbapi = SimpleNamespace(
        DATETIME=TypeObject("TIMESTAMP(6)"), STRING=TypeObject("VARCHAR2"), NUMBER=TypeObject(2)
    )
    assert column_type("TIMESTAMP(6)", "oracle", dbapi) == (TypeCategory.TIMESTAMP, "TIMESTAMP(6)")
    assert column_type("VARCHAR2", "oracle", dbapi) == (TypeCategory.TEXT, "VARCHAR2")
    assert column_type(2, "oracle", dbapi) == (TypeCategory.NUMBER, "2")
    assert column_type("BLOB", "oracle", dbapi) == (TypeCategory.UNKNOWN, "BLOB")
    # A driver without type objects, or whose comparison fails, tells nothing it cannot.
    assert column_type("x", "other", None) == (TypeCategory.UNKNOWN, "x")
    odd = SimpleNamespace(DATETIME=UnComparable(), NUMBER=TypeObject(2))
    assert column_type(2, "other", odd) == (TypeCategory.NUMBER, "2")


def test_a_description_becomes_the_columns_the_contract_judges():
    description = [
        ("lead_id", 25, None, None, None, None, None),
        ("updated_at", 1184, None, None, None, None, None),
        ("grade_id", None, None, None, None, None, None),
    ]
    assert described_columns(description, "postgresql", None) == [
        ExtractColumn("lead_id", TypeCategory.TEXT, "text"),
        ExtractColumn("updated_at", TypeCategory.TIMESTAMP, "timestamptz"),
        ExtractColumn("grade_id", TypeCategory.UNKNOWN, None),
    ]


def test_type_words_for_the_log():
    assert type_words(TypeCategory.TIMESTAMP) == "a timestamp column"
    assert type_words(TypeCategory.UNKNOWN) == "of a type the database driver does not report"
    assert type_words(None) == "of a type the database driver does not report"
