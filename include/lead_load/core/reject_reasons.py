"""Reject reasons: why a row is not sent, in one definition.

A reason is stored as text (``lead_load_rejects.reason``, the ledger's ``reason``): its kind
alone (``not_mobile``), or its kind and a detail, written ``kind: detail`` for what is wrong
with the row (``invalid_field: grade_id must be an integer (got 'abc')``) or ``kind (detail)``
for the other row it yields to (``duplicate_in_run (kept lead 7)``). Every writer formats
through ``RejectReason`` and every counter, page and note groups through ``kind_of``, so a
kind is spelled, and grouped, the same everywhere.

Each kind counts in one figure of the run's summary (``FIGURE_OF_KIND``): most are
``invalid`` (bad data), ``duplicate_in_run`` is ``duplicates_in_run`` (the phone is sent for
a more recent lead of the run), ``phone_already_loaded`` is ``already_loaded`` (another lead
holds the phone in the calling task), ``suppressed`` is ``suppressed`` (the phone is on the
suppression list, docs/suppression.md: no bad data, so neither ``invalid`` nor counted towards
``max_reject_ratio``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum


class RejectKind(StrEnum):
    MISSING_LEAD_ID = "missing_lead_id"
    DUPLICATE_LEAD_ID = "duplicate_lead_id"
    MISSING_PHONE = "missing_phone"
    NOT_A_PHONE = "not_a_phone"
    NOT_MOBILE = "not_mobile"
    INVALID_FIELD = "invalid_field"
    COMPONENT_INVALID = "component_invalid"
    DUPLICATE_IN_RUN = "duplicate_in_run"
    PHONE_ALREADY_LOADED = "phone_already_loaded"
    SUPPRESSED = "suppressed"


# The summary figure each kind is counted in; a kind not named here is "invalid".
FIGURE_OF_KIND = {
    RejectKind.DUPLICATE_IN_RUN: "duplicates_in_run",
    RejectKind.PHONE_ALREADY_LOADED: "already_loaded",
    RejectKind.SUPPRESSED: "suppressed",
}
INVALID_KINDS = tuple(kind for kind in RejectKind if kind not in FIGURE_OF_KIND)
# What a reason without text groups under (a row written by hand, or by a broken release).
NO_REASON = "(no reason)"
# A kind ends at the first space, colon or parenthesis of its reason.
_KIND = re.compile(r"[^\s:(]*")


@dataclass(frozen=True)
class RejectReason:
    kind: str
    detail: str | None = None
    # True: the detail names the row this one yields to, written "kind (detail)".
    yields: bool = False

    def __str__(self) -> str:
        if not self.detail:
            return str(self.kind)
        return f"{self.kind} ({self.detail})" if self.yields else f"{self.kind}: {self.detail}"

    @classmethod
    def invalid_field(cls, detail: str) -> RejectReason:
        return cls(RejectKind.INVALID_FIELD, detail)

    @classmethod
    def duplicate_in_run(cls, kept_lead: object) -> RejectReason:
        return cls(RejectKind.DUPLICATE_IN_RUN, f"kept lead {kept_lead}", yields=True)

    @classmethod
    def phone_already_loaded(cls, holder: object) -> RejectReason:
        return cls(RejectKind.PHONE_ALREADY_LOADED, f"by lead {holder}", yields=True)

    @classmethod
    def suppressed(cls, batch_no: int | None = None) -> RejectReason:
        """The phone is on the suppression list: found by staging (no detail), or by the claim
        of batch ``batch_no``, which took the row out of that batch before posting it (the
        list grew after the row was staged)."""
        detail = None if batch_no is None else f"taken out of batch {batch_no} before posting"
        return cls(RejectKind.SUPPRESSED, detail)


# The reasons staging writes in SQL too, with "{}" where the other lead goes.
DUPLICATE_IN_RUN_TEMPLATE = str(RejectReason.duplicate_in_run("{}"))
PHONE_ALREADY_LOADED_TEMPLATE = str(RejectReason.phone_already_loaded("{}"))
SUPPRESSED_REASON = str(RejectReason.suppressed())


def kind_of(reason: str | None) -> str:
    """The kind of a stored reason: ``invalid_field: x`` and ``invalid_field`` are both
    ``invalid_field``; an empty reason is ``NO_REASON``."""
    found = _KIND.match((reason or "").strip())
    return (found.group() if found else "") or NO_REASON


def parse(reason: str | None) -> RejectReason:
    """A stored reason back as its kind and detail."""
    text = (reason or "").strip()
    kind = kind_of(text)
    rest = text[len(kind) :].strip() if kind != NO_REASON else ""
    if rest.startswith("(") and rest.endswith(")"):
        return RejectReason(kind, rest[1:-1], yields=True)
    return RejectReason(kind, rest.removeprefix(":").strip() or None)


def figure_of(kind: str) -> str:
    """The summary figure rows of ``kind`` are counted in."""
    return FIGURE_OF_KIND.get(kind, "invalid")  # type: ignore[call-overload]


def by_kind(counts_by_reason: dict[str | None, int]) -> dict[str, int]:
    """Counts per stored reason (or per SQL-grouped prefix of it) summed per kind, most
    frequent first."""
    kinds: dict[str, int] = {}
    for reason, count in counts_by_reason.items():
        kind = kind_of(reason)
        kinds[kind] = kinds.get(kind, 0) + count
    return dict(sorted(kinds.items(), key=lambda item: (-item[1], item[0])))


def invalid_by_kind(kinds: dict[str, int]) -> dict[str, int]:
    """Of counts per kind, the kinds counted as ``invalid``."""
    return {kind: n for kind, n in kinds.items() if figure_of(kind) == "invalid"}
