"""Lead ids as the ledger keys them, and the rows that cannot be keyed by theirs.

A lead id is the ledger's key, so its text must be one spelling per lead (5001, never
5001.0), fit the key column, and hold no control character. A row that cannot be recorded
under its lead id (none, a repeat of another row's, one too long for the key) is rejected
under a key of its own, unique in the run: ``reject_keys``.

The text rules here are also how the API's text fields are spelt (``lead_load.core.payloads``),
so that ``extra`` is the very key the ledger holds.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from lead_load.core.reject_reasons import RejectKind

MISSING_LEAD_ID = RejectKind.MISSING_LEAD_ID.value
DUPLICATE_LEAD_ID = RejectKind.DUPLICATE_LEAD_ID.value
# The ledger keys rows by lead id in a column of this many characters (lead_load.ledger.schema;
# a test keeps the two equal). A longer id would fail the insert on PostgreSQL and MySQL.
MAX_LEAD_ID_CHARS = 128
LEAD_ID_TOO_LONG = (
    f"{RejectKind.INVALID_FIELD.value}: lead_id is longer than {MAX_LEAD_ID_CHARS} characters"
)
LEAD_ID_CONTROL = f"{RejectKind.INVALID_FIELD.value}: lead_id contains a control character"
# C0 control characters and DEL, but tab, line feed and carriage return: NUL bytes and their
# like are no part of a name, a company or an address, and PostgreSQL cannot even store NUL.
CONTROL_CHARACTERS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


# --- a warehouse value as text -----------------------------------------------------------------


def int_if_whole(value):
    """Whole floats as ints (within int64, as ``as_text`` does for a float column: 1e300
    stays 1e+300); bytes (a BLOB) as UTF-8 text, undecodable bytes as \\xNN."""
    if isinstance(value, float | np.floating) and value.is_integer() and abs(value) < 2**63:
        return int(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).decode("utf-8", "backslashreplace")
    return value


def as_text(values: pd.Series) -> pd.Series:
    """Text of each value; whole floats lose their ".0" (NULLs turn int columns into floats)."""
    if values.dtype == object and pd.api.types.infer_dtype(values, skipna=True) not in (
        "string",
        "empty",
    ):
        values = values.map(int_if_whole, na_action="ignore")
    if not pd.api.types.is_float_dtype(values.dtype):
        return values.astype("string")
    text = values.astype("string")
    whole = ((values % 1 == 0) & (values.abs() < 2**63)).to_numpy(dtype=bool, na_value=False)
    text[whole] = values[whole].astype("int64").astype("string")
    return text


def is_blank_text(value) -> bool:
    if isinstance(value, bytes):  # a BLOB, read as its text (see int_if_whole)
        value = int_if_whole(value)
    return isinstance(value, str) and (not value or value.isspace())


# --- lead ids ----------------------------------------------------------------------------------


def lead_id_array(values) -> pd.api.extensions.ExtensionArray:
    """Lead ids as the ledger stores them and ``extra`` sends them: 5001, not 5001.0, when
    a NULL made an integer column float."""
    return as_text(pd.Series(values).reset_index(drop=True)).array


def lead_id_texts(values: pd.Series) -> list[str | None]:
    """Lead ids as the ledger keys them (see ``lead_id_array``), None where missing."""
    return lead_id_array(values).to_numpy(dtype=object, na_value=None).tolist()


def is_missing(values: pd.Series) -> np.ndarray:
    """True per row whose lead id is null or blank."""
    missing = values.isna().to_numpy()
    if values.dtype == object or isinstance(values.dtype, pd.StringDtype):
        blank = np.fromiter(map(is_blank_text, values.to_numpy(dtype=object)), bool, len(values))
        missing = missing | blank
    return missing


def unusable_lead_ids(
    lead_ids: pd.Series, present: np.ndarray, all_text: bool
) -> tuple[np.ndarray, np.ndarray] | None:
    """(has a control character, too long for the ledger's key) per row, or None when no
    lead id is either. ``present``: the ids that are not missing; ``all_text``: whether they
    are all text. The usual case costs one regex search and one max() over the ids."""
    if all_text:
        if not len(present) or (
            not CONTROL_CHARACTERS.search("".join(present))
            and max(map(len, present)) <= MAX_LEAD_ID_CHARS
        ):
            return None
        texts = lead_ids.astype("string")
    elif lead_ids.dtype == object or isinstance(lead_ids.dtype, pd.StringDtype):
        texts = pd.Series(lead_id_array(lead_ids), index=lead_ids.index)
    else:  # numbers: 20 characters at most, 1e+300 included
        return None
    control = texts.str.contains(CONTROL_CHARACTERS, na=False).to_numpy(dtype=bool)
    # As stored: the ledger keeps a NUL byte as the four characters \x00 (PostgreSQL has none).
    stored = texts.str.len() + 3 * texts.str.count("\x00")
    too_long = (stored > MAX_LEAD_ID_CHARS).to_numpy(dtype=bool, na_value=False)
    return control, too_long


# --- rejects that are no lead of their own -----------------------------------------------------


def repeat_key(lead: str, row: int) -> str:
    """The reject key of a row that repeats ``lead`` (row ``row`` of the window): unique in
    the run, and short enough for the ledger's key column whatever the lead id."""
    shown = str(lead).replace("\x00", "\\x00")  # stored so anyway (PostgreSQL has no NUL)
    if len(shown) > 64:
        shown = shown[:63] + "…"
    return f"(repeat of lead {shown}: row {row} of the window)"


def reject_keys(lead_ids: pd.Series, reasons: pd.Series, rows: np.ndarray):
    """The key of each rejected row: its lead id, as ``lead_id_array`` spells it, unless the
    row cannot be recorded under it. Such a row gets a key of its own, unique in the run, so
    that every one is recorded: no lead id, a repeat of a lead (its latest row may be rejected
    under the lead id), a lead id longer than the key column. ``rows``: each row's number in
    the window."""
    keys = pd.Series(lead_id_array(lead_ids), dtype="string")
    for reason, key in (
        (MISSING_LEAD_ID, lambda _lead, row: f"(no lead id: row {row} of the window)"),
        (DUPLICATE_LEAD_ID, repeat_key),
        (LEAD_ID_TOO_LONG, lambda _lead, row: f"(lead id too long: row {row} of the window)"),
    ):
        these = (reasons == reason).to_numpy(dtype=bool, na_value=False)
        if these.any():
            keys[these] = [
                key(lead, row) for lead, row in zip(keys[these], rows[these], strict=True)
            ]
    return keys.array


def stands_for_no_lead(reason: str) -> bool:
    """A reject that is no lead of its own, so not a row of the ledger: no lead id, a repeat
    of one, or one the ledger cannot key."""
    return reason.startswith((MISSING_LEAD_ID, DUPLICATE_LEAD_ID, LEAD_ID_TOO_LONG))
