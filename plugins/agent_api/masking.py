"""Keep phone numbers out of logs: ``13012121211`` is written ``130****1211``."""

from __future__ import annotations

import re

# A UUID is left whole (a unique_id or a calling task's id is no phone, even where a segment is all
# digits); otherwise a run of 8 to 15 digits not touching a letter or digit (parts of hex ids
# and other identifiers are no phones either). CJK text around a number does not protect it.
_UUID = r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
_PHONE_LIKE = re.compile(
    rf"(?P<uuid>{_UUID})|(?<![0-9A-Za-z])(\+?\d{{3}})(\d{{1,8}})(\d{{4}})(?![0-9A-Za-z])"
)


def mask_phone(phone: object) -> str:
    """Mask all but the first three and last four digits of a phone number."""
    text = "" if phone is None else str(phone)
    if len(text) <= 7:
        return "*" * len(text)
    return f"{text[:3]}{'*' * (len(text) - 7)}{text[-4:]}"


def mask_phones_in(text: str) -> str:
    """Mask every phone-shaped run of 8 to 15 digits in free text (error messages, answers),
    leaving UUIDs and digits inside other identifiers as they are."""

    def masked(match: re.Match) -> str:
        if match.group("uuid"):
            return match.group("uuid")
        return match.group(2) + "*" * len(match.group(3)) + match.group(4)

    return _PHONE_LIKE.sub(masked, text)
