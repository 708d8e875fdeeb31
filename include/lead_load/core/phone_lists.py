"""A list of phones an operator hands in (to put on the suppression list, or take off it),
read line by line, every phone normalised as a lead's phone is (``core.phones``).

Two shapes, told apart by the first line that is not blank:

- a CSV file with a header row that has a ``phone`` column (any case), and optionally a
  ``reason`` column: ``phone,reason`` then ``13800138000,asked not to be called``;
- one phone per line and no header: each line, whole, is a phone (``138 0013 8000`` and
  ``+86 138-0013-8000`` are the same number).

Blank lines are skipped. A line whose phone is no mainland mobile number is a bad line, kept
with its line number and why (``missing_phone``, ``not_a_phone``, ``not_mobile``) and the
value masked: the caller refuses the whole list then, so a list is never half-applied. A
phone given on two lines counts once (its first reason).
"""

from __future__ import annotations

import csv
from collections.abc import Iterable
from dataclasses import dataclass, field

from agent_api.masking import mask_phone
from lead_load.core.phones import classify_phone

PHONE_COLUMN = "phone"
REASON_COLUMN = "reason"


@dataclass(frozen=True)
class ListedPhone:
    """A good line: its number, the normalised phone, and the reason it gave (None: none)."""

    line: int
    phone: str
    reason: str | None = None


@dataclass(frozen=True)
class BadLine:
    """A line that holds no mobile number: its number, why, and the value masked."""

    line: int
    why: str
    shown: str

    def describe(self, unit: str = "line") -> str:
        return f"{unit} {self.line}: {self.why} ({self.shown})"


@dataclass
class PhoneList:
    """What a list held: its phones (each once, in the order given), its bad lines, and how
    many lines repeated a phone of an earlier line."""

    phones: list[ListedPhone] = field(default_factory=list)
    bad: list[BadLine] = field(default_factory=list)
    repeated: int = 0

    def add(self, line: int, raw: str | None, reason: str | None, seen: set[str]) -> None:
        """Judge one value: normalised and kept, or a bad line."""
        phone, why = classify_phone(raw)
        if phone is None:
            shown = mask_phone((raw or "").strip()) if (raw or "").strip() else "empty"
            self.bad.append(BadLine(line, why or "not_a_phone", shown))
        elif phone in seen:
            self.repeated += 1
        else:
            seen.add(phone)
            self.phones.append(ListedPhone(line, phone, (reason or "").strip() or None))


def read_phone_list(lines: Iterable[str], header: bool | None = None) -> PhoneList:
    """Read ``lines`` (text lines, their ends kept or not): with a header row when its first
    line that is not blank names a ``phone`` column (``header=None``), or as told
    (``header=False``: every value is a phone, e.g. phones given as arguments)."""
    texts = [line.rstrip("\r\n") for line in lines]
    if texts:
        texts[0] = texts[0].removeprefix("\ufeff")  # a byte order mark a spreadsheet wrote
    first = next((n for n, text in enumerate(texts) if text.strip()), None)
    result = PhoneList()
    if first is None:
        return result
    columns = [cell.strip().lower() for cell in next(csv.reader([texts[first]]))]
    if header is not False and PHONE_COLUMN in columns:
        _read_csv(texts, first, columns, result)
    else:
        seen: set[str] = set()
        for number, text in enumerate(texts, start=1):
            if text.strip():
                result.add(number, text, None, seen)
    return result


def _read_csv(texts: list[str], header_at: int, columns: list[str], result: PhoneList) -> None:
    """The rows under the header row at ``texts[header_at]``, by their line numbers (a
    quoted value that spans lines is read whole, and numbered by the line it ends on)."""
    phone_at = columns.index(PHONE_COLUMN)
    reason_at = columns.index(REASON_COLUMN) if REASON_COLUMN in columns else None
    reader = csv.reader(f"{text}\n" for text in texts[header_at + 1 :])
    seen: set[str] = set()
    for row in reader:
        if not any(cell.strip() for cell in row):
            continue
        line = header_at + 1 + reader.line_num
        raw = row[phone_at] if phone_at < len(row) else None
        reason = row[reason_at] if reason_at is not None and reason_at < len(row) else None
        result.add(line, raw, reason, seen)
