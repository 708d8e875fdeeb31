"""The landing check's rules, free of any database and of Airflow: ledger rows and the
calling task's number list in, disagreements and what may be repaired out.

The platform's number list is the only evidence the check has, so a repair is allowed only
where that list proves the ledger wrong:

- ``not_imported`` but the phone is in the calling task: the number landed (the list says
  so), and no other lead of the ledger explains it -> ``imported``.
- ``submitted`` with no ``unique_id`` ("maybe accepted": its post's answer was lost) and the
  phone is in the calling task: the post landed -> ``imported``.
- ``imported`` but the phone is not in the calling task: the list says it is not there ->
  ``staged``, so that a later run sends it again; only when the read could include the number
  (the row's batch was posted within the read's bounds) and the row was imported well before
  the read (``IMPORT_MARGIN``). And when more than a small share of the imported rows a read
  covers look absent (``untrusted``), the read itself is suspect and nothing is repaired at all.
- ``submitted`` but not in the calling task: the platform may still be processing the batch
  (or, for a maybe-accepted row, may have it); nothing is proven yet, so it is only reported. A
  maybe-accepted row is never staged again here (``settle_from_number_list`` does that, after
  the settle period).
- ``staged``/``sending`` but already in the calling task: in flight; the run that sends it (or the
  reconciliation of an interrupted post) settles it, so it is only reported.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from agent_api.masking import mask_phone
from lead_load.core.ledger_rules import Status

# The statuses of the partial unique index ux_lead_load_ledger_active_phone: one row per
# (calling task, phone) may hold one of them. Kept here so that this check depends only on the
# statuses' names (a test checks it matches ledger_rules.ACTIVE_STATUSES).
ACTIVE = frozenset({Status.STAGED, Status.SENDING, Status.SUBMITTED, Status.IMPORTED})
# Rows in these statuses were (or are about to be) sent, so the calling task's list says
# something
# about them; rejected rows never were.
COMPARED = (Status.STAGED, Status.SENDING, Status.SUBMITTED, Status.IMPORTED, Status.NOT_IMPORTED)

# Written into ledger rows: the words earlier releases wrote ("the task" is the calling task).
REASON_FOUND = "landing check: found in the task"
REASON_MAYBE_FOUND = "landing check: found in the task (its post's answer was lost)"
REASON_ABSENT = "landing check: absent from the task"

# An imported row is judged absent only if it was imported this long before the number list
# was read (both on the database's clock): a number the platform has just imported may not
# be in its list yet, and the workers that stamp the ledger may run a little ahead of the
# database. Ten minutes is far beyond either, and costs nothing: the next check sees it.
IMPORT_MARGIN = timedelta(minutes=10)
# Above this share of the imported rows a read covers (and at least UNTRUSTED_MIN_ROWS of
# them), "absent" says more about the read than about the rows (a calling task recreated or
# emptied, a platform answering a partial list as if it were whole): nothing is repaired.
# A real loss (a number deleted on the platform) touches a few rows, not one in twenty.
UNTRUSTED_SHARE = 0.05
UNTRUSTED_MIN_ROWS = 3


class Kind(StrEnum):
    """How a ledger row disagrees with the calling task's number list."""

    NOT_IMPORTED_BUT_PRESENT = "not_imported_but_present"
    MAYBE_ACCEPTED_BUT_PRESENT = "maybe_accepted_but_present"
    IMPORTED_BUT_ABSENT = "imported_but_absent"
    SUBMITTED_BUT_ABSENT = "submitted_but_absent"
    IN_FLIGHT_BUT_PRESENT = "in_flight_but_present"


# Not a disagreement of its own: a repair that found its row changed since it was read.
CHANGED = "changed_during_check"


@dataclass(frozen=True)
class Row:
    """What the check reads of one ledger row. ``updated_at`` is what the repair's WHERE
    repeats, with the status, to leave alone a row that changed since it was read;
    ``posted_at`` is when its batch was posted (None: no batch, or not known)."""

    api_task_id: str
    lead_id: str
    phone: str
    status: str
    updated_at: datetime | None = None
    unique_id: str | None = None
    posted_at: datetime | None = None

    @property
    def maybe_accepted(self) -> bool:
        """Submitted, but its post's answer was lost: the platform may have it or not."""
        return self.status == Status.SUBMITTED and self.unique_id is None


