"""Validation, de-duplication and the whole transform: every row accounted for."""

import pandas as pd
import pytest

from lead_load.core.components import COMPONENT_INVALID
from lead_load.core.lead_ids import (
    DUPLICATE_LEAD_ID,
    LEAD_ID_TOO_LONG,
    MAX_LEAD_ID_CHARS,
    MISSING_LEAD_ID,
    stands_for_no_lead,
)
from lead_load.core.mapping import FieldMapping, MappingError
from lead_load.core.payloads import INVALID_FIELD
from lead_load.core.reject_reasons import INVALID_KINDS
from lead_load.core.transform import (
    dedupe_latest,
    normalise_and_validate,
    sortable_times,
    transform_leads,
)
from tests.include.lead_load.core.transform_samples import DEFAULT, TEMPLATE, leads, validated


def accounted(result, df) -> bool:
    return len(result.valid) + len(result.rejects) + len(result.duplicates) == len(df)


# --- normalise_and_validate ---------------------------------------------------------------------


def test_normalise_and_validate_adds_two_columns_and_leaves_the_input_alone():
    df = leads(
        {"lead_id": 1, "phone": "+86 138 0013 8000"},
        {"lead_id": 2, "phone": "010-12345678"},
        {"lead_id": None, "phone": "13900139000"},
        {"lead_id": "  ", "phone": "abc"},  # a missing id outranks a bad phone
        {"lead_id": float("nan"), "phone": None},
    )
    before = df.copy()
    out = normalise_and_validate(df, DEFAULT)
    pd.testing.assert_frame_equal(df, before)
    assert list(out.columns) == [*df.columns, "phone_norm", "reject_reason"]
    assert out["phone_norm"].tolist() == ["13800138000", pd.NA, "13900139000", pd.NA, pd.NA]
    assert out["reject_reason"].tolist() == [
        pd.NA,
        "not_mobile",
        MISSING_LEAD_ID,
        MISSING_LEAD_ID,
        MISSING_LEAD_ID,
    ]


def test_normalise_and_validate_checks_the_columns_first():
    with pytest.raises(MappingError, match="missing from the extract: grade_id"):
        normalise_and_validate(leads({"lead_id": 1}).drop(columns="grade_id"), DEFAULT)


# --- dedupe_latest ----------------------------------------------------------------------------


def test_dedupe_keeps_the_most_recently_updated_lead_per_phone():
    df = validated(
        {"lead_id": 1, "phone": "13800138000", "updated_at": pd.Timestamp("2024-01-01")},
        {"lead_id": 2, "phone": "138 0013 8000", "updated_at": pd.Timestamp("2024-03-01")},
        {"lead_id": 3, "phone": "13900139000", "updated_at": pd.Timestamp("2024-01-01")},
        {"lead_id": 4, "phone": "+8613800138000", "updated_at": pd.Timestamp("2024-02-01")},
        {"lead_id": 5, "phone": "bad", "updated_at": pd.Timestamp("2025-01-01")},
    )
    kept, duplicates = dedupe_latest(df)
    assert kept["lead_id"].tolist() == [2, 3]  # df order
    assert duplicates.to_dict("records") == [
        {"lead_id": 1, "phone_norm": "13800138000", "kept_lead_id": 2},
        {"lead_id": 4, "phone_norm": "13800138000", "kept_lead_id": 2},
    ]


def test_dedupe_breaks_ties_by_the_highest_lead_id():
    same_time = pd.Timestamp("2024-01-01")
    df = validated(
        {"lead_id": 9, "phone": "13800138000", "updated_at": same_time},
        {"lead_id": 10, "phone": "13800138000", "updated_at": same_time},  # 10 > 9 as numbers
        {"lead_id": 2, "phone": "13800138000", "updated_at": same_time},
    )
    kept, duplicates = dedupe_latest(df)
    assert kept["lead_id"].tolist() == [10]
    assert duplicates["kept_lead_id"].tolist() == [10, 10]


