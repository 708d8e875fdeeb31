"""Phone normalisation and the mainland-mobile rule, scalar and vectorised."""

from decimal import Decimal

import numpy as np
import pandas as pd
import pytest

from lead_load.core.phones import (
    MISSING_PHONE,
    NOT_A_PHONE,
    NOT_MOBILE,
    classify_phone,
    normalise_phone,
    normalise_phones,
)

MOBILE = "13800138000"

ACCEPTED = [
    "13800138000",
    " 13800138000 ",
    "138 0013 8000",
    "138-0013-8000",
    "138.0013.8000",
    "(138) 0013-8000",
    "+86 138 0013 8000",
    "+86-138-0013-8000",
    "+86 (138) 0013.8000",
    "0086 138 0013 8000",
    "0086-138-0013-8000",
    "86 138 0013 8000",
    "8613800138000",
    "１３８００１３８０００",  # full-width digits
    "＋８６ １３８ ００１３ ８０００",  # full-width plus and digits
    "138\u30000013\u30008000",  # ideographic spaces
    "138\xa00013\xa08000",  # no-break spaces
    "138–0013—8000",  # en and em dashes
    "（138）0013－8000",  # full-width parentheses and dash
    "\ufeff13800138000\u200b",  # BOM and zero-width space from a copy-paste
    "138\n0013\t8000",
    "13800138000.0",  # a float rendered as text
    13800138000,
    13800138000.0,
    np.int64(13800138000),
    np.float64(13800138000.0),
    Decimal("13800138000"),
    b"13800138000",
]


@pytest.mark.parametrize("raw", ACCEPTED, ids=repr)
def test_accepts_every_spelling_of_a_mobile(raw):
    assert classify_phone(raw) == (MOBILE, None)


@pytest.mark.parametrize("prefix", ["13", "14", "15", "16", "17", "18", "19"])
def test_every_mobile_prefix_is_accepted(prefix):
    assert classify_phone(prefix + "012345678") == (prefix + "012345678", None)


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (None, MISSING_PHONE),
        (float("nan"), MISSING_PHONE),
        (pd.NA, MISSING_PHONE),
        (pd.NaT, MISSING_PHONE),
        (np.nan, MISSING_PHONE),
        (Decimal("NaN"), MISSING_PHONE),
        ("", MISSING_PHONE),
        ("   ", MISSING_PHONE),
        ("\u3000 - ( )", MISSING_PHONE),  # nothing but separators
        ("abc", NOT_A_PHONE),
        ("138-0013-800O", NOT_A_PHONE),  # letter O for zero
        ("1380013800x1", NOT_A_PHONE),
        ("tel:13800138000", NOT_A_PHONE),
        ("13800138000/13900139000", NOT_A_PHONE),
        ("138 0013 8000 ext 12", NOT_A_PHONE),
        ("١٣٨٠٠١٣٨٠٠٠", NOT_A_PHONE),  # Arabic-Indic digits: NFKC keeps them, \d would not
        ("138001380.01", NOT_A_PHONE),  # a decimal number is no phone, even if it looks like one
        ("1.5", NOT_A_PHONE),
        (138001380.01, NOT_A_PHONE),
        (1.5, NOT_A_PHONE),
        (float("inf"), NOT_A_PHONE),
        (1e20, NOT_A_PHONE),  # prints as 1e+20
        ("1" * 18, NOT_A_PHONE),  # longer than any phone number
        ("+" + "1" * 18, NOT_A_PHONE),
        ("1" * 10_000, NOT_A_PHONE),
        (True, NOT_A_PHONE),
        (["13800138000"], NOT_A_PHONE),
        ("++8613800138000", NOT_A_PHONE),
        ("1380013+8000", NOT_A_PHONE),
        ("010-12345678", NOT_MOBILE),  # a Beijing fixed line: not supported
        ("(021) 6123 4567", NOT_MOBILE),
        ("+86 10 1234 5678", NOT_MOBILE),
        ("+1 555 123 4567", NOT_MOBILE),  # foreign
        ("+13800138000", NOT_MOBILE),  # "+1..." is country code 1, not a mainland mobile
        ("12800138000", NOT_MOBILE),  # 11 digits, but 12 is no mobile prefix
        ("1380013800", NOT_MOBILE),  # 10 digits
        ("138001380000", NOT_MOBILE),  # 12 digits
        ("013800138000", NOT_MOBILE),  # a trunk 0 is not stripped
        ("8612800138000", NOT_MOBILE),  # prefix dropped, but 128... is no mobile
        ("0086 12 3456 7890", NOT_MOBILE),
        ("1" * 17, NOT_MOBILE),
        ("+" + "1" * 17, NOT_MOBILE),
        ("0", NOT_MOBILE),
        (0, NOT_MOBILE),
        (-1, NOT_MOBILE),
    ],
    ids=repr,
)
def test_rejects_with_reason(raw, reason):
    assert classify_phone(raw) == (None, reason)


