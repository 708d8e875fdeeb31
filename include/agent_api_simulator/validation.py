"""Strict validation of the async_number body (docs/agent-api.md section 1).

This runs on every import, 200 rows at a time, so it uses plain loops and type checks and stops
at the first error. A failure raises ValidationFailed whose message names the field in
Laravel's dotted notation ("data.3.phone"), so a client log points at the offending row.
"""

import re
from datetime import date

from agent_api_simulator import assumptions as assumed


class ValidationFailed(Exception):
    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field} {problem}")
        self.field = field


TOP_LEVEL_TYPES = {
    "ignore_crm": bool,
    "encryption": bool,
    "sub_user_id": str,
    "data": list,
    "number_add_suffix": bool,
}
REQUIRED_ROW_KEYS = ("phone", "sort")
OPTIONAL_ROW_STRINGS = frozenset({"name", "email", "company", "extra"})
OPTIONAL_ROW_INTS = frozenset({"sex", "source_id", "industry_id", "grade_id"})
ALLOWED_ROW_KEYS = (
    frozenset(REQUIRED_ROW_KEYS) | OPTIONAL_ROW_STRINGS | OPTIONAL_ROW_INTS | {"components"}
)
SEX_VALUES = (0, 1, 2)
COMPONENT_KEYS = frozenset({"id", "value"})

NUMERIC_STRING = re.compile(r"-?\d+(\.\d+)?")
INTEGER_STRING = re.compile(r"-?\d+")
DATE_STRING = re.compile(r"\d{4}-\d{2}-\d{2}")


def is_int(value) -> bool:
    # JSON true/false arrive as bool, which Python counts as int: the platform would not.
    return type(value) is int


def validate_async_number_body(body, template: dict[str, dict]) -> None:
    """Raise ValidationFailed unless `body` is acceptable.

    `template` maps component id -> template entry (empty when none is configured).
    """
    if not isinstance(body, dict):
        raise ValidationFailed("body", "must be a JSON object")
    for key, value in body.items():
        expected = TOP_LEVEL_TYPES.get(key)
        if expected is None:
            raise ValidationFailed(key, "is not an accepted field")
        if type(value) is not expected:
            raise ValidationFailed(key, f"must be of type {expected.__name__}")
    rows = body.get("data")
    if rows is None:
        raise ValidationFailed("data", "is required")
    if not rows:
        raise ValidationFailed("data", "must contain at least 1 row")
    if len(rows) > assumed.MAX_ROWS_PER_BATCH:
        raise ValidationFailed("data", f"may contain at most {assumed.MAX_ROWS_PER_BATCH} rows")
    for index, row in enumerate(rows):
        validate_row(index, row, template)


def validate_row(index: int, row, template: dict[str, dict]) -> None:
    prefix = f"data.{index}"
    if not isinstance(row, dict):
        raise ValidationFailed(prefix, "must be an object")
    for key in REQUIRED_ROW_KEYS:
        if key not in row:
            raise ValidationFailed(f"{prefix}.{key}", "is required")
    for key, value in row.items():
        if key not in ALLOWED_ROW_KEYS:
            raise ValidationFailed(f"{prefix}.{key}", "is not an accepted field")
        if key == "phone" or key in OPTIONAL_ROW_STRINGS:
            if type(value) is not str:
                raise ValidationFailed(f"{prefix}.{key}", "must be a string")
        elif key == "sort" or key in OPTIONAL_ROW_INTS:
            if not is_int(value):
                raise ValidationFailed(f"{prefix}.{key}", "must be an integer")
            if key == "sex" and value not in SEX_VALUES:
                raise ValidationFailed(f"{prefix}.sex", "must be one of 0, 1, 2")
        else:  # components
            validate_components(f"{prefix}.components", value, template)


def validate_components(prefix: str, components, template: dict[str, dict]) -> None:
    if not isinstance(components, list):
        raise ValidationFailed(prefix, "must be a list")
    seen = set()
    for position, component in enumerate(components):
        where = f"{prefix}.{position}"
        if not isinstance(component, dict) or component.keys() != COMPONENT_KEYS:
            raise ValidationFailed(where, "must be an object with exactly `id` and `value`")
        component_id = component["id"]
        value = component["value"]
        if type(component_id) is not str:
            raise ValidationFailed(f"{where}.id", "must be a string")
        if type(value) not in (str, int, float):
            raise ValidationFailed(f"{where}.value", "must be a string or a number")
        if template:
            entry = template.get(component_id)
            if entry is None:
                raise ValidationFailed(f"{where}.id", f"unknown component id {component_id!r}")
            check_component_value(f"{where}.value", value, entry)
        seen.add(component_id)
    # Required components are only enforced on rows that send components (see assumptions).
    for component_id, entry in template.items():
        if "required" in entry["validate"] and component_id not in seen:
            raise ValidationFailed(prefix, f"misses required component {entry['name']!r}")


def check_component_value(where: str, value, entry: dict) -> None:
    rules = entry["validate"]
    kind = entry["type"]
    if "required" in rules and (value == "" or (isinstance(value, str) and not value.strip())):
        raise ValidationFailed(where, f"is required for component {entry['name']!r}")
    if kind == "text":
        if type(value) is not str:
            raise ValidationFailed(where, "must be a string (text component)")
    elif kind == "number":
        if isinstance(value, str) and not NUMERIC_STRING.fullmatch(value):
            raise ValidationFailed(where, "must be a number (number component)")
    elif kind == "date" and not is_date(value):
        raise ValidationFailed(where, "must be a date YYYY-MM-DD (date component)")
    if "integer" in rules and not (
        is_int(value) or (isinstance(value, str) and INTEGER_STRING.fullmatch(value))
    ):
        raise ValidationFailed(where, "must be an integer")
    if "date" in rules and kind != "date" and not is_date(value):
        raise ValidationFailed(where, "must be a date YYYY-MM-DD")


def is_date(value) -> bool:
    if not isinstance(value, str) or not DATE_STRING.fullmatch(value):
        return False
    try:
        date.fromisoformat(value)
    except ValueError:
        return False
    return True
