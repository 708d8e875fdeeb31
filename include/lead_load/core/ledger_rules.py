"""The ledger's rules, free of any database: what a lead's status may become, and when.

One ledger row per (calling task, lead, phone): a lead whose phone changed has a row for each
number it was extracted with, and the old number's row keeps its status (the platform has no
delete: a number imported once stays in the calling task). Statuses:

- ``staged``: valid, chosen for sending, not sent yet.
- ``sending``: a post of its batch is under way; if the worker dies after a POST started,
  the row becomes "maybe accepted" (``submitted`` with no ``unique_id``), never re-posted
  blindly.
- ``submitted``: the platform accepted its batch (``unique_id`` known; waiting for the
  callback), or may have: with no ``unique_id``, the post's answer was lost ("maybe
  accepted"), and only the calling task's number list settles the row (``imported`` when it shows
  the phone; ``staged`` again once the settle period passed without it).
- ``imported``: the platform's callback (or the calling task's number list) shows the number
  in the calling task.
- ``not_imported``: the callback of its batch did not list it (duplicate in the calling task,
  invalid, blacklisted: the platform does not say which). Final: sending the same number again would
  only be refused again.
- ``rejected``: not sent, with a reason (invalid phone, duplicate within the run, a phone on
  the suppression list, ...). A rejected row is staged again when a later run extracts the
  lead, with the same phone, in a valid form (and off the suppression list). Staging writes
  rejected rows in no batch; the only rejected rows that keep a ``batch_no`` are those a
  claim took out of their batch because their phone was suppressed after staging.

A phone is *active* in a calling task while a row holding it is staged, sending, submitted or
imported; the database enforces at most one active row per (calling task, phone), which is what
stops two runs (or a retry and a backfill) from sending the same number twice.
"""

from __future__ import annotations

from enum import StrEnum

from agent_api.endpoints import MAX_ROWS_PER_IMPORT


class Status(StrEnum):
    STAGED = "staged"
    SENDING = "sending"
    SUBMITTED = "submitted"
    IMPORTED = "imported"
    NOT_IMPORTED = "not_imported"
    REJECTED = "rejected"


ACTIVE_STATUSES = (Status.STAGED, Status.SENDING, Status.SUBMITTED, Status.IMPORTED)


class BatchStatus(StrEnum):
    """A batch of one run (``lead_load_batches``); the ledger's ``planning``,
    ``batch_lifecycle`` and ``settling`` are its only writers.

    ``planned -> sending -> submitted -> processed``; a post the platform certainly refused
    goes ``sending -> planned``; one whose answer was lost, or whose owner died after a POST
    started, goes ``sending -> submitted`` with no ``unique_id`` (maybe accepted, settled
    from the calling task's number list); one whose owner died before any POST goes back to
    ``planned``. ``failed``: the platform refused the post in a
    way no retry of it can change (the calling task or user unknown, the token rejected), its
    rows back to staged and the refusal in ``error``; a cleared post claims it again.
    ``carried_over``: a later run took the rows of this planned batch over because this run
    had finished or died (final).
    """

    PLANNED = "planned"
    SENDING = "sending"
    SUBMITTED = "submitted"
    PROCESSED = "processed"
    FAILED = "failed"
    CARRIED_OVER = "carried_over"


class RunState(StrEnum):
    """A run's row in ``lead_load_runs``: ``running`` while its lease is renewed."""

    RUNNING = "running"
    FINISHED = "finished"
    FAILED = "failed"  # ended, with the problems in its summary: its rows are free too


# A run that has not renewed its lease for this long is dead: its staged rows may be taken
# over. Every step of a live run renews it (each batch claim too), so only a run whose
# processes are all gone, or that waits longer than this between two steps, loses its rows;
# losing them is safe (claims are conditional), only untidy.
RUN_LEASE_SECONDS = 2 * 60 * 60
# Slack on a batch lease beyond the worst interval between two renewals (clock skew between
# hosts, a slow database, a process descheduled for a moment).
LEASE_MARGIN_SECONDS = 30.0


def batch_lease_seconds(request_timeout: float, backoff_max: float) -> float:
    """How long a claim on a batch lasts before another process may reconcile it.

    The owner renews the lease right before every POST attempt, so the lease only has to
    outlive what can happen between a renewal and the owner's next write: one request (up to
    ``request_timeout``), then the wait before a retry of a refused post (a backoff). Twice
    that, plus a margin: a live owner is never taken for dead, and a dead one is noticed
    within minutes (210 s with the connection's defaults).
    """
    one_cycle = request_timeout + max(backoff_max, 0.0)
    return 2 * one_cycle + LEASE_MARGIN_SECONDS


