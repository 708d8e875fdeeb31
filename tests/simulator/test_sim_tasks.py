"""Task state (6007, task_stop, all_task), unknown users/tasks, and the sub_user_id rules."""

import pytest

RUNNING, PAUSED, WAITING = 2, 1, 3
REFUSAL = {"code": 6007, "status": "error", "message": "2.0任务启动中,请先停止任务", "data": []}


def test_running_v2_task_refuses_with_6007_and_records_nothing(sim_env):
    sim_env.sim.set_task_status(sim_env.user_id, sim_env.task_id, RUNNING)
    response = sim_env.post_numbers(sim_env.rows("13012121211"))
    assert response.status_code == 200
    assert response.json() == REFUSAL
    assert sim_env.sim.batches() == []


@pytest.mark.parametrize(
    ("method", "template"),
    [
        ("PUT", "/agent-api/new/user/{user}/task_stop/{task}"),
        ("GET", "/agent-api/user/{user}/task_stop/{task}"),
    ],
    ids=["new-put", "old-get"],
)
def test_task_stop_pauses_the_task_and_the_import_then_succeeds(sim_env, method, template):
    sim_env.sim.set_task_status(sim_env.user_id, sim_env.task_id, RUNNING)
    assert sim_env.post_numbers(sim_env.rows("13012121211")).json()["code"] == 6007
    path = template.format(user=sim_env.user_id, task=sim_env.task_id)
    response = sim_env.request(method, path)
    assert response.status_code == 200
    assert response.json()["code"] == 200
    tasks = sim_env.get(f"/agent-api/user/{sim_env.user_id}/all_task").json()["data"]
    assert tasks[0]["status"] == PAUSED
    assert sim_env.post_numbers(sim_env.rows("13012121211")).json()["code"] == 200


def test_running_version_1_task_is_not_refused(sim_env):
    task_id = sim_env.sim.create_task(sim_env.user_id, version=1, status=RUNNING)
    response = sim_env.post_numbers(sim_env.rows("13012121211"), task_id=task_id)
    assert response.json()["code"] == 200


def test_waiting_v2_task_is_not_refused(sim_env):
    sim_env.sim.set_task_status(sim_env.user_id, sim_env.task_id, WAITING)
    assert sim_env.post_numbers(sim_env.rows("13012121211")).json()["code"] == 200


def test_all_task_lists_id_name_status_version(sim_env):
    second = sim_env.sim.create_task(sim_env.user_id, version=1, status=WAITING, name="旧任务")
    response = sim_env.get(f"/agent-api/user/{sim_env.user_id}/all_task")
    assert response.json()["code"] == 200
    assert response.json()["data"] == [
        {"id": sim_env.task_id, "name": f"task-{sim_env.task_id[:8]}", "status": 1, "version": 2},
        {"id": second, "name": "旧任务", "status": 3, "version": 1},
    ]


ROUTES_WITH_IDS = [
    "POST /agent-api/user/{user}/task/{task}/async_number",
    "GET /agent-api/user/{user}/task/{task}/number",
    "PUT /agent-api/new/user/{user}/task_stop/{task}",
    "GET /agent-api/user/{user}/task_stop/{task}",
    "GET /agent-api/user/{user}/all_task",
    "GET /agent-api/user/{user}/customer/create",
    "GET /agent-api/user/{user}/identification/{task}",
]


@pytest.mark.parametrize(
    ("template", "unknown"),
    [(route, "user") for route in ROUTES_WITH_IDS]
    + [(route, "task") for route in ROUTES_WITH_IDS if "{task}" in route],
)
def test_unknown_user_or_task_is_404(sim_env, template, unknown):
    method, path = template.split()
    ids = {"user": sim_env.user_id, "task": sim_env.task_id, unknown: "no-such-id"}
    response = sim_env.request(
        method, path.format(**ids), json={"data": sim_env.rows("13012121211")}
    )
    assert response.status_code == 404
    assert response.json()["code"] == 404
    assert response.json()["status"] == "error"


def test_unknown_route_is_a_404_envelope(sim_env):
    response = sim_env.get("/agent-api/nothing/here")
    assert response.status_code == 404
    assert response.json()["code"] == 404


# --- sub-users ----------------------------------------------------------------------------


