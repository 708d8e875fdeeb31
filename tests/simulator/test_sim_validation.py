"""Strict validation of the async_number body: every rule answers HTTP 422 / code 422 and
names the offending field, and nothing is recorded."""

import pytest

ROW = {"phone": "13012121211", "sort": 0}
FULL_ROW = {
    "phone": "13012121211",
    "sort": 0,
    "name": "联系人1",
    "email": "12345@qq.com",
    "company": "xxx公司",
    "extra": "0c51fc89-f6cf-405b-bb36-2c06900c3b5e",
    "sex": 2,
    "source_id": 1,
    "industry_id": 2,
    "grade_id": 1,
    "components": [{"id": "2a87347c-6dd5-4e22-97fe-9b8001dbcd17", "value": "小牛"}],
}
TEMPLATE = [
    {"id": "c-name", "name": "姓名", "type": "text", "sort": 0, "validate": ["required"]},
    {"id": "c-number", "name": "数字", "type": "number", "sort": 1, "validate": []},
    {"id": "c-int", "name": "整数", "type": "number", "sort": 2, "validate": ["integer"]},
    {"id": "c-date", "name": "日期", "type": "date", "sort": 3, "validate": ["date", "sometimes"]},
]


def with_row(**changes):
    row = {**ROW, **changes}
    return {"data": [{k: v for k, v in row.items() if v is not DROP}]}


DROP = object()


def assert_rejected(env, body, field):
    path = f"/agent-api/user/{env.user_id}/task/{env.task_id}/async_number"
    response = env.request("POST", path, json=body)
    assert response.status_code == 422, response.text
    payload = response.json()
    assert payload["code"] == 422
    assert payload["status"] == "error"
    assert payload["data"] == []
    assert field in payload["message"], payload["message"]
    assert env.sim.batches() == []


def test_complete_documented_body_is_accepted(sim_env):
    body = {
        "ignore_crm": True,
        "encryption": False,
        "number_add_suffix": False,
        "data": [FULL_ROW, {**ROW, "phone": "13012121212"}],
    }
    response = sim_env.request(
        "POST",
        f"/agent-api/user/{sim_env.user_id}/task/{sim_env.task_id}/async_number",
        json=body,
    )
    assert response.status_code == 200
    assert response.json()["code"] == 200
    assert response.json()["message"] == "号码导入任务信息请在回调中查收"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"data": []}, "data"),
        ({"data": [ROW] * 201}, "data"),
        ({}, "data"),
        ({"data": ROW}, "data"),
        ({"data": [ROW], "callback_url": "x"}, "callback_url"),
        ({"data": [ROW], "ignore_crm": "true"}, "ignore_crm"),
        ({"data": [ROW], "encryption": 0}, "encryption"),
        ({"data": [ROW], "sub_user_id": 5}, "sub_user_id"),
        ({"data": [ROW, "13012121212"]}, "data.1"),
        ([ROW], "body"),
    ],
    ids=[
        "0-rows",
        "201-rows",
        "no-data",
        "data-not-list",
        "unknown-top-level-key",
        "ignore_crm-not-bool",
        "encryption-int-not-bool",
        "sub_user_id-not-str",
        "row-not-object",
        "body-not-object",
    ],
)
def test_top_level_rules(sim_env, body, field):
    assert_rejected(sim_env, body, field)


def test_200_rows_is_the_limit_and_accepted(sim_env):
    rows = [{"phone": f"130{i:08d}", "sort": 0} for i in range(200)]
    assert sim_env.post_numbers(rows).json()["code"] == 200


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"phone": DROP}, "data.0.phone"),
        ({"phone": 13012121211}, "data.0.phone"),
        ({"phone": None}, "data.0.phone"),
        ({"sort": DROP}, "data.0.sort"),
        ({"sort": "0"}, "data.0.sort"),
        ({"sort": False}, "data.0.sort"),
        ({"sex": True}, "data.0.sex"),
        ({"source_id": True}, "data.0.source_id"),
        ({"industry_id": 1.0}, "data.0.industry_id"),
        ({"grade_id": "1"}, "data.0.grade_id"),
        ({"sex": 3}, "data.0.sex"),
        ({"sex": -1}, "data.0.sex"),
        ({"name": 5}, "data.0.name"),
        ({"email": None}, "data.0.email"),
        ({"company": ["x"]}, "data.0.company"),
        ({"extra": 42}, "data.0.extra"),
        ({"control_select_robot": 1}, "data.0.control_select_robot"),
        ({"phone_number": "13012121211"}, "data.0.phone_number"),
        ({"components": {"id": "a", "value": "b"}}, "data.0.components"),
        ({"components": [{"id": "a"}]}, "data.0.components.0"),
        ({"components": [{"id": "a", "value": "b", "x": 1}]}, "data.0.components.0"),
        ({"components": [{"id": 7, "value": "b"}]}, "data.0.components.0.id"),
        ({"components": [{"id": "a", "value": None}]}, "data.0.components.0.value"),
    ],
    ids=lambda value: value if isinstance(value, str) else None,
)
def test_row_rules(sim_env, changes, field):
    assert_rejected(sim_env, with_row(**changes), field)


