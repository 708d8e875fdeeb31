"""AgentApiHook against the simulator over HTTP: endpoints, errors, retries, lost answers."""

from __future__ import annotations

import asyncio
import time
from datetime import datetime, timedelta

import pytest

from agent_api.connection_settings import AgentApiConnectionError
from agent_api.exceptions import (
    AgentApiAnswerLost,
    AgentApiAuthError,
    AgentApiCallingTaskRunningError,
    AgentApiIncompleteRead,
    AgentApiNotFoundError,
    AgentApiRateLimitedError,
    AgentApiTransientError,
    AgentApiValidationError,
    error_for_answer,
)
from agent_api.hooks.agent_api import (
    PLATFORM_TIMEZONE,
    AgentApiAsyncHook,
    AgentApiHook,
    maybe_accepted,
)
from tests.plugins.agent_api.conftest import new_phones, rows_for


def test_connection_test_accepts_the_right_token(account):
    assert AgentApiHook().test_connection() == (True, "The platform accepted the token.")


def test_connection_test_rejects_a_wrong_token_without_echoing_it(account, monkeypatch):
    account.connect(monkeypatch, token="wrong-token-123")
    ok, message = AgentApiHook().test_connection()
    assert not ok
    assert "401" in message
    assert "wrong-token-123" not in message


def test_expired_token_is_an_auth_error_and_not_retried(account):
    account.sim.set_faults(expired_token=True)
    with pytest.raises(AgentApiAuthError):
        AgentApiHook().get_template()
    assert len(account.sim.journal()) == 1


@pytest.mark.parametrize(
    ("extra", "message"),
    [({"user_id": ""}, "has no user_id"), ({"max_attempts": "many"}, "must be a number")],
)
def test_incomplete_connection_fails_with_a_clear_message(account, monkeypatch, extra, message):
    account.connect(monkeypatch, **extra)
    with pytest.raises(AgentApiConnectionError, match=message):
        AgentApiHook().get_template()
    assert account.sim.journal() == []


def test_settings_extras_are_not_sent_as_headers(account):
    session = AgentApiHook().get_conn()
    assert session.headers["Authorization"] == f"Bearer {account.sim.token}"
    assert "user_id" not in session.headers
    assert "max_attempts" not in session.headers


def test_posts_through_many_hooks_parse_the_connection_extra_once(account, monkeypatch):
    """In the triggerer each parse of a connection's extra is a supervisor round trip
    (masking its secrets): hundreds of posts, each with a hook of its own, must share one."""
    import airflow.sdk.log

    parses = []
    real = airflow.sdk.log.mask_secret
    monkeypatch.setattr(
        airflow.sdk.log, "mask_secret", lambda s, n=None: (parses.append(1), real(s, n))
    )
    AgentApiHook().import_batch(account.task_id, rows_for(new_phones(2)))
    per_look_up = len(parses)  # the look-up registers the password, the parse the extra
    assert per_look_up == 2
    for phones in (new_phones(2), new_phones(2)):
        AgentApiHook().import_batch(account.task_id, rows_for(phones))
    assert len(parses) == per_look_up
    assert len(account.posts()) == 3

    async def poll() -> None:
        await AgentApiAsyncHook().config()  # the wait's hook shares the parsed connection

    asyncio.run(poll())
    assert len(parses) == per_look_up


def test_import_then_callback_then_download_reports_only_imported_numbers(account):
    good = new_phones(3)
    rows = [*rows_for(good), {"phone": "12345", "sort": 0}]
    hook = AgentApiHook()
    receipt = hook.import_batch(account.task_id, rows)
    assert receipt.unique_id and receipt.posted == 4 and receipt.attempts == 1

    account.sim.wait_until_processed()
    payload = hook.get_callback(receipt.unique_id)
    assert payload["unique_id"] == receipt.unique_id
    assert payload["task_id"] == account.task_id
    assert sorted(hook.download_numbers(payload["data"]["url"])) == sorted(good)
    assert sorted(account.imported_phones()) == sorted(good)