def test_dedupe_ties_on_text_ids_compare_as_text():
    df = validated(
        {"lead_id": "b-1", "phone": "13800138000"},
        {"lead_id": "c-0", "phone": "13800138000"},
        {"lead_id": "a-9", "phone": "13800138000"},
    )
    kept, _ = dedupe_latest(df)
    assert kept["lead_id"].tolist() == ["c-0"]


def test_dedupe_counts_a_missing_updated_at_as_oldest_and_reads_text_timestamps():
    df = validated(
        {"lead_id": 1, "phone": "13800138000", "updated_at": None},
        {"lead_id": 2, "phone": "13800138000", "updated_at": "2024-01-02 10:00:00"},
        {"lead_id": 3, "phone": "13800138000", "updated_at": "2024-01-02T09:00:00+00:00"},
        {"lead_id": 4, "phone": "13900139000", "updated_at": "02/01/2024"},  # not ISO
        {"lead_id": 5, "phone": "13900139000", "updated_at": "garbage"},
    )
    kept, duplicates = dedupe_latest(df)
    assert kept["lead_id"].tolist() == [2, 4]
    assert duplicates["lead_id"].tolist() == [1, 3, 5]


def test_dedupe_compares_instants_across_time_zones():
    df = validated(
        {"lead_id": 1, "phone": "13800138000", "updated_at": "2024-01-01T10:00:00+08:00"},
        {"lead_id": 2, "phone": "13800138000", "updated_at": "2024-01-01T03:00:00+00:00"},
    )
    df["updated_at"] = pd.to_datetime(df["updated_at"], utc=True).dt.tz_convert("Asia/Shanghai")
    kept, _ = dedupe_latest(df)
    assert kept["lead_id"].tolist() == [2]  # 03:00 UTC is after 02:00 UTC


def test_dedupe_with_other_column_names_and_no_valid_rows():
    df = validated({"lead_id": 1, "phone": "x"}).rename(
        columns={"lead_id": "id", "updated_at": "at"}
    )
    kept, duplicates = dedupe_latest(df, lead_id="id", updated_at="at")
    assert kept.empty
    assert list(duplicates.columns) == ["lead_id", "phone_norm", "kept_lead_id"]
    assert duplicates.empty


# --- transform_leads ---------------------------------------------------------------------------


def test_transform_leads_end_to_end():
    df = leads(
        {"lead_id": 1, "phone": "138 0013 8000", "name": "A", "updated_at": "2024-01-01"},
        {"lead_id": 2, "phone": "+86 138-0013-8000", "name": "B", "updated_at": "2024-02-01"},
        {"lead_id": 3, "phone": "010-12345678"},
        {"lead_id": 4, "phone": "13900139000", "grade_id": "gold"},
        {"lead_id": None, "phone": "13700137000"},
        {"lead_id": 6, "phone": None},
        {"lead_id": 7, "phone": "１３６００１３６０００", "sex": "女"},
    ).set_index(pd.Index([5, 5, 5, 1, 1, 1, 0]))  # odd index: must not matter
    result = transform_leads(df, DEFAULT)
    assert accounted(result, df)
    assert result.valid.to_dict("records") == [
        {"lead_id": "2", "phone": "13800138000", "updated_at": "2024-02-01"},
        {"lead_id": "7", "phone": "13600136000", "updated_at": pd.Timestamp("2024-01-01")},
    ]
    assert [p["extra"] for p in result.payloads] == ["2", "7"]
    assert result.payloads[1]["sex"] == 2
    assert list(result.rejects.columns) == ["lead_id", "raw_phone", "reason"]
    assert result.rejects["reason"].tolist() == [
        "not_mobile",
        f"{INVALID_FIELD}: grade_id must be an integer (got 'gold')",
        MISSING_LEAD_ID,
        "missing_phone",
    ]
    assert result.rejects["raw_phone"].tolist() == [
        "010-12345678",
        "13900139000",
        "13700137000",
        pd.NA,
    ]
    assert result.duplicates.to_dict("records") == [
        {"lead_id": "1", "phone": "13800138000", "kept_lead_id": "2"}
    ]


