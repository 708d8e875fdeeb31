"""From extracted warehouse rows to the platform's import rows, with every row accounted for.

``transform_leads`` = ``normalise_and_validate`` -> payload checks -> ``dedupe_latest`` ->
payloads. Each input row ends in exactly one of ``valid`` (sent), ``rejects`` (never sendable,
with a reason) or ``duplicates`` (its phone is sent for another, more recent lead), so
``len(valid) + len(rejects) + len(duplicates) == len(df)`` always.

Reject reasons, the ``reason`` column of ``rejects``: a code, or ``"code: detail"``.

- ``missing_lead_id``: the lead id is null or blank, so the row could not be traced. Its
  reject is keyed ``(no lead id: row N of the window)``, N counted from ``first_row``.
- ``duplicate_lead_id``: another row of the window has the same lead id and a later (or the
  same) ``updated_at``; that row stands for the lead. Keyed ``(repeat of lead X: row N of the
  window)``, so that a lead's repeats and its own reject (if its latest row is bad) can all
  be recorded.
- ``missing_phone`` / ``not_a_phone`` / ``not_mobile``: see ``lead_load.core.phones``.
- ``invalid_field``: a mapped value cannot be sent as the API asks,
  e.g. ``invalid_field: grade_id must be an integer (got 'abc')``, an integer beyond the
  signed 64-bit range, or a control character (NUL and the other C0 controls but tab, line
  feed and carriage return; DEL) in ``name``, ``company``, ``email`` or the lead id. A lead
  id longer than the ledger's key (``MAX_LEAD_ID_CHARS``) cannot even be recorded under its
  own name: keyed ``(lead id too long: row N of the window)``, no lead of its own.
- ``component_invalid``: a component breaks the public-pool template (docs/agent-api.md section 4),
  e.g. ``component_invalid: 数字 must be an integer``.

Payload problems are found before de-duplication, so a kept lead is always a sendable one:
a newer lead with a bad field is rejected and the next most recent lead with that phone wins.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal

import numpy as np
import pandas as pd

from lead_load.core.mapping import INT_FIELDS, TEXT_FIELDS, FieldMapping
from lead_load.core.phones import normalise_phones
from lead_load.core.reject_reasons import INVALID_KINDS, RejectKind

MISSING_LEAD_ID = RejectKind.MISSING_LEAD_ID.value
DUPLICATE_LEAD_ID = RejectKind.DUPLICATE_LEAD_ID.value
INVALID_FIELD = RejectKind.INVALID_FIELD.value
# The ledger keys rows by lead id in a column of this many characters (lead_load.ledger.schema;
# a test keeps the two equal). A longer id would fail the insert on PostgreSQL and MySQL.
MAX_LEAD_ID_CHARS = 128
LEAD_ID_TOO_LONG = f"{INVALID_FIELD}: lead_id is longer than {MAX_LEAD_ID_CHARS} characters"
LEAD_ID_CONTROL = f"{INVALID_FIELD}: lead_id contains a control character"
COMPONENT_INVALID = RejectKind.COMPONENT_INVALID.value
# The kinds the transform writes (staging adds duplicate_in_run and phone_already_loaded).
REJECT_REASONS = tuple(kind.value for kind in INVALID_KINDS)


@dataclass(frozen=True)
class TransformResult:
    valid: pd.DataFrame  # lead_id, phone, updated_at: one row per phone to send
    payloads: list[dict]  # the API rows, aligned with `valid`
    rejects: pd.DataFrame  # lead_id, raw_phone, reason
    duplicates: pd.DataFrame  # lead_id, phone, kept_lead_id

    @property
    def sex_unknown(self) -> int:
        """Rows to send whose sex is 0, unknown: empty, or a value ``sex_values`` maps to 0.
        Counted for the summary: unknown is a legal value, but the data owner may not know
        how often their column says nothing."""
        return sum(1 for payload in self.payloads if payload.get("sex") == 0)


class PayloadError(ValueError):
    """A row cannot become an API row; the message says which lead and why."""


# --- validation and de-duplication (the hot path: vectorised) --------------------------------


def normalise_and_validate(df: pd.DataFrame, mapping: FieldMapping) -> pd.DataFrame:
    """A copy of ``df`` with ``phone_norm`` and ``reject_reason`` (<NA> when the row is valid)."""
    mapping.check_columns(df.columns)
    phones = normalise_phones(df[mapping.fields["phone"]])
    # A missing lead id outranks a bad phone: without it nothing about the row is traceable.
    # So does a repeated one: the lead's latest row stands for it, whatever its phone.
    lead_ids = df[mapping.lead_id]
    missing = _is_missing(lead_ids)
    present = lead_ids.to_numpy(dtype=object)[~missing]
    all_text = pd.api.types.infer_dtype(present) == "string"
    repeated = _older_rows_of_a_lead(lead_ids, df[mapping.updated_at], missing, present, all_text)
    reasons = phones["reject_reason"]
    unusable = _unusable_lead_ids(lead_ids, present, all_text)
    if unusable is not None:
        # A lead id is a key of the ledger: one with a NUL byte cannot even be stored in
        # PostgreSQL, nor can one longer than the key column anywhere but SQLite.
        control, too_long = unusable
        reasons = reasons.mask(control & reasons.isna().to_numpy(), LEAD_ID_CONTROL)
        reasons = reasons.mask(too_long, LEAD_ID_TOO_LONG)
    reasons = reasons.mask(repeated, DUPLICATE_LEAD_ID).mask(missing, MISSING_LEAD_ID)
    return df.assign(phone_norm=phones["phone"].array, reject_reason=reasons.array)


def _unusable_lead_ids(
    lead_ids: pd.Series, present: np.ndarray, all_text: bool
) -> tuple[np.ndarray, np.ndarray] | None:
    """(has a control character, too long for the ledger's key) per row, or None when no
    lead id is either. The usual case costs one regex search and one max() over the ids."""
    if all_text:
        if not len(present) or (
            not _CONTROL_CHARACTERS.search("".join(present))
            and max(map(len, present)) <= MAX_LEAD_ID_CHARS
        ):
            return None
        texts = lead_ids.astype("string")
    elif lead_ids.dtype == object or isinstance(lead_ids.dtype, pd.StringDtype):
        texts = pd.Series(_lead_texts(lead_ids), index=lead_ids.index)
    else:  # numbers: 20 characters at most, 1e+300 included
        return None
    control = texts.str.contains(_CONTROL_CHARACTERS, na=False).to_numpy(dtype=bool)
    # As stored: the ledger keeps a NUL byte as the four characters \x00 (PostgreSQL has none).
    stored = texts.str.len() + 3 * texts.str.count("\x00")
    too_long = (stored > MAX_LEAD_ID_CHARS).to_numpy(dtype=bool, na_value=False)
    return control, too_long


def dedupe_latest(
    df: pd.DataFrame, *, lead_id: str = "lead_id", updated_at: str = "updated_at"
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Among valid rows, keep one row per phone: the latest ``updated_at``, then highest lead id.

    Returns ``(kept, duplicates)``, both in ``df`` order; ``duplicates`` has the columns
    lead_id, phone_norm and kept_lead_id. A missing ``updated_at`` counts as the oldest.
    """
    valid = df["reject_reason"].isna().to_numpy() & df["phone_norm"].notna().to_numpy()
    positions = np.flatnonzero(valid)
    phones = df["phone_norm"].array[positions]
    lead_ids = df[lead_id].array[positions]
    if not len(positions):
        empty = {"lead_id": lead_ids, "phone_norm": phones, "kept_lead_id": lead_ids}
        return df.iloc[positions], pd.DataFrame(empty)

    # One int64 key, phone rank then time rank, sorted by numpy's default (unstable) sort:
    # several times faster than a stable multi-key lexsort on a million rows.
    _, phone_rank = np.unique(_group_codes(phones), return_inverse=True)
    times, time_rank = np.unique(_time_key(df[updated_at].iloc[positions]), return_inverse=True)
    key = phone_rank * len(times) + time_rank
    order = np.argsort(key)
    tied = key[order][1:] == key[order][:-1]
    if tied.any():  # same phone, same time: the higher lead id wins (rank only those rows)
        tied_rows = order[np.r_[tied, False] | np.r_[False, tied]]
        lead_rank = np.zeros(len(positions), dtype=np.int64)
        lead_rank[tied_rows] = _rank(pd.Series(lead_ids[tied_rows]))
        order = np.lexsort((lead_rank, key))

    # In ascending order the last row of each phone group is the one to keep.
    sorted_phones = phone_rank[order]
    is_last = np.r_[sorted_phones[1:] != sorted_phones[:-1], True]
    group_number = np.cumsum(np.r_[True, is_last[:-1]]) - 1
    kept_row = np.empty(len(positions), dtype=np.int64)
    kept_row[order] = order[np.flatnonzero(is_last)][group_number]
    is_kept = kept_row == np.arange(len(positions))

    duplicates = pd.DataFrame(
        {
            "lead_id": lead_ids[~is_kept],
            "phone_norm": phones[~is_kept],
            "kept_lead_id": lead_ids[kept_row[~is_kept]],
        }
    )
    return df.iloc[positions[is_kept]], duplicates


def _older_rows_of_a_lead(
    lead_ids: pd.Series,
    updated_at: pd.Series,
    missing: np.ndarray,
    present: np.ndarray,
    all_text: bool,
) -> np.ndarray:
    """True for every row whose lead id another row repeats with a later ``updated_at`` (on a
    tie, the later row in the extract wins). ``present``: the ids that are not missing."""
    # The usual case, no repeats, is found on the raw values (one hash index, no text
    # conversion); only a column of mixed types may hold one id as 5001 and "5001", so such a
    # column is compared as text.
    if (lead_ids.dtype != object or all_text) and pd.Index(present).is_unique:
        return np.zeros(len(lead_ids), dtype=bool)
    texts = pd.Series(_lead_texts(lead_ids), index=lead_ids.index)
    if not texts[~missing].duplicated().any():
        return np.zeros(len(lead_ids), dtype=bool)
    order = np.lexsort((np.arange(len(texts)), _time_key(updated_at)))
    newest_last = texts.iloc[order]
    older = newest_last.duplicated(keep="last").to_numpy()
    repeated = np.zeros(len(texts), dtype=bool)
    repeated[order[older]] = True
    return repeated & ~missing


def lead_id_texts(values: pd.Series) -> list[str | None]:
    """Lead ids as the ledger keys them (see ``_lead_texts``), None where missing."""
    return _lead_texts(values).to_numpy(dtype=object, na_value=None).tolist()


def _is_missing(values: pd.Series) -> np.ndarray:
    missing = values.isna().to_numpy()
    if values.dtype == object or isinstance(values.dtype, pd.StringDtype):
        blank = np.fromiter(map(_is_blank_text, values.to_numpy(dtype=object)), bool, len(values))
        missing = missing | blank
    return missing


def _is_blank_text(value) -> bool:
    if isinstance(value, bytes):  # a BLOB, read as its text (see _int_if_whole)
        value = _int_if_whole(value)
    return isinstance(value, str) and (not value or value.isspace())


def _group_codes(phones) -> np.ndarray:
    """Equal int64 codes for equal phones (the order of codes means nothing)."""
    values = np.asarray(phones, dtype=object)
    try:
        joined = "".join(values)
    except TypeError:  # not all text
        joined = ""
    # Fast path: valid phones are 11 ASCII digits, so each one is its own int64 code.
    if len(joined) == 11 * len(values) and joined.isascii():
        digits = np.frombuffer(joined.encode("ascii"), dtype=np.uint8).reshape(-1, 11) - 48
        if (digits <= 9).all():
            return digits.astype(np.int64) @ 10 ** np.arange(10, -1, -1, dtype=np.int64)
    return pd.factorize(values)[0].astype(np.int64)


def _time_key(values: pd.Series) -> np.ndarray:
    """int64 instants that order like the timestamps; missing or unreadable ones are oldest."""
    if not pd.api.types.is_datetime64_any_dtype(values.dtype):
        values = _parse_times(values)
    if isinstance(values.dtype, pd.DatetimeTZDtype):
        values = values.dt.tz_convert("UTC").dt.tz_localize(None)
    return values.to_numpy().view(np.int64)  # NaT is the smallest int64: the oldest


def _parse_times(values: pd.Series) -> pd.Series:
    """UTC timestamps from text or date/datetime objects; anything else is NaT (oldest)."""
    if pd.api.types.infer_dtype(values, skipna=True) not in ("string", "datetime", "date"):
        values = values.map(lambda v: v if isinstance(v, str | date | np.datetime64) else None)
    parsed = pd.to_datetime(values, utc=True, errors="coerce", format="ISO8601")
    retry = parsed.isna() & values.notna()
    if retry.any():  # not ISO 8601: let pandas guess the format of each of those
        parsed[retry] = pd.to_datetime(values[retry], utc=True, errors="coerce", format="mixed")
    return parsed


def _rank(values: pd.Series) -> np.ndarray:
    """Order codes of lead ids: as numbers when they all are numbers, else as text."""
    numbers = pd.to_numeric(values, errors="coerce")
    if numbers.notna().all() and not pd.api.types.is_bool_dtype(values.dtype):
        return pd.factorize(numbers, sort=True)[0]
    return pd.factorize(values.astype(str), sort=True)[0]


# --- payloads ----------------------------------------------------------------------------------


def build_payloads(df: pd.DataFrame, mapping: FieldMapping) -> list[dict]:
    """The API rows of ``df`` (kept rows with ``phone_norm``), in ``df`` order.

    Raises ``PayloadError`` for a row that cannot be sent; ``transform_leads`` instead turns
    such rows into rejects (see ``payloads_with_reasons``).
    """
    payloads, reasons = payloads_with_reasons(df, mapping)
    for lead, reason in zip(df[mapping.lead_id], reasons, strict=True):
        if reason is not None:
            raise PayloadError(f"lead {lead!r}: {reason}")
    return payloads


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


# C0 control characters and DEL, but tab, line feed and carriage return: NUL bytes and their
# like are no part of a name, a company or an address, and PostgreSQL cannot even store NUL.
_CONTROL_CHARACTERS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def _checked_texts(values: pd.Series, name: str) -> tuple[np.ndarray, np.ndarray]:
    """(stripped text or None per row, problem or None per row) for a text API field."""
    texts = _texts(values)
    problems = np.full(len(texts), None, dtype=object)
    for i, text in enumerate(texts.tolist()):
        if text is not None and (found := _CONTROL_CHARACTERS.search(text)):
            problems[i] = (
                f"{INVALID_FIELD}: {name} contains a control character (U+{ord(found.group()):04X})"
            )
    return texts, problems


def _texts(values: pd.Series) -> np.ndarray:
    """Stripped text, None when null or blank."""
    text = _as_text(values).str.strip()
    return text.mask(text == "").to_numpy(dtype=object, na_value=None)


def _as_text(values: pd.Series) -> pd.Series:
    """Text of each value; whole floats lose their ".0" (NULLs turn int columns into floats)."""
    if values.dtype == object and pd.api.types.infer_dtype(values, skipna=True) not in (
        "string",
        "empty",
    ):
        values = values.map(_int_if_whole, na_action="ignore")
    if not pd.api.types.is_float_dtype(values.dtype):
        return values.astype("string")
    text = values.astype("string")
    whole = ((values % 1 == 0) & (values.abs() < 2**63)).to_numpy(dtype=bool, na_value=False)
    text[whole] = values[whole].astype("int64").astype("string")
    return text


def _int_if_whole(value):
    """Whole floats as ints (within int64, as ``_as_text`` does for a float column: 1e300
    stays 1e+300); bytes (a BLOB) as UTF-8 text, undecodable bytes as \\xNN."""
    if isinstance(value, float | np.floating) and value.is_integer() and abs(value) < 2**63:
        return int(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).decode("utf-8", "backslashreplace")
    return value


def _sex_codes(values: pd.Series, sex_values: Mapping[str, int]) -> tuple[np.ndarray, np.ndarray]:
    """(0/1/2 per row, problem or None per row): empty is 0 (unknown); a value that
    ``sex_values`` does not list is a problem, not a silent 0."""
    text = _as_text(values).str.strip()
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


_INTEGER_FIELD_TEXT = re.compile(r"\s*[-+]?[0-9]+\s*")


# The API's integer fields: a signed 64-bit integer at most (what a JSON number the platform
# parses as a long can hold); larger values are rejected rather than sent as they are.
_API_INT_RANGE = (-(2**63), 2**63 - 1)


def _integer(value) -> int | None:
    number = _any_integer(value)
    if number is not None and not _API_INT_RANGE[0] <= number <= _API_INT_RANGE[1]:
        raise OverflowError(value)
    return number


def _any_integer(value) -> int | None:
    if _is_null(value) or _is_blank_text(value):
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


def _json_value(value):
    """A value that json.dumps writes as the platform expects (str, int or finite float)."""
    if _is_null(value):
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


def _is_null(value) -> bool:
    if value is None or value is pd.NA or value is pd.NaT:
        return True
    if isinstance(value, float | np.floating):
        return math.isnan(value)
    if isinstance(value, np.datetime64):
        return bool(np.isnat(value))
    return isinstance(value, Decimal) and value.is_nan()


def raw_phone_text(value) -> str | None:
    """The phone as the warehouse gave it, as text for the rejects table."""
    if _is_null(value):
        return None
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


# --- public-pool template (docs/agent-api.md section 4) ---

_NUMERIC_TEXT = re.compile(r"-?[0-9]+(\.[0-9]+)?")
_INTEGER_TEXT = re.compile(r"-?[0-9]+")
_DATE_TEXT = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


def check_components(payload: Mapping, template: Sequence[Mapping] | Mapping) -> str | None:
    """Why the platform would refuse this row's components, or None.

    ``template`` is the template's list of components (or a dict id -> component). The rules
    mirror the platform as the simulator assumes it (include/agent_api_simulator/assumptions.py):
    a row without ``components`` is not checked, so "required" binds only rows that send
    components; an empty template checks nothing. "sometimes" (validate only when present) is
    how every component is treated anyway.
    """
    return _check_components(payload, _template_index(template))


def _template_index(template: Sequence[Mapping] | Mapping | None) -> dict[str, Mapping]:
    if not template:
        return {}
    if isinstance(template, Mapping):
        return dict(template)
    return {entry["id"]: entry for entry in template}


def _check_components(payload: Mapping, template: Mapping[str, Mapping]) -> str | None:
    components = payload.get("components")
    if not template or components is None:
        return None
    sent = set()
    for component in components:
        component_id = component.get("id")
        entry = template.get(component_id)
        if entry is None:
            return f"{COMPONENT_INVALID}: unknown component id {component_id!r}"
        problem = _component_problem(component.get("value"), entry)
        if problem:
            return f"{COMPONENT_INVALID}: {entry.get('name', component_id)} {problem}"
        sent.add(component_id)
    for component_id, entry in template.items():
        if "required" in (entry.get("validate") or ()) and component_id not in sent:
            return f"{COMPONENT_INVALID}: {entry.get('name', component_id)} is required"
    return None


def _component_problem(value, entry: Mapping) -> str | None:
    rules = entry.get("validate") or ()
    kind = entry.get("type")
    is_number = isinstance(value, int | float) and not isinstance(value, bool)
    if "required" in rules and (value is None or (isinstance(value, str) and not value.strip())):
        return "is required"
    if kind == "text" and not isinstance(value, str):
        return "must be text"
    if kind == "number" and not (
        is_number or (isinstance(value, str) and _NUMERIC_TEXT.fullmatch(value))
    ):
        return "must be a number"
    if "integer" in rules and not (
        (is_number and not isinstance(value, float))
        or (isinstance(value, str) and _INTEGER_TEXT.fullmatch(value))
    ):
        return "must be an integer"
    if (kind == "date" or "date" in rules) and not _is_date(value):
        return "must be a date YYYY-MM-DD"
    return None


def _is_date(value) -> bool:
    if not isinstance(value, str) or not _DATE_TEXT.fullmatch(value):
        return False
    try:
        date.fromisoformat(value)
    except ValueError:
        return False
    return True


# --- the whole transform -----------------------------------------------------------------------


def transform_leads(
    df: pd.DataFrame,
    mapping: FieldMapping,
    template: Sequence[Mapping] | None = None,
    first_row: int = 1,
    row_numbers: Sequence[int] | None = None,
) -> TransformResult:
    """Validate, check payloads, de-duplicate and build the API rows of an extract.

    ``first_row``: the number of ``df``'s first row in the window (chunks of one extract
    continue the count), for the keys of rows that cannot be keyed by their lead id alone;
    or ``row_numbers``, the number of each row of ``df`` in the window.
    """
    checked = normalise_and_validate(df.reset_index(drop=True), mapping)
    if row_numbers is None:
        numbers = np.arange(first_row, first_row + len(checked), dtype=np.int64)
    else:
        numbers = np.asarray(row_numbers, dtype=np.int64)
        if len(numbers) != len(checked):
            raise ValueError(f"{len(numbers)} row numbers for {len(checked)} rows")
    reasons = checked["reject_reason"].to_numpy(dtype=object, na_value=None, copy=True)
    candidates = np.flatnonzero(pd.isna(reasons))
    built, problems = payloads_with_reasons(checked.iloc[candidates], mapping)
    index = _template_index(template)
    if index:
        problems = [
            problem or _check_components(payload, index)
            for payload, problem in zip(built, problems, strict=True)
        ]
    # Rows with a problem are rejected before de-duplication, so a kept lead is sendable.
    payload_at = np.full(len(checked), None, dtype=object)
    payload_at[candidates] = _objects(built)
    reasons[candidates] = _objects(problems)
    checked["reject_reason"] = pd.array(reasons, dtype="string")

    kept, duplicates = dedupe_latest(
        checked, lead_id=mapping.lead_id, updated_at=mapping.updated_at
    )
    rejected = checked[checked["reject_reason"].notna().to_numpy()]
    return TransformResult(
        valid=pd.DataFrame(
            {
                "lead_id": _lead_texts(kept[mapping.lead_id]),
                "phone": kept["phone_norm"].array,
                "updated_at": kept[mapping.updated_at].array,
            }
        ),
        payloads=payload_at[kept.index.to_numpy()].tolist(),
        rejects=pd.DataFrame(
            {
                "lead_id": _reject_keys(rejected, mapping, numbers),
                "raw_phone": pd.array(
                    [raw_phone_text(v) for v in rejected[mapping.fields["phone"]].to_numpy(object)],
                    dtype="string",
                ),
                "reason": rejected["reject_reason"].array,
            }
        ),
        duplicates=duplicates.rename(columns={"phone_norm": "phone"}).assign(
            lead_id=lambda d: _lead_texts(d["lead_id"]),
            kept_lead_id=lambda d: _lead_texts(d["kept_lead_id"]),
        ),
    )


def _reject_keys(rejected: pd.DataFrame, mapping: FieldMapping, numbers: np.ndarray):
    """The lead id of each rejected row. A row that cannot be recorded under its lead id gets a
    key of its own, unique in the run, so that every such row is recorded: no lead id, a
    repeat of a lead (its latest row may be rejected under the lead id), a lead id longer
    than the key column."""
    keys = pd.Series(_lead_texts(rejected[mapping.lead_id]), dtype="string")
    reasons = rejected["reject_reason"]
    rows = numbers[rejected.index.to_numpy()]
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


def repeat_key(lead: str, row: int) -> str:
    """The reject key of a row that repeats ``lead`` (row ``row`` of the window): unique in
    the run, and short enough for the ledger's key column whatever the lead id."""
    shown = str(lead).replace("\x00", "\\x00")  # stored so anyway (PostgreSQL has no NUL)
    if len(shown) > 64:
        shown = shown[:63] + "…"
    return f"(repeat of lead {shown}: row {row} of the window)"


def stands_for_no_lead(reason: str) -> bool:
    """A reject that is no lead of its own, so not a row of the ledger: no lead id, a repeat
    of one, or one the ledger cannot key."""
    return reason.startswith((MISSING_LEAD_ID, DUPLICATE_LEAD_ID, LEAD_ID_TOO_LONG))


def sortable_times(values: pd.Series) -> list[str]:
    """``updated_at`` as UTC text that sorts like the instants, whatever the warehouse's
    spelling (``YYYY-MM-DDTHH:MM:SS.ffffff``); "" where missing or unreadable, the oldest,
    as in ``dedupe_latest``. The ledger orders a run's candidates by it across chunks."""
    times = pd.Series(values).reset_index(drop=True)
    if not pd.api.types.is_datetime64_any_dtype(times.dtype):
        times = _parse_times(times)
    if isinstance(times.dtype, pd.DatetimeTZDtype):
        times = times.dt.tz_convert("UTC").dt.tz_localize(None)
    # numpy's formatting: twice as fast as strftime (1M rows: 0.7 s). "T" between date and
    # time in every value, so it sorts the same.
    texts = np.datetime_as_string(times.to_numpy(dtype="datetime64[us]"), unit="us")
    return np.where(texts == "NaT", "", texts).tolist()


def _lead_texts(values) -> pd.api.extensions.ExtensionArray:
    """Lead ids as the ledger stores them and ``extra`` sends them: 5001, not 5001.0, when
    a NULL made an integer column float."""
    return _as_text(pd.Series(values).reset_index(drop=True)).array


def _objects(items: list) -> np.ndarray:
    """A 1-D object array of ``items``, whatever they are (numpy would nest sequences)."""
    out = np.empty(len(items), dtype=object)
    out[:] = items
    return out
