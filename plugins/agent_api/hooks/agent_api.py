"""Hooks for the platform's agent-api, built on the http provider's ``HttpHook``/``HttpAsyncHook``.

Importing a batch safely
------------------------
``async_number`` is not idempotent, its import is asynchronous, and its answer can be lost
after the platform accepted the batch (a timeout, a dropped connection, a 5xx from a proxy
in front of it, an error code the docs do not name). :meth:`AgentApiHook.import_batch`
therefore treats a failed post in two kinds:

* **refused** (HTTP 429, a connection refused before anything was sent, and the documented
  refusals: 6007, 401/403, 400/422, 404): the platform has certainly not taken the batch.
  429 and connection errors are posted again after the backoff; the rest are raised.
* **maybe accepted** (everything else): :class:`AgentApiAnswerLost` is raised at once and
  nothing is posted again, by this call or any retry of it. A number absent from the calling task's
  list may still be in the platform's queue, so only the caller, once the platform has
  surely processed, may decide from that list what landed (the project's ledger keeps such
  rows "maybe accepted": docs/leases.md).
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cached_property
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp
import requests
from airflow.providers.http.hooks.http import HttpAsyncHook, HttpHook, SessionConfig
from requests.exceptions import ConnectionError as RequestsConnectionError
from requests.exceptions import ConnectTimeout
from urllib3.exceptions import NewConnectionError

from agent_api import endpoints, lookup_cache
from agent_api.connection_settings import DEFAULT_CONN_ID, SETTING_KEYS, AgentApiSettings
from agent_api.exceptions import (
    AgentApiAnswerLost,
    AgentApiError,
    AgentApiPermanentError,
    AgentApiRateLimitedError,
    AgentApiTransientError,
    error_for_answer,
)
from agent_api.masking import mask_phones_in
from agent_api.number_pages import NumberListReading
from agent_api.rate_limit import PacerBusy, shared_pacer
from agent_api.retry import RetryPolicy

# [assumed] The platform is run in mainland China; its start_at/end_at filters are read as
# local time there. A day of slack on the lower bound covers the case where it is UTC.
PLATFORM_TIMEZONE = ZoneInfo("Asia/Shanghai")
NUMBER_LIST_LOOKBACK = timedelta(days=1)
NUMBER_LIST_PAGE_SIZE = 1000
# A calling task of 10 million numbers at 1000 a page; beyond that the list is taken as endless.
NUMBER_LIST_MAX_PAGES = 10_000


@dataclass(frozen=True)
class ImportReceipt:
    """An accepted import: its ``unique_id``, the rows it carried and the attempts it took."""

    unique_id: str
    posted: int
    attempts: int = 1


def _unwrap_envelope(
    status: int, body: Any, path: str, retry_after: str | None, conn_id: str | None = None
) -> Any:
    error = error_for_answer(status, body, path=path, retry_after=retry_after, conn_id=conn_id)
    if error is not None:
        raise error
    return body.get("data")


def _platform_time(moment: datetime) -> str:
    return moment.astimezone(PLATFORM_TIMEZONE).strftime("%Y-%m-%d %H:%M:%S")


class AgentApiHook(HttpHook):
    """Synchronous client of the agent-api, one typed method per endpoint.

    :param agent_api_conn_id: an ``agent_api`` connection: host = base URL, password = token,
        extra = ``user_id`` (required), ``sub_user_id`` and tuning (see
        ``agent_api.connection_settings``).
    :param retry_policy: overrides the connection's attempts/backoff settings.
    """

    conn_name_attr = "agent_api_conn_id"
    default_conn_name = DEFAULT_CONN_ID
    conn_type = "agent_api"
    hook_name = "Agent API (outbound calls)"

    def __init__(
        self,
        agent_api_conn_id: str = default_conn_name,
        *,
        retry_policy: RetryPolicy | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(method="GET", http_conn_id=agent_api_conn_id, **kwargs)
        self.agent_api_conn_id = agent_api_conn_id
        self._retry_policy = retry_policy
        self._session: requests.Session | None = None
        self._rng = random.Random()  # noqa: S311 - jitter, not security

    # -- connection and transport -------------------------------------------------------

    @classmethod
    def get_connection(cls, conn_id: str):
        # Remembered for a minute per process with its extra parsed once (see
        # agent_api.lookup_cache): the triggerer runs hundreds of posts in one process, and
        # each look-up or parse of the extra there is a round trip through its supervisor.
        return lookup_cache.connection(conn_id, super().get_connection)

    @cached_property
    def _connection(self):
        return self.get_connection(self.agent_api_conn_id)

    @cached_property
    def settings(self) -> AgentApiSettings:
        conn = self._connection
        return AgentApiSettings.from_extra(self.agent_api_conn_id, conn.extra_dejson, conn.password)

    @property
    def user_id(self) -> str:
        return self.settings.user_id

    @property
    def retry_policy(self) -> RetryPolicy:
        if self._retry_policy is not None:
            return self._retry_policy
        s = self.settings
        return RetryPolicy(s.max_attempts, s.backoff_seconds, s.backoff_max_seconds)

    def get_conn(
        self, headers: dict[Any, Any] | None = None, extra_options: dict[str, Any] | None = None
    ):
        session = super().get_conn(headers, extra_options)
        for key in SETTING_KEYS:  # settings of ours, not headers for the platform
            session.headers.pop(key, None)
        session.headers["Authorization"] = f"Bearer {self._connection.password}"
        session.headers["Accept"] = "application/json"
        return session

    def _send_once(
        self,
        method: str,
        path_or_url: str,
        *,
        params: dict[str, Any] | None = None,
        json: Any = None,
        envelope: bool = True,
        before_send: Callable[[], None] | None = None,
    ) -> Any:
        """One HTTP request; returns the envelope's ``data`` (or the raw JSON) or raises.

        ``before_send`` runs after any pacing wait, right before the request goes out: a
        caller's last chance to refuse it (a lost lease raises there, and nothing is sent).
        """
        self.settings  # noqa: B018 - validates the connection before any request
        if self._session is None:
            self._session = self.get_conn()
        url = path_or_url if "://" in path_or_url else self.url_from_endpoint(path_or_url)
        path = path_or_url.split("?", 1)[0] if "://" not in path_or_url else "the download URL"
        request = requests.Request(method, url, params=params, json=json)
        pacer = shared_pacer(self.base_url, self.settings.max_requests_per_second)
        if pacer is not None:
            # Posts go first: callback polls yield to them (reserve_unless_first_come_queued).
            time.sleep(pacer.reserve(first_come=method == "POST"))
        if before_send is not None:
            before_send()
        started = time.monotonic()
        try:
            response = self.run_and_check(
                self._session,
                self._session.prepare_request(request),
                {"timeout": self.settings.request_timeout, "check_response": False},
            )
        except ConnectTimeout as exc:
            raise AgentApiTransientError(
                f"could not connect: {type(exc).__name__}", maybe_accepted=False, path=path
            ) from None
        except requests.Timeout as exc:
            raise AgentApiTransientError(
                f"no answer within {self.settings.request_timeout}s ({type(exc).__name__})",
                path=path,
            ) from None
        except RequestsConnectionError as exc:
            reason = getattr(exc.args[0], "reason", None) if exc.args else None
            never_sent = isinstance(reason, NewConnectionError)
            raise AgentApiTransientError(
                f"connection failed: {type(reason or exc).__name__}",
                maybe_accepted=not never_sent,
                path=path,
            ) from None
        elapsed_ms = (time.monotonic() - started) * 1000
        try:
            body = response.json()
        except ValueError:
            body = None
        self.log.debug("%s %s -> HTTP %s (%.0f ms)", method, path, response.status_code, elapsed_ms)
        if not envelope:
            if response.status_code >= 400:
                raise error_for_answer(
                    response.status_code,
                    body,
                    path=path,
                    retry_after=response.headers.get("Retry-After"),
                    conn_id=self.agent_api_conn_id,
                )
            if not isinstance(body, dict):
                raise AgentApiTransientError("answer is not JSON", path=path)
            return body
        return _unwrap_envelope(
            response.status_code,
            body,
            path,
            response.headers.get("Retry-After"),
            self.agent_api_conn_id,
        )

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        """A request that is safe to repeat, retried as the policy says."""
        for attempt in self._retrying():
            with attempt:
                return self._send_once(method, path, **kwargs)
        raise AssertionError("unreachable: tenacity re-raises the last error")  # pragma: no cover

    def _retrying(self, what: str = "", **options: Any):
        policy = self.retry_policy

        def log_retry(error: BaseException, attempt: int, delay: float) -> None:
            self.log.warning(
                "[attempt %d of %d] %s%s; retrying in %.1fs",
                attempt,
                policy.max_attempts,
                what,
                mask_phones_in(str(error)),
                delay,
            )

        return policy.retrying(rng=self._rng, on_retry=log_retry, **options)

    def _sub_user(self, sub_user_id: str | None) -> str | None:
        return sub_user_id or self.settings.sub_user_id

    # -- endpoints --------------------------------------------------------------------------

    def test_connection(self) -> tuple[bool, str]:
        """Used by the UI's Test button: the token must be accepted by ``GET /agent-api/token``."""
        try:
            self._send_once("GET", endpoints.TOKEN)
        except AgentApiError as error:
            return False, str(error)
        return True, "The platform accepted the token."

    def post_async_number(
        self,
        api_task_id: str,
        rows: Sequence[dict[str, Any]],
        *,
        sub_user_id: str | None = None,
        ignore_crm: bool | None = None,
        encryption: bool | None = None,
        before_send: Callable[[], None] | None = None,
    ) -> str:
        """Post one batch once (no retry at all) and return its ``unique_id``."""
        if not 1 <= len(rows) <= endpoints.MAX_ROWS_PER_IMPORT:
            raise ValueError(
                f"a batch holds 1 to {endpoints.MAX_ROWS_PER_IMPORT} rows, got {len(rows)}"
            )
        body: dict[str, Any] = {"data": list(rows)}
        if ignore_crm is not None:
            body["ignore_crm"] = bool(ignore_crm)
        if encryption is not None:
            body["encryption"] = bool(encryption)
        if sub := self._sub_user(sub_user_id):
            body["sub_user_id"] = sub
        data = self._send_once(
            "POST",
            endpoints.async_number(self.user_id, api_task_id),
            json=body,
            before_send=before_send,
        )
        unique_id = data.get("unique_id") if isinstance(data, dict) else None
        if not unique_id:
            raise AgentApiTransientError(
                "import answer has no unique_id",
                path=endpoints.async_number(self.user_id, api_task_id),
            )
        return str(unique_id)

    def import_batch(
        self,
        api_task_id: str,
        rows: Sequence[dict[str, Any]],
        *,
        sub_user_id: str | None = None,
        ignore_crm: bool | None = None,
        encryption: bool | None = None,
        before_send: Callable[[], None] | None = None,
    ) -> ImportReceipt:
        """Import a batch: post it until it is accepted or refused, never after an attempt
        that may have been accepted (see the module docstring).

        ``before_send`` runs before every POST attempt (see ``_send_once``); whatever it
        raises ends the import unposted. Raises :class:`AgentApiAnswerLost` when the batch
        may have been accepted, any other :class:`AgentApiError` when it was not.
        """
        retrying = self._retrying(f"batch of {len(rows)} rows: ")
        for attempt in retrying:
            with attempt:
                try:
                    unique_id = self.post_async_number(
                        api_task_id,
                        rows,
                        sub_user_id=sub_user_id,
                        ignore_crm=ignore_crm,
                        encryption=encryption,
                        before_send=before_send,
                    )
                except AgentApiError as error:
                    if maybe_accepted(error):
                        raise AgentApiAnswerLost(
                            f"the answer to the post of {len(rows)} rows was lost or unusable, "
                            f"so the platform may have accepted them ({error}); not posted "
                            "again",
                            http_status=error.http_status,
                            code=error.code,
                            path=error.path,
                        ) from error
                    raise
                return ImportReceipt(unique_id, len(rows), attempt.retry_state.attempt_number)
        raise AssertionError("unreachable: tenacity re-raises the last error")  # pragma: no cover

    def get_callback(
        self, unique_id: str, *, sub_user_id: str | None = None
    ) -> dict[str, Any] | None:
        """The callback payload of a batch, or None while the platform is still processing it."""
        params = {"sub_user_id": sub} if (sub := self._sub_user(sub_user_id)) else None
        data = self._call("GET", endpoints.identification(self.user_id, unique_id), params=params)
        return callback_payload_or_none(data)

    def download_numbers(self, url: str) -> list[str]:
        """The numbers a processed batch actually imported (the callback's ``data.url``)."""
        body = self._call("GET", url, envelope=False)
        numbers = body.get("numbers")
        if not isinstance(numbers, list):
            raise AgentApiTransientError(
                "download answer has no numbers list", path="the download URL"
            )
        return [str(number) for number in numbers]

    def get_template(self) -> list[dict[str, Any]]:
        """The public-pool template: the custom components that ``components`` may fill."""
        data = self._call("GET", endpoints.template(self.user_id))
        return list(data or [])

    def stop_task(self, api_task_id: str, *, sub_user_id: str | None = None) -> None:
        """Stop a (2.0) calling task so that it accepts imports again."""
        params = {"sub_user_id": sub} if (sub := self._sub_user(sub_user_id)) else None
        self._call("PUT", endpoints.task_stop(self.user_id, api_task_id), params=params)

    def all_tasks(self, *, sub_user_id: str | None = None) -> list[dict[str, Any]]:
        """The calling tasks of the user, or of its sub-account (``sub_user_id``, else the
        connection's): ``[{"id", "name", "status", "version"}, ...]``."""
        params = {"sub_user_id": sub} if (sub := self._sub_user(sub_user_id)) else None
        return list(self._call("GET", endpoints.all_tasks(self.user_id), params=params) or [])

    def list_task_numbers(
        self,
        api_task_id: str,
        *,
        page: int = 1,
        per_page: int = NUMBER_LIST_PAGE_SIZE,
        start_at: datetime | None = None,
        end_at: datetime | None = None,
        sub_user_id: str | None = None,
    ) -> dict[str, Any]:
        """One page of a calling task's numbers: ``{"data": [...]}``, maybe with Laravel's page
        fields.

        [doc] The query takes ``page``, ``per_page``, ``start_at`` and ``end_at``. [assumed]
        The rows are in ``data``; ``current_page``, ``per_page``, ``total``, ``last_page`` and
        ``next_page_url`` are not in the vendor's docs, so any of them may be missing, and the
        platform may answer fewer rows than ``per_page`` asks (see
        :meth:`iter_calling_task_numbers`).
        """
        params: dict[str, Any] = {"page": page, "per_page": per_page}
        if start_at is not None:
            params["start_at"] = _platform_time(start_at)
        if end_at is not None:
            params["end_at"] = _platform_time(end_at)
        if sub := self._sub_user(sub_user_id):
            params["sub_user_id"] = sub
        return (
            self._call("GET", endpoints.task_numbers(self.user_id, api_task_id), params=params)
            or {}
        )

    def iter_calling_task_numbers(
        self,
        api_task_id: str,
        *,
        start_at: datetime | None = None,
        end_at: datetime | None = None,
        sub_user_id: str | None = None,
        per_page: int = NUMBER_LIST_PAGE_SIZE,
        max_pages: int = NUMBER_LIST_MAX_PAGES,
    ) -> Iterator[dict[str, Any]]:
        """Every number of the calling task (imported between ``start_at`` and ``end_at``, when
        given), page after page, as far as the answers say the list goes.

        [unknown] Which page fields an answer carries, and whether the platform caps
        ``per_page``: the rules in :mod:`agent_api.number_pages` read each answer for what
        it says. Rows are yielded as they come; a read that cannot be trusted to be whole
        (an empty or short page before the reported total or last page, a row count other
        than ``total``) raises :class:`~agent_api.exceptions.AgentApiIncompleteRead` after
        the rows it did get, and a list that does not end within ``max_pages`` raises
        :class:`~agent_api.exceptions.AgentApiTransientError`: a number it did not yield is
        then unknown, never absent.
        """
        path = endpoints.task_numbers(self.user_id, api_task_id)
        reading = NumberListReading(per_page, path)
        for page in range(1, max_pages + 1):
            answer = self.list_task_numbers(
                api_task_id,
                page=page,
                per_page=per_page,
                start_at=start_at,
                end_at=end_at,
                sub_user_id=sub_user_id,
            )
            yield from reading.take(page, answer)
            if not reading.read_on():
                return
        raise AgentApiTransientError(
            f"the calling task's numbers did not end within {max_pages} pages of "
            f"{reading.page_size}",
            maybe_accepted=False,
            path=path,
        )

    def numbers_in_calling_task(
        self,
        api_task_id: str,
        phones: Iterable[str],
        *,
        since: datetime | None = None,
        sub_user_id: str | None = None,
        per_page: int = NUMBER_LIST_PAGE_SIZE,
        until: datetime | None = None,
        extras: Mapping[str, str] | None = None,
    ) -> set[str]:
        """Which of ``phones`` the calling task holds (added since ``since`` minus a day and until
        ``until`` plus a day, when given: the day of slack covers a platform that reads the
        bounds in another time zone). Raises, never answers "absent", when the list could
        not be read whole (see :meth:`iter_calling_task_numbers`).

        ``extras`` (phone -> the ``extra`` we sent with it, our lead id): a listed number
        whose ``extra`` is given and differs is someone else's copy, not ours landing."""
        wanted = set(phones)
        extras = extras or {}
        start_at = since - NUMBER_LIST_LOOKBACK if since is not None else None
        end_at = until + NUMBER_LIST_LOOKBACK if until is not None else None
        found: set[str] = set()
        numbers = self.iter_calling_task_numbers(
            api_task_id,
            start_at=start_at,
            end_at=end_at,
            sub_user_id=sub_user_id,
            per_page=per_page,
        )
        for number in numbers:
            phone = str(number.get("phone", ""))
            if phone not in wanted:
                continue
            listed_extra = number.get("extra")
            theirs = listed_extra not in (None, "") and str(listed_extra) != extras.get(phone)
            if phone in extras and theirs:
                continue
            found.add(phone)
            if found == wanted:
                break
        return found


