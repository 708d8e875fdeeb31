"""The schedule of one run's looks at its batches' outcomes (``core.callback_watch``)."""

from __future__ import annotations

from lead_load.core.callback_watch import CallbackWatch


def plan(*statuses: str, unique_ids: dict[int, str | None] | None = None) -> list[dict]:
    ids = unique_ids or {}
    return [
        {"batch_no": n, "status": s, "unique_id": ids.get(n, f"u{n}")}
        for n, s in enumerate(statuses)
    ]


def watch(**kwargs) -> CallbackWatch:
    return CallbackWatch(
        **{"timeout": 100.0, "poll_interval": 2.0, "lost_answer_grace": 5.0, **kwargs}
    )


def test_submitted_batches_join_at_once_and_unposted_ones_count_as_outstanding():
    w = watch()
    w.update(plan("submitted", "planned", "sending", "failed", "processed"), now=0)
    assert [b.batch_no for b in w.due(0)] == [0]
    assert w.posts_outstanding == 3
    assert w.settled_elsewhere == {4}
    assert w.planned == 5


def test_a_batch_is_looked_at_on_a_growing_schedule_and_a_skipped_poll_comes_back_soon():
    w = watch(backoff=2.0, max_poll_interval=5.0)
    w.update(plan("submitted"), now=0)
    (batch,) = w.due(0)
    w.looked(batch, 0)
    assert w.due(1.9) == [] and w.due(2.0) == [batch]
    w.looked(batch, 2)  # next in 4 s
    assert w.due(5.9) == [] and w.due(6.0) == [batch]
    w.looked(batch, 6)  # next in 5 s (the cap), not 8
    assert w.due(10.9) == [] and w.due(11.0) == [batch]
    w.looked(batch, 11, skipped=True)  # the rate limit was busy: again at the first pace
    assert w.due(12.9) == [] and w.due(13.0) == [batch]
    assert batch.looks == 3


def test_a_lost_answer_is_first_looked_at_after_the_grace():
    w = watch()
    w.update(plan("submitted", unique_ids={0: None}), now=10)
    assert w.due(14.9) == []
    (batch,) = w.due(15)
    assert batch.unique_id is None


def test_a_batch_past_its_own_timeout_is_given_up_on_and_not_watched_again():
    w = watch(timeout=30)
    w.update(plan("submitted"), now=0)
    w.update(plan("submitted", "submitted"), now=20)  # batch 1 joins later: its own clock
    assert [b.batch_no for b in w.expire(30)] == [0]
    w.update(plan("submitted", "submitted"), now=31)
    assert list(w.waiting) == [1] and list(w.timed_out) == [0]
    assert [b.batch_no for b in w.expire(50)] == [1]
    assert w.summary()["timed_out"] == [0, 1]


def test_batches_settled_by_someone_else_leave_the_watch_and_are_counted_apart():
    w = watch()
    w.update(plan("submitted", "submitted"), now=0)
    (first, _) = w.due(0)
    w.settle(first, {"imported": 2})
    w.update(plan("processed", "carried_over"), now=1)  # batch 1 by another run
    assert w.waiting == {}
    summary = w.summary()
    assert (summary["recorded"], summary["imported"], summary["settled_elsewhere"]) == (1, 2, 1)


def test_a_given_up_batch_that_a_copy_settles_is_no_longer_named_as_given_up():
    w = watch(timeout=1)
    w.update(plan("submitted"), now=0)
    w.expire(2)
    w.update(plan("processed"), now=3)
    assert w.summary()["timed_out"] == [] and w.settled_elsewhere == {0}


def test_the_sleep_ends_at_the_next_look_or_deadline_and_never_after_the_longest():
    w = watch(timeout=3)
    assert w.seconds_to_next_look(0, longest=2) == 2
    w.update(plan("submitted"), now=0)
    (batch,) = w.due(0)
    w.looked(batch, 0)  # next look at 2, deadline at 3
    assert w.seconds_to_next_look(0.5, longest=10) == 1.5
    assert w.seconds_to_next_look(5, longest=10) == 0


def test_a_batch_this_watch_settled_does_not_rejoin_from_a_plan_read_before_its_recording():
    w = watch()
    w.update(plan("submitted", "submitted"), now=0)
    first, _ = w.due(0)
    w.settle(first, {"imported": 200})
    w.update(plan("submitted", "submitted"), now=1)  # read before the recording committed
    assert [b.batch_no for b in w.due(1)] == [1]
    assert w.summary()["recorded"] == 1 and w.summary()["imported"] == 200
