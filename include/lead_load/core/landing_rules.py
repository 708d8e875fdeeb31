"""The landing check's rules, free of any database and of Airflow: ledger rows and the task's
number list in, disagreements and what may be repaired out.

The platform's number list is the only evidence the check has, so a repair is allowed only
where that list proves the ledger wrong:

- ``not_imported`` but the phone is in the task: the number landed (the list says so), and no
  other lead of the ledger explains it -> ``imported``.
- ``imported`` but the phone is not in the task: the list says it is not there -> ``staged``,
  so that a later run sends it again.
- ``submitted`` but not in the task: the platform may still be processing the batch; nothing
  is proven yet, so it is only reported.
- ``staged``/``sending`` but already in the task: in flight; the run that sends it (or the
  reconciliation of an interrupted post) settles it, so it is only reported.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum

from agent_api.masking import mask_phone
from lead_load.core.ledger_rules import Status

# The statuses of the partial unique index ux_lead_load_ledger_active_phone: one row per
# (task, phone) may hold one of them. Kept here so that this check depends only on the
# statuses' names (a test checks it matches ledger_rules.ACTIVE_STATUSES).
ACTIVE = frozenset({Status.STAGED, Status.SENDING, Status.SUBMITTED, Status.IMPORTED})
# Rows in these statuses were (or are about to be) sent, so the task's list says something
# about them; rejected rows never were.
COMPARED = (Status.STAGED, Status.SENDING, Status.SUBMITTED, Status.IMPORTED, Status.NOT_IMPORTED)

REASON_FOUND = "landing check: found in the task"
REASON_ABSENT = "landing check: absent from the task"


class Kind(StrEnum):
    """How a ledger row disagrees with the task's number list."""

    NOT_IMPORTED_BUT_PRESENT = "not_imported_but_present"
    IMPORTED_BUT_ABSENT = "imported_but_absent"
    SUBMITTED_BUT_ABSENT = "submitted_but_absent"
    IN_FLIGHT_BUT_PRESENT = "in_flight_but_present"


# Not a disagreement of its own: a repair that found its row changed since it was read.
CHANGED = "changed_during_check"


@dataclass(frozen=True)
class Row:
    """What the check reads of one ledger row. ``updated_at`` is what the repair's WHERE
    repeats, with the status, to leave alone a row that changed since it was read."""

    api_task_id: str
    lead_id: str
    phone: str
    status: str
    updated_at: datetime | None = None


@dataclass(frozen=True)
class Repair:
    status: Status
    reason: str
    clear_batch: bool = False  # a row sent again needs a new batch and unique_id


@dataclass(frozen=True)
class Finding:
    """One disagreement: the row, its kind, and either the repair the list proves or ``note``
    saying why it cannot be repaired."""

    row: Row
    kind: Kind
    repair: Repair | None = None
    note: str = ""


def disagreement(status: str, present: bool) -> Kind | None:
    """The disagreement between a ledger status and the phone's presence in the task."""
    if present:
        if status == Status.NOT_IMPORTED:
            return Kind.NOT_IMPORTED_BUT_PRESENT
        if status in (Status.STAGED, Status.SENDING):
            return Kind.IN_FLIGHT_BUT_PRESENT
        return None
    if status == Status.IMPORTED:
        return Kind.IMPORTED_BUT_ABSENT
    if status == Status.SUBMITTED:
        return Kind.SUBMITTED_BUT_ABSENT
    return None


def compare(rows: Iterable[Row], task_phones: set[str]) -> Iterator[tuple[Row, Kind]]:
    """Every row that disagrees with the task's phones, with its kind."""
    for row in rows:
        kind = disagreement(row.status, row.phone in task_phones)
        if kind is not None:
            yield row, kind