def test_a_download_refused_with_429_waits_at_least_its_retry_after(account, monkeypatch):
    account.connect(monkeypatch, max_attempts=2, backoff_seconds=0.01, backoff_max_seconds=5)
    hook = AgentApiHook()
    receipt = hook.import_batch(account.task_id, rows_for(new_phones(2)))
    account.sim.wait_until_processed()
    url = hook.get_callback(receipt.unique_id)["data"]["url"]

    account.sim.set_faults(rate_429=1.0, retry_after=2)
    waits = []
    monkeypatch.setattr("agent_api.retry.time.sleep", waits.append)
    with pytest.raises(AgentApiRateLimitedError) as caught:
        hook.download_numbers(url)
    assert caught.value.retry_after == 2
    assert waits == [2.0]  # the server's floor, not the 0.01 s backoff


def test_callback_is_none_while_the_batch_is_processed(account):
    account.sim.set_faults(callback_never_rate=1.0)
    hook = AgentApiHook()
    receipt = hook.import_batch(account.task_id, rows_for(new_phones(1)))
    assert hook.get_callback(receipt.unique_id) is None


def test_unknown_unique_id_is_not_found(account):
    with pytest.raises(AgentApiNotFoundError):
        AgentApiHook().get_callback("00000000-0000-4000-8000-000000000000")


def test_validation_error_is_raised_and_never_retried(account):
    with pytest.raises(AgentApiValidationError, match="sort"):
        AgentApiHook().import_batch(account.task_id, [{"phone": new_phones(1)[0]}])
    assert len(account.posts()) == 1


def test_more_than_200_rows_is_refused_before_sending(account):
    with pytest.raises(ValueError, match="1 to 200 rows"):
        AgentApiHook().post_async_number(account.task_id, rows_for(new_phones(201)))
    assert account.posts() == []


def test_running_2_0_task_raises_6007_then_imports_after_stop(account):
    account.sim.set_task_status(account.user_id, account.task_id, 2)
    hook = AgentApiHook()
    rows = rows_for(new_phones(2))
    with pytest.raises(AgentApiCallingTaskRunningError, match="stop_running_task") as caught:
        hook.import_batch(account.task_id, rows)
    assert caught.value.code == 6007
    assert len(account.posts()) == 1

    hook.stop_task(account.task_id)
    assert hook.all_tasks()[0]["status"] == 1
    assert hook.import_batch(account.task_id, rows).unique_id


def test_rate_limited_requests_are_retried_up_to_max_attempts(account):
    account.sim.set_faults(rate_429=1.0, retry_after=0)
    with pytest.raises(AgentApiRateLimitedError) as caught:
        AgentApiHook().get_template()
    assert caught.value.retry_after == 0
    assert len(account.sim.journal()) == 4  # max_attempts in the test connection


def test_server_errors_are_retried_until_success(account, monkeypatch):
    account.connect(monkeypatch, max_attempts=20)
    account.sim.set_faults(seed=7, error_rate=0.5)
    hook = AgentApiHook()
    for _ in range(5):
        hook.get_template()
    statuses = [e["status"] for e in account.sim.journal()]
    assert statuses.count(200) == 5
    assert any(status >= 500 for status in statuses), "the seed should inject some 5xx"


def test_server_errors_give_up_after_max_attempts(account):
    account.sim.set_faults(error_rate=1.0)
    with pytest.raises(AgentApiTransientError):
        AgentApiHook().all_tasks()
    assert len(account.sim.journal()) == 4


def test_unreachable_platform_is_transient_and_never_sent(account, monkeypatch):
    monkeypatch.setattr(account.sim, "port", 9)  # nothing listens on the discard port
    account.connect(monkeypatch)
    with pytest.raises(AgentApiTransientError, match="connection failed") as caught:
        AgentApiHook().post_async_number(account.task_id, rows_for(new_phones(1)))
    assert caught.value.maybe_accepted is False