def test_an_unsendable_newer_lead_does_not_hide_an_older_sendable_one():
    df = leads(
        {"lead_id": 1, "phone": "13800138000", "updated_at": pd.Timestamp("2024-01-01")},
        {
            "lead_id": 2,
            "phone": "13800138000",
            "updated_at": pd.Timestamp("2024-06-01"),
            "source_id": 1.5,
        },
    )
    result = transform_leads(df, DEFAULT)
    assert result.valid["lead_id"].tolist() == ["1"]
    assert result.rejects["lead_id"].tolist() == ["2"]
    assert result.duplicates.empty


def test_component_failures_become_rejects():
    mapping = FieldMapping.from_dict(
        {
            "fields": {"phone": "mobile"},
            "lead_id": "id",
            "updated_at": "at",
            "components": {"91a4ff5d": "nick", "c87d8629": "score"},
        }
    )
    df = pd.DataFrame(
        {
            "id": ["x1", "x2", "x3", "x4"],
            "mobile": [13800138000, 13900139000, 13700137000, 13600136000],
            "at": pd.Timestamp("2024-01-01"),
            "nick": ["牛", "马", None, None],
            "score": [1, 2.5, 3, None],
        }
    )
    result = transform_leads(df, mapping, TEMPLATE)
    assert accounted(result, df)
    assert result.valid["lead_id"].tolist() == ["x1", "x4"]  # x4 sends no components at all
    assert result.payloads[0]["components"] == [
        {"id": "91a4ff5d", "value": "牛"},
        {"id": "c87d8629", "value": 1},
    ]
    assert "components" not in result.payloads[1]
    assert result.rejects["lead_id"].tolist() == ["x2", "x3"]
    assert result.rejects["raw_phone"].tolist() == ["13900139000", "13700137000"]
    assert result.rejects["reason"].tolist() == [
        f"{COMPONENT_INVALID}: 数字 must be an integer",
        f"{COMPONENT_INVALID}: 姓名 is required",
    ]


def test_transform_of_an_empty_extract():
    result = transform_leads(leads({"lead_id": 1}).iloc[:0], DEFAULT)
    assert result.valid.empty and result.rejects.empty and result.duplicates.empty
    assert result.payloads == []


def test_reason_codes_are_documented_in_one_place():
    import lead_load.core.transform as transform

    for kind in INVALID_KINDS:
        assert f"``{kind.value}``" in transform.__doc__


def test_lead_ids_are_recorded_as_the_text_sent_in_extra_when_nulls_made_them_float():
    """An INTEGER lead_id column with one NULL reads as float64: the ledger must say 5001,
    as ``extra`` does, not 5001.0."""
    df = leads(
        {"lead_id": 5001, "phone": "13800138000"},
        {"lead_id": 5002, "phone": "010-12345678"},
        {"lead_id": 5003, "phone": "13800138000", "updated_at": "2023-01-01"},
        {"lead_id": None, "phone": "13900139000"},
    )
    assert df["lead_id"].dtype == "float64"
    result = transform_leads(df, DEFAULT)
    assert result.valid["lead_id"].tolist() == ["5001"]
    assert [p["extra"] for p in result.payloads] == ["5001"]
    assert result.rejects["lead_id"].tolist()[:1] == ["5002"]
    assert result.duplicates[["lead_id", "kept_lead_id"]].values.tolist() == [["5003", "5001"]]


@pytest.mark.parametrize(
    ("column", "value", "problem"),
    [
        ("name", "张\x00三", "name contains a control character (U+0000)"),
        ("company", "ACME\x1b[31m", "company contains a control character (U+001B)"),
        ("email", "a@b.cn\x7f", "email contains a control character (U+007F)"),
        ("source_id", 2**64, "source_id is out of the API's integer range"),
        ("grade_id", "99999999999999999999", "grade_id is out of the API's integer range"),
        ("industry_id", 1e30, "industry_id is out of the API's integer range"),
    ],
)
def test_a_value_the_api_cannot_take_is_a_reject_with_a_reason(column, value, problem):
    df = leads(
        {"lead_id": 1, "phone": "13800138000", column: value},
        {"lead_id": 2, "phone": "13900139000", "name": "李四\t(销售)\n"},  # tab, newline: fine
    )
    result = transform_leads(df, DEFAULT)
    assert accounted(result, df)
    assert result.rejects["lead_id"].tolist() == ["1"]
    (reason,) = result.rejects["reason"].tolist()
    assert reason.startswith(f"{INVALID_FIELD}: {problem}")
    assert result.valid["lead_id"].tolist() == ["2"]
    assert result.payloads[0]["name"] == "李四\t(销售)"


