"""Keep phone numbers out of logs: ``13012121211`` is written ``130****1211``."""

from __future__ import annotations

import re

_PHONE_LIKE = re.compile(r"(?<!\d)(\+?\d{3})(\d{1,8})(\d{4})(?!\d)")


def mask_phone(phone: object) -> str:
    """Mask all but the first three and last four digits of a phone number."""
    text = "" if phone is None else str(phone)
    if len(text) <= 7:
        return "*" * len(text)
    return f"{text[:3]}{'*' * (len(text) - 7)}{text[-4:]}"


def mask_phones_in(text: str) -> str:
    """Mask every run of 8 to 15 digits in free text (error messages, answers)."""
    return _PHONE_LIKE.sub(lambda m: m.group(1) + "*" * len(m.group(2)) + m.group(3), text)
