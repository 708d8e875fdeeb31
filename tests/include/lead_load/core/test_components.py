"""The public pool's component template, as the platform applies it."""

import pytest

from lead_load.core.components import COMPONENT_INVALID, check_components, template_index
from tests.include.lead_load.core.transform_samples import TEMPLATE


def check(payload: dict, template) -> str | None:
    return check_components(payload, template_index(template))


def with_components(*pairs) -> dict:
    return {
        "phone": "13800138000",
        "sort": 0,
        "components": [{"id": i, "value": v} for i, v in pairs],
    }


@pytest.mark.parametrize(
    ("pairs", "reason"),
    [
        ([("91a4ff5d", "小牛")], None),
        ([("91a4ff5d", "小牛"), ("c87d8629", 3), ("44560536", "2024-02-29")], None),
        ([("91a4ff5d", "x"), ("c87d8629", "-12")], None),
        ([("91a4ff5d", "x"), ("c87d8629", "1.5")], "数字 must be an integer"),
        ([("91a4ff5d", "x"), ("c87d8629", 1.5)], "数字 must be an integer"),
        ([("91a4ff5d", "x"), ("c87d8629", 3.0)], "数字 must be an integer"),
        ([("91a4ff5d", "x"), ("c87d8629", "abc")], "数字 must be a number"),
        ([("91a4ff5d", "x"), ("c87d8629", True)], "数字 must be a number"),
        ([("91a4ff5d", "x"), ("44560536", "2024-02-30")], "日期 must be a date YYYY-MM-DD"),
        ([("91a4ff5d", "x"), ("44560536", "2024/01/01")], "日期 must be a date YYYY-MM-DD"),
        ([("91a4ff5d", 5)], "姓名 must be text"),
        ([("91a4ff5d", "  ")], "姓名 is required"),
        ([("c87d8629", 3)], "姓名 is required"),  # a row sending components must send it
        ([("91a4ff5d", "x"), ("nope", 1)], "unknown component id 'nope'"),
    ],
    ids=repr,
)
def test_check_components_follows_the_template(pairs, reason):
    expected = None if reason is None else f"{COMPONENT_INVALID}: {reason}"
    assert check(with_components(*pairs), TEMPLATE) == expected


def test_check_components_mirrors_the_platform_on_what_it_does_not_check():
    # No `components` key: the platform (as the simulator assumes it) skips template checks.
    assert check({"phone": "13800138000", "sort": 0}, TEMPLATE) is None
    # No template configured: nothing to check against.
    assert check(with_components(("anything", 1)), []) is None
    # A dict id -> entry works as well as the API's list.
    by_id = {entry["id"]: entry for entry in TEMPLATE}
    assert check(with_components(("c87d8629", 1)), by_id) == (
        f"{COMPONENT_INVALID}: 姓名 is required"
    )