@pytest.fixture
def accounts(simulator):
    simulator.reset()
    user = simulator.create_user(sub_user_ids=["sub-1", "sub-2"])
    return {
        "sim": simulator,
        "user": user,
        "main_task": simulator.create_task(user, name="main"),
        "sub_task": simulator.create_task(user, name="sub", sub_user_id="sub-1"),
    }


def test_sub_user_task_needs_its_sub_user_id(sim_env, accounts):
    env, user, task = sim_env, accounts["user"], accounts["sub_task"]
    rows = env.rows("13012121211")
    assert env.post_numbers(rows, user_id=user, task_id=task).status_code == 404
    assert (
        env.post_numbers(rows, user_id=user, task_id=task, sub_user_id="sub-2").status_code == 404
    )
    ok = env.post_numbers(rows, user_id=user, task_id=task, sub_user_id="sub-1")
    assert ok.json()["code"] == 200
    number_path = f"/agent-api/user/{user}/task/{task}/number"
    assert env.get(number_path).status_code == 404
    assert env.get(number_path, params={"sub_user_id": "sub-1"}).json()["code"] == 200
    stop_path = f"/agent-api/new/user/{user}/task_stop/{task}"
    assert env.request("PUT", stop_path).status_code == 404
    assert env.request("PUT", stop_path, params={"sub_user_id": "sub-1"}).status_code == 200


def test_sub_user_id_in_the_query_works_for_async_number(sim_env, accounts):
    path = f"/agent-api/user/{accounts['user']}/task/{accounts['sub_task']}/async_number"
    response = sim_env.request(
        "POST", path, params={"sub_user_id": "sub-1"}, json={"data": sim_env.rows("13012121211")}
    )
    assert response.json()["code"] == 200


def test_main_account_task_is_not_reachable_as_a_sub_user(sim_env, accounts):
    rows = sim_env.rows("13012121211")
    kwargs = {"user_id": accounts["user"], "task_id": accounts["main_task"]}
    assert sim_env.post_numbers(rows, **kwargs, sub_user_id="sub-1").status_code == 404
    assert sim_env.post_numbers(rows, **kwargs).json()["code"] == 200


def test_unknown_sub_user_is_404_everywhere(sim_env, accounts):
    user = accounts["user"]
    params = {"sub_user_id": "stranger"}
    for path in (f"/agent-api/user/{user}/all_task", f"/agent-api/user/{user}/customer/create"):
        response = sim_env.get(path, params=params)
        assert response.status_code == 404
        assert "sub user" in response.json()["message"]
    response = sim_env.post_numbers(
        sim_env.rows("13012121211"), user_id=user, task_id=accounts["main_task"], **params
    )
    assert response.status_code == 404


def test_empty_sub_user_id_means_the_main_account(sim_env, accounts):
    response = sim_env.get(
        f"/agent-api/user/{accounts['user']}/all_task", params={"sub_user_id": ""}
    )
    assert [t["name"] for t in response.json()["data"]] == ["main"]


def test_all_task_lists_only_the_owners_tasks(sim_env, accounts):
    path = f"/agent-api/user/{accounts['user']}/all_task"
    assert [t["name"] for t in sim_env.get(path).json()["data"]] == ["main"]
    sub_1 = sim_env.get(path, params={"sub_user_id": "sub-1"}).json()["data"]
    assert [t["name"] for t in sub_1] == ["sub"]
    assert sim_env.get(path, params={"sub_user_id": "sub-2"}).json()["data"] == []


def test_callback_data_needs_the_sub_user_id_the_batch_was_sent_with(sim_env, accounts):
    user, task = accounts["user"], accounts["sub_task"]
    unique_id = sim_env.accepted_unique_id(
        sim_env.rows("13012121211"), user_id=user, task_id=task, sub_user_id="sub-1"
    )
    assert sim_env.callback(unique_id, user_id=user).status_code == 404
    assert sim_env.callback(unique_id, user_id=user, sub_user_id="sub-2").status_code == 404
    assert sim_env.callback(unique_id, user_id=user, sub_user_id="sub-1").json()["code"] == 200


def test_template_is_shared_with_sub_users(sim_env, accounts):
    template = [{"id": "c1", "name": "姓名", "type": "text", "sort": 0, "validate": []}]
    sim_env.sim.set_template(accounts["user"], template)
    path = f"/agent-api/user/{accounts['user']}/customer/create"
    assert sim_env.get(path, params={"sub_user_id": "sub-2"}).json()["data"] == template
