"""Property tests: no input crashes the phone rules or the transform, none is wrongly accepted,
the scalar and vectorised phone APIs agree, and the transform accounts for every row."""

import json
import re
import unicodedata
from decimal import Decimal

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lead_load.core.mapping import API_FIELDS, RESERVED_COLUMNS, FieldMapping, MappingError
from lead_load.core.phones import PHONE_REASONS, classify_phone, normalise_phone, normalise_phones
from lead_load.core.reject_reasons import INVALID_KINDS
from lead_load.core.transform import dedupe_latest, normalise_and_validate, transform_leads

FAST = settings(
    max_examples=200,
    deadline=None,
    database=None,  # no .hypothesis folder in the repo; a failure prints its example
    suppress_health_check=[HealthCheck.too_slow],
)
MOBILE = re.compile(r"1[3-9][0-9]{9}")

mobiles = st.from_regex(r"1[3-9][0-9]{9}", fullmatch=True)
huge_text = st.builds(
    lambda piece, times: piece * times,
    st.text(min_size=1, max_size=4),
    st.integers(min_value=1_000, max_value=50_000),
)
# Exactly 100,000 characters: digits, separators, full-width digits, a mobile buried in them.
HUGE_100K = 100_000
huge_exact = st.one_of(
    st.sampled_from(["1", " ", "-", "\u3000", "１", "13800138000 ", "+86 "]).map(
        lambda piece: (piece * (HUGE_100K // len(piece) + 1))[:HUGE_100K]
    ),
    mobiles.map(lambda m: " " * 50_000 + m + "-" * (HUGE_100K - 50_000 - len(m))),
    mobiles.map(lambda m: (m * (HUGE_100K // len(m) + 1))[:HUGE_100K]),
)
# Numbers as a spreadsheet or a float column writes them: 1.3800138E+10, 1.38e10, ...
scientific = st.one_of(
    st.floats(min_value=1e9, max_value=1e12).map(lambda x: f"{x:e}"),
    st.floats(min_value=1e9, max_value=1e12).map(lambda x: f"{x:E}"),
    mobiles.map(lambda m: f"{m[0]}.{m[1:]}e10"),
    mobiles.map(lambda m: f"{m[0]}.{m[1:].rstrip('0') or '0'}E+10"),
    mobiles.map(lambda m: float(f"{m[0]}.{m[1:]}e10")),
)
# Digits of other scripts: NFKC makes some ASCII (full-width, mathematical), not others.
OTHER_DIGITS = ["０", "٠", "۰", "०", "০", "๐", "𝟎", "𝟘", "⓪"]
other_script_mobiles = st.tuples(mobiles, st.sampled_from(OTHER_DIGITS)).map(
    lambda case: "".join(chr(ord(case[1]) + int(d)) for d in case[0])
)
any_value = st.one_of(
    st.none(),
    st.just(float("nan")),
    st.just(pd.NA),
    st.just(np.nan),
    st.text(),
    st.text(st.characters(exclude_categories=())),  # any code point, lone surrogates too
    scientific,
    other_script_mobiles,
    st.integers(min_value=10**10, max_value=2 * 10**10).map(np.int64),
    st.floats(min_value=1e10, max_value=2e10).map(np.float64),
    st.text(alphabet="0123456789+-.() ０１２３４５６７８９\u3000"),
    huge_text,
    st.integers(),
    st.integers(min_value=10**10, max_value=2 * 10**10),
    st.floats(allow_nan=True, allow_infinity=True),
    st.floats(min_value=1e10, max_value=2e10),
    st.booleans(),
    st.decimals(allow_nan=True, allow_infinity=True),
    st.binary(max_size=20),
)

FULL_WIDTH = str.maketrans("0123456789+-()", "０１２３４５６７８９＋－（）")


@st.composite
def spelled_mobiles(draw) -> tuple[str, str]:
    """(a mobile, one of its many real-world spellings)."""
    mobile = draw(mobiles)
    groups = [mobile[:3], mobile[3:7], mobile[7:]]
    if draw(st.booleans()):
        groups[0] = f"({groups[0]})"
    first = draw(st.sampled_from([" ", "-", ".", "", "\u3000", "\xa0", "–", "\t", " - "]))
    # Not one lone dot: "138.00138000" reads as a decimal number, which is no phone.
    second = draw(st.sampled_from([first, " ", "-"]))
    spelled = groups[0] + first + groups[1] + second + groups[2]
    prefix = draw(st.sampled_from(["", "+86", "0086", "86", "(+86)", "+86-"]))
    if prefix:
        spelled = prefix + draw(st.sampled_from(["", " ", "-"])) + spelled
    if draw(st.booleans()):
        spelled = spelled.translate(FULL_WIDTH)
    padding = st.sampled_from(["", " ", "\n", "\ufeff", "\u200b"])
    return mobile, draw(padding) + spelled + draw(padding)


def digits_of(value) -> str:
    text = value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
    return "".join(c for c in unicodedata.normalize("NFKC", text) if c in "0123456789")


def as_pairs(out: pd.DataFrame) -> list[tuple]:
    return [
        (None if pd.isna(phone) else phone, None if pd.isna(reason) else reason)
        for phone, reason in zip(out["phone"], out["reject_reason"], strict=True)
    ]


@FAST
@given(spelled_mobiles())
def test_every_spelling_of_a_mobile_is_accepted_as_that_mobile(case):
    mobile, spelled = case
    assert classify_phone(spelled) == (mobile, None)
    assert as_pairs(normalise_phones(pd.Series([spelled]))) == [(mobile, None)]


@FAST
@given(mobiles)
def test_numbers_from_numeric_columns_are_accepted(mobile):
    assert classify_phone(int(mobile)) == (mobile, None)
    assert classify_phone(float(mobile)) == (mobile, None)
    assert classify_phone(f"{mobile}.0") == (mobile, None)
    assert classify_phone(Decimal(mobile)) == (mobile, None)


def check_classification(value) -> None:
    """Never a crash, never a wrong accept: an accepted phone is a mobile made of the input's
    own digits."""
    phone, reason = classify_phone(value)
    assert (phone is None) != (reason is None)
    if phone is None:
        assert reason in PHONE_REASONS
    else:
        assert MOBILE.fullmatch(phone)
        assert phone in digits_of(value)
    cleaned = normalise_phone(value)
    assert cleaned is None or isinstance(cleaned, str)


@settings(FAST, max_examples=25)
@given(huge_exact)
def test_huge_values_never_crash_and_agree_scalar_and_vectorised(value):
    check_classification(value)
    expected = classify_phone(value)
    for dtype in (object, "string"):
        series = pd.Series([value, "13800138000", None], dtype=dtype)
        pairs = as_pairs(normalise_phones(series))
        assert pairs == [expected, ("13800138000", None), (None, "missing_phone")]


@FAST
@given(any_value)
def test_never_a_crash_never_a_wrong_accept(value):
    check_classification(value)


@FAST
@given(st.lists(st.one_of(any_value, spelled_mobiles().map(lambda case: case[1])), max_size=30))
def test_vectorised_agrees_with_scalar_on_mixed_objects(values):
    series = pd.Series(values, dtype=object)
    assert as_pairs(normalise_phones(series)) == [classify_phone(v) for v in values]


@FAST
@given(
    st.lists(
        st.one_of(
            st.none(),
            st.text(),
            st.text(alphabet="0123456789+-. \n\t"),
            spelled_mobiles().map(lambda case: case[1]),
        ),
        max_size=30,
    )
)
def test_vectorised_agrees_with_scalar_on_text_columns(values):
    for dtype in ("str", "string", object):
        series = pd.Series(values, dtype=dtype)
        assert as_pairs(normalise_phones(series)) == [classify_phone(v) for v in series]


@FAST
@given(
    st.lists(st.floats(allow_nan=True, allow_infinity=True), max_size=20),
    st.lists(st.integers(min_value=-(2**63), max_value=2**63 - 1), max_size=20),
)
def test_vectorised_agrees_with_scalar_on_numeric_columns(floats, ints):
    float_series = pd.Series(floats, dtype="float64")
    assert as_pairs(normalise_phones(float_series)) == [classify_phone(v) for v in floats]
    int_series = pd.Series(ints, dtype="int64")
    assert as_pairs(normalise_phones(int_series)) == [classify_phone(v) for v in ints]


# --- the transform's accounting ------------------------------------------------------------------

PHONE_POOL = ["13800138000", "13900139000", "15000150000"]
TIMES = [pd.Timestamp("2024-01-01"), pd.Timestamp("2024-02-01"), None]
MAPPING = FieldMapping.from_dict(
    {
        "fields": {"phone": "phone", "name": "name", "sex": "sex", "grade_id": "grade_id"},
        "components": {"91a4ff5d": "nick", "c87d8629": "score"},
        "sex_values": {"男": 1, "f": 2},
    }
)
TEMPLATE = [
    {"id": "91a4ff5d", "name": "姓名", "type": "text", "validate": ["required"]},
    {"id": "c87d8629", "name": "数字", "type": "number", "validate": ["integer"]},
]


@st.composite
def extracts(draw) -> pd.DataFrame:
    count = draw(st.integers(min_value=0, max_value=25))
    text_ids = draw(st.booleans())
    ids = st.one_of(
        st.none(),
        st.text(max_size=3) if text_ids else st.integers(min_value=0, max_value=8),
    )
    pool_phone = st.sampled_from(PHONE_POOL).flatmap(
        lambda p: st.sampled_from([p, f"+86 {p}", f"{p[:3]}-{p[3:7]}-{p[7:]}", float(p)])
    )
    rows = [
        {
            "lead_id": draw(ids),
            "phone": draw(st.one_of(pool_phone, any_value)),
            "name": draw(st.one_of(st.none(), st.text(max_size=5), st.integers())),
            "sex": draw(st.sampled_from(["男", "F", "", None, "x", 1.0])),
            "grade_id": draw(st.sampled_from([None, 1, 2.0, "3", "abc", 1.5, float("nan")])),
            "nick": draw(st.sampled_from([None, "牛", " ", 3])),
            "score": draw(st.sampled_from([None, 1, 2.5, "7", np.int64(4), float("nan")])),
            "updated_at": draw(st.sampled_from(TIMES)),
        }
        for _ in range(count)
    ]
    columns = ["lead_id", "phone", "name", "sex", "grade_id", "nick", "score", "updated_at"]
    return pd.DataFrame(rows, columns=columns)


@FAST
@given(extracts(), st.booleans())
def test_transform_accounts_for_every_row(df, with_template):
    result = transform_leads(df, MAPPING, TEMPLATE if with_template else None)

    assert len(result.valid) + len(result.rejects) + len(result.duplicates) == len(df)
    assert len(result.payloads) == len(result.valid)
    phones = result.valid["phone"].tolist()
    assert len(set(phones)) == len(phones)  # one lead per phone
    assert all(MOBILE.fullmatch(phone) for phone in phones)
    assert set(result.duplicates["phone"]) <= set(phones)
    assert set(result.duplicates["kept_lead_id"].map(str)) <= set(result.valid["lead_id"].map(str))
    for reason in result.rejects["reason"]:
        assert reason.split(":")[0] in INVALID_KINDS  # the kinds the transform writes
    for payload, phone in zip(result.payloads, phones, strict=True):
        json.dumps(payload, allow_nan=False)
        assert payload["phone"] == phone
        assert payload["sort"] == 0
        assert isinstance(payload["extra"], str) and payload["extra"].strip()
        assert payload.get("sex", 0) in (0, 1, 2)
        assert type(payload.get("grade_id", 0)) is int


@FAST
@given(
    st.lists(st.tuples(st.sampled_from([*PHONE_POOL, "bad"]), st.sampled_from(TIMES)), max_size=30),
    st.randoms(use_true_random=False),
    st.booleans(),
)
def test_dedupe_keeps_the_latest_then_highest_lead(rows, random, text_ids):
    ids = list(range(len(rows)))
    random.shuffle(ids)
    lead_ids = [f"id-{i:03d}" for i in ids] if text_ids else ids
    df = pd.DataFrame(
        {
            "lead_id": lead_ids,
            "phone": [phone for phone, _ in rows],
            "updated_at": [at for _, at in rows],
        }
    )
    mapping = FieldMapping.from_dict({"fields": {"phone": "phone"}})
    kept, duplicates = dedupe_latest(normalise_and_validate(df, mapping))

    oldest = pd.Timestamp.min
    expected = {}  # phone -> (updated_at, lead_id) of the lead to keep
    for lead, (phone, at) in zip(lead_ids, rows, strict=True):
        if phone != "bad":
            candidate = (oldest if at is None else at, lead)
            expected[phone] = max(expected.get(phone, candidate), candidate)
    assert dict(zip(kept["phone_norm"], kept["lead_id"], strict=True)) == {
        phone: lead for phone, (_, lead) in expected.items()
    }
    assert kept["lead_id"].tolist() == [lead for lead in lead_ids if lead in set(kept["lead_id"])]
    assert len(kept) + len(duplicates) == sum(phone != "bad" for phone, _ in rows)
    for _, row in duplicates.iterrows():
        assert row["kept_lead_id"] == expected[row["phone_norm"]][1]


# --- the field mapping -------------------------------------------------------------------------

yaml_like = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(),
        st.floats(),
        st.text(max_size=8),
        st.sampled_from([*API_FIELDS, "lead_id", "updated_at", "fields", "components", ""]),
    ),
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(
            st.one_of(
                st.sampled_from([*API_FIELDS, "fields", "lead_id", "components", "sex_values"]),
                st.text(max_size=6),
                st.integers(),
                st.booleans(),
                st.none(),
            ),
            children,
            max_size=5,
        ),
    ),
    max_leaves=20,
)


@FAST
@given(
    st.one_of(
        yaml_like,
        st.fixed_dictionaries(
            {"fields": st.one_of(yaml_like, st.just({"phone": "phone"}))},
            optional={
                "lead_id": yaml_like,
                "updated_at": yaml_like,
                "components": yaml_like,
                "sex_values": yaml_like,
            },
        ),
    )
)
def test_any_mapping_data_loads_or_fails_with_a_mapping_error(data):
    try:
        mapping = FieldMapping.from_dict(data)
    except MappingError as error:
        assert str(error)
        return
    # Whatever was accepted is usable: every column a non-empty name, phone always mapped.
    assert "phone" in mapping.fields
    assert all(isinstance(c, str) and c.strip() for c in mapping.source_columns)
    assert set(mapping.sex_values.values()) <= {0, 1, 2}


@FAST
@given(st.text(max_size=200))
def test_any_yaml_file_loads_or_fails_with_a_mapping_error(tmp_path_factory, content):
    path = tmp_path_factory.mktemp("mapping") / "field_mapping.yaml"
    path.write_text(content, encoding="utf-8", errors="surrogatepass")
    try:
        FieldMapping.load(path)
    except MappingError as error:
        assert str(path) in str(error)


# Column names a warehouse may have: any text, including the transform's own working names.
column_names = st.one_of(
    st.text(min_size=1, max_size=12).filter(lambda name: name.strip()),
    st.sampled_from(["phone_norm", "reject_reason", "lead_id", "phone", "手机号", "Phone Number"]),
)
SOURCE_COLUMNS = ["lead_id", "phone", "name", "sex", "grade_id", "nick", "score", "updated_at"]


@FAST
@given(
    extracts(),
    st.lists(column_names, min_size=len(SOURCE_COLUMNS), max_size=len(SOURCE_COLUMNS), unique=True),
    st.booleans(),
)
@pytest.mark.filterwarnings("ignore::UserWarning")
def test_the_transform_depends_on_the_mapping_not_on_the_column_names(df, names, with_template):
    """The same extract under other column names, mapped accordingly, gives the same result."""
    rename = dict(zip(SOURCE_COLUMNS, names, strict=True))
    data = {
        "fields": {
            "phone": rename["phone"],
            "name": rename["name"],
            "sex": rename["sex"],
            "grade_id": rename["grade_id"],
        },
        "lead_id": rename["lead_id"],
        "updated_at": rename["updated_at"],
        "components": {"91a4ff5d": rename["nick"], "c87d8629": rename["score"]},
        "sex_values": {"男": 1, "f": 2},
    }
    if set(names) & set(RESERVED_COLUMNS):  # would be overwritten by the transform: refused
        with pytest.raises(MappingError, match="uses for its own work"):
            FieldMapping.from_dict(data)
        return
    mapping = FieldMapping.from_dict(data)
    template = TEMPLATE if with_template else None
    expected = transform_leads(df, MAPPING, template)
    result = transform_leads(df.rename(columns=rename), mapping, template)

    assert result.payloads == expected.payloads
    for part in ("valid", "rejects", "duplicates"):
        got, want = getattr(result, part), getattr(expected, part)
        assert list(got.columns) == list(want.columns)
        assert got.astype(object).where(got.notna(), None).values.tolist() == (
            want.astype(object).where(want.notna(), None).values.tolist()
        ), part
