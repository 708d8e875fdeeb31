"""The platform's JSON envelope {"code", "status", "message", "data"} and its error exception."""

import json

from aiohttp import web

from agent_api_simulator import assumptions as assumed


def dumps(payload) -> str:
    # Chinese messages stay readable in logs and captures.
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":"))


def envelope_response(
    code: int, message: str, data, http_status: int = 200, headers: dict | None = None
) -> web.Response:
    body = {
        "code": code,
        "status": "success" if code == assumed.CODE_OK else "error",
        "message": message,
        "data": data,
    }
    response = web.Response(
        text=dumps(body), status=http_status, content_type="application/json", headers=headers
    )
    # aiohttp responses are mappings: the journal reads the envelope code from here.
    response["code"] = code
    return response


def success(data, message: str = assumed.MESSAGE_OK) -> web.Response:
    return envelope_response(assumed.CODE_OK, message, data)


class PlatformError(Exception):
    """Raised by handlers; the platform middleware turns it into an error envelope."""

    def __init__(self, code: int, message: str, http_status: int | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.http_status = code if http_status is None else http_status

    def to_response(self, headers: dict | None = None) -> web.Response:
        return envelope_response(
            self.code, self.message, assumed.ERROR_DATA, self.http_status, headers
        )


def not_found(what: str) -> PlatformError:
    return PlatformError(assumed.CODE_NOT_FOUND, f"{what} not found")


def invalid(message: str) -> PlatformError:
    return PlatformError(assumed.CODE_VALIDATION, message)
