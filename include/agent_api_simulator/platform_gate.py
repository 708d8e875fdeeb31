"""Middleware in front of every /agent-api request: faults, auth, error envelopes, journal.

Order for one request (admin routes under /_sim skip all of it):
1. draw the request's fault decision (synchronously, so draws follow arrival order);
2. read and parse the body once (handlers and the journal share the parsed object);
3. answer an injected 429/5xx (or an import refused while answers are held), else the
   expired-token fault, else a wrong bearer, with 401;
4. run the handler, turning PlatformError / HTTP errors into error envelopes;
5. journal the request; for a "lost answer", only then sleep before answering, and a held
   answer waits for its release.
"""

import asyncio
import json

from aiohttp import hdrs, web

from agent_api_simulator import assumptions as assumed
from agent_api_simulator.app_keys import SIMULATOR
from agent_api_simulator.envelope import PlatformError
from agent_api_simulator.faults import AnswerHold
from agent_api_simulator.platform_routes import TOKENLESS_PATHS

PLATFORM_PREFIX = "/agent-api/"
# While an answer is held, a space goes out this often (see answer_when_released).
HELD_ANSWER_KEEPALIVE_S = 0.5


@web.middleware
async def platform_gate(request: web.Request, handler) -> web.StreamResponse:
    if not request.path.startswith(PLATFORM_PREFIX):
        return await handler(request)
    sim = request.app[SIMULATOR]
    decision = sim.faults.decide()
    request["fault_decision"] = decision
    body = None
    if request.body_exists:
        raw = await request.read()
        try:
            body = json.loads(raw)
        except ValueError:
            request["body_malformed"] = True
    request["json_body"] = body

    # No await from here until the handler has accepted (or not) an import: refusing imports
    # and taking a held answer happen in one step, so nothing is accepted unheld in between.
    hold = sim.faults.hold
    if decision.response_status is None and is_import(request) and hold.refuses_imports():
        decision.response_status = assumed.CODE_RATE_LIMITED
        decision.retry_after = sim.faults.config.retry_after
        decision.name = "hold_429"
    fault_names = []
    if decision.response_status is not None:
        fault_names.append(decision.name)
        response = fault_response(decision)
    elif request.path not in TOKENLESS_PATHS and sim.faults.config.expired_token:
        fault_names.append("expired_token")
        response = unauthenticated()
    elif request.path not in TOKENLESS_PATHS and not has_valid_token(request, sim.token):
        response = unauthenticated()
    else:
        response = await run_handler(request, handler)
        fault_names += request.get("answer_faults", [])  # faults that shaped the answer

    lost_answer = held = False
    if request.get("accepted_batch") is not None:
        # Batch-level faults only matter for an accepted import.
        config = sim.faults.config
        held = hold.take()
        if held:
            fault_names.append("hold_answer")
        lost_answer = decision.lost_answer
        if lost_answer:
            fault_names.append("lost_answer")
        if decision.callback_never:
            fault_names.append("callback_never")
        elif config.callback_delay is not None:
            fault_names.append("callback_delay")
    sim.journal.record(
        request.method,
        request.path,
        query_as_json(request),
        body,
        response.status,
        response.get("code"),
        "+".join(fault_names) or None,
    )
    if lost_answer:
        # The batch is already recorded: a client that times out and retries blindly now
        # sends it twice, which is the failure this fault exists to expose.
        await asyncio.sleep(sim.faults.config.lost_answer_delay)
    if held:
        return await answer_when_released(request, response, hold)
    return response


def is_import(request: web.Request) -> bool:
    return request.method == "POST" and request.path.endswith("/async_number")


async def answer_when_released(
    request: web.Request, response: web.Response, hold: AnswerHold
) -> web.StreamResponse:
    """Send the status line and headers now and the body once the hold is released.

    Meanwhile a space goes out every HELD_ANSWER_KEEPALIVE_S (JSON allows leading whitespace,
    in chunked encoding), so a client's read timeout does not expire however long the hold
    lasts: the answer comes late, it is not lost. A client with a deadline for the whole
    answer would still give up.
    """
    stream = web.StreamResponse(status=response.status, reason=response.reason)
    skip = (hdrs.CONTENT_LENGTH, hdrs.TRANSFER_ENCODING)
    stream.headers.update({k: v for k, v in response.headers.items() if k not in skip})
    stream.enable_chunked_encoding()
    try:
        await stream.prepare(request)
        while not hold.released.is_set():
            try:
                await asyncio.wait_for(hold.released.wait(), HELD_ANSWER_KEEPALIVE_S)
            except TimeoutError:
                await stream.write(b" ")
        await stream.write(response.body)
        await stream.write_eof()
    except ConnectionError:
        pass  # the client went away: nobody to answer
    finally:
        hold.answered()
    return stream


async def run_handler(request: web.Request, handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except PlatformError as error:
        return error.to_response()
    except web.HTTPException as error:  # unknown route (404), wrong method (405), ...
        return PlatformError(error.status, error.reason).to_response()


def has_valid_token(request: web.Request, token: str) -> bool:
    return request.headers.get("Authorization") == f"Bearer {token}"


def unauthenticated() -> web.Response:
    return PlatformError(assumed.CODE_UNAUTHENTICATED, "Unauthenticated.").to_response()


def fault_response(decision) -> web.Response:
    headers = None
    if decision.retry_after is not None:
        headers = {"Retry-After": str(decision.retry_after)}
    status = decision.response_status
    message = "Too Many Attempts." if status == 429 else "simulated server error"
    return PlatformError(status, message).to_response(headers)


def query_as_json(request: web.Request) -> dict:
    """Query as a JSON object; a repeated key (status[]) maps to the list of its values."""
    query = {}
    for key in request.query:
        if key not in query:
            values = request.query.getall(key)
            query[key] = values[0] if len(values) == 1 else values
    return query