def test_a_lost_answer_after_acceptance_is_never_posted_again(account, monkeypatch):
    """The batch is accepted but its answer never arrives in time: the hook raises "maybe
    accepted" at once and posts nothing again, even with attempts left."""
    account.connect(monkeypatch, request_timeout=0.5)
    account.sim.set_faults(lost_answer_rate=1.0, lost_answer_delay=1.5)
    phones = new_phones(5)
    with pytest.raises(AgentApiAnswerLost, match="may have accepted") as lost:
        AgentApiHook().import_batch(account.task_id, rows_for(phones))
    assert lost.value.maybe_accepted and not lost.value.retryable
    assert len(account.posts()) == 1, "nothing may be posted again"
    account.sim.wait_until_processed()
    assert sorted(account.imported_phones()) == sorted(phones)


@pytest.mark.parametrize(
    "faults",
    [
        {"error_rate": 1.0},  # a 5xx: the platform may have applied the post
        {"lost_answer_rate": 1.0, "lost_answer_delay": 1.5},  # a timeout
    ],
    ids=["5xx", "timeout"],
)
def test_no_retry_follows_an_answer_that_may_have_been_accepted(account, monkeypatch, faults):
    """429s first (certainly refused, retried), then an answer that may mean "accepted":
    the 429s cost retries, the maybe-accepted answer ends the import, whatever follows."""
    account.connect(monkeypatch, request_timeout=0.5, max_attempts=6)
    hook = AgentApiHook()
    # Two refusals, then the fault under test on the third attempt.
    account.sim.set_faults(rate_429=1.0, retry_after=0)
    refused = []

    def before_send() -> None:
        refused.append(len(account.posts()))
        if len(refused) == 3:
            account.sim.set_faults(**faults)

    with pytest.raises(AgentApiAnswerLost):
        hook.import_batch(account.task_id, rows_for(new_phones(3)), before_send=before_send)
    account.sim.set_faults()
    statuses = [p["status"] for p in account.posts()]
    assert statuses[:2] == [429, 429] and len(statuses) == 3


def test_an_undocumented_error_code_on_a_post_counts_as_maybe_accepted(account, monkeypatch):
    """[assumed] Only 6007 and the HTTP-like codes are documented refusals: any other error
    envelope may come from a platform that took the batch, so it is never posted again."""
    assert maybe_accepted(error_for_answer(200, {"code": 5001, "message": "?"}, path="/p"))
    assert not maybe_accepted(error_for_answer(200, {"code": 6007, "message": "?"}, path="/p"))
    assert not maybe_accepted(error_for_answer(429, {"code": 429, "message": "?"}, path="/p"))
    assert not maybe_accepted(error_for_answer(404, {"code": 404, "message": "?"}, path="/p"))


def test_iter_calling_task_numbers_walks_every_page(account):
    phones = new_phones(250)
    hook = AgentApiHook()
    hook.import_batch(account.task_id, rows_for(phones[:200]))
    hook.import_batch(account.task_id, rows_for(phones[200:]))
    account.sim.wait_until_processed()

    listed = [n["phone"] for n in hook.iter_calling_task_numbers(account.task_id, per_page=100)]
    assert listed == phones
    pages = [e for e in account.sim.journal() if e["path"].endswith("/number")]
    assert len(pages) == 3
    assert hook.numbers_in_calling_task(
        account.task_id, [phones[0], phones[-1], "13800000000"]
    ) == {
        phones[0],
        phones[-1],
    }


def test_async_hook_polls_the_callback(account):
    receipt = AgentApiHook().import_batch(account.task_id, rows_for(new_phones(2)))
    account.sim.wait_until_processed()
    payload = asyncio.run(AgentApiAsyncHook().get_callback(receipt.unique_id))
    assert payload["unique_id"] == receipt.unique_id
    assert payload["data"]["url"].startswith(account.sim.base_url)