@dataclass(frozen=True)
class ListRead:
    """One complete read of a calling task's number list: when it began (the database's clock) and
    the bounds it asked for (``start_at``/``end_at`` before the hook's day of slack; None:
    unbounded)."""

    started_at: datetime
    start_at: datetime | None = None
    end_at: datetime | None = None

    def covers(self, row: Row) -> bool:
        """Whether the read could include the row's number: its batch was posted within the
        bounds (a number is imported after its post, and before the row said imported)."""
        if self.start_at is None:
            return True
        return row.posted_at is not None and _utc(row.posted_at) >= _utc(self.start_at)


@dataclass
class Tally:
    """What one read says about the rows compared with it, as they are added."""

    checked: int = 0
    in_calling_task: int = 0
    imported: int = 0  # imported rows the read covers and that were imported before it
    absent: int = 0  # ... of which the read does not show
    not_checked: int = 0  # imported rows absent from a read that could not include them

    def add(
        self, rows: Iterable[Row], calling_task_phones: set[str], read: ListRead
    ) -> list[tuple[Row, Kind]]:
        """Count ``rows`` and return those that disagree with the list (see ``compare``),
        leaving out the imported rows the read's bounds could not include."""
        suspects = []
        for row in rows:
            present = row.phone in calling_task_phones
            self.checked += 1
            self.in_calling_task += present
            if row.status == Status.IMPORTED:
                if not read.covers(row):
                    self.not_checked += not present
                    continue
                if row.updated_at is not None and _utc(row.updated_at) < read.started_at:
                    self.imported += 1
                    self.absent += not present
            kind = disagreement(row.status, present, maybe_accepted=row.maybe_accepted)
            if kind is not None:
                suspects.append((row, kind))
        return suspects

    def untrusted(self) -> str | None:
        """Why the read is not to be trusted (see ``untrusted``), or None."""
        return untrusted(self.absent, self.imported)


def untrusted(absent: int, imported: int) -> str | None:
    """Why a read that misses ``absent`` of the ``imported`` rows it covers is not to be
    trusted, or None: more than ``UNTRUSTED_SHARE`` of them, and at least
    ``UNTRUSTED_MIN_ROWS``."""
    if absent < UNTRUSTED_MIN_ROWS or absent <= UNTRUSTED_SHARE * imported:
        return None
    return (
        f"{absent} of the {imported} imported rows it covers ({absent / imported:.0%}) are "
        f"absent from it, more than {UNTRUSTED_SHARE:.0%}: the calling task may have been "
        "recreated or emptied, or the platform answered a partial list as a whole one"
    )


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


def disagreement(status: str, present: bool, *, maybe_accepted: bool = False) -> Kind | None:
    """The disagreement between a ledger status and the phone's presence in the calling task
    (``maybe_accepted``: a submitted row whose post's answer was lost)."""
    if present:
        if status == Status.NOT_IMPORTED:
            return Kind.NOT_IMPORTED_BUT_PRESENT
        if status == Status.SUBMITTED and maybe_accepted:
            return Kind.MAYBE_ACCEPTED_BUT_PRESENT
        if status in (Status.STAGED, Status.SENDING):
            return Kind.IN_FLIGHT_BUT_PRESENT
        return None
    if status == Status.IMPORTED:
        return Kind.IMPORTED_BUT_ABSENT
    if status == Status.SUBMITTED:
        return Kind.SUBMITTED_BUT_ABSENT
    return None


def compare(rows: Iterable[Row], calling_task_phones: set[str]) -> Iterator[tuple[Row, Kind]]:
    """Every row that disagrees with the calling task's phones, with its kind."""
    for row in rows:
        kind = disagreement(
            row.status, row.phone in calling_task_phones, maybe_accepted=row.maybe_accepted
        )
        if kind is not None:
            yield row, kind


