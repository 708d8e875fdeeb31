"""The platform's import rows (``payloads``) built from checked warehouse rows, each field
checked as the API asks (docs/agent-api.md section 1).

``payloads_with_reasons`` gives, per row, its API row or the reason it cannot be sent: an
``invalid_field`` reason (a mapped value the API cannot take: not an integer, beyond the
signed 64-bit range, a control character in a text field, a ``sex`` value ``sex_values`` does
not list) or a component value JSON cannot carry. ``lead_load.core.transform`` rejects such
rows before de-duplication.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from datetime import date, datetime
from decimal import Decimal

import numpy as np
import pandas as pd

from lead_load.core.lead_ids import CONTROL_CHARACTERS, as_text, is_blank_text, lead_id_texts
from lead_load.core.mapping import INT_FIELDS, TEXT_FIELDS, FieldMapping
from lead_load.core.reject_reasons import RejectKind

INVALID_FIELD = RejectKind.INVALID_FIELD.value
# The API's integer fields: a signed 64-bit integer at most (what a JSON number the platform
# parses as a long can hold); larger values are rejected rather than sent as they are.
_API_INT_RANGE = (-(2**63), 2**63 - 1)
_INTEGER_FIELD_TEXT = re.compile(r"\s*[-+]?[0-9]+\s*")


# --- one value -------------------------------------------------------------------------------


def is_null(value) -> bool:
    """None, NA, NaT, NaN (float or Decimal): no value."""
    if value is None or value is pd.NA or value is pd.NaT:
        return True
    if isinstance(value, float | np.floating):
        return math.isnan(value)
    if isinstance(value, np.datetime64):
        return bool(np.isnat(value))
    return isinstance(value, Decimal) and value.is_nan()


def _any_integer(value) -> int | None:
    if is_null(value) or is_blank_text(value):
        return None
    if isinstance(value, bool | np.bool_):
        raise ValueError(value)
    if isinstance(value, int | np.integer):
        return int(value)
    is_real = isinstance(value, float | np.floating | Decimal)
    if is_real and math.isfinite(value) and value == int(value):
        return int(value)
    if isinstance(value, str) and _INTEGER_FIELD_TEXT.fullmatch(value):
        return int(value)
    raise ValueError(value)


def _integer(value) -> int | None:
    number = _any_integer(value)
    if number is not None and not _API_INT_RANGE[0] <= number <= _API_INT_RANGE[1]:
        raise OverflowError(value)
    return number


def _json_value(value):
    """A value that json.dumps writes as the platform expects (str, int or finite float)."""
    if is_null(value):
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, bool | np.bool_):
        raise ValueError(value)  # JSON true/false: the platform takes strings and numbers only
    if isinstance(value, int | np.integer):
        return int(value)
    if isinstance(value, float | np.floating | Decimal):
        if not math.isfinite(value):
            raise ValueError(value)
        # Whole numbers as ints: NULLs make int columns float, and the "integer" rule wants 3.
        return int(value) if value == int(value) else float(value)
    if isinstance(value, np.datetime64):
        value = pd.Timestamp(value)
    if isinstance(value, datetime | date):
        return value.strftime("%Y-%m-%d")
    raise ValueError(value)


# --- one column ------------------------------------------------------------------------------


def _checked_texts(values: pd.Series, name: str) -> tuple[np.ndarray, np.ndarray]:
    """(stripped text or None per row, problem or None per row) for a text API field."""
    texts = _texts(values)
    problems = np.full(len(texts), None, dtype=object)
    for i, text in enumerate(texts.tolist()):
        if text is not None and (found := CONTROL_CHARACTERS.search(text)):
            problems[i] = (
                f"{INVALID_FIELD}: {name} contains a control character (U+{ord(found.group()):04X})"
            )
    return texts, problems


def _texts(values: pd.Series) -> np.ndarray:
    """Stripped text, None when null or blank."""
    text = as_text(values).str.strip()
    return text.mask(text == "").to_numpy(dtype=object, na_value=None)


def _sex_codes(values: pd.Series, sex_values: Mapping[str, int]) -> tuple[np.ndarray, np.ndarray]:
    """(0/1/2 per row, problem or None per row): empty is 0 (unknown); a value that
    ``sex_values`` does not list is a problem, not a silent 0."""
    text = as_text(values).str.strip()
    codes = text.str.lower().map(sex_values)
    unmapped = (codes.isna() & text.notna() & (text != "")).to_numpy(dtype=bool, na_value=False)
    problems = np.full(len(values), None, dtype=object)
    for i in np.flatnonzero(unmapped):
        problems[i] = (
            f"{INVALID_FIELD}: sex value {text.iloc[i]!r} is not in sex_values "
            "(include/lead_load/core/field_mapping.yaml)"
        )
    return codes.fillna(0).astype("int64").to_numpy(dtype=object), problems


def _integers(values: pd.Series, name: str) -> tuple[np.ndarray, np.ndarray]:
    """(int or None per row, problem or None per row) for an integer API field."""
    out = np.full(len(values), None, dtype=object)
    if pd.api.types.is_signed_integer_dtype(values.dtype):  # int64 at most: in range
        present = values.notna().to_numpy()
        out[present] = values[present].tolist()
        return out, np.full(len(values), None, dtype=object)
    problems = np.full(len(values), None, dtype=object)
    for i, value in enumerate(values.to_numpy(dtype=object)):
        try:
            out[i] = _integer(value)
        except ValueError:
            problems[i] = f"{INVALID_FIELD}: {name} must be an integer (got {value!r})"
        except OverflowError:
            problems[i] = (
                f"{INVALID_FIELD}: {name} is out of the API's integer range (got {value!r})"
            )
    return out, problems


def _component_values(values: pd.Series, component_id: str) -> tuple[np.ndarray, np.ndarray]:
    """(JSON-ready value or None per row, problem or None per row) for one component."""
    if pd.api.types.is_datetime64_any_dtype(values.dtype):  # dates travel as YYYY-MM-DD
        dates = values.dt.strftime("%Y-%m-%d")
        return dates.to_numpy(dtype=object, na_value=None), np.full(len(values), None, object)
    out = np.full(len(values), None, dtype=object)
    problems = np.full(len(values), None, dtype=object)
    for i, value in enumerate(values.to_numpy(dtype=object)):
        try:
            out[i] = _json_value(value)
        except ValueError:
            problems[i] = f"{INVALID_FIELD}: component {component_id} cannot send {value!r}"
    return out, problems


# --- the rows --------------------------------------------------------------------------------


def payloads_with_reasons(
    df: pd.DataFrame, mapping: FieldMapping
) -> tuple[list[dict | None], list[str | None]]:
    """For each row, its API row or None, and the reason it cannot be sent or None.

    Values are converted column-wise; only building the dicts loops in Python.
    """
    count = len(df)
    optional: list[tuple[str, np.ndarray]] = []  # API key -> value per row, None = omit
    problems = np.full(count, None, dtype=object)
    for name in TEXT_FIELDS:
        if name in mapping.fields:
            values, bad = _checked_texts(df[mapping.fields[name]], name)
            optional.append((name, values))
            problems = np.where(pd.isna(problems), bad, problems)
    if "sex" in mapping.fields:
        codes, bad = _sex_codes(df[mapping.fields["sex"]], mapping.sex_values)
        optional.append(("sex", codes))
        problems = np.where(pd.isna(problems), bad, problems)
    for name in INT_FIELDS:
        if name in mapping.fields:
            values, bad = _integers(df[mapping.fields[name]], name)
            optional.append((name, values))
            problems = np.where(pd.isna(problems), bad, problems)
    components: list[tuple[str, np.ndarray]] = []
    for component_id, column in mapping.components.items():
        values, bad = _component_values(df[column], component_id)
        components.append((component_id, values))
        problems = np.where(pd.isna(problems), bad, problems)

    # Assemble column by column: one tight loop per field beats one generic loop per row.
    rows = [
        {"phone": phone, "sort": 0, "extra": extra}
        for phone, extra in zip(
            df["phone_norm"].to_numpy(dtype=object).tolist(),
            lead_id_texts(df[mapping.lead_id]),
            strict=True,
        )
    ]
    for key, values in optional:
        for row, value in zip(rows, values.tolist(), strict=True):
            if value is not None:
                row[key] = value
    if components:
        sent: list[list[dict]] = [[] for _ in range(count)]
        for component_id, values in components:
            for row_components, value in zip(sent, values.tolist(), strict=True):
                if value is not None:
                    row_components.append({"id": component_id, "value": value})
        for row, row_components in zip(rows, sent, strict=True):
            if row_components:
                row["components"] = row_components
    reasons = problems.tolist()
    payloads = [None if reason else row for row, reason in zip(rows, reasons, strict=True)]
    return payloads, reasons
