"""The Lead loads page, served by the api-server's app over a ledger after two real loads:
the numbers on each page are the ledger's, and no full phone number reaches the browser."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from lead_load.ledger import schema
from tests.full_numbers import full_numbers_in
from tests.include.lead_load.browse_samples import PHONES


def cells(html: str, row_attr: str, value: str) -> list[str]:
    """The cell texts of the table row marked ``data-<row_attr>="<value>"``."""
    row = re.search(rf'<tr data-{row_attr}="{re.escape(value)}">(.*?)</tr>', html, re.S)
    assert row, f"no row {row_attr}={value}"
    return [
        re.sub(r"<[^>]+>|\s+", " ", c).strip()
        for c in re.findall(r"<td[^>]*>(.*?)</td>", row[1], re.S)
    ]


def no_full_number(answer) -> str:
    assert answer.status_code == 200, answer.text[:500]
    assert not full_numbers_in(answer.text)
    return answer.text


def test_the_list_shows_each_load_with_the_ledgers_counts(reader, ledger):
    html = no_full_number(reader.get("/lead-loads/"))
    run1 = cells(html, "run", "run-1")
    # window, task, extracted 9, imported 6, rejected 3, duplicates 1, not imported 1, carried 2
    assert "2026-11-24 00:00:00 UTC" in run1[1] and "2026-11-24 08:00:00 CST" in run1[1]
    assert run1[3:10] == ["9", "6", "3", "1", "1", "2", "finished"]
    assert cells(html, "run", "run-0")[3:10] == ["-", "0", "0", "0", "0", "0", "failed"]
    assert html.index('data-run="run-1"') < html.index('data-run="run-0"')  # newest first
    assert 'href="/dags/lead_load/runs/run-1"' in html


def test_the_list_is_paged(reader, ledger, monkeypatch):
    from lead_loads import app

    monkeypatch.setattr(app, "LOADS_PER_PAGE", 1)
    second = no_full_number(reader.get("/lead-loads/?page=2"))
    assert 'data-run="run-0"' in second and 'data-run="run-1"' not in second
    assert "page 2 of 2" in second


def test_a_loads_page_shows_batches_rejects_and_carried_rows(reader, ledger):
    html = no_full_number(reader.get("/lead-loads/runs/run-1"))
    with ledger.engine.connect() as conn:
        stored = {
            b.batch_no: b
            for b in conn.execute(select(schema.batches).where(schema.batches.c.run_id == "run-1"))
        }
    assert len(stored) == 4
    for batch_no, batch in stored.items():
        row = cells(html, "batch", str(batch_no))
        assert row[1:4] == [batch.status, str(batch.rows), batch.unique_id]
    assert sum(int(cells(html, "batch", str(n))[5]) for n in stored) == 1  # e, already in task
    assert cells(html, "kind", "not_mobile") == ["not_mobile", "2"]
    assert cells(html, "kind", "duplicate_in_run") == ["duplicate_in_run", "1"]
    assert cells(html, "lead", "g")[:2] == ["g", "021-****-*2345"]
    assert cells(html, "lead", "y")[:2] == ["y", "139****0098"]  # carried over from run-0
    assert "<script>" not in html  # the run is over: nothing to poll

    only = no_full_number(reader.get("/lead-loads/runs/run-1?kind=not_mobile"))
    assert 'data-lead="f"' in only and 'data-lead="h"' not in only


def test_live_counts_are_json(reader, ledger):
    answer = reader.get("/lead-loads/runs/run-1/live")
    assert answer.json() == {
        "state": "finished",
        "rows": {"imported": 6, "not_imported": 1, "rejected": 4},
        "batches": {"processed": 4},
        "rejects": 4,
    }


def test_a_running_load_polls_its_live_counts(reader, ledger):
    with ledger.engine.begin() as conn:
        conn.execute(
            schema.runs.update().where(schema.runs.c.run_id == "run-1").values(state="running")
        )
    html = no_full_number(reader.get("/lead-loads/runs/run-1"))
    assert '"/lead-loads/runs/run-1/live"' in html and "setInterval" in html


def test_a_batch_page_lists_its_rows_and_outcome(reader, ledger):
    with ledger.engine.connect() as conn:
        e = conn.execute(select(schema.ledger).where(schema.ledger.c.lead_id == "e")).one()
    html = no_full_number(reader.get(f"/lead-loads/runs/run-1/batches/{e.batch_no}"))
    assert cells(html, "lead", "e")[:4] == ["e", "139****0005", ledger_task(ledger), "not_imported"]
    assert e.unique_id in html
    assert reader.get("/lead-loads/runs/run-1/batches/99").status_code == 404


def test_a_lead_is_found_by_id(reader, ledger):
    html = no_full_number(reader.get("/lead-loads/leads", params={"lead_id": "h"}))
    assert cells(html, "lead", "h")[:5] == [
        "h",
        "139****0001",
        ledger_task(ledger),
        "rejected",
        "duplicate_in_run (kept lead a)",
    ]


@pytest.mark.parametrize("typed", ["13900000001", "+86 139 0000 0001"])
def test_a_lead_is_found_by_phone_which_is_never_echoed(reader, ledger, typed):
    html = no_full_number(reader.post("/lead-loads/leads", data={"phone": typed}))
    assert 'data-lead="a"' in html and 'data-lead="h"' in html
    assert "0000 0001" not in html
    assert "unknown" not in html


def test_a_phone_nobody_had_finds_nothing(reader, ledger):
    html = no_full_number(reader.post("/lead-loads/leads", data={"phone": PHONES["a"][:-1] + "7"}))
    assert "The ledger knows no such lead." in html


def test_tabs_of_other_dags_say_so(reader, ledger):
    html = no_full_number(reader.get("/lead-loads/runs/run-1", params={"dag_id": "other"}))
    assert "loads no leads" in html and 'data-batch="0"' not in html
    other_task = reader.get("/lead-loads/runs/run-1/map-index/0", params={"task_id": "report"})
    assert "batches of lead_load" in no_full_number(other_task)


def test_a_map_index_without_a_plan_in_airflow_is_not_guessed(reader, ledger):
    answer = reader.get(
        "/lead-loads/runs/run-1/map-index/0",
        params={"dag_id": "lead_load", "task_id": "batches.post_batch"},
    )
    assert answer.status_code == 404 and "no plan of this run" in answer.text


def ledger_task(ledger) -> str:
    with ledger.engine.connect() as conn:
        return conn.execute(
            select(schema.runs.c.api_task_id).where(schema.runs.c.run_id == "run-1")
        ).scalar_one()
