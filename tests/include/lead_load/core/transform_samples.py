"""Warehouse rows for the tests of the core's transform, payloads and component template."""

import pandas as pd

from lead_load.core.mapping import FieldMapping
from lead_load.core.transform import normalise_and_validate

DEFAULT = FieldMapping.load()
TEMPLATE = [  # docs/agent-api.md section 4's example
    {"id": "91a4ff5d", "name": "姓名", "type": "text", "sort": 0, "validate": ["required"]},
    {"id": "c87d8629", "name": "数字", "type": "number", "sort": 1, "validate": ["integer"]},
    {
        "id": "44560536",
        "name": "日期",
        "type": "date",
        "sort": 2,
        "validate": ["date", "sometimes"],
    },
]


def leads(*rows: dict) -> pd.DataFrame:
    """A warehouse extract with every default column; rows override the defaults."""
    base = {
        "lead_id": None,
        "name": None,
        "phone": None,
        "email": None,
        "company": None,
        "sex": None,
        "source_id": None,
        "industry_id": None,
        "grade_id": None,
        "updated_at": pd.Timestamp("2024-01-01"),
    }
    return pd.DataFrame([{**base, **row} for row in rows])


def validated(*rows: dict) -> pd.DataFrame:
    """``leads(*rows)`` as ``normalise_and_validate`` leaves them: the payloads' input."""
    return normalise_and_validate(leads(*rows), DEFAULT)