def test_async_hook_maps_errors_like_the_sync_hook(account):
    with pytest.raises(AgentApiNotFoundError):
        asyncio.run(AgentApiAsyncHook().get_callback("00000000-0000-4000-8000-000000000000"))
    account.sim.set_faults(error_rate=1.0)
    with pytest.raises(AgentApiTransientError):
        asyncio.run(AgentApiAsyncHook().get_callback("00000000-0000-4000-8000-000000000000"))


# -- the number list read as the vendor documents it: no total, no last_page -----------------


def page_requests(account) -> list[dict]:
    return [e for e in account.sim.journal() if e["path"].endswith("/number")]


def fill_task(account, phones: list[str]) -> None:
    hook = AgentApiHook()
    for start in range(0, len(phones), 200):
        hook.post_async_number(account.task_id, rows_for(phones[start : start + 200]))
    account.sim.wait_until_processed()


def test_numbers_on_later_pages_are_found_without_page_fields(account):
    phones = new_phones(250)
    fill_task(account, phones)
    account.sim.set_faults(omit_page_fields=True)
    hook = AgentApiHook()

    listed = [n["phone"] for n in hook.iter_calling_task_numbers(account.task_id, per_page=100)]
    assert listed == phones
    assert len(page_requests(account)) == 3, "the short third page ends the list"
    wanted = [phones[0], phones[150], phones[-1], "13800000000"]
    assert hook.numbers_in_calling_task(account.task_id, wanted, per_page=100) == set(wanted[:3])


@pytest.mark.parametrize(
    ("omit_page_fields", "pages"), [(True, ["1", "2", "3"]), (False, ["1", "2"])]
)
def test_an_exact_multiple_of_per_page_ends_where_the_answers_say(account, omit_page_fields, pages):
    phones = new_phones(200)
    fill_task(account, phones)
    account.sim.set_faults(omit_page_fields=omit_page_fields)

    listed = [
        n["phone"] for n in AgentApiHook().iter_calling_task_numbers(account.task_id, per_page=100)
    ]
    assert listed == phones
    # Without page fields only the empty third page ends the list; with them, last_page 2
    # and total 200 say the full second page is the last (and the row count agrees).
    assert [e["query"]["page"] for e in page_requests(account)] == pages


def test_a_platform_that_ignores_page_is_an_error_not_an_endless_loop(account):
    fill_task(account, new_phones(250))
    account.sim.set_faults(omit_page_fields=True, ignore_page=True)
    with pytest.raises(AgentApiTransientError, match="ignore `page`"):
        list(AgentApiHook().iter_calling_task_numbers(account.task_id, per_page=100))
    assert len(page_requests(account)) == 2


def test_a_number_list_that_never_ends_is_cut_at_max_pages(account):
    fill_task(account, new_phones(250))
    account.sim.set_faults(omit_page_fields=True)
    with pytest.raises(AgentApiTransientError, match="not end within 2 pages"):
        list(AgentApiHook().iter_calling_task_numbers(account.task_id, per_page=100, max_pages=2))


# -- the number list when the platform caps per_page or its answers disagree ----------------


def hook_answering(reshape) -> AgentApiHook:
    """A hook whose number-list answers pass through ``reshape(page, answer)``: the
    simulator's pages as a platform with other page fields would send them."""

    class Reshaped(AgentApiHook):
        def list_task_numbers(self, api_task_id, **kwargs):
            return reshape(kwargs["page"], super().list_task_numbers(api_task_id, **kwargs))

    return Reshaped()


def only_per_page(page: int, answer: dict) -> dict:
    return {"per_page": answer["per_page"], "data": answer["data"]}


def only_next_page_url(page: int, answer: dict) -> dict:
    """Laravel's simplePaginate: no total, no last_page, a next_page_url until the end."""
    more = page < answer["last_page"]
    return {"data": answer["data"], "next_page_url": f"/number?page={page + 1}" if more else None}


