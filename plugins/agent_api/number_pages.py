"""How far to read a calling task's number list: the paging rules, without any I/O.

[doc] ``GET .../task/{task_id}/number`` pages by ``page`` and ``per_page``. [unknown, SPEC
section 5] Which of ``current_page``, ``per_page``, ``total``, ``last_page`` and
``next_page_url`` an answer carries, and whether the platform caps ``per_page`` below what
we ask. So every answer is read for what it says, and what we asked for is never taken as
what we got (a platform that answers 100 rows to a request for 1000 has not ended its list):

* **Page size**: the answer's ``per_page`` when given; else the largest page seen so far
  (the first full page); else what we asked.
* **Read on** while ``next_page_url`` is non-null, or ``last_page`` > this page, or fewer
  rows came in than ``total``.
* **End** where an answer carries ``next_page_url``, ``last_page`` or ``total`` and none of
  them says more. Where it carries none of them, a page shorter than the page size ends the
  list only if that size came from an answer's ``per_page`` or the page is shorter than an
  earlier page: a first page of 100 rows with nothing else known is read on from, until a
  shorter or empty page. An empty page ends the list.
* **Errors, never an end**: an empty page where an answer said more was due, or a page
  shorter than the page size before the reported ``total``/``last_page``
  (:class:`AgentApiIncompleteRead`); a row count other than ``total`` at the end (the same);
  a page that repeats the previous one or says it is another page (the platform ignores
  ``page``). A caller must treat a number missing from a failed read as unknown, never as
  absent.

``total`` and ``last_page`` are remembered from the latest answer that gave them; a total
that grows during the read (numbers imported meanwhile) is followed, one that falls makes
the read incomplete (offset paging may then have skipped rows).
"""

from __future__ import annotations

from typing import Any

from agent_api.exceptions import AgentApiIncompleteRead, AgentApiTransientError


def _count(answer: dict[str, Any], key: str) -> int | None:
    """A whole number the answer gives for ``key`` (PHP may send "350"), else None."""
    value = answer.get(key)
    if type(value) is int and value >= 0:
        return value
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return None


