"""Which of a run's batches to look at for their outcome, and when (pure: no I/O, no clock).

One waiter watches every batch of a run instead of one sensor per batch: the scheduler then
checks one waiting task per run, not one per batch. A batch joins the watch when the ledger
first shows it submitted; each keeps its own schedule, as a sensor of its own would:

- with a ``unique_id``: its callback is polled at once, then at ``poll_interval`` growing by
  ``backoff`` up to ``max_poll_interval`` (most batches finish fast, a slow one is not
  hammered); a poll skipped because posts fill the rate limit comes again at the first pace;
- without one (its post's answer was lost): the calling task's number list is read after
  ``lost_answer_grace``, then on the same growing schedule;
- each has ``timeout`` seconds from the moment it joined; past that it is given up on for
  this run (it stays submitted in the ledger: a later run settles it).

The watch is done with the run once nothing it watches is still waiting and no batch of the
plan is still to be posted (``posts_outstanding``); whether a post that has not happened yet
will ever happen is Airflow's to say (a retry), so the waiter asks it then.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from lead_load.core.ledger_rules import BatchStatus

# Batches of the plan that a post may still move to submitted (a retry claims a refused one).
_NOT_POSTED_YET = {BatchStatus.PLANNED, BatchStatus.SENDING, BatchStatus.FAILED}


@dataclass
class WatchedBatch:
    batch_no: int
    unique_id: str | None  # None: its post's answer was lost; the number list settles it
    deadline: float
    next_look: float
    interval: float
    looks: int = 0
    failed_looks: int = 0  # in a row


@dataclass
class CallbackWatch:
    timeout: float
    poll_interval: float
    lost_answer_grace: float
    backoff: float = 1.5
    max_poll_interval: float = 60.0
    waiting: dict[int, WatchedBatch] = field(default_factory=dict)
    timed_out: dict[int, WatchedBatch] = field(default_factory=dict)
    settled: dict[int, dict[str, Any]] = field(default_factory=dict)
    # Batches the ledger showed settled without this watch (an earlier try, a copy).
    settled_elsewhere: set[int] = field(default_factory=set)
    posts_outstanding: int = 0
    planned: int = 0

    def update(self, plan: list[dict[str, Any]], now: float) -> None:
        """Take in the run's plan as the ledger shows it now (``batch_no``, ``status``,
        ``unique_id``): submitted batches join; batches settled by someone else leave."""
        self.planned = len(plan)
        self.posts_outstanding = 0
        for batch in plan:
            batch_no, status = int(batch["batch_no"]), batch["status"]
            if status in _NOT_POSTED_YET:
                self.posts_outstanding += 1
            elif status == BatchStatus.SUBMITTED:
                # A read older than this watch's own recording still says submitted: the
                # batch is not watched again (its recording would only find it settled).
                known = batch_no in self.waiting or batch_no in self.timed_out
                if not known and batch_no not in self.settled:
                    self._join(batch_no, batch.get("unique_id") or None, now)
            elif batch_no not in self.settled:  # processed or carried over, not by this watch
                self.waiting.pop(batch_no, None)
                self.timed_out.pop(batch_no, None)
                self.settled_elsewhere.add(batch_no)

    def _join(self, batch_no: int, unique_id: str | None, now: float) -> None:
        first = now if unique_id else now + self.lost_answer_grace
        self.waiting[batch_no] = WatchedBatch(
            batch_no, unique_id, now + self.timeout, first, self.poll_interval
        )

    def due(self, now: float) -> list[WatchedBatch]:
        """The waiting batches whose next look is due, earliest first."""
        return sorted(
            (b for b in self.waiting.values() if b.next_look <= now), key=lambda b: b.next_look
        )

    def looked(self, batch: WatchedBatch, now: float, *, skipped: bool = False) -> None:
        """A look found the batch still waiting (or was ``skipped`` for the rate limit)."""
        if skipped:
            batch.next_look = now + self.poll_interval
            return
        batch.looks += 1
        batch.next_look = now + batch.interval
        batch.interval = min(batch.interval * self.backoff, self.max_poll_interval)

    def look_failed(self, batch: WatchedBatch, now: float, retry_after: float = 0.0) -> int:
        """A look that failed and may be tried again; returns the failures in a row."""
        batch.failed_looks += 1
        self.looked(batch, now)
        batch.next_look = max(batch.next_look, now + retry_after)
        return batch.failed_looks

    def settle(self, batch: WatchedBatch, counts: dict[str, Any]) -> None:
        """The batch's outcome is recorded."""
        self.waiting.pop(batch.batch_no, None)
        self.settled[batch.batch_no] = counts

    def expire(self, now: float) -> list[WatchedBatch]:
        """Give up on the waiting batches whose time is over; returns them."""
        over = [b for b in self.waiting.values() if b.deadline <= now]
        for batch in over:
            del self.waiting[batch.batch_no]
            self.timed_out[batch.batch_no] = batch
        return over

    def seconds_to_next_look(self, now: float, longest: float) -> float:
        """How long the waiter may sleep before a look or a deadline is due."""
        times = [min(b.next_look, b.deadline) for b in self.waiting.values()]
        return max(0.0, min([longest, *(t - now for t in times)]))

    def summary(self) -> dict[str, Any]:
        """The waiter's XCom: counts, and the batches given up on (no phone numbers)."""
        recorded = self.settled.values()
        return {
            "batches": self.planned,
            "recorded": len(self.settled),
            "imported": sum(int(c.get("imported") or 0) for c in recorded),
            "from_number_list": sum(1 for c in recorded if c.get("from_task_list")),
            "settled_elsewhere": len(self.settled_elsewhere),
            "not_posted": self.posts_outstanding,
            "timed_out": sorted(self.timed_out),
        }