def test_normalise_phone_returns_cleaned_text_or_none():
    assert normalise_phone("+86 138-0013-8000") == MOBILE
    assert normalise_phone("010-1234 5678") == "01012345678"
    assert (
        normalise_phone("８６１２８００１３８０００") == "12800138000"
    )  # prefix before 1xxxxxxxxxx
    assert normalise_phone("  ") is None
    assert normalise_phone(None) is None
    assert normalise_phone(float("nan")) is None


def test_country_prefix_is_only_dropped_before_an_eleven_digit_number_starting_with_1():
    assert normalise_phone("86 10 1234 5678") == "861012345678"
    assert normalise_phone("0086 2 3456 78901") == "00862345678901"
    assert normalise_phone("8613800138000") == MOBILE


def frame(values, dtype=None) -> pd.DataFrame:
    return normalise_phones(pd.Series(values, dtype=dtype))


def test_vectorised_output_shape_dtypes_and_index():
    series = pd.Series(["13800138000", "abc", None], index=[10, 10, "x"])
    out = normalise_phones(series)
    assert list(out.columns) == ["phone", "reject_reason"]
    assert out.index.equals(series.index)
    assert out["phone"].dtype == "string"
    assert out["reject_reason"].dtype == "string"
    assert out["phone"].tolist() == [MOBILE, pd.NA, pd.NA]
    assert out["reject_reason"].tolist() == [pd.NA, NOT_A_PHONE, MISSING_PHONE]


@pytest.mark.parametrize(
    ("values", "dtype"),
    [
        ([13800138000, 10, 0], "int64"),
        ([13800138000, None, 10], "Int64"),
        ([13800138000, 10, 2], "uint64"),
        ([13800138000.0, float("nan"), 1.5, float("inf"), 1e20, -13800138000.0], "float64"),
        ([13800138000.0, None], "Float64"),
        (["13800138000", None, "１３８００１３８０００", "x"], "string"),
        (["13800138000", None, "abc"], "str"),
        (["13800138000", "13800138000", None], "category"),
        ([True, False], "bool"),
        ([13800138000, "138 0013 8000", None, 1.5, 13800138000.0, b"1", pd.NA, [1]], object),
        (pd.to_datetime(["2024-01-01", None]), None),
        ([], object),
        ([], "float64"),
    ],
    ids=repr,
)
def test_vectorised_agrees_with_scalar_for_every_dtype(values, dtype):
    series = pd.Series(values, dtype=dtype)
    out = normalise_phones(series)
    expected = [classify_phone(value) for value in series.astype(object)]
    got = [
        (None if pd.isna(phone) else phone, None if pd.isna(reason) else reason)
        for phone, reason in zip(out["phone"], out["reject_reason"], strict=True)
    ]
    assert got == expected


def test_vectorised_agrees_on_the_accept_and_reject_lists():
    values = [*ACCEPTED, "abc", None, "010-12345678", "1" * 10_000, "138001380.01", " 1.0 \n"]
    out = frame(values, dtype=object)
    expected = [classify_phone(value) for value in values]
    assert out["phone"].fillna("").tolist() == [phone or "" for phone, _ in expected]
    assert out["reject_reason"].fillna("").tolist() == [reason or "" for _, reason in expected]


def test_newlines_inside_values_do_not_shift_rows():
    out = frame(["138\n0013\n8000", "x\ny", "139 0013 9000", "\n"])
    assert out["phone"].tolist() == [MOBILE, pd.NA, "13900139000", pd.NA]
    assert out["reject_reason"].tolist() == [pd.NA, NOT_A_PHONE, pd.NA, MISSING_PHONE]


def test_decimal_rule_in_bulk_keeps_rows_apart():
    values = ["13800138000.0", "138001380.01", " 13900139000.00 ", "1.0.0", "13600136000"]
    out = frame(values)
    assert out["phone"].tolist() == [MOBILE, pd.NA, "13900139000", pd.NA, "13600136000"]
    assert out["reject_reason"].tolist() == [pd.NA, NOT_A_PHONE, pd.NA, NOT_MOBILE, pd.NA]


def test_a_column_that_stays_non_ascii_after_nfkc_is_handled_row_by_row():
    out = frame(["电话 13800138000", "１３８００１３８０００", "13900139000", "☎"])
    assert out["phone"].tolist() == [pd.NA, MOBILE, "13900139000", pd.NA]
    assert out["reject_reason"].tolist() == [NOT_A_PHONE, pd.NA, pd.NA, NOT_A_PHONE]
