"""The warehouse contract's rules, on plain column names and type categories."""

from __future__ import annotations

import pytest

from lead_load.core.mapping import FieldMapping
from lead_load.core.warehouse_contract import (
    ContractVerdict,
    ExtractColumn,
    Sources,
    TypeCategory,
    check_contract,
)

MAPPING = FieldMapping.load()
T = TypeCategory


def columns(*names: str, updated_at: TypeCategory = T.TIMESTAMP, type_name: str | None = None):
    """The default leads table's columns (or ``names``), updated_at of the given category."""
    names = names or MAPPING.source_columns
    return [
        ExtractColumn(name, updated_at, type_name) if name == "updated_at" else ExtractColumn(name)
        for name in names
    ]


def test_the_default_table_meets_the_contract():
    verdict = check_contract(MAPPING, columns())
    assert verdict == ContractVerdict(updated_at=T.TIMESTAMP, checked=tuple(MAPPING.source_columns))
    assert not verdict.compares_as_text
    # Extra columns are fine; so is any order.
    extra = [ExtractColumn("created_at", T.TIMESTAMP), *reversed(columns())]
    assert not check_contract(MAPPING, extra).problems


def test_a_missing_column_is_named_with_where_it_is_mapped_and_the_fix():
    names = [n for n in MAPPING.source_columns if n != "email"]
    (problem,) = check_contract(MAPPING, columns(*names)).problems
    assert problem.startswith("column 'email' (`fields.email` in field_mapping.yaml) is missing")
    assert "add it to the leads table or select it in include/sql/extract_leads.sql" in problem
    assert "(it has: lead_id, updated_at, phone, name, company," in problem


def test_another_loads_problems_name_its_own_query_and_mapping():
    names = [n for n in MAPPING.source_columns if n != "email"]
    own = Sources("include/sql/win_back/extract.sql", "loads/win_back.yaml (key field_mapping)")
    (problem,) = check_contract(MAPPING, columns(*names), own).problems
    assert "(`fields.email` in loads/win_back.yaml (key field_mapping))" in problem
    assert "select it in include/sql/win_back/extract.sql" in problem
    assert "extract_leads.sql" not in problem and "field_mapping.yaml" not in problem


def test_a_column_in_another_case_names_the_spelling_that_exists():
    names = ["Lead_ID" if n == "lead_id" else n for n in MAPPING.source_columns]
    (problem,) = check_contract(MAPPING, columns(*names)).problems
    assert "column 'lead_id' (`lead_id` in field_mapping.yaml) is missing" in problem
    assert "which has 'Lead_ID': the same name in another case" in problem
    assert 'SELECT "Lead_ID" AS lead_id' in problem


def test_a_column_returned_twice_is_a_problem():
    (problem,) = check_contract(MAPPING, columns(*MAPPING.source_columns, "phone")).problems
    assert "column 'phone' (`fields.phone` in field_mapping.yaml) is returned 2 times" in problem


def test_every_problem_is_reported_at_once():
    names = ["PHONE", "lead_id", "name"]
    problems = check_contract(MAPPING, columns(*names)).problems
    missing = {p.split("'")[1] for p in problems}
    assert missing == set(MAPPING.source_columns) - {"lead_id", "name"}
    # updated_at missing: nothing to say about its type.
    assert check_contract(MAPPING, columns(*names)).updated_at is None


def test_components_are_required_too():
    mapping = FieldMapping.from_dict({"fields": {"phone": "phone"}, "components": {"a1": "nick"}})
    (problem,) = check_contract(
        mapping, [ExtractColumn("lead_id"), ExtractColumn("updated_at"), ExtractColumn("phone")]
    ).problems
    assert "column 'nick' (`components.a1` in field_mapping.yaml) is missing" in problem


def test_one_column_mapped_twice_is_named_once_with_both_roles():
    mapping = FieldMapping.from_dict(
        {"fields": {"phone": "contact", "name": "contact"}, "lead_id": "id"}
    )
    problems = check_contract(mapping, [ExtractColumn("id"), ExtractColumn("updated_at")]).problems
    assert problems == (
        "column 'contact' (`fields.phone` and `fields.name` in field_mapping.yaml) is missing "
        "from the extract (it has: id, updated_at): add it to the leads table or select it in "
        "include/sql/extract_leads.sql, or map another column in "
        "include/lead_load/core/field_mapping.yaml",
    )


@pytest.mark.parametrize("category", [T.TIMESTAMP, T.DATE, T.UNKNOWN])
def test_updated_at_as_a_timestamp_a_date_or_of_unknown_type_is_fine(category):
    verdict = check_contract(MAPPING, columns(updated_at=category))
    assert not verdict.problems and not verdict.warnings
    assert verdict.updated_at is category


def test_updated_at_as_text_is_allowed_with_a_warning_naming_the_risk():
    verdict = check_contract(MAPPING, columns(updated_at=T.TEXT, type_name="varchar"))
    assert not verdict.problems
    (warning,) = verdict.warnings
    assert warning.startswith("column 'updated_at' is text (varchar), not a timestamp")
    assert "compared as text, so only rows written as YYYY-MM-DD HH:MM:SS in UTC" in warning
    assert verdict.compares_as_text


@pytest.mark.parametrize(("category", "type_name"), [(T.NUMBER, "int8"), (T.OTHER, "bool")])
def test_updated_at_of_another_type_fails(category, type_name):
    (problem,) = check_contract(MAPPING, columns(updated_at=category, type_name=type_name)).problems
    assert problem.startswith(
        f"column 'updated_at' is {category.value} ({type_name}), not a timestamp or a date"
    )
    assert "Store the time of the row's last change in UTC as a timestamp" in problem


def test_a_long_column_list_is_cut_short():
    names = [f"c{i}" for i in range(40)]
    problems = check_contract(MAPPING, columns(*names)).problems
    assert "c29, and 10 more" in problems[0] and "c30" not in problems[0]


def test_the_explanation_lists_the_missing_columns_first():
    names = ["lead_id", "Phone", "updated_at", "updated_at"]
    verdict = check_contract(
        FieldMapping.from_dict({"fields": {"phone": "phone"}}), columns(*names)
    )
    assert verdict.missing == ("phone",)
    explained = verdict.explained()
    assert explained.startswith("source column(s) missing from the extract: phone; column ")
    assert "column 'phone' (`fields.phone` in field_mapping.yaml) is missing" in explained
    assert "'updated_at' (`updated_at` in field_mapping.yaml) is returned 2 times" in explained
    assert check_contract(MAPPING, columns()).explained() == ""
