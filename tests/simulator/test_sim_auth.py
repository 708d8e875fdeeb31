"""Bearer-token checks on every platform route, and the expired_token fault."""

import pytest

# (method, path template) of every platform route that needs the bearer token.
PROTECTED_ROUTES = [
    ("GET", "/agent-api/token"),
    ("POST", "/agent-api/user/{user}/task/{task}/async_number"),
    ("GET", "/agent-api/user/{user}/identification/00000000-0000-4000-8000-000000000000"),
    ("GET", "/agent-api/user/{user}/customer/create"),
    ("GET", "/agent-api/user/{user}/task/{task}/number"),
    ("PUT", "/agent-api/new/user/{user}/task_stop/{task}"),
    ("GET", "/agent-api/user/{user}/task_stop/{task}"),
    ("GET", "/agent-api/user/{user}/all_task"),
]
GOOD_BODY = {"data": [{"phone": "13012121211", "sort": 0}]}


def call(env, method, template, **token):
    """Call a route; `token=None` sends no header, `token="x"` a wrong one, default the valid."""
    path = template.format(user=env.user_id, task=env.task_id)
    body = GOOD_BODY if method == "POST" else None
    return env.request(method, path, json=body, **token)


@pytest.mark.parametrize(("method", "template"), PROTECTED_ROUTES)
@pytest.mark.parametrize("token", [None, "wrong-token"])
def test_protected_route_refuses_missing_or_wrong_token(sim_env, method, template, token):
    response = call(sim_env, method, template, token=token)
    assert response.status_code == 401
    assert response.json() == {
        "code": 401,
        "status": "error",
        "message": "Unauthenticated.",
        "data": [],
    }


def test_not_a_bearer_scheme_is_refused(sim_env):
    headers = {"Authorization": f"Basic {sim_env.sim.token}"}
    assert sim_env.get("/agent-api/token", token=None, headers=headers).status_code == 401


def test_rejected_auth_records_no_batch_and_does_not_stop_tasks(sim_env):
    sim_env.sim.set_task_status(sim_env.user_id, sim_env.task_id, 2)
    call(sim_env, "POST", PROTECTED_ROUTES[1][1], token=None)
    call(sim_env, "PUT", PROTECTED_ROUTES[5][1], token=None)
    assert sim_env.sim.batches() == []
    tasks = sim_env.get(f"/agent-api/user/{sim_env.user_id}/all_task").json()["data"]
    assert tasks[0]["status"] == 2


def test_valid_token_answers_code_200(sim_env):
    response = sim_env.get("/agent-api/token")
    assert response.status_code == 200
    assert response.json()["code"] == 200
    assert response.json()["status"] == "success"


def test_download_number_needs_no_token(sim_env):
    # An unknown key is a 404, not a 401: the key, not the bearer, guards the link.
    response = sim_env.get("/agent-api/download-number", token=None, params={"key": "nope"})
    assert response.status_code == 404


@pytest.mark.parametrize(("method", "template"), PROTECTED_ROUTES)
def test_expired_token_fault_refuses_every_protected_route(sim_env, method, template):
    sim_env.sim.set_faults(expired_token=True)
    response = call(sim_env, method, template)
    assert response.status_code == 401
    assert response.json()["code"] == 401
    assert sim_env.sim.journal()[-1]["fault"] == "expired_token"
    assert sim_env.sim.batches() == []


def test_expired_token_leaves_admin_routes_and_download_links_alone(sim_env):
    unique_id = sim_env.accepted_unique_id(sim_env.rows("13012121211"))
    sim_env.sim.process()
    url = sim_env.callback(unique_id).json()["data"]["data"]["url"]
    sim_env.sim.set_faults(expired_token=True)
    assert sim_env.get("/_sim/health", token=None).json() == {"ok": True}
    assert sim_env.callback(unique_id).status_code == 401
    assert sim_env.request("GET", url.removeprefix(sim_env.sim.base_url)).json() == {
        "numbers": ["13012121211"]
    }
