"""A load's rejects as CSV, for a spreadsheet: what the run tab lists, every row of it.

One line per reject in lead id order: ``lead_id,raw_phone,reason,counted_in,rejected_at``.
``raw_phone`` is masked like every phone of the page (``browse.mask_raw``): the page's
readers may read the DAG, which does not make them people who may see personal data; the
full numbers stay in the warehouse. ``counted_in`` is the run summary's figure the reason's
kind counts in, in the summary's words; ``rejected_at`` is ISO 8601 in UTC.

A cell that a spreadsheet would take for a formula (it starts with ``=``, ``+``, ``-``,
``@``, a tab or a carriage return) is written with a leading ``'``, so opening the file runs
nothing. The rows come page by page and leave as text page by page: memory holds one page.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from typing import Any

from lead_load.core import reject_reasons, run_summary

HEADER = ("lead_id", "raw_phone", "reason", "counted_in", "rejected_at")
MEDIA_TYPE = "text/csv; charset=utf-8"
# What a spreadsheet reads as the start of a formula (OWASP's list: = + - @, tab, CR).
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_UNSAFE_IN_NAME = re.compile(r"[^A-Za-z0-9._-]+")


def guarded(cell: object) -> str:
    """The cell as text, with a leading ``'`` when a spreadsheet would run it as a formula."""
    text = "" if cell is None else str(cell)
    return f"'{text}" if text.startswith(_FORMULA_START) else text


def filename(run_id: str) -> str:
    """``rejects-<run id>.csv``, the run id cut down to characters safe in any file system
    and in a Content-Disposition header (``manual__2026-11-24T00:00:00+00:00`` gives
    ``rejects-manual__2026-11-24T00_00_00_00_00.csv``)."""
    safe = _UNSAFE_IN_NAME.sub("_", run_id).strip("._") or "run"
    return f"rejects-{safe[:150]}.csv"


def content_disposition(run_id: str) -> str:
    return f'attachment; filename="{filename(run_id)}"'


def counted_in(reason: str | None) -> str:
    """The summary figure a reason's kind counts in, in the summary's words."""
    figure = reject_reasons.figure_of(reject_reasons.kind_of(reason))
    return run_summary.FIGURE_WORDS[figure]


def row(reject: Any) -> tuple[str, ...]:
    """One reject (``browse.Reject``: its phone already masked) as a CSV row."""
    return tuple(
        guarded(cell)
        for cell in (
            reject.lead_id,
            reject.raw_phone,
            reject.reason,
            counted_in(reject.reason),
            _iso_utc(reject.rejected_at),
        )
    )


def lines(pages: Iterable[list[Any]]) -> Iterator[str]:
    """The CSV text: the header, then one string per page of rejects."""
    yield _text([HEADER])
    for page in pages:
        yield _text(row(reject) for reject in page)


def _text(rows: Iterable[Iterable[str]]) -> str:
    out = io.StringIO()
    csv.writer(out).writerows(rows)
    return out.getvalue()


def _iso_utc(moment: datetime | None) -> str:
    if moment is None:
        return ""
    if moment.tzinfo is None:  # the ledger writes UTC; SQLite hands it back without a zone
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat()
