"""Synthetic leads for the demo, the tests and the benchmarks, with the truth known by construction.

Each lead gets a canonical mobile number, then a messy but valid spelling of it (spaces,
dashes, +86/0086 prefixes, full-width digits), or is made invalid on purpose, or repeats an
earlier lead's number with an older ``updated_at``. The generator records which is which
without using the project's transform, so tests can check the transform against it.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pandas as pd
from sqlalchemy import Engine, text

FULL_WIDTH = str.maketrans("0123456789", "０１２３４５６７８９")
INVALID_SPELLINGS = (
    lambda r: "",  # missing
    lambda r: f"1{r.randint(10**8, 10**9 - 1)}",  # 10 digits
    lambda r: f"021-{r.randint(10**7, 10**8 - 1)}",  # a fixed line
    lambda r: f"12{r.randint(10**8, 10**9 - 1)}",  # 11 digits, no mobile prefix
    lambda r: "call me maybe",
)
SEXES = ("男", "女", "male", "F", "", None, "unknown")

LEADS_DDL = """
CREATE TABLE IF NOT EXISTS leads (
    lead_id VARCHAR(64) PRIMARY KEY,
    name VARCHAR(200),
    phone VARCHAR(64),
    email VARCHAR(200),
    company VARCHAR(200),
    sex VARCHAR(16),
    source_id INTEGER,
    industry_id INTEGER,
    grade_id INTEGER,
    updated_at TIMESTAMP NOT NULL
)
"""


@dataclass
class SyntheticLeads:
    frame: pd.DataFrame
    valid_phones: dict[str, str] = field(default_factory=dict)  # canonical phone -> kept lead
    invalid_leads: set[str] = field(default_factory=set)
    duplicate_leads: set[str] = field(default_factory=set)


def messy(phone: str, rng: random.Random) -> str:
    """A valid but untidy spelling of ``phone``."""
    style = rng.randrange(6)
    if style == 0:
        return phone
    if style == 1:
        return f"{phone[:3]} {phone[3:7]} {phone[7:]}"
    if style == 2:
        return f"+86 {phone[:3]}-{phone[3:7]}-{phone[7:]}"
    if style == 3:
        return f"0086{phone}"
    if style == 4:
        return phone.translate(FULL_WIDTH)
    return f" ({phone[:3]}) {phone[3:]} "


def generate(
    count: int,
    *,
    seed: int = 1,
    start: datetime,
    end: datetime,
    invalid_share: float = 0.05,
    duplicate_share: float = 0.1,
    id_prefix: str = "L",
) -> SyntheticLeads:
    """``count`` leads with ``updated_at`` spread over [start, end)."""
    rng = random.Random(seed)  # noqa: S311 - test data, not security
    span = (end - start).total_seconds()
    used: set[str] = set()
    out = SyntheticLeads(pd.DataFrame())
    rows = []
    kept_at: dict[str, datetime] = {}
    valid_list: list[str] = []  # for rng.choice without copying the dict
    for index in range(count):
        lead_id = f"{id_prefix}{index:08d}"
        updated = start + timedelta(seconds=rng.uniform(0, span - 1))
        roll = rng.random()
        if roll < invalid_share:
            phone = rng.choice(INVALID_SPELLINGS)(rng)
            out.invalid_leads.add(lead_id)
        elif (
            roll < invalid_share + duplicate_share
            and out.valid_phones
            and (kept_at[canonical := rng.choice(valid_list)] - start).total_seconds() > 3
        ):
            phone = messy(canonical, rng)
            # Strictly older than the kept row (and still inside the window), so the kept
            # row stays the most recently updated one.
            room = min(3600.0, (kept_at[canonical] - start).total_seconds() - 1)
            updated = kept_at[canonical] - timedelta(seconds=rng.uniform(1, room))
            out.duplicate_leads.add(lead_id)
        else:
            canonical = f"1{rng.choice('3456789')}{rng.randint(0, 10**9 - 1):09d}"
            while canonical in used:
                canonical = f"1{rng.choice('3456789')}{rng.randint(0, 10**9 - 1):09d}"
            used.add(canonical)
            phone = messy(canonical, rng)
            out.valid_phones[canonical] = lead_id
            valid_list.append(canonical)
            kept_at[canonical] = updated
        rows.append(
            {
                "lead_id": lead_id,
                "name": f"联系人{index}",
                "phone": phone,
                "email": f"lead{index}@example.com" if rng.random() < 0.7 else None,
                "company": f"公司{index % 97}",
                "sex": rng.choice(SEXES),
                "source_id": rng.choice((1, 2, 3, None)),
                "industry_id": rng.choice((1, 5, None)),
                "grade_id": rng.choice((1, 2, None)),
                "updated_at": updated.astimezone(UTC).replace(tzinfo=None, microsecond=0),
            }
        )
    out.frame = pd.DataFrame(rows)
    return out


def write_leads(engine: Engine, leads: pd.DataFrame, *, replace: bool = False) -> None:
    """Create the documented ``leads`` table if needed and append ``leads`` to it."""
    with engine.begin() as conn:
        if replace:
            conn.execute(text("DROP TABLE IF EXISTS leads"))
        conn.execute(text(LEADS_DDL))
    frame = leads.copy()
    if engine.dialect.name == "sqlite":  # SQLite keeps timestamps as comparable text
        frame["updated_at"] = frame["updated_at"].dt.strftime("%Y-%m-%d %H:%M:%S")
    frame.to_sql("leads", engine, if_exists="append", index=False, chunksize=5000)
