"""NumberListReading: how far a task's number list is read, from what each answer says."""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from agent_api.exceptions import AgentApiIncompleteRead
from agent_api.number_pages import NumberListReading

_row_ids = itertools.count(1)


def page(count: int, **fields: Any) -> dict[str, Any]:
    """An answer of ``count`` new rows (never a repeat of an earlier page) and ``fields``."""
    return {"data": [{"phone": f"139{next(_row_ids):08d}"} for _ in range(count)], **fields}


def read(answers: list[Any], asked: int = 1000) -> tuple[int, list[bool]]:
    """Drive the reading as iter_calling_task_numbers does; returns (rows taken, read_on
    verdicts)."""
    reading = NumberListReading(asked, path="/task/t1/number")
    rows, verdicts = 0, []
    for number, answer in enumerate(answers, start=1):
        rows += len(reading.take(number, answer))
        verdicts.append(reading.read_on())
        if not verdicts[-1]:
            break
    return rows, verdicts


def test_a_capped_page_without_page_fields_is_read_on_from_until_an_empty_page():
    # 100 rows to a request for 1000 does not end the list; only the empty page does.
    assert read([page(100), page(100), page(0), page(100)]) == (200, [True, True, False])
    # A bare list answer, no envelope at all, is read the same way.
    assert read([page(100)["data"], page(100)["data"], []]) == (200, [True, True, False])


def test_without_page_fields_a_page_shorter_than_an_earlier_one_ends_the_list():
    assert read([page(100), page(40), page(100)]) == (140, [True, False])


def test_per_page_from_the_answer_sets_the_page_size():
    reading = NumberListReading(1000)
    reading.take(1, page(100, per_page="100"))
    assert reading.page_size == 100
    # A first page shorter than the answer's per_page ends the list at once...
    assert read([page(60, per_page=100), page(60)]) == (60, [False])
    # ...where without per_page it would be read on from (the platform may cap it).
    assert read([page(60), page(0)]) == (60, [True, False])
    assert read([page(50, per_page=50), page(50, per_page=50), page(30, per_page=50)]) == (
        130,
        [True, True, False],
    )


def test_total_keeps_the_read_going_and_ends_it():
    assert read([page(100, total=250), page(100, total=250), page(50, total=250)]) == (
        250,
        [True, True, False],
    )
    # A full page ends the list once the rows reach total: no extra request.
    assert read([page(100, total=200), page(100, total=200), page(0)]) == (200, [True, False])


def test_last_page_keeps_the_read_going_and_ends_it():
    answers = [page(100, last_page=3) for _ in range(4)]
    assert read(answers) == (300, [True, True, False])


def test_next_page_url_keeps_the_read_going_and_ends_it():
    answers = [
        page(100, next_page_url="https://p.example/number?page=2"),
        page(40, next_page_url="https://p.example/number?page=3"),  # short, yet more named
        page(100, next_page_url=None),
        page(100),
    ]
    assert read(answers) == (240, [True, True, False])


@pytest.mark.parametrize(
    "answers",
    [
        [page(100, total=250), page(100, total=250), page(0, total=250)],
        [page(100, last_page=3), page(0, last_page=3)],
        [page(100, next_page_url="https://p.example/number?page=2"), page(0)],
    ],
    ids=["total", "last_page", "next_page_url"],
)
def test_an_empty_page_where_more_was_due_raises(answers):
    with pytest.raises(AgentApiIncompleteRead, match="came back empty") as raised:
        read(answers)
    assert raised.value.maybe_accepted is False


def test_a_short_page_before_the_reported_total_raises():
    with pytest.raises(AgentApiIncompleteRead, match="fewer than the page size of 100"):
        read([page(100, total=250), page(40, total=250)])


def test_a_row_count_other_than_total_raises():
    with pytest.raises(AgentApiIncompleteRead, match="said total 150 but 160 rows"):
        read([page(100, total=150), page(60, total=150)])


def test_a_falling_total_raises_but_the_rows_are_still_handed_on():
    reading = NumberListReading(1000)
    assert len(reading.take(1, page(100, total=250))) == 100
    assert reading.read_on() is True
    assert len(reading.take(2, page(100, total=200))) == 100
    with pytest.raises(AgentApiIncompleteRead, match="said total 250, then 200"):
        reading.read_on()
