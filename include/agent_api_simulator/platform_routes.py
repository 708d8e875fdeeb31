"""The /agent-api routes, behaving as docs/agent-api.md describes (choices marked [assumed] live in
assumptions.py). Auth, faults and the journal are handled by platform_gate before these run."""

import math
from datetime import datetime

from aiohttp import web

from agent_api_simulator import assumptions as assumed
from agent_api_simulator.app_keys import SIMULATOR
from agent_api_simulator.envelope import PlatformError, invalid, not_found, success
from agent_api_simulator.state import Task, User, platform_time
from agent_api_simulator.validation import ValidationFailed, validate_async_number_body

routes = web.RouteTableDef()

DOWNLOAD_PATH = "/agent-api/download-number"
# Paths that answer without a bearer token (the download key is the credential).
TOKENLESS_PATHS = frozenset() if assumed.DOWNLOAD_REQUIRES_TOKEN else frozenset({DOWNLOAD_PATH})


# --- lookups shared by the handlers --------------------------------------------------------


def optional_text(value) -> str | None:
    # Laravel turns empty strings into null, so "" means "not given".
    return value or None


def lookup_user(request: web.Request) -> User:
    user = request.app[SIMULATOR].state.users.get(request.match_info["user_id"])
    if user is None:
        raise not_found("user")
    return user


def check_sub_user(user: User, sub_user_id: str | None) -> None:
    if sub_user_id is not None and sub_user_id not in user.sub_user_ids:
        raise not_found("sub user")


def find_user(request: web.Request, sub_user_id: str | None) -> User:
    user = lookup_user(request)
    check_sub_user(user, sub_user_id)
    return user


def find_task(request: web.Request, user: User, sub_user_id: str | None) -> Task:
    task = user.tasks.get(request.match_info["task_id"])
    # A task is only reachable on behalf of its owner (see assumptions: sub-users).
    if task is None or task.sub_user_id != sub_user_id:
        raise not_found("task")
    return task


def query_sub_user(request: web.Request) -> str | None:
    return optional_text(request.query.get("sub_user_id"))


# --- handlers -----------------------------------------------------------------------------


@routes.get("/agent-api/token")
async def check_token(request: web.Request) -> web.Response:
    return success([])


@routes.post("/agent-api/user/{user_id}/task/{task_id}/async_number")
async def async_number(request: web.Request) -> web.Response:
    # Order of checks: unknown user (404), body (422), sub-user/task (404), running task (6007).
    user = lookup_user(request)
    # [doc] clients send Content-Type: application/json; Laravel would not read the body
    # otherwise and answer that `data` is missing, so the simulator refuses it as 422 too.
    if request.content_type != "application/json":
        raise invalid("body must be sent with Content-Type: application/json")
    if request.get("body_malformed"):
        raise invalid("body is not valid JSON")
    body = request["json_body"]
    try:
        validate_async_number_body(body, user.template_by_id)
    except ValidationFailed as failure:
        raise invalid(str(failure)) from None
    sub_user_id = optional_text(body.get("sub_user_id")) or query_sub_user(request)
    check_sub_user(user, sub_user_id)
    task = find_task(request, user, sub_user_id)
    if (
        task.version == assumed.TASK_VERSION_REFUSING_WHILE_RUNNING
        and task.status == assumed.TASK_RUNNING
    ):
        raise PlatformError(
            assumed.CODE_TASK_RUNNING,
            assumed.MESSAGE_TASK_RUNNING,
            assumed.HTTP_STATUS_TASK_RUNNING,
        )
    never = request["fault_decision"].callback_never
    batch = request.app[SIMULATOR].accept_batch(
        user.user_id,
        task.task_id,
        sub_user_id,
        body["data"],
        body.get("encryption", False),
        never_process=never,
    )
    request["accepted_batch"] = batch
    return success({"unique_id": batch.unique_id}, assumed.MESSAGE_ASYNC_ACCEPTED)


@routes.get("/agent-api/user/{user_id}/identification/{unique_id}")
async def callback_data(request: web.Request) -> web.Response:
    sub_user_id = query_sub_user(request)
    user = find_user(request, sub_user_id)
    sim = request.app[SIMULATOR]
    batch = sim.state.batches.get(request.match_info["unique_id"])
    if sim.faults.config.forget_callbacks:  # the platform no longer keeps this batch's data
        request["answer_faults"] = ["forget_callbacks"]
        batch = None
    if batch is None or batch.user_id != user.user_id or batch.sub_user_id != sub_user_id:
        raise not_found("unique_id")
    if batch.pending:
        return success(assumed.PENDING_CALLBACK_DATA)
    # The link points at whatever host the client used, so it works on any port.
    url = f"{request.scheme}://{request.host}{DOWNLOAD_PATH}?key={batch.download_key}"
    return success(
        {
            "mode": "batch",
            "type": "api_customer_to_task",
            "unique_id": batch.unique_id,
            "user_id": batch.user_id,
            "task_id": batch.task_id,
            "data": {"url": url},
        }
    )