def test_error_names_the_row_index(sim_env):
    rows = [ROW, ROW, {"phone": "13012121211"}]
    assert_rejected(sim_env, {"data": rows}, "data.2.sort")


def test_without_template_any_component_id_is_accepted(sim_env):
    components = [{"id": "anything", "value": 17}, {"id": "other", "value": "x"}]
    assert sim_env.post_numbers([{**ROW, "components": components}]).json()["code"] == 200


def test_body_that_is_not_json_is_rejected(sim_env):
    path = f"/agent-api/user/{sim_env.user_id}/task/{sim_env.task_id}/async_number"
    headers = {"Content-Type": "application/json"}
    response = sim_env.request("POST", path, data=b"{not json", headers=headers)
    assert response.status_code == 422
    assert "JSON" in response.json()["message"]


def test_body_without_json_content_type_is_rejected(sim_env):
    path = f"/agent-api/user/{sim_env.user_id}/task/{sim_env.task_id}/async_number"
    response = sim_env.request("POST", path, data=b'{"data": [{"phone": "1", "sort": 0}]}')
    assert response.status_code == 422
    assert "Content-Type" in response.json()["message"]


# --- with a public-pool template ----------------------------------------------------------


@pytest.fixture
def templated(sim_env):
    sim_env.sim.set_template(sim_env.user_id, TEMPLATE)
    return sim_env


def components(**values):
    return [{"id": f"c-{key}", "value": value} for key, value in values.items()]


def test_template_is_served_by_customer_create(templated):
    response = templated.get(f"/agent-api/user/{templated.user_id}/customer/create")
    assert response.json() == {
        "code": 200,
        "status": "success",
        "message": "查看公海创建模板成功",
        "data": TEMPLATE,
    }


def test_customer_create_without_template_is_an_empty_list(sim_env):
    response = sim_env.get(f"/agent-api/user/{sim_env.user_id}/customer/create")
    assert response.json()["data"] == []


def test_template_valid_components_are_accepted(templated):
    rows = [
        {**ROW, "components": components(name="小牛", number="3.5", int=17, date="2024-02-29")},
        {**ROW, "phone": "13012121212", "components": components(name="x", number=2, int="-4")},
        # A row without components skips template checks, including "required".
        {**ROW, "phone": "13012121213"},
    ]
    assert templated.post_numbers(rows).json()["code"] == 200


@pytest.mark.parametrize(
    ("values", "field"),
    [
        ({"name": "x", "unknown": "y"}, "data.0.components.1.id"),
        ({"number": 1}, "data.0.components"),  # required "name" missing
        ({"name": "   "}, "data.0.components.0.value"),  # required but blank
        ({"name": 5}, "data.0.components.0.value"),  # text must be a string
        ({"name": "x", "number": "abc"}, "data.0.components.1.value"),
        ({"name": "x", "number": "1e5"}, "data.0.components.1.value"),
        ({"name": "x", "int": "3.5"}, "data.0.components.1.value"),
        ({"name": "x", "int": 3.5}, "data.0.components.1.value"),
        ({"name": "x", "date": "2024/01/01"}, "data.0.components.1.value"),
        ({"name": "x", "date": "2023-02-29"}, "data.0.components.1.value"),
        ({"name": "x", "date": 20240101}, "data.0.components.1.value"),
    ],
    ids=[
        "unknown-id",
        "required-missing",
        "required-blank",
        "text-not-string",
        "number-not-numeric",
        "number-exponent",
        "integer-rule-fraction-string",
        "integer-rule-float",
        "date-wrong-format",
        "date-impossible",
        "date-not-string",
    ],
)
def test_template_rules(templated, values, field):
    assert_rejected(templated, {"data": [{**ROW, "components": components(**values)}]}, field)


def test_required_component_also_checked_on_an_empty_components_list(templated):
    assert_rejected(templated, {"data": [{**ROW, "components": []}]}, "data.0.components")
