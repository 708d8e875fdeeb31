"""Provider metadata: registers the ``agent_api`` connection type and its form in the Airflow UI.

Declared here (Airflow 3.2+ reads ``conn-fields`` and ``ui-field-behaviour`` from provider
info) rather than in the hook, so the UI needs no hook import to draw the form.

Airflow 3.3's React connection form draws each conn-field like a DAG Param: it marks a field
required, and refuses to save it empty, when its schema has a ``type`` that does not allow
``"null"``. So the User ID, part of every API path, is ``"string"``; the optional fields'
types include ``"null"``.
"""

from __future__ import annotations


def _number(label: str, description: str, default: float) -> dict:
    return {
        "label": label,
        "description": description,
        "schema": {"type": ["number", "null"], "default": default},
    }


def get_provider_info() -> dict:
    return {
        "package-name": "lead-load",
        "name": "Agent API (lead_load)",
        "description": "Hook, trigger and sensor for the AI outbound-call platform's agent-api.",
        "versions": ["0.1.0"],
        "hooks": [
            {"integration-name": "Agent API", "python-modules": ["agent_api.hooks.agent_api"]}
        ],
        "triggers": [
            {"integration-name": "Agent API", "python-modules": ["agent_api.triggers.callback"]}
        ],
        "sensors": [
            {"integration-name": "Agent API", "python-modules": ["agent_api.sensors.callback"]}
        ],
        "connection-types": [
            {
                "connection-type": "agent_api",
                "hook-class-name": "agent_api.hooks.agent_api.AgentApiHook",
                "hook-name": "Agent API (outbound calls)",
                "ui-field-behaviour": {
                    "hidden-fields": ["schema", "login", "port"],
                    "relabeling": {"host": "Base URL", "password": "API token"},
                    "placeholders": {
                        "host": "https://ai.api.longlonglong.cn",
                        "password": "partner token from the platform console",
                    },
                },
                "conn-fields": {
                    "user_id": {
                        "label": "User ID",
                        "description": "The account's user id (UUID); part of every API path.",
                        "schema": {"type": "string", "minLength": 1},
                    },
                    "sub_user_id": {
                        "label": "Sub-account ID",
                        "description": "Optional: act on this sub-account by default.",
                        "schema": {"type": ["string", "null"]},
                    },
                    "request_timeout": _number(
                        "Request timeout (s)",
                        "Seconds before an unanswered request counts as lost.",
                        30,
                    ),
                    "max_attempts": _number(
                        "Max attempts", "Attempts for retryable errors (429, 5xx, timeouts).", 5
                    ),
                    "backoff_seconds": _number(
                        "First backoff (s)", "First retry delay; doubles, with jitter.", 1
                    ),
                    "backoff_max_seconds": _number(
                        "Max backoff (s)", "Cap of a single retry delay.", 60
                    ),
                    "lost_answer_grace_seconds": _number(
                        "Lost-answer grace (s)",
                        "Wait before the first look in the calling task after a lost import "
                        "answer.",
                        5,
                    ),
                    "max_requests_per_second": _number(
                        "Max requests per second",
                        "Pace each process's requests to the platform; 0 means no limit.",
                        0,
                    ),
                },
            }
        ],
    }
