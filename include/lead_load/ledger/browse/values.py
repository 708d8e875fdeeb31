"""The plain values every view of the ledger hands out alike: one page of a longer list
(``Page``, and the page a request may ask for) and the ledger's timestamps in UTC."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

# The most rows one page of a list may ask for.
MAX_PER_PAGE = 500


@dataclass(frozen=True)
class Page:
    """One page of a longer list; ``page`` counts from 1."""

    items: list[Any]
    total: int
    page: int
    per_page: int

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.per_page))


def page_bounds(page: int, per_page: int) -> tuple[int, int]:
    """The page asked for (from 1) and its length (1 to ``MAX_PER_PAGE``), whatever came in."""
    return max(1, int(page)), min(max(1, int(per_page)), MAX_PER_PAGE)


def in_utc(value: datetime | None) -> datetime | None:
    """SQLite hands timestamps back without a zone; the ledger writes them in UTC."""
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)
