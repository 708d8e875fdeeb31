"""The public pool's component template (docs/agent-api.md section 4): which components a row
may send, and what each value must look like.

The rules mirror the platform as the simulator assumes it
(include/agent_api_simulator/assumptions.py): a row without ``components`` is not checked, so
"required" binds only rows that send components; an empty template checks nothing.
"sometimes" (validate only when present) is how every component is treated anyway. A row
that breaks the template is rejected as ``component_invalid``, e.g.
``component_invalid: 数字 must be an integer``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import date

from lead_load.core.reject_reasons import RejectKind

COMPONENT_INVALID = RejectKind.COMPONENT_INVALID.value

_NUMERIC_TEXT = re.compile(r"-?[0-9]+(\.[0-9]+)?")
_INTEGER_TEXT = re.compile(r"-?[0-9]+")
_DATE_TEXT = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


def template_index(template: Sequence[Mapping] | Mapping | None) -> dict[str, Mapping]:
    """The template's components by id, from the API's list of them (or a dict id ->
    component already); empty when there is no template."""
    if not template:
        return {}
    if isinstance(template, Mapping):
        return dict(template)
    return {entry["id"]: entry for entry in template}


def _is_date(value) -> bool:
    if not isinstance(value, str) or not _DATE_TEXT.fullmatch(value):
        return False
    try:
        date.fromisoformat(value)
    except ValueError:
        return False
    return True


def _component_problem(value, entry: Mapping) -> str | None:
    rules = entry.get("validate") or ()
    kind = entry.get("type")
    is_number = isinstance(value, int | float) and not isinstance(value, bool)
    if "required" in rules and (value is None or (isinstance(value, str) and not value.strip())):
        return "is required"
    if kind == "text" and not isinstance(value, str):
        return "must be text"
    if kind == "number" and not (
        is_number or (isinstance(value, str) and _NUMERIC_TEXT.fullmatch(value))
    ):
        return "must be a number"
    if "integer" in rules and not (
        (is_number and not isinstance(value, float))
        or (isinstance(value, str) and _INTEGER_TEXT.fullmatch(value))
    ):
        return "must be an integer"
    if (kind == "date" or "date" in rules) and not _is_date(value):
        return "must be a date YYYY-MM-DD"
    return None


def check_components(payload: Mapping, template: Mapping[str, Mapping]) -> str | None:
    """Why the platform would refuse this row's components, or None. ``template``: the
    template's components by id (``template_index``)."""
    components = payload.get("components")
    if not template or components is None:
        return None
    sent = set()
    for component in components:
        component_id = component.get("id")
        entry = template.get(component_id)
        if entry is None:
            return f"{COMPONENT_INVALID}: unknown component id {component_id!r}"
        problem = _component_problem(component.get("value"), entry)
        if problem:
            return f"{COMPONENT_INVALID}: {entry.get('name', component_id)} {problem}"
        sent.add(component_id)
    for component_id, entry in template.items():
        if "required" in (entry.get("validate") or ()) and component_id not in sent:
            return f"{COMPONENT_INVALID}: {entry.get('name', component_id)} is required"
    return None
