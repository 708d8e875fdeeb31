"""The platform's import rows: every mapped field sent as the API wants it, or the reason the
row cannot be sent."""

import json
from datetime import date, datetime
from decimal import Decimal

import numpy as np
import pandas as pd
import pytest

from lead_load.core.mapping import FieldMapping
from lead_load.core.payloads import INVALID_FIELD, payloads_with_reasons
from lead_load.core.transform import normalise_and_validate
from tests.include.lead_load.core.transform_samples import DEFAULT, validated


class PayloadError(ValueError):
    """A row cannot become an API row; the message says which lead and why."""


def build_payloads(df: pd.DataFrame, mapping: FieldMapping) -> list[dict]:
    """The API rows of ``df`` (kept rows with ``phone_norm``), in ``df`` order, or a
    ``PayloadError`` for the first row that cannot be sent."""
    payloads, reasons = payloads_with_reasons(df, mapping)
    for lead, reason in zip(df[mapping.lead_id], reasons, strict=True):
        if reason is not None:
            raise PayloadError(f"lead {lead!r}: {reason}")
    return payloads


def test_build_payloads_sends_every_mapped_field_the_way_the_api_wants_it():
    df = validated(
        {
            "lead_id": 7,
            "phone": "+86 138 0013 8000",
            "name": "  张三 ",
            "email": "a@b.cn",
            "company": "",
            "sex": " Female ",
            "source_id": 1,
            "industry_id": 2.0,
            "grade_id": " 3 ",
        },
        {"lead_id": 8, "phone": "13900139000", "sex": "unknown"},
        {"lead_id": 9, "phone": "13700137000", "sex": 1.0},
    )
    payloads = build_payloads(df, DEFAULT)
    assert payloads == [
        {
            "phone": "13800138000",
            "sort": 0,
            "extra": "7",
            "name": "张三",
            "email": "a@b.cn",
            "sex": 2,
            "source_id": 1,
            "industry_id": 2,
            "grade_id": 3,
        },
        {"phone": "13900139000", "sort": 0, "extra": "8", "sex": 0},
        {"phone": "13700137000", "sort": 0, "extra": "9", "sex": 1},
    ]
    json.dumps(payloads, allow_nan=False)


def test_extra_is_the_lead_id_as_text_even_when_nulls_made_the_column_float():
    df = validated({"lead_id": 42, "phone": "13800138000"}, {"lead_id": None, "phone": "x"})
    assert df["lead_id"].dtype == "float64"
    assert build_payloads(df.iloc[:1], DEFAULT)[0]["extra"] == "42"


@pytest.mark.parametrize("bad", ["abc", 1.5, True, float("inf"), "1.0", [1]], ids=repr)
def test_a_non_integer_id_field_makes_the_row_unsendable(bad):
    df = validated({"lead_id": 1, "phone": "13800138000", "grade_id": bad})
    with pytest.raises(PayloadError, match=f"lead 1: {INVALID_FIELD}: grade_id must be an"):
        build_payloads(df, DEFAULT)


def test_components_are_json_ready():
    mapping = FieldMapping.from_dict(
        {
            "fields": {"phone": "phone"},
            "components": {"t": "text", "n": "number", "d": "day", "s": "stamp", "f": "ratio"},
        }
    )
    df = pd.DataFrame(
        {
            "lead_id": ["a", "b", "c"],
            "phone": ["13800138000", "13900139000", "13700137000"],
            "updated_at": pd.Timestamp("2024-01-01"),
            "text": ["小牛", None, ""],
            "number": [np.int64(5), np.nan, 7.0],
            "day": [date(2024, 5, 6), None, datetime(2024, 5, 7, 23, 59)],
            "stamp": pd.to_datetime(["2024-05-06 12:00", None, "2024-05-08 00:00"]),
            "ratio": [Decimal("1.5"), np.float32(0.5), None],
        }
    )
    payloads = build_payloads(normalise_and_validate(df, mapping), mapping)
    assert [p["components"] for p in payloads] == [
        [
            {"id": "t", "value": "小牛"},
            {"id": "n", "value": 5},
            {"id": "d", "value": "2024-05-06"},
            {"id": "s", "value": "2024-05-06"},
            {"id": "f", "value": 1.5},
        ],
        [{"id": "f", "value": 0.5}],
        [
            {"id": "t", "value": ""},  # present, if blank: the template decides
            {"id": "n", "value": 7},  # a whole float becomes an int
            {"id": "d", "value": "2024-05-07"},
            {"id": "s", "value": "2024-05-08"},
        ],
    ]
    assert all(type(c["value"]) in (str, int, float) for p in payloads for c in p["components"])
    json.dumps(payloads, allow_nan=False)


@pytest.mark.parametrize("bad", [float("inf"), True, {"a": 1}, b"x"], ids=repr)
def test_a_component_value_that_json_cannot_carry_makes_the_row_unsendable(bad):
    mapping = FieldMapping.from_dict({"fields": {"phone": "phone"}, "components": {"c": "x"}})
    df = pd.DataFrame(
        {"lead_id": [1], "phone": ["13800138000"], "updated_at": [None], "x": [bad]},
        dtype=object,
    )
    with pytest.raises(PayloadError, match=f"{INVALID_FIELD}: component c cannot send"):
        build_payloads(normalise_and_validate(df, mapping), mapping)