def test_an_unsigned_column_beyond_int64_is_checked_too():
    df = leads({"lead_id": 1, "phone": "13800138000"}, {"lead_id": 2, "phone": "13900139000"})
    df["source_id"] = pd.array([1, 2**63], dtype="UInt64")
    result = transform_leads(df, DEFAULT)
    assert result.valid["lead_id"].tolist() == ["1"]
    assert result.payloads[0]["source_id"] == 1
    assert "out of the API's integer range" in result.rejects["reason"].tolist()[0]


def test_a_lead_id_with_a_control_character_is_rejected_not_staged():
    df = leads(
        {"lead_id": "L\x00-1", "phone": "13800138000"},
        {"lead_id": "L-2", "phone": "13900139000"},
    )
    result = transform_leads(df, DEFAULT)
    assert accounted(result, df)
    assert result.valid["lead_id"].tolist() == ["L-2"]
    assert result.rejects["reason"].tolist() == [
        f"{INVALID_FIELD}: lead_id contains a control character"
    ]


def test_a_sex_value_the_mapping_does_not_list_is_a_reject_not_a_silent_unknown():
    df = leads(
        {"lead_id": 1, "phone": "13800138000", "sex": "女士"},
        {"lead_id": 2, "phone": "13900139000", "sex": 3},
        {"lead_id": 3, "phone": "13700137000", "sex": "  "},
        {"lead_id": 4, "phone": "13600136000", "sex": "Unknown"},
    )
    result = transform_leads(df, DEFAULT)
    assert accounted(result, df)
    assert result.rejects["reason"].tolist() == [
        f"{INVALID_FIELD}: sex value '女士' is not in sex_values "
        "(include/lead_load/core/field_mapping.yaml)",
        f"{INVALID_FIELD}: sex value '3' is not in sex_values "
        "(include/lead_load/core/field_mapping.yaml)",
    ]
    assert [(p["extra"], p["sex"]) for p in result.payloads] == [("3", 0), ("4", 0)]
    assert result.sex_unknown == 2  # blank and "Unknown": sent as 0, and counted


# --- lead ids the ledger must key: repeats, bytes, odd types, length -----------------------------


def test_every_repeat_of_a_lead_gets_a_key_of_its_own():
    """Three rows of one lead, the latest with a bad phone: the two repeats and the lead's own
    reject are three rejects, and no two share a key (the rejects table keys by it)."""
    df = leads(
        {"lead_id": "b", "phone": "13800138000", "updated_at": pd.Timestamp("2024-01-01")},
        {"lead_id": "b", "phone": "13900139000", "updated_at": pd.Timestamp("2024-01-02")},
        {"lead_id": "b", "phone": "not a phone", "updated_at": pd.Timestamp("2024-01-03")},
        {"lead_id": None, "phone": "13700137000"},
    )
    result = transform_leads(df, DEFAULT, row_numbers=[11, 12, 13, 14])
    assert accounted(result, df)
    assert result.rejects[["lead_id", "reason"]].values.tolist() == [
        ["(repeat of lead b: row 11 of the window)", DUPLICATE_LEAD_ID],
        ["(repeat of lead b: row 12 of the window)", DUPLICATE_LEAD_ID],
        ["b", "not_a_phone"],
        ["(no lead id: row 14 of the window)", MISSING_LEAD_ID],
    ]
    # Without row numbers, rows count from first_row.
    again = transform_leads(df, DEFAULT, first_row=101)
    assert again.rejects["lead_id"].tolist()[0] == "(repeat of lead b: row 101 of the window)"
    with pytest.raises(ValueError, match="2 row numbers for 4 rows"):
        transform_leads(df, DEFAULT, row_numbers=[1, 2])