def listed_until_error(numbers) -> tuple[list[str], BaseException | None]:
    listed = []
    try:
        for number in numbers:
            listed.append(number["phone"])
    except AgentApiTransientError as error:
        return listed, error
    return listed, None


def test_a_capped_per_page_is_read_to_the_end(account):
    """100 rows come where 1000 were asked: the first page is not the last."""
    phones = new_phones(250)
    fill_task(account, phones)
    account.sim.set_faults(max_per_page=100)
    hook = AgentApiHook()

    assert [n["phone"] for n in hook.iter_calling_task_numbers(account.task_id)] == phones
    requests = page_requests(account)
    assert [(e["query"]["page"], e["query"]["per_page"]) for e in requests] == [
        ("1", "1000"),
        ("2", "1000"),
        ("3", "1000"),
    ]
    assert hook.numbers_in_calling_task(account.task_id, [phones[-1]]) == {phones[-1]}


@pytest.mark.parametrize("count", [250, 200])
def test_a_capped_per_page_without_last_page_or_total_is_read_to_the_end(account, count):
    """The answer says per_page 100 and nothing else: a page shorter than that, or an
    empty one, ends the list."""
    phones = new_phones(count)
    fill_task(account, phones)
    account.sim.set_faults(max_per_page=100)
    hook = hook_answering(only_per_page)

    assert [n["phone"] for n in hook.iter_calling_task_numbers(account.task_id)] == phones
    assert len(page_requests(account)) == 3
    assert hook.numbers_in_calling_task(account.task_id, [phones[-1], "13800000000"]) == {
        phones[-1]
    }


@pytest.mark.parametrize("count", [250, 200])
def test_a_capped_per_page_without_any_page_field_is_read_to_the_end(account, count):
    """Rows only, 100 a page where 1000 were asked: the list is read on until a page
    shorter than the first, or an empty one."""
    phones = new_phones(count)
    fill_task(account, phones)
    account.sim.set_faults(max_per_page=100, omit_page_fields=True)
    hook = AgentApiHook()

    assert [n["phone"] for n in hook.iter_calling_task_numbers(account.task_id)] == phones
    assert len(page_requests(account)) == 3
    assert hook.numbers_in_calling_task(account.task_id, [phones[-1], "13800000000"]) == {
        phones[-1]
    }


@pytest.mark.parametrize("reshape", [None, only_next_page_url], ids=["laravel", "next_page_url"])
def test_an_empty_page_in_the_middle_is_an_error_not_the_end(account, reshape):
    """(With no page field at all an empty page is all there is to say the list ended.)"""
    phones = new_phones(250)
    fill_task(account, phones)
    account.sim.set_faults(empty_page_at=2)
    hook = AgentApiHook() if reshape is None else hook_answering(reshape)

    listed, error = listed_until_error(
        hook.iter_calling_task_numbers(account.task_id, per_page=100)
    )
    assert listed == phones[:100]
    assert isinstance(error, AgentApiIncompleteRead)
    assert "page 2 of the calling task's number list came back empty" in str(error)
    assert error.retryable and not error.maybe_accepted
    assert len(page_requests(account)) == 2
    with pytest.raises(AgentApiIncompleteRead):
        hook.numbers_in_calling_task(account.task_id, [phones[-1]], per_page=100)


def test_a_total_that_disagrees_with_the_rows_is_an_incomplete_read(account):
    phones = new_phones(250)
    fill_task(account, phones)
    low = hook_answering(lambda page, answer: {**answer, "total": answer["total"] - 50})
    listed, error = listed_until_error(low.iter_calling_task_numbers(account.task_id, per_page=100))
    assert listed == phones
    assert isinstance(error, AgentApiIncompleteRead)
    assert "said total 200 but 250 rows came in 3 pages" in str(error)

    high = hook_answering(lambda page, answer: {**answer, "total": answer["total"] + 50})
    with pytest.raises(AgentApiIncompleteRead, match="held 50 rows, fewer than the page size"):
        list(high.iter_calling_task_numbers(account.task_id, per_page=100))
    with pytest.raises(AgentApiIncompleteRead, match="said total 300"):
        high.numbers_in_calling_task(account.task_id, ["13800000000"], per_page=100)

    falling = hook_answering(lambda page, answer: {**answer, "total": answer["total"] - page})
    with pytest.raises(AgentApiIncompleteRead, match="said total 249, then 248"):
        list(falling.iter_calling_task_numbers(account.task_id, per_page=100))


