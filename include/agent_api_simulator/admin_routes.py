"""The /_sim admin routes: set up users, tasks and templates, inspect results, steer faults.

They are not part of the platform: no bearer token, no faults, no journal. Errors answer
{"error": "..."} with HTTP 400/404/409, so they cannot be mistaken for platform envelopes.
"""

import json

from aiohttp import web

from agent_api_simulator import assumptions as assumed
from agent_api_simulator.app_keys import SIMULATOR
from agent_api_simulator.faults import FaultConfigError
from agent_api_simulator.state import Task, User, iso_time

routes = web.RouteTableDef()

TEMPLATE_TYPES = ("text", "number", "date")


ADMIN_ERRORS = {400: web.HTTPBadRequest, 404: web.HTTPNotFound, 409: web.HTTPConflict}


def admin_error(status: int, message: str) -> web.HTTPException:
    return ADMIN_ERRORS[status](
        text=json.dumps({"error": message}), content_type="application/json"
    )


async def json_body(request: web.Request, default):
    if not request.body_exists:
        return default
    try:
        return await request.json()
    except ValueError:
        raise admin_error(400, "body is not valid JSON") from None


def get_user(request: web.Request) -> User:
    user = request.app[SIMULATOR].state.users.get(request.match_info["user_id"])
    if user is None:
        raise admin_error(404, "unknown user")
    return user


def get_task(request: web.Request) -> Task:
    task = get_user(request).tasks.get(request.match_info["task_id"])
    if task is None:
        raise admin_error(404, "unknown task")
    return task


def optional_str(body: dict, key: str) -> str | None:
    value = body.get(key)
    if value is not None and (type(value) is not str or not value):
        raise admin_error(400, f"{key} must be a non-empty string")
    return value


def task_status(value) -> int:
    if value not in assumed.TASK_STATUSES or type(value) is not int:
        raise admin_error(400, f"status must be one of {assumed.TASK_STATUSES}")
    return value


@routes.get("/_sim/health")
async def health(request: web.Request) -> web.Response:
    return web.json_response({"ok": True})


@routes.post("/_sim/reset")
async def reset(request: web.Request) -> web.Response:
    sim = request.app[SIMULATOR]
    hold = sim.faults.hold
    sim.reset()
    hold.release()  # answers the old config held go out: no later release could reach them
    return web.json_response({"ok": True})


@routes.post("/_sim/users")
async def create_user(request: web.Request) -> web.Response:
    body = await json_body(request, {})
    if not isinstance(body, dict):
        raise admin_error(400, "body must be a JSON object")
    user_id = optional_str(body, "user_id")
    sub_user_ids = body.get("sub_user_ids", [])
    if not isinstance(sub_user_ids, list) or not all(type(s) is str and s for s in sub_user_ids):
        raise admin_error(400, "sub_user_ids must be a list of non-empty strings")
    user = request.app[SIMULATOR].state.add_user(user_id, sub_user_ids)
    return web.json_response({"user_id": user.user_id, "sub_user_ids": sorted(user.sub_user_ids)})


@routes.post("/_sim/users/{user_id}/tasks")
async def create_task(request: web.Request) -> web.Response:
    user = get_user(request)
    body = await json_body(request, {})
    if not isinstance(body, dict):
        raise admin_error(400, "body must be a JSON object")
    task_id = optional_str(body, "task_id")
    if task_id in user.tasks:
        raise admin_error(409, "task already exists")
    sub_user_id = optional_str(body, "sub_user_id")
    if sub_user_id is not None and sub_user_id not in user.sub_user_ids:
        raise admin_error(400, "sub_user_id is not a sub-user of this user")
    version = body.get("version", 2)
    if version not in (1, 2) or type(version) is not int:
        raise admin_error(400, "version must be 1 or 2")
    task = request.app[SIMULATOR].state.add_task(
        user,
        task_id=task_id,
        name=optional_str(body, "name"),
        version=version,
        status=task_status(body.get("status", assumed.TASK_PAUSED)),
        sub_user_id=sub_user_id,
    )
    return web.json_response(task.describe())


