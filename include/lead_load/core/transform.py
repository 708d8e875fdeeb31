"""From extracted warehouse rows to the platform's import rows, with every row accounted for.

``transform_leads`` = ``normalise_and_validate`` -> payload checks -> ``dedupe_latest`` ->
payloads. Each input row ends in exactly one of ``valid`` (sent), ``rejects`` (never sendable,
with a reason) or ``duplicates`` (its phone is sent for another, more recent lead), so
``len(valid) + len(rejects) + len(duplicates) == len(df)`` always.

This module is the pipeline and its result; the rules it applies live by mechanism: what a
lead id must be and how a row that cannot be keyed by its own is keyed
(``lead_load.core.lead_ids``), the API rows and their field checks
(``lead_load.core.payloads``), the public-pool component template
(``lead_load.core.components``), what a phone is (``lead_load.core.phones``).

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
  id longer than the ledger's key (``lead_ids.MAX_LEAD_ID_CHARS``) cannot even be recorded under its
  own name: keyed ``(lead id too long: row N of the window)``, no lead of its own.
- ``component_invalid``: a component breaks the public-pool template (docs/agent-api.md section 4),
  e.g. ``component_invalid: 数字 must be an integer``.

Payload problems are found before de-duplication, so a kept lead is always a sendable one:
a newer lead with a bad field is rejected and the next most recent lead with that phone wins.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date

import numpy as np
import pandas as pd

from lead_load.core.components import check_components, template_index
from lead_load.core.lead_ids import (
    DUPLICATE_LEAD_ID,
    LEAD_ID_CONTROL,
    LEAD_ID_TOO_LONG,
    MISSING_LEAD_ID,
    is_missing,
    lead_id_array,
    reject_keys,
    unusable_lead_ids,
)
from lead_load.core.mapping import FieldMapping
from lead_load.core.payloads import is_null, payloads_with_reasons
from lead_load.core.phones import normalise_phones


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


# --- updated_at as instants ------------------------------------------------------------------


def _parse_times(values: pd.Series) -> pd.Series:
    """UTC timestamps from text or date/datetime objects; anything else is NaT (oldest)."""
    if pd.api.types.infer_dtype(values, skipna=True) not in ("string", "datetime", "date"):
        values = values.map(lambda v: v if isinstance(v, str | date | np.datetime64) else None)
    parsed = pd.to_datetime(values, utc=True, errors="coerce", format="ISO8601")
    retry = parsed.isna() & values.notna()
    if retry.any():  # not ISO 8601: let pandas guess the format of each of those
        parsed[retry] = pd.to_datetime(values[retry], utc=True, errors="coerce", format="mixed")
    return parsed


def _time_key(values: pd.Series) -> np.ndarray:
    """int64 instants that order like the timestamps; missing or unreadable ones are oldest."""
    if not pd.api.types.is_datetime64_any_dtype(values.dtype):
        values = _parse_times(values)
    if isinstance(values.dtype, pd.DatetimeTZDtype):
        values = values.dt.tz_convert("UTC").dt.tz_localize(None)
    return values.to_numpy().view(np.int64)  # NaT is the smallest int64: the oldest


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


# --- validation and de-duplication (the hot path: vectorised) --------------------------------


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
    texts = pd.Series(lead_id_array(lead_ids), index=lead_ids.index)
    if not texts[~missing].duplicated().any():
        return np.zeros(len(lead_ids), dtype=bool)
    order = np.lexsort((np.arange(len(texts)), _time_key(updated_at)))
    newest_last = texts.iloc[order]
    older = newest_last.duplicated(keep="last").to_numpy()
    repeated = np.zeros(len(texts), dtype=bool)
    repeated[order[older]] = True
    return repeated & ~missing


def normalise_and_validate(df: pd.DataFrame, mapping: FieldMapping) -> pd.DataFrame:
    """A copy of ``df`` with ``phone_norm`` and ``reject_reason`` (<NA> when the row is valid)."""
    mapping.check_columns(df.columns)
    phones = normalise_phones(df[mapping.fields["phone"]])
    # A missing lead id outranks a bad phone: without it nothing about the row is traceable.
    # So does a repeated one: the lead's latest row stands for it, whatever its phone.
    lead_ids = df[mapping.lead_id]
    missing = is_missing(lead_ids)
    present = lead_ids.to_numpy(dtype=object)[~missing]
    all_text = pd.api.types.infer_dtype(present) == "string"
    repeated = _older_rows_of_a_lead(lead_ids, df[mapping.updated_at], missing, present, all_text)
    reasons = phones["reject_reason"]
    unusable = unusable_lead_ids(lead_ids, present, all_text)
    if unusable is not None:
        # A lead id is a key of the ledger: one with a NUL byte cannot even be stored in
        # PostgreSQL, nor can one longer than the key column anywhere but SQLite.
        control, too_long = unusable
        reasons = reasons.mask(control & reasons.isna().to_numpy(), LEAD_ID_CONTROL)
        reasons = reasons.mask(too_long, LEAD_ID_TOO_LONG)
    reasons = reasons.mask(repeated, DUPLICATE_LEAD_ID).mask(missing, MISSING_LEAD_ID)
    return df.assign(phone_norm=phones["phone"].array, reject_reason=reasons.array)


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


def _rank(values: pd.Series) -> np.ndarray:
    """Order codes of lead ids: as numbers when they all are numbers, else as text."""
    numbers = pd.to_numeric(values, errors="coerce")
    if numbers.notna().all() and not pd.api.types.is_bool_dtype(values.dtype):
        return pd.factorize(numbers, sort=True)[0]
    return pd.factorize(values.astype(str), sort=True)[0]


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


# --- the whole transform -----------------------------------------------------------------------


def raw_phone_text(value) -> str | None:
    """The phone as the warehouse gave it, as text for the rejects table."""
    if is_null(value):
        return None
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _objects(items: list) -> np.ndarray:
    """A 1-D object array of ``items``, whatever they are (numpy would nest sequences)."""
    out = np.empty(len(items), dtype=object)
    out[:] = items
    return out


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
    index = template_index(template)
    if index:
        problems = [
            problem or check_components(payload, index)
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
                "lead_id": lead_id_array(kept[mapping.lead_id]),
                "phone": kept["phone_norm"].array,
                "updated_at": kept[mapping.updated_at].array,
            }
        ),
        payloads=payload_at[kept.index.to_numpy()].tolist(),
        rejects=pd.DataFrame(
            {
                "lead_id": reject_keys(
                    rejected[mapping.lead_id],
                    rejected["reject_reason"],
                    numbers[rejected.index.to_numpy()],
                ),
                "raw_phone": pd.array(
                    [raw_phone_text(v) for v in rejected[mapping.fields["phone"]].to_numpy(object)],
                    dtype="string",
                ),
                "reason": rejected["reject_reason"].array,
            }
        ),
        duplicates=duplicates.rename(columns={"phone_norm": "phone"}).assign(
            lead_id=lambda d: lead_id_array(d["lead_id"]),
            kept_lead_id=lambda d: lead_id_array(d["kept_lead_id"]),
        ),
    )