def maybe_accepted(error: AgentApiError) -> bool:
    """Whether a failed ``async_number`` post may have been applied: anything but a
    certain refusal. [assumed] The docs name no error codes but 6007; an error envelope of
    any other code (HTTP 200 or not) is taken as "maybe accepted", never as a refusal."""
    if isinstance(error, AgentApiTransientError):
        return error.maybe_accepted
    # 401/403, 400/422, 404, 6007, 429: documented refusals
    return not isinstance(error, AgentApiPermanentError | AgentApiRateLimitedError)


def callback_payload_or_none(data: Any) -> dict[str, Any] | None:
    """[assumed] While a batch is processed, ``data`` is empty ([], {} or null)."""
    if not data:
        return None
    if not isinstance(data, dict) or not isinstance(data.get("data"), dict):
        raise AgentApiTransientError("callback data has an unexpected shape")
    return data


class AgentApiAsyncHook(HttpAsyncHook):
    """Asynchronous client of the endpoints that the triggerer polls."""

    conn_name_attr = "agent_api_conn_id"
    default_conn_name = DEFAULT_CONN_ID
    conn_type = "agent_api"
    hook_name = "Agent API (outbound calls)"

    def __init__(self, agent_api_conn_id: str = default_conn_name) -> None:
        # retry_limit=1: the trigger decides what to do with each failed poll.
        super().__init__(method="GET", http_conn_id=agent_api_conn_id, retry_limit=1)
        self.agent_api_conn_id = agent_api_conn_id
        self.settings: AgentApiSettings | None = None

    @classmethod
    async def aget_connection(cls, conn_id: str):
        # Shared with the sync hook (see AgentApiHook.get_connection): a wait started in the
        # triggerer then costs its supervisor no round trip for the connection.
        return await lookup_cache.aconnection(conn_id, super().aget_connection)

    async def config(self) -> SessionConfig:
        if self._config is None:
            from airflow.providers.common.compat.connection import get_async_connection

            conn = await get_async_connection(conn_id=self.agent_api_conn_id, hook=self)
            self.settings = AgentApiSettings.from_extra(
                self.agent_api_conn_id, conn.extra_dejson, conn.password
            )
            base = await super().config()
            headers = {k: v for k, v in (base.headers or {}).items() if k not in SETTING_KEYS}
            headers["Authorization"] = f"Bearer {conn.password}"
            headers["Accept"] = "application/json"
            extra_options = {
                k: v for k, v in (base.extra_options or {}).items() if k not in SETTING_KEYS
            }
            self._config = SessionConfig(
                base_url=base.base_url, headers=headers, auth=None, extra_options=extra_options
            )
        return self._config

    async def get_callback(
        self, unique_id: str, *, sub_user_id: str | None = None, yield_to_others: bool = False
    ) -> dict[str, Any] | None:
        """One poll: the callback payload, or None while the batch is being processed.

        ``yield_to_others``: under ``max_requests_per_second``, poll only when no post of
        this process waits for a slot (posts go first); otherwise raise ``PacerBusy``
        without sending anything.
        """
        config = await self.config()
        assert self.settings is not None
        path = endpoints.identification(self.settings.user_id, unique_id)
        sub = sub_user_id or self.settings.sub_user_id
        timeout = aiohttp.ClientTimeout(total=self.settings.request_timeout)
        pacer = shared_pacer(config.base_url, self.settings.max_requests_per_second)
        if pacer is not None:
            if yield_to_others:
                wait = pacer.reserve_unless_first_come_queued()
                if wait is None:
                    raise PacerBusy(f"poll of batch {unique_id} yields to queued posts")
                await asyncio.sleep(wait)
            else:
                await asyncio.sleep(pacer.reserve())
        try:
            async with self.session() as http:
                response = await http.run(
                    endpoint=path,
                    data={"sub_user_id": sub} if sub else None,
                    extra_options={"check_response": False, "timeout": timeout},
                )
                try:
                    body = await response.json(content_type=None)
                except ValueError:
                    body = None
                status = response.status
                retry_after = response.headers.get("Retry-After")
        except aiohttp.ClientConnectorError as exc:
            raise AgentApiTransientError(
                f"could not connect: {type(exc).__name__}", maybe_accepted=False, path=path
            ) from None
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise AgentApiTransientError(
                f"request failed: {type(exc).__name__}", path=path
            ) from None
        return callback_payload_or_none(
            _unwrap_envelope(status, body, path, retry_after, self.agent_api_conn_id)
        )
