"""Two loads configured side by side (include/lead_load/loads/): the default one and the
shipped lapsed_customers example, each with its own SQL, mapping, calling task and schedule,
run with `airflow dags test` against the simulator over HTTP and a real warehouse. Each
lands its own valid numbers in its own calling task, exactly once, and a number put on the
suppression list (`python -m lead_load suppress add`, or the second load's own suppression
query) is sent by neither."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from sqlalchemy import text

from lead_load.core.loads import LOADS_DIR
from lead_load_devtools.synthetic import generate, write_leads
from tests.dags.conftest import WINDOW

pytestmark = pytest.mark.slow

CUSTOMERS_DDL = (
    "CREATE TABLE customers (customer_id VARCHAR(32) PRIMARY KEY, mobile VARCHAR(40), "
    "full_name VARCHAR(100), email VARCHAR(100), employer VARCHAR(100), lapsed_at {time})"
)


def seed_customers(engine) -> dict[str, str]:
    """Customers who lapsed in the window (and two outside it); returns the valid phones
    (normalised) by customer id that the load must send."""
    valid = {f"c{i:03d}": f"1390000{i:04d}" for i in range(120)}
    rows = [
        {"id": cid, "mobile": phone, "at": "2026-11-24 06:00:00"} for cid, phone in valid.items()
    ]
    # Written the way other people's tables are: spaces and dashes, a +86 prefix.
    rows[0]["mobile"] = "139 0000 0000"
    rows[1]["mobile"] = "+86-139-0000-0001"
    rows += [
        {"id": "c900", "mobile": "not a phone", "at": "2026-11-24 07:00:00"},
        {"id": "c901", "mobile": None, "at": "2026-11-24 07:00:00"},
        # Lapsed outside the window: not loaded.
        {"id": "c902", "mobile": "13911112222", "at": "2026-11-20 07:00:00"},
        {"id": "c903", "mobile": "13911113333", "at": "2026-11-25 00:00:00"},
    ]
    time_type = "TEXT" if engine.dialect.name == "sqlite" else "TIMESTAMP"
    at = ":at" if time_type == "TEXT" else "CAST(:at AS TIMESTAMP)"
    with engine.begin() as conn:
        conn.execute(text(CUSTOMERS_DDL.format(time=time_type)))
        conn.execute(
            text(f"INSERT INTO customers VALUES (:id, :mobile, :name, NULL, 'Acme', {at})"),  # noqa: S608
            [{**row, "name": f"Customer {row['id']}"} for row in rows],
        )
    return valid


def configure_loads(folder: Path, lapsed_task: str) -> None:
    """The shipped loads, with the example's calling task set and the example unpaused."""
    folder.mkdir()
    (folder / "lead_load.yaml").write_text((LOADS_DIR / "lead_load.yaml").read_text())
    lapsed = yaml.safe_load((LOADS_DIR / "lapsed_customers.yaml").read_text())
    # Its owners keep opt-outs in a table of their own: the load's suppression query.
    suppression_sql = "SELECT number AS phone, why AS reason FROM customer_opt_outs"
    lapsed.update(api_task_id=lapsed_task, paused=False, suppression_sql=suppression_sql)
    (folder / "lapsed_customers.yaml").write_text(yaml.safe_dump(lapsed))


def suppress(env, *phones: str) -> None:
    """The operator's command, through the same Airflow connection as the DAG."""
    added = subprocess.run(
        [sys.executable, "-m", "lead_load", "suppress", "add", "--reason", "asked not to"],
        input="\n".join(phones) + "\n",
        env=env.env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert added.returncode == 0, added.stdout + added.stderr


def test_two_loads_each_land_their_own_numbers_exactly_once(lead_load_env, tmp_path):
    env = lead_load_env
    leads = generate(300, seed=11, start=WINDOW[0], end=WINDOW[1])
    write_leads(env.warehouse.engine, leads.frame)
    customers = seed_customers(env.warehouse.engine)
    lapsed_task = env.sim.create_task(env.user_id)
    configure_loads(tmp_path / "loads", lapsed_task)
    env.env["LEAD_LOAD_LOADS_DIR"] = str(tmp_path / "loads")
    # One number of each load's window may never be called (written as people write them).
    never_lead = sorted(leads.valid_phones)[0]
    suppress(env, f"+86 {never_lead[:3]} {never_lead[3:7]} {never_lead[7:]}", "139-0000-0005")
    with env.warehouse.engine.begin() as conn:
        conn.execute(text("CREATE TABLE customer_opt_outs (number VARCHAR(40), why VARCHAR(80))"))
        conn.execute(text("INSERT INTO customer_opt_outs VALUES ('139 0000 0006', 'opted out')"))
    never = {never_lead, customers["c005"], customers["c006"]}

    for dag_id in ("lead_load", "lapsed_customers", "lapsed_customers"):
        result = env.run_dag(dag_id=dag_id)
        assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]

    leads_phones = env.calling_task_phones()
    assert sorted(leads_phones) == sorted(set(leads.valid_phones) - never)
    lapsed_phones = [n["phone"] for n in env.sim.task_numbers(env.user_id, lapsed_task)]
    # Each valid customer once, though the load ran twice; the rest rejected or outside.
    assert sorted(lapsed_phones) == sorted(set(customers.values()) - never)
    posted = [row["phone"] for post in env.posts() for row in post["body"]["data"]]
    assert never.isdisjoint(posted)  # never on the wire
    lapsed_posted = [
        row["phone"]
        for post in env.posts()
        if f"/task/{lapsed_task}/" in post["path"]
        for row in post["body"]["data"]
    ]
    assert sorted(lapsed_posted) == sorted(set(customers.values()) - never)

    # The ledger keeps each load's runs apart and names their rows by calling task.
    runs = env.warehouse.rows(
        "SELECT run_id, api_task_id, summary FROM lead_load_runs ORDER BY started_at"
    )
    assert [r["api_task_id"] for r in runs] == [env.task_id, lapsed_task, lapsed_task]
    summaries = [json.loads(r["summary"]) for r in runs]
    # Each run rejected its window's suppressed numbers: one by hand, one more by the query.
    assert [s["suppressed"] for s in summaries] == [1, 2, 2]
    assert not runs[0]["run_id"].startswith("lapsed_customers/")
    assert all(r["run_id"].startswith("lapsed_customers/") for r in runs[1:])
    rejected = env.warehouse.rows(
        "SELECT lead_id, reason FROM lead_load_rejects WHERE run_id = :r ORDER BY lead_id",
        r=runs[1]["run_id"],
    )
    assert [(r["lead_id"], r["reason"]) for r in rejected] == [
        ("c005", "suppressed"),
        ("c006", "suppressed"),
        ("c900", rejected[2]["reason"]),
        ("c901", rejected[3]["reason"]),
    ]
