"""Every behaviour of the simulator that docs/agent-api.md marks [assumed], in one place.

The public docs of the agent-api leave these points open. Each constant below is the
simulator's choice; when a real account shows otherwise, change it here (and only here).
Constants without a comment saying "[doc]" are assumptions.
"""

import re
from datetime import timedelta, timezone

# --- Envelope codes and HTTP statuses of errors -------------------------------------------
# [doc] code 200 means success; 6007 is the only documented error code.
CODE_OK = 200
CODE_TASK_RUNNING = 6007  # [doc]
MESSAGE_TASK_RUNNING = "2.0任务启动中,请先停止任务"  # [doc]
# [assumed] the 6007 answer comes with HTTP 200 (the doc shows only the JSON body).
HTTP_STATUS_TASK_RUNNING = 200

# [assumed] the other errors use the HTTP status as the envelope code, Laravel-style.
CODE_UNAUTHENTICATED = 401  # missing/wrong bearer token, or the "expired_token" fault
CODE_NOT_FOUND = 404  # unknown user, task, sub-user, unique_id or download key
CODE_VALIDATION = 422  # body or query rejected; malformed JSON counts as a validation error
CODE_RATE_LIMITED = 429  # faults only: the doc names no rate limit
SERVER_ERROR_STATUSES = (500, 502, 503)  # the "error_rate" fault picks one of these

# [assumed] every error envelope carries data = [] like the documented 6007 answer; the
# message names the offending field as "data.<row>.<field>" (Laravel's dotted notation).
ERROR_DATA: list = []

# --- Success messages ([doc] where the docs show one) ------------------------------------
MESSAGE_ASYNC_ACCEPTED = "号码导入任务信息请在回调中查收"  # [doc]
MESSAGE_TEMPLATE = "查看公海创建模板成功"  # [doc]
MESSAGE_OK = "success"  # [assumed] for the endpoints whose success message is not shown

# --- async_number body -------------------------------------------------------------------
MAX_ROWS_PER_BATCH = 200  # [doc]
# [assumed] unknown keys are rejected (the real platform may ignore them; being strict here
# catches client typos). `number_add_suffix` [doc] is accepted but the project never sends it;
# the per-row `control_select_robot` of the newer doc is not accepted.
# [assumed] null is not a valid value for an optional field: omit the key instead.
# [assumed] order of checks: unknown user (404), then the body (422), then sub-user and task
# (404), then a running 2.0 task (6007): Laravel validates the request before the controller.
# [assumed] a body not sent as Content-Type: application/json, or not valid JSON, is a 422
# (Laravel would not see `data` in it).
# [assumed] a component is exactly {"id": str, "value": str|int|float}.
# [assumed] when the template marks a component "required", a row must carry it (with a
# non-blank value) only if the row sends a `components` list at all: rows without
# `components` skip template checks, because the doc makes `components` itself optional.
# [assumed] template types: text -> string; number -> int/float or numeric string;
# date -> "YYYY-MM-DD". The "integer" rule additionally requires a whole number.

# --- Processing ---------------------------------------------------------------------------
# [assumed] the platform receives already-normalised phones: after trimming whitespace, an
# importable phone is a mainland mobile number of 11 digits. Everything else is silently
# not imported (the doc gives no per-number reason).
VALID_PHONE = re.compile(r"1[3-9]\d{9}")
# [assumed] with "encryption": true the phone is ciphertext that the simulator cannot
# decrypt (the algorithm is not public), so any non-blank phone counts as valid.
# [assumed, docs/agent-api.md section 5] duplicates are judged against the task (across batches) and
# within one batch: the first occurrence in arrival order wins.
DEFAULT_PROCESS_DELAY_S = 0.2

# --- Callback-data query (docs/agent-api.md section 2) ---
# [assumed] while a batch is still being processed, `data` is an empty list.
PENDING_CALLBACK_DATA: list = []

# --- download-number ----------------------------------------------------------------------
# [assumed] the download link works without a bearer token (the key is the credential), so the
# "expired_token" fault does not touch it; the random 5xx/429/rate-limit faults do.
DOWNLOAD_REQUIRES_TOKEN = False

# --- Task number listing (docs/agent-api.md section 4) ---
# [assumed] Laravel-style pagination: data = {current_page, per_page, total, last_page, data}.
# The docs name only the query's page/per_page; the "omit_page_fields" fault answers
# {data} alone, so a client can be tested without the undocumented fields.
DEFAULT_PAGE = 1
DEFAULT_PER_PAGE = 20
MAX_PER_PAGE = 1000  # [assumed] above this (or page < 1) the query is rejected with 422
NUMBER_STATUS_IMPORTED = 1  # [assumed] every freshly imported number has status 1
# [assumed] the platform is in China: created_at / start_at / end_at are UTC+8 wall times.
PLATFORM_TZ = timezone(timedelta(hours=8))
PLATFORM_TIME_FORMAT = "%Y-%m-%d %H:%M:%S"

# --- Tasks --------------------------------------------------------------------------------
TASK_PAUSED, TASK_RUNNING, TASK_WAITING = 1, 2, 3  # [doc]
TASK_STATUSES = (TASK_PAUSED, TASK_RUNNING, TASK_WAITING)
# [doc] only a running 2.0 task refuses imports (6007); a running 1.0 task accepts them.
TASK_VERSION_REFUSING_WHILE_RUNNING = 2

# --- Sub-users ----------------------------------------------------------------------------
# [assumed] a request naming sub_user_id (query, or body for async_number) must name a known
# sub-user of the path's user, else 404. A task belongs to exactly one owner (the user or one
# sub-user) and is reachable only when the request's sub_user_id equals that owner (no
# sub_user_id = the main account). all_task lists the tasks of that owner only. A batch's
# callback data is reachable only with the sub_user_id the batch was sent with. An empty
# sub_user_id counts as absent (Laravel turns "" into null).
# The public-pool template belongs to the main user and is shared by its sub-users.