class StagingDecision(StrEnum):
    """What staging does with one valid, de-duplicated lead of a run."""

    STAGE_NEW = "stage_new"  # no row for this lead and phone yet: insert it as staged
    RESTAGE = "restage"  # it was rejected before and is valid now
    ALREADY_LOADED = "already_loaded"  # imported, or the platform said no before: nothing to do
    IN_FLIGHT = "in_flight"  # staged/sending/submitted by a run that is not finished
    PHONE_TAKEN = "phone_taken"  # another lead already holds this phone in the calling task
    SUPPRESSED = "suppressed"  # the phone is on the suppression list: never called


def decide_staging(
    existing_status: str | None,
    phone_holder: str | None,
    lead_id: str,
    suppressed: bool = False,
) -> StagingDecision:
    """Decide for one lead and phone from the ledger row of that lead and phone (if any),
    the lead holding the phone in the calling task (if any), and whether the phone is on the
    suppression list.

    The order of every decision about an extracted row, in one place:

    1. the row's own data (the transform, before staging): an invalid row is ``invalid``,
       whatever its phone;
    2. one lead per phone within the run (the transform per chunk, staging across chunks):
       the other leads are ``duplicate_in_run``, so a suppressed phone is rejected once, for
       the lead that stands for it;
    3. a row this run staged in an earlier try is left as it is (a claim takes it out of its
       batch if its phone is suppressed by then);
    4. here: a suppressed phone is ``SUPPRESSED`` before anything the ledger says about it
       (loaded already, in flight, taken by another lead);
    5. the ledger's decisions below. A lead with a new phone has no row for it yet, so it is
       staged, whatever happened to its old number; a number another lead holds is not sent
       again, whichever lead has it now.
    """
    if suppressed:
        return StagingDecision.SUPPRESSED
    if phone_holder is not None and phone_holder != lead_id:
        return StagingDecision.PHONE_TAKEN
    if existing_status is None:
        return StagingDecision.STAGE_NEW
    if existing_status == Status.REJECTED:
        return StagingDecision.RESTAGE
    if existing_status in (Status.IMPORTED, Status.NOT_IMPORTED):
        return StagingDecision.ALREADY_LOADED
    return StagingDecision.IN_FLIGHT


def outcome_statuses(
    sent_phones: list[str], imported: set[str], found_in_calling_task: set[str] | None = None
) -> dict[str, Status]:
    """Status of each sent phone once its batch is processed.

    ``found_in_calling_task`` are phones seen in the calling task's number list: after a lost
    answer, a number can be in the calling task through the lost copy of its batch while the
    callback of the re-posted copy says "not imported".
    """
    also_present = found_in_calling_task or set()
    return {
        phone: Status.IMPORTED
        if phone in imported or phone in also_present
        else Status.NOT_IMPORTED
        for phone in sent_phones
    }


def batch_count(rows: int, batch_size: int) -> int:
    if not 1 <= batch_size <= MAX_ROWS_PER_IMPORT:
        raise ValueError(
            f"batch_size must be between 1 and {MAX_ROWS_PER_IMPORT}, got {batch_size}"
        )
    return -(-rows // batch_size)


def check_map_limit(batches: int, max_map_length: int, carried_rows: int = 0) -> None:
    """Fail before anything is sent when the batches would not fit Airflow's mapping limit.

    ``carried_rows``: rows of the plan that earlier runs left staged (a shorter window does
    not shrink those, so the advice says so).
    """
    if batches <= max_map_length:
        return
    advice = (
        "Raise [core] max_map_length (AIRFLOW__CORE__MAX_MAP_LENGTH) or load a shorter window "
        "(window_start/window_end), then run again."
    )
    carried = ""
    if carried_rows:
        carried = (
            f" {carried_rows} of the rows to send were left staged by earlier runs and are "
            "carried over by this one, whatever its window."
        )
        advice = (
            "Raise [core] max_map_length (AIRFLOW__CORE__MAX_MAP_LENGTH), then run again; a "
            "shorter window does not shrink what is carried over."
        )
    raise ValueError(
        f"{batches} batches to send, but Airflow maps at most {max_map_length} task "
        f"instances per task ([core] max_map_length).{carried} Nothing was sent and the "
        f"leads stay staged. {advice}"
    )


def first_batch_no(batch_nos: list[int]) -> int:
    """The first number of a plan whose batch numbers run consecutively from it, so that
    map index ``i`` is batch ``first + i`` (how a task that starts in the triggerer finds its
    batch without reading the whole plan)."""
    if not batch_nos:
        raise ValueError("an empty plan has no first batch")
    first = batch_nos[0]
    if list(batch_nos) != list(range(first, first + len(batch_nos))):
        raise ValueError(f"batch numbers are not consecutive: {batch_nos[:5]}...")
    return first
