"""Lead ids as the ledger keys them, and the keys of rows that cannot be keyed by theirs."""

import numpy as np
import pandas as pd

from lead_load.core.lead_ids import (
    DUPLICATE_LEAD_ID,
    LEAD_ID_TOO_LONG,
    MAX_LEAD_ID_CHARS,
    MISSING_LEAD_ID,
    lead_id_texts,
    reject_keys,
    repeat_key,
    stands_for_no_lead,
)


def test_repeat_keys_fit_the_ledger_whatever_the_lead_id():
    key = repeat_key("x" * 500 + "\x00", 123456789)
    assert len(key) <= MAX_LEAD_ID_CHARS and "\x00" not in key
    assert key.startswith("(repeat of lead xxx") and key.endswith("…: row 123456789 of the window)")
    assert repeat_key("a\x00b", 3) == "(repeat of lead a\\x00b: row 3 of the window)"


def test_the_lead_id_limit_is_the_ledger_key_columns_length():
    from lead_load.ledger import schema

    for table in (schema.ledger, schema.candidates, schema.rejects):
        assert table.c.lead_id.type.length == MAX_LEAD_ID_CHARS, table.name


def test_lead_id_texts_are_one_spelling_per_lead():
    # A NULL made the integer column float: 5001.0 is still lead 5001.
    assert lead_id_texts(pd.Series([5001, None, 7])) == ["5001", None, "7"]
    assert lead_id_texts(pd.Series([b"L-1", 1e300, "x"], dtype=object)) == ["L-1", "1e+300", "x"]


def test_rows_that_cannot_be_keyed_by_their_lead_id_get_keys_of_their_own():
    reasons = pd.Series(
        [MISSING_LEAD_ID, DUPLICATE_LEAD_ID, LEAD_ID_TOO_LONG, "not_mobile", pd.NA],
        dtype="string",
        index=[40, 41, 42, 43, 44],  # a slice of a larger frame: the index must not matter
    )
    lead_ids = pd.Series([None, "b", "L" * 200, 7.0, "c"], index=reasons.index)
    keys = reject_keys(lead_ids, reasons, np.array([1, 2, 3, 4, 5]))
    assert keys.tolist() == [
        "(no lead id: row 1 of the window)",
        "(repeat of lead b: row 2 of the window)",
        "(lead id too long: row 3 of the window)",
        "7",
        "c",
    ]
    assert [stands_for_no_lead(str(r)) for r in reasons.fillna("")] == [
        True,
        True,
        True,
        False,
        False,
    ]
