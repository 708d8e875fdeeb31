"""Provider metadata so Airflow lists the ``agent_api`` connection type in its UI."""


def get_provider_info() -> dict:
    return {
        "package-name": "lead-load",
        "name": "Agent API (lead_load)",
        "description": "Hook, trigger and sensor for the AI outbound-call platform's agent-api.",
        "versions": ["0.1.0"],
        "connection-types": [
            {
                "connection-type": "agent_api",
                "hook-class-name": "agent_api.hooks.agent_api.AgentApiHook",
            }
        ],
    }