def test_a_lead_id_longer_than_the_ledger_key_is_rejected_under_a_key_of_its_own():
    long_id = "L" * (MAX_LEAD_ID_CHARS + 1)
    df = leads(
        {"lead_id": long_id, "phone": "13800138000"},
        {"lead_id": "L" * MAX_LEAD_ID_CHARS, "phone": "13900139000"},  # fits exactly
        {"lead_id": "\x00" * 40, "phone": "13700137000"},  # stored as 160 characters
        {"lead_id": 1e300, "phone": "13600136000"},  # 1e+300, in a column of any type
    )
    result = transform_leads(df, DEFAULT, first_row=1)
    assert accounted(result, df)
    assert result.valid["lead_id"].tolist() == ["L" * MAX_LEAD_ID_CHARS, "1e+300"]
    assert transform_leads(df.iloc[3:], DEFAULT).valid["lead_id"].tolist() == ["1e+300"]
    assert result.rejects[["lead_id", "reason"]].values.tolist() == [
        ["(lead id too long: row 1 of the window)", LEAD_ID_TOO_LONG],
        ["(lead id too long: row 3 of the window)", LEAD_ID_TOO_LONG],
    ]
    assert all(stands_for_no_lead(reason) for reason in result.rejects["reason"])
    assert not stands_for_no_lead("not_a_phone")


def test_blob_lead_ids_and_text_fields_become_text_and_undecodable_bytes_do_not_crash():
    df = leads(
        {"lead_id": b"L-1", "phone": b"13800138000", "name": b"\xe5\xbc\xa0"},
        {"lead_id": b"\x80\xff", "phone": "13900139000", "name": b"\x80"},
        {"lead_id": b"L\x00", "phone": "13700137000"},
    )
    result = transform_leads(df, DEFAULT)
    assert accounted(result, df)
    assert result.valid["lead_id"].tolist() == ["L-1", "\\x80\\xff"]
    assert [p.get("name") for p in result.payloads] == ["张", "\\x80"]
    assert result.rejects[["lead_id", "reason"]].values.tolist() == [
        ["L\x00", f"{INVALID_FIELD}: lead_id contains a control character"]
    ]


def test_a_control_character_is_found_in_a_lead_id_column_of_mixed_types():
    df = leads(
        {"lead_id": 5001, "phone": "13800138000"},
        {"lead_id": "L\x1b", "phone": "13900139000"},
    )
    result = transform_leads(df, DEFAULT)
    assert result.valid["lead_id"].tolist() == ["5001"]
    assert result.rejects["reason"].tolist() == [
        f"{INVALID_FIELD}: lead_id contains a control character"
    ]


def test_sortable_times_sort_like_the_instants_whatever_the_spelling():
    values = pd.Series(
        [
            "2026-11-24 10:00:00+08:00",  # 02:00 UTC
            "2026-11-24 03:00:00",  # UTC
            "2026-11-24T02:30:00Z",
            "2026-11-24 02:00:00.250000",
            None,
            "not a time",
            pd.Timestamp("2026-11-24 04:00", tz="Asia/Shanghai"),  # 2026-11-23 20:00 UTC
        ],
        dtype=object,
    )
    texts = sortable_times(values)
    assert texts == [
        "2026-11-24T02:00:00.000000",
        "2026-11-24T03:00:00.000000",
        "2026-11-24T02:30:00.000000",
        "2026-11-24T02:00:00.250000",
        "",
        "",
        "2026-11-23T20:00:00.000000",
    ]
    # And the same for a timestamp column read from PostgreSQL, a naive one, and none.
    column = pd.Series(pd.to_datetime(["2026-11-24 10:00:00+00:00"], utc=True))
    assert sortable_times(column) == ["2026-11-24T10:00:00.000000"]
    assert sortable_times(pd.Series([pd.Timestamp("2026-11-24")])) == ["2026-11-24T00:00:00.000000"]
    assert sortable_times(pd.Series([], dtype=object)) == []
