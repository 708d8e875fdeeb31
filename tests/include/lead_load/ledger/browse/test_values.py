"""The values every view hands out alike: a page of a longer list, and timestamps in UTC."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from lead_load.ledger.browse.values import MAX_PER_PAGE, Page, in_utc, page_bounds


@pytest.mark.parametrize(
    ("total", "per_page", "pages"), [(0, 20, 1), (1, 20, 1), (20, 20, 1), (21, 20, 2), (41, 20, 3)]
)
def test_a_list_has_at_least_one_page_and_a_partial_last_one(total, per_page, pages):
    assert Page([], total, 1, per_page).pages == pages


@pytest.mark.parametrize(
    ("asked", "given"),
    [
        ((3, 50), (3, 50)),
        ((0, 50), (1, 50)),
        ((-2, 0), (1, 1)),
        (("2", "10"), (2, 10)),
        ((1, 10_000), (1, MAX_PER_PAGE)),
    ],
)
def test_a_request_gets_a_page_from_one_and_at_most_the_longest_page(asked, given):
    assert page_bounds(*asked) == given


def test_a_timestamp_without_a_zone_is_read_as_utc_and_one_with_a_zone_is_kept():
    naive = datetime(2026, 11, 24, 8, 30)
    assert in_utc(naive) == naive.replace(tzinfo=UTC)
    shanghai = datetime(2026, 11, 24, 16, 30, tzinfo=timezone(timedelta(hours=8)))
    assert in_utc(shanghai) is shanghai
    assert in_utc(None) is None
