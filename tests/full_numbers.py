"""Finding a full phone number in what a test rendered (a page, a query's result, a log).

Nothing inside a ``unique_id`` counts: a UUID's last group is 12 hex digits, which now and
then hold 11 digits in a row (``...-06251259055e`` failed a CI run).
"""

from __future__ import annotations

import re

_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.I)
_ELEVEN_DIGITS = re.compile(r"\d{11}")


def full_numbers_in(text: str) -> list[str]:
    """The 11-digit runs in ``text`` outside its UUIDs."""
    return _ELEVEN_DIGITS.findall(_UUID.sub("<uuid>", text))


_MOBILE_NUMBER = re.compile(r"(?<!\d)1[3-9]\d{9}(?!\d)")


def mobile_numbers_in(text: str) -> list[str]:
    """The mainland mobile numbers in ``text`` outside its UUIDs: for pages that also hold
    other long digit runs (the Airflow UI's own)."""
    return _MOBILE_NUMBER.findall(_UUID.sub("<uuid>", text))