def test_an_answer_for_another_page_is_an_error(account):
    fill_task(account, new_phones(250))
    account.sim.set_faults(ignore_page=True)
    with pytest.raises(AgentApiTransientError, match="came back as page 1") as caught:
        list(AgentApiHook().iter_calling_task_numbers(account.task_id, per_page=100))
    assert not isinstance(caught.value, AgentApiIncompleteRead)
    assert len(page_requests(account)) == 2


def test_next_page_url_is_honoured(account):
    """A full page whose answer names no next page is the last; a short page whose answer
    names one is not."""
    phones = new_phones(300)
    fill_task(account, phones)

    hook = hook_answering(only_next_page_url)
    assert [
        n["phone"] for n in hook.iter_calling_task_numbers(account.task_id, per_page=100)
    ] == phones
    assert len(page_requests(account)) == 3, "no fourth page after a null next_page_url"

    def short_second_page(page: int, answer: dict) -> dict:
        shaped = only_next_page_url(page, answer)
        if page == 2:
            shaped["data"] = shaped["data"][:60]  # filtered by the platform, say
        return shaped

    hook = hook_answering(short_second_page)
    listed = [n["phone"] for n in hook.iter_calling_task_numbers(account.task_id, per_page=100)]
    assert listed == phones[:160] + phones[200:]
    assert len(page_requests(account)) == 3 + 3


def test_end_at_bounds_the_read(account):
    hook = AgentApiHook()
    earlier, later = new_phones(2), new_phones(2)
    fill_task(account, earlier)
    time.sleep(1.05)  # the platform's times have one-second resolution
    fill_task(account, later)
    imported_at = {
        n["phone"]: datetime.fromisoformat(n["imported_at"])
        for n in account.sim.task_numbers(account.user_id, account.task_id)
    }
    until = imported_at[earlier[-1]]

    assert [
        n["phone"] for n in hook.iter_calling_task_numbers(account.task_id, end_at=until)
    ] == earlier
    end_at = until.astimezone(PLATFORM_TIMEZONE).strftime("%Y-%m-%d %H:%M:%S")
    assert page_requests(account)[-1]["query"]["end_at"] == end_at
    since = imported_at[later[0]]
    assert [
        n["phone"] for n in hook.iter_calling_task_numbers(account.task_id, start_at=since)
    ] == later

    # numbers_in_calling_task widens the bound by a day, as it does `since` (time zones).
    assert hook.numbers_in_calling_task(account.task_id, earlier + later, until=until) == set(
        earlier + later
    )
    wider = (until + timedelta(days=1)).astimezone(PLATFORM_TIMEZONE)
    assert page_requests(account)[-1]["query"]["end_at"] == wider.strftime("%Y-%m-%d %H:%M:%S")


def test_a_number_listed_under_another_lead_id_is_not_taken_for_ours(account):
    """The list echoes each number's ``extra`` (our lead id): a copy of the number that
    someone else put in the task under another lead id does not prove that ours landed."""
    phones = new_phones(2)
    hook = AgentApiHook()
    hook.import_batch(account.task_id, rows_for(phones))  # extras lead-0, lead-1
    account.sim.wait_until_processed()
    ours = {phones[0]: "lead-0", phones[1]: "someone-else"}
    assert hook.numbers_in_calling_task(account.task_id, phones, extras=ours) == {phones[0]}
    assert hook.numbers_in_calling_task(account.task_id, phones) == set(phones)