class NumberListReading:
    """One read of a calling task's number list, page by page.

    For each page: ``rows = reading.take(page, answer)``, hand the rows on, then
    ``reading.read_on()`` says whether to ask for the next page, or raises when the read
    cannot be trusted. Rows are handed on before that verdict: a number seen is in the calling task
    even when the read as a whole turns out incomplete.
    """

    def __init__(self, asked_per_page: int, path: str | None = None) -> None:
        self.asked_per_page = asked_per_page
        self.path = path
        self.pages = 0  # pages answered so far
        self.rows = 0  # rows seen so far
        self.reported_per_page: int | None = None
        self.largest_page = 0
        self.total: int | None = None
        self.last_page: int | None = None
        self.next_page_promised = False  # the latest answer named a next page
        self._previous: list[Any] = []
        self._verdict: bool | AgentApiTransientError = True

    @property
    def page_size(self) -> int:
        return self.reported_per_page or self.largest_page or self.asked_per_page

    def take(self, page: int, answer: Any) -> list[dict[str, Any]]:
        """The rows of the answer to ``page``; raises when the answer is not the page asked."""
        rows, fields = self._split(page, answer)
        current = _count(fields, "current_page")
        if current is not None and current != page:
            raise self._error(
                f"page {page} of the calling task's numbers came back as page {current}: "
                "the platform seems to ignore `page`"
            )
        # A platform that ignores `page` would otherwise hand us page 1 forever.
        if rows and rows == self._previous:
            raise self._error(
                f"page {page} of the calling task's numbers repeats page {page - 1}: "
                "the platform seems to ignore `page`"
            )
        earlier_largest = self.largest_page
        self.pages = page
        self.rows += len(rows)
        self._previous = rows
        self.largest_page = max(self.largest_page, len(rows))
        if (per_page := _count(fields, "per_page")) is not None and per_page > 0:
            self.reported_per_page = per_page
        named_next_before = self.next_page_promised
        self._take_total(fields)
        if (last_page := _count(fields, "last_page")) is not None:
            self.last_page = last_page
        next_url = fields.get("next_page_url")
        names_next = bool(next_url) and isinstance(next_url, str)
        self.next_page_promised = names_next
        says_anything = "next_page_url" in fields or self.last_page is not None
        says_anything = says_anything or self.total is not None
        if isinstance(self._verdict, AgentApiTransientError):
            return rows  # a falling total already made the read incomplete

        if not rows:
            due = self._why_rows_were_due(page, named_next_before, names_next)
            if due:
                self._verdict = self._incomplete(
                    f"page {page} of the calling task's number list came back empty, although {due}"
                )
            else:
                self._verdict = self._finished()
            return rows

        size = self.reported_per_page or earlier_largest
        short = size > 0 and len(rows) < size
        reported_more = self._more_due(page)
        if reported_more and short:
            self._verdict = self._incomplete(
                f"page {page} of the calling task's number list held {len(rows)} rows, fewer than "
                f"the page size of {size}, although {reported_more}"
            )
        elif reported_more or names_next:
            self._verdict = True
        elif says_anything or short:
            self._verdict = self._finished()
        else:
            self._verdict = True  # nothing known: only a shorter or empty page ends it
        return rows

    def read_on(self) -> bool:
        """Whether to ask for the next page; raises when the read came in incomplete."""
        if isinstance(self._verdict, AgentApiTransientError):
            raise self._verdict
        return self._verdict

    # -- helpers ----------------------------------------------------------------------------

    def _split(self, page: int, answer: Any) -> tuple[list[Any], dict[str, Any]]:
        if not answer:
            return [], {}
        if isinstance(answer, list):
            rows, fields = answer, {}
        elif isinstance(answer, dict) and "data" in answer:
            rows, fields = answer["data"] or [], answer
        else:
            rows, fields = None, {}
        if not isinstance(rows, list) or not all(isinstance(row, dict) for row in rows):
            raise self._error(
                f"page {page} of the calling task's numbers has no list of rows in `data`"
            )
        return rows, fields

    def _take_total(self, fields: dict[str, Any]) -> None:
        total = _count(fields, "total")
        if total is None:
            return
        if self.total is not None and total < self.total:
            self._verdict = self._incomplete(
                f"the calling task's number list said total {self.total}, then {total} (numbers "
                "removed during the read: offset paging may have skipped some)"
            )
        self.total = total

    def _why_rows_were_due(self, page: int, named_next_before: bool, names_next: bool) -> str:
        """Why the answers say the empty ``page`` should have held rows ("" when they do not).

        Laravel answers an empty list with ``last_page`` 1, so that alone is no promise.
        """
        if named_next_before:
            return "the previous answer named a next page"
        if names_next:
            return "its answer names a next page"
        if self.last_page is not None and self.last_page >= max(page, 2):
            return f"the answer said the last page is {self.last_page}"
        return self._more_due(page)

    def _more_due(self, page: int) -> str:
        """Why the answers so far say rows lie beyond ``page`` ("" when they do not)."""
        if self.last_page is not None and self.last_page > page:
            return f"the answer said the last page is {self.last_page}"
        if self.total is not None and self.rows < self.total:
            return f"the answer said total {self.total} and {self.rows} rows came in"
        return ""

    def _finished(self) -> bool | AgentApiTransientError:
        if self.total is not None and self.rows != self.total:
            return self._incomplete(
                f"the calling task's number list said total {self.total} but {self.rows} rows came "
                f"in {self.pages} pages"
            )
        return False

    def _incomplete(self, why: str) -> AgentApiIncompleteRead:
        return AgentApiIncompleteRead(f"incomplete read: {why}", path=self.path)

    def _error(self, message: str) -> AgentApiTransientError:
        return AgentApiTransientError(message, maybe_accepted=False, path=self.path)