def judge(row: Row, kind: Kind, others: Sequence[Row], list_read_at: datetime) -> Finding | None:
    """What to do about one disagreement.

    ``others``: the task's other ledger rows with the same phone that are active or
    ``not_imported`` (read after the list). ``list_read_at``: when reading the task's number
    list began. None means the row agrees after all.
    """
    holders = [o for o in others if o.status in ACTIVE]
    if kind is Kind.NOT_IMPORTED_BUT_PRESENT:
        if any(o.status == Status.IMPORTED for o in holders):
            return None  # the task holds the number through that lead: the refusal was right
        if holders:
            return Finding(row, kind, note=f"the phone is held by {_leads(holders)}")
        twins = [o for o in others if o.status == Status.NOT_IMPORTED]
        if twins:
            return Finding(
                row,
                kind,
                note=f"{_leads(twins)} also have this phone as not_imported: which lead the "
                "task holds is not known",
            )
        return Finding(row, kind, Repair(Status.IMPORTED, REASON_FOUND))
    if kind is Kind.IMPORTED_BUT_ABSENT:
        if row.updated_at is None or _utc(row.updated_at) >= list_read_at:
            # Imported after the list was read: the list may simply predate it.
            return Finding(
                row, kind, note="imported after the task's number list was read: check again"
            )
        if holders:  # the unique index rules this out; never stage a second active row
            return Finding(row, kind, note=f"the phone is held by {_leads(holders)}")
        return Finding(row, kind, Repair(Status.STAGED, REASON_ABSENT, clear_batch=True))
    if kind is Kind.SUBMITTED_BUT_ABSENT:
        return Finding(row, kind, note="awaiting the platform: its batch may not be processed yet")
    if row.status == Status.SENDING:
        note = "sending but already in the task: the reconciliation of its post settles it"
    else:
        note = "staged but already in the task: the platform will refuse it as a duplicate"
    return Finding(row, kind, note=note)


def _leads(rows: Sequence[Row]) -> str:
    return ", ".join(f"lead {o.lead_id} ({o.status})" for o in rows)


def _utc(moment: datetime) -> datetime:
    """SQLite gives back naive datetimes; the ledger writes them in UTC."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


@dataclass
class LandingReport:
    """What a landing check found and did. ``pending`` are provable repairs not applied (a
    report-only check); ``changed`` are repairs whose row changed after it was read."""

    scope: list[str] = field(default_factory=list)
    checked: int = 0
    in_task: int = 0  # checked rows whose phone is in the task's number list
    repaired: list[Finding] = field(default_factory=list)
    pending: list[Finding] = field(default_factory=list)
    unrepairable: list[Finding] = field(default_factory=list)
    changed: list[Finding] = field(default_factory=list)

    @property
    def disagreements(self) -> int:
        return len(self.repaired) + len(self.pending) + len(self.unrepairable) + len(self.changed)

    @property
    def ok(self) -> bool:
        """Nothing is left that disagrees (or might: a changed row was not re-checked)."""
        return not (self.pending or self.unrepairable or self.changed)

    def counts(self) -> dict:
        """Small enough for an XCom and the run summary."""
        unrepaired = Counter(str(f.kind) for f in self.pending + self.unrepairable)
        if self.changed:
            unrepaired[CHANGED] = len(self.changed)
        return {
            "checked": self.checked,
            "in_task": self.in_task,
            "agree": self.checked - self.disagreements,
            "repaired": dict(sorted(Counter(str(f.kind) for f in self.repaired).items())),
            "unrepaired": dict(sorted(unrepaired.items())),
        }

    def repaired_lines(self, limit: int = 50) -> list[str]:
        return _limited(
            [f"{_describe(f)}: set to {f.repair.status}" for f in self.repaired if f.repair],
            limit,
        )

    def unrepaired_lines(self, limit: int = 50) -> list[str]:
        """One line per disagreement left, phones masked."""
        lines = [
            f"{_describe(f)}: provable, would set {f.repair.status} (not repaired: report only)"
            for f in self.pending
            if f.repair
        ]
        lines += [f"{_describe(f)}: {f.note}" for f in self.unrepairable]
        lines += [f"{_describe(f)}: changed during the check, left alone" for f in self.changed]
        return _limited(lines, limit)

    def items(self) -> list[dict]:
        """Every finding as a dict (phones masked), for machine output."""
        groups = (
            ("repaired", self.repaired),
            ("pending", self.pending),
            ("unrepairable", self.unrepairable),
            (CHANGED, self.changed),
        )
        return [
            {
                "outcome": outcome,
                "kind": str(f.kind),
                "lead_id": f.row.lead_id,
                "phone": mask_phone(f.row.phone),
                "status": f.row.status,
                "repair": str(f.repair.status) if f.repair else None,
                "note": f.note,
            }
            for outcome, findings in groups
            for f in findings
        ]

    def merge(self, other: LandingReport) -> LandingReport:
        return LandingReport(
            self.scope + other.scope,
            self.checked + other.checked,
            self.in_task + other.in_task,
            self.repaired + other.repaired,
            self.pending + other.pending,
            self.unrepairable + other.unrepairable,
            self.changed + other.changed,
        )


def _describe(finding: Finding) -> str:
    row = finding.row
    return f"{finding.kind}: lead {row.lead_id}, phone {mask_phone(row.phone)}, {row.status}"


def _limited(lines: list[str], limit: int) -> list[str]:
    if len(lines) <= limit:
        return lines
    return [*lines[:limit], f"... and {len(lines) - limit} more"]