@routes.patch("/_sim/users/{user_id}/tasks/{task_id}")
async def update_task(request: web.Request) -> web.Response:
    task = get_task(request)
    body = await json_body(request, {})
    if not isinstance(body, dict) or "status" not in body:
        raise admin_error(400, 'body must be {"status": 1|2|3}')
    task.status = task_status(body["status"])
    return web.json_response(task.describe())


@routes.put("/_sim/users/{user_id}/template")
async def set_template(request: web.Request) -> web.Response:
    user = get_user(request)
    components = await json_body(request, None)
    if not isinstance(components, list):
        raise admin_error(400, "body must be a list of template components")
    for index, component in enumerate(components):
        if not (
            isinstance(component, dict)
            and type(component.get("id")) is str
            and type(component.get("name")) is str
            and component.get("type") in TEMPLATE_TYPES
            and type(component.get("sort", 0)) is int
            and isinstance(component.get("validate", []), list)
        ):
            raise admin_error(
                400,
                f"component {index} needs id (str), name (str), type {TEMPLATE_TYPES}, "
                "sort (int), validate (list)",
            )
    user.set_template(
        [
            {
                "id": c["id"],
                "name": c["name"],
                "type": c["type"],
                "sort": c.get("sort", index),
                "validate": list(c.get("validate", [])),
            }
            for index, c in enumerate(components)
        ]
    )
    return web.json_response(user.template)


@routes.get("/_sim/users/{user_id}/tasks/{task_id}/numbers")
async def all_task_numbers(request: web.Request) -> web.Response:
    numbers = []
    for number in get_task(request).numbers:
        entry = {"name": None, "extra": None, **number.row}
        entry["phone"] = number.phone  # the trimmed phone that was imported
        entry["unique_id"] = number.unique_id
        entry["imported_at"] = iso_time(number.imported_at)
        numbers.append(entry)
    return web.json_response({"numbers": numbers})


@routes.get("/_sim/batches")
async def batches(request: web.Request) -> web.Response:
    state = request.app[SIMULATOR].state
    return web.json_response([batch.describe() for batch in state.batches.values()])


@routes.post("/_sim/process")
async def process_now(request: web.Request) -> web.Response:
    processed = request.app[SIMULATOR].processor.process_all_now()
    return web.json_response({"processed": processed})


@routes.get("/_sim/journal")
async def journal(request: web.Request) -> web.Response:
    try:
        since = int(request.query.get("since", "0"))
    except ValueError:
        raise admin_error(400, "since must be an integer") from None
    log = request.app[SIMULATOR].journal
    return web.json_response(
        {"entries": [entry.to_json() for entry in log.since(since)], "last_seq": log.last_seq}
    )


@routes.get("/_sim/faults")
async def get_faults(request: web.Request) -> web.Response:
    return web.json_response(request.app[SIMULATOR].faults.config.to_json())


@routes.put("/_sim/faults")
async def put_faults(request: web.Request) -> web.Response:
    payload = await json_body(request, {})
    sim = request.app[SIMULATOR]
    hold = sim.faults.hold
    try:
        config = sim.set_faults(payload)
    except FaultConfigError as error:
        raise admin_error(400, str(error)) from None
    hold.release()  # answers the old config held go out: no later release could reach them
    return web.json_response(config.to_json())


@routes.get("/_sim/held")
async def held_answers(request: web.Request) -> web.Response:
    hold = request.app[SIMULATOR].faults.hold
    return web.json_response({"held": hold.held, "refusing": hold.refuses_imports()})


@routes.post("/_sim/release")
async def release_answers(request: web.Request) -> web.Response:
    return web.json_response({"released": request.app[SIMULATOR].faults.hold.release()})