def judge(row: Row, kind: Kind, others: Sequence[Row], read: ListRead) -> Finding | None:
    """What to do about one disagreement.

    ``others``: the calling task's other ledger rows with the same phone that are active or
    ``not_imported`` (read after the list). ``read``: the complete read of the calling task's number
    list the row was compared with (an ``imported`` row it does not cover is not judged:
    see ``Tally.add``). None means the row agrees after all.
    """
    holders = [o for o in others if o.status in ACTIVE]
    if kind is Kind.NOT_IMPORTED_BUT_PRESENT:
        if any(o.status == Status.IMPORTED for o in holders):
            return (
                None  # the calling task holds the number through that lead: the refusal was right
            )
        if holders:
            return Finding(row, kind, note=f"the phone is held by {_leads(holders)}")
        twins = [o for o in others if o.status == Status.NOT_IMPORTED]
        if twins:
            return Finding(
                row,
                kind,
                note=f"{_leads(twins)} also have this phone as not_imported: which lead the "
                "calling task holds is not known",
            )
        return Finding(row, kind, Repair(Status.IMPORTED, REASON_FOUND))
    if kind is Kind.MAYBE_ACCEPTED_BUT_PRESENT:
        if holders:  # the unique index rules this out: never two active rows of one phone
            return Finding(row, kind, note=f"the phone is held by {_leads(holders)}")
        return Finding(row, kind, Repair(Status.IMPORTED, REASON_MAYBE_FOUND))
    if kind is Kind.IMPORTED_BUT_ABSENT:
        if row.updated_at is None or _utc(row.updated_at) >= read.started_at:
            # Imported after the list was read: the list may simply predate it.
            return Finding(
                row,
                kind,
                note="imported after the calling task's number list was read: check again",
            )
        if _utc(row.updated_at) > read.started_at - IMPORT_MARGIN:
            return Finding(
                row,
                kind,
                note=f"imported less than {_minutes(IMPORT_MARGIN)} before the calling task's "
                "number list was read, which may not show it yet: check again",
            )
        if holders:  # the unique index rules this out; never stage a second active row
            return Finding(row, kind, note=f"the phone is held by {_leads(holders)}")
        return Finding(row, kind, Repair(Status.STAGED, REASON_ABSENT, clear_batch=True))
    if kind is Kind.SUBMITTED_BUT_ABSENT:
        if row.maybe_accepted:
            return Finding(
                row,
                kind,
                note="maybe accepted (its post's answer was lost), not in the calling task yet: "
                "never sent again by this check; a later run settles it from the list after "
                "LEAD_LOAD_SETTLE_SECONDS",
            )
        return Finding(row, kind, note="awaiting the platform: its batch may not be processed yet")
    if row.status == Status.SENDING:
        note = "sending but already in the calling task: the reconciliation of its post settles it"
    else:
        note = (
            "staged but already in the calling task: the list shows the number landed; not "
            "repaired (which lead it landed through is not proven): settle it before a run sends it"
        )
    return Finding(row, kind, note=note)


def _leads(rows: Sequence[Row]) -> str:
    return ", ".join(f"lead {o.lead_id} ({o.status})" for o in rows)


def _minutes(span: timedelta) -> str:
    return f"{span.total_seconds() / 60:g} minutes"


def _utc(moment: datetime) -> datetime:
    """SQLite gives back naive datetimes; the ledger writes them in UTC."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


@dataclass
class LandingReport:
    """What a landing check found and did. ``pending`` are provable repairs not applied (a
    report-only check); ``changed`` are repairs whose row changed after it was read;
    ``not_checked`` counts imported rows absent from a read whose bounds could not include
    them (their batch's post time is unknown or before the read's start): not judged."""

    scope: list[str] = field(default_factory=list)
    checked: int = 0
    in_calling_task: int = 0  # checked rows whose phone is in the calling task's number list
    repaired: list[Finding] = field(default_factory=list)
    pending: list[Finding] = field(default_factory=list)
    unrepairable: list[Finding] = field(default_factory=list)
    changed: list[Finding] = field(default_factory=list)
    not_checked: int = 0

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
            # The key keeps its name: the run summary and its readers know it.
            "in_task": self.in_calling_task,
            "agree": self.checked - self.disagreements - self.not_checked,
            "not_checked": self.not_checked,
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
            self.in_calling_task + other.in_calling_task,
            self.repaired + other.repaired,
            self.pending + other.pending,
            self.unrepairable + other.unrepairable,
            self.changed + other.changed,
            self.not_checked + other.not_checked,
        )


def _describe(finding: Finding) -> str:
    row = finding.row
    return f"{finding.kind}: lead {row.lead_id}, phone {mask_phone(row.phone)}, {row.status}"


def _limited(lines: list[str], limit: int) -> list[str]:
    if len(lines) <= limit:
        return lines
    return [*lines[:limit], f"... and {len(lines) - limit} more"]