@routes.get(DOWNLOAD_PATH)
async def download_numbers(request: web.Request) -> web.Response:
    sim = request.app[SIMULATOR]
    batch = sim.state.downloads.get(request.query.get("key", ""))
    if sim.faults.config.expire_download_links:  # [assumed] a link's key can expire
        request["answer_faults"] = ["expire_download_links"]
        batch = None
    if batch is None:
        raise not_found("download key")
    # [doc] plain JSON, no envelope.
    return web.json_response({"numbers": batch.imported_phones})


@routes.get("/agent-api/user/{user_id}/customer/create")
async def customer_template(request: web.Request) -> web.Response:
    user = find_user(request, query_sub_user(request))
    return success(user.template, assumed.MESSAGE_TEMPLATE)


@routes.get("/agent-api/user/{user_id}/task/{task_id}/number")
async def task_numbers(request: web.Request) -> web.Response:
    sub_user_id = query_sub_user(request)
    task = find_task(request, find_user(request, sub_user_id), sub_user_id)
    query = request.query
    page = int_param(query, "page", assumed.DEFAULT_PAGE)
    per_page = int_param(query, "per_page", assumed.DEFAULT_PER_PAGE)
    if page < 1:
        raise invalid("page must be at least 1")
    if not 1 <= per_page <= assumed.MAX_PER_PAGE:
        raise invalid(f"per_page must be between 1 and {assumed.MAX_PER_PAGE}")
    faults = request.app[SIMULATOR].faults.config
    answer_faults = [name for name in ("omit_page_fields", "ignore_page") if getattr(faults, name)]
    request["answer_faults"] = answer_faults
    if faults.max_per_page is not None and per_page > faults.max_per_page:
        # A platform that caps per_page: a client must not take a page of the cap's size,
        # shorter than it asked for, as the last one.
        per_page = faults.max_per_page
        answer_faults.append("max_per_page")
    asked_page = page
    if faults.ignore_page:
        page = 1  # a platform that pages nothing: a client must not loop on it forever
    statuses = {parse_int("status[]", raw) for raw in query.getall("status[]", [])}
    start = time_param(query, "start_at")
    end = time_param(query, "end_at")

    first, stop = task.imported_between(start, end)
    if statuses and assumed.NUMBER_STATUS_IMPORTED not in statuses:
        first = stop  # every imported number has the same status (see assumptions)
    total = stop - first
    offset = first + (page - 1) * per_page
    items = [
        {
            "phone": n.phone,
            "extra": n.row.get("extra"),
            "name": n.row.get("name"),
            "unique_id": n.unique_id,
            "status": assumed.NUMBER_STATUS_IMPORTED,
            "created_at": platform_time(n.imported_at),
        }
        for n in task.numbers[offset : min(stop, offset + per_page)]
    ]
    if items and asked_page == faults.empty_page_at:
        # A page that comes back empty although rows remain: not the end of the list.
        items = []
        answer_faults.append("empty_page_at")
    if faults.omit_page_fields:
        # Only the rows: the vendor's docs name no other field of this answer.
        return success({"data": items})
    return success(
        {
            "current_page": page,
            "per_page": per_page,
            "total": total,
            "last_page": max(1, math.ceil(total / per_page)),
            "data": items,
        }
    )


@routes.put("/agent-api/new/user/{user_id}/task_stop/{task_id}")
@routes.get("/agent-api/user/{user_id}/task_stop/{task_id}")
async def stop_task(request: web.Request) -> web.Response:
    sub_user_id = query_sub_user(request)
    task = find_task(request, find_user(request, sub_user_id), sub_user_id)
    task.status = assumed.TASK_PAUSED
    return success([])


@routes.get("/agent-api/user/{user_id}/all_task")
async def all_tasks(request: web.Request) -> web.Response:
    sub_user_id = query_sub_user(request)
    user = find_user(request, sub_user_id)
    return success(
        [
            {"id": t.task_id, "name": t.name, "status": t.status, "version": t.version}
            for t in user.tasks.values()
            if t.sub_user_id == sub_user_id
        ]
    )


# --- query parsing --------------------------------------------------------------------------


def parse_int(name: str, raw: str) -> int:
    try:
        return int(raw)
    except ValueError:
        raise invalid(f"{name} must be an integer") from None


def int_param(query, name: str, default: int) -> int:
    raw = query.get(name)
    return default if raw in (None, "") else parse_int(name, raw)


def time_param(query, name: str) -> int | None:
    """Parse a platform wall time ("YYYY-MM-DD HH:MM:SS", UTC+8) into an epoch second."""
    raw = query.get(name)
    if raw in (None, ""):
        return None
    try:
        parsed = datetime.strptime(raw, assumed.PLATFORM_TIME_FORMAT)
    except ValueError:
        raise invalid(f"{name} must look like YYYY-MM-DD HH:MM:SS") from None
    return int(parsed.replace(tzinfo=assumed.PLATFORM_TZ).timestamp())
