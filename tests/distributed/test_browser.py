"""The Airflow UI, driven in Debian's chromium by Playwright: log in, open lead_load, check the
trigger form renders our params with their descriptions, trigger a run and watch it succeed;
then read that run on the Lead loads page (its menu entry, the run's tab, a batch's tab and the
lead search) against the ledger, with no full phone number in any page.

No browser is downloaded: the test launches the machine's /usr/bin/chromium (installed by
.ci/run with apt). Screenshots land in test-output/browser/.
"""

from __future__ import annotations

import os
import shutil
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote

import pytest
from sqlalchemy import create_engine

from lead_load.ledger import browse
from lead_load_devtools.synthetic import generate, write_leads
from tests.distributed.conftest import OUTPUT
from tests.distributed.stack import ADMIN_USER
from tests.full_numbers import mobile_numbers_in

pytestmark = [pytest.mark.slow, pytest.mark.distributed]

CHROMIUM = Path(os.environ.get("LEAD_LOAD_CHROMIUM", "/usr/bin/chromium"))
# Without the background-networking flags chromium keeps dialling Google's hosts, which a
# closed network refuses; --no-sandbox because CI runs as root.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]
WINDOW = (datetime(2026, 10, 20, tzinfo=UTC), datetime(2026, 10, 21, tzinfo=UTC))
TIMEOUT_MS = 30_000
ROWS_PER_PAGE = 50  # the Lead loads page's lists (lead_loads.app.PER_PAGE)


def _dag_params() -> dict:
    from lead_load.glue.settings import dag_params  # what the DAG file passes as its params

    return dag_params()


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.exists():
        message = f"{CHROMIUM} not found: install Debian's chromium (apt-get install chromium)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def screenshots() -> Path:
    folder = OUTPUT / "browser"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    return folder


def test_trigger_lead_load_from_the_ui_and_see_it_succeed(airflow_stack, browser, screenshots):
    stack = airflow_stack
    engine = create_engine(stack.warehouse_url)
    leads = generate(120, seed=77, start=WINDOW[0], end=WINDOW[1], id_prefix="UI-")
    write_leads(engine, leads.frame)
    engine.dispose()
    runs_before = {r["dag_run_id"] for r in stack.dag_runs()}

    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.set_default_timeout(TIMEOUT_MS)
    try:
        page.goto(f"{stack.base_url}/auth/login")
        page.locator("input[name=username]").fill(ADMIN_USER)
        page.locator("input[name=password]").fill(stack.password)
        page.locator("button[type=submit]").click()
        page.wait_for_url(lambda url: "/auth/login" not in url)

        page.goto(f"{stack.base_url}/dags/lead_load")
        page.get_by_text("data-engineering").first.wait_for()  # the DAG's owner, on its page

        # The trigger form shows every param with its title and description.
        page.get_by_role("button", name="Trigger").first.click()
        dialog = page.get_by_role("dialog")
        dialog.get_by_text("Run Parameters").wait_for()
        form_text = dialog.inner_text()
        for name, param in _dag_params().items():
            schema = param.schema
            assert schema["title"] in form_text, name
            assert param.description.split(". ")[0] in form_text, name
        page.screenshot(path=str(screenshots / "trigger_form.png"))

        dialog.locator("#element_window_start").fill(WINDOW[0].isoformat())
        dialog.locator("#element_window_end").fill(WINDOW[1].isoformat())
        dialog.get_by_role("button", name="Trigger").click()
        dialog.wait_for(state="hidden")

        # The run the form created succeeds, and the UI says so.
        new = [r for r in stack.dag_runs() if r["dag_run_id"] not in runs_before]
        assert len(new) == 1, new
        run_id = new[0]["dag_run_id"]
        assert new[0]["conf"]["window_start"] == WINDOW[0].isoformat()
        (run,) = stack.wait_for_runs([run_id], timeout=600)
        assert run["state"] == "success"
        page.goto(f"{stack.base_url}/dags/lead_load/runs/{run_id}")
        page.get_by_text("Success").first.wait_for()
        page.goto(f"{stack.base_url}/dags/lead_load")
        # The grid shows the batches' mapped task group (post_batch -> wait_for_callback).
        page.get_by_text("batches").first.wait_for()
        page.screenshot(path=str(screenshots / "lead_load_grid.png"), full_page=True)

        _lead_loads_pages(page, stack, run_id, leads, screenshots)
    finally:
        page.close()

    assert (screenshots / "lead_load_grid.png").stat().st_size > 10_000
    # The run really loaded the leads it was given through the form.
    phones = {n["phone"] for n in stack.simulator.task_numbers(stack.user_id, stack.task_id)}
    assert set(leads.valid_phones) <= phones


def _lead_loads_pages(page, stack, run_id: str, leads, screenshots: Path) -> None:
    """The Lead loads page in the UI's frames, checked against the ledger."""
    ledger = create_engine(stack.warehouse_url)
    try:
        load = browse.get_load(ledger, run_id)
        batches = browse.batches_of(ledger, run_id)
    finally:
        ledger.dispose()
    assert load is not None and load.imported == len(leads.valid_phones) and batches
    run_path = f"{stack.base_url}/dags/lead_load/runs/{quote(run_id, safe='')}"

    # The menu entry: the list of loads, with the run's counts.
    page.goto(f"{stack.base_url}/plugin/lead-loads")
    frame = page.frame_locator("iframe")
    row = frame.locator(f'tr[data-run="{run_id}"]')
    row.wait_for()
    assert row.locator('[data-count="imported"]').inner_text() == str(load.imported)
    assert row.locator('[data-count="rejected"]').inner_text() == str(load.rejected)
    assert row.locator('[data-count="extracted"]').inner_text() == str(load.extracted)
    _no_full_number(page)
    page.screenshot(path=str(screenshots / "lead_loads_list.png"), full_page=True)

    # The run's tab: every batch, with its unique_id and outcome.
    page.goto(f"{run_path}/plugin/lead-load")
    frame = page.frame_locator("iframe")
    frame.locator("#batches").wait_for()
    for batch in batches:
        cells = frame.locator(f'tr[data-batch="{batch.batch_no}"] td').all_inner_texts()
        assert cells[1:5] == [batch.status, str(batch.rows), batch.unique_id, str(batch.imported)]
    _no_full_number(page)
    page.screenshot(path=str(screenshots / "lead_loads_run.png"), full_page=True)

    # A batch's tab on post_batch's first task instance: the plan's first batch.
    page.goto(f"{run_path}/tasks/batches.post_batch/mapped/0/plugin/lead-batch")
    frame = page.frame_locator("iframe")
    frame.locator("#batch").wait_for()
    first = batches[0]
    assert first.unique_id in frame.locator("#batch").inner_text()
    assert frame.locator("#rows tr[data-lead]").count() == min(first.rows, ROWS_PER_PAGE)
    if first.rows > ROWS_PER_PAGE:
        assert "page 1 of " in frame.locator(".pager").inner_text()
        assert f"({first.rows})" in frame.locator(".pager").inner_text()
    _no_full_number(page)
    page.screenshot(path=str(screenshots / "lead_loads_batch.png"), full_page=True)

    # Find a lead by its id, then by its number: shown masked, the number never echoed.
    lead_id = frame.locator("#rows tr[data-lead]").first.get_attribute("data-lead")
    page.goto(f"{stack.base_url}/plugin/lead-loads")
    frame = page.frame_locator("iframe")
    frame.get_by_role("link", name="Find a lead").click()
    frame.locator("input[name=lead_id]").fill(lead_id)
    frame.locator("input[name=lead_id]").press("Enter")
    found = frame.locator(f'#lead-rows tr[data-lead="{lead_id}"]')
    found.wait_for()
    phone = next(p for p, lead in leads.valid_phones.items() if lead == lead_id)
    assert found.locator("td").nth(1).inner_text() == f"{phone[:3]}****{phone[-4:]}"
    _no_full_number(page)
    page.screenshot(path=str(screenshots / "lead_loads_lead_by_id.png"), full_page=True)

    frame.locator("input[name=phone]").fill(phone)
    frame.locator("input[name=phone]").press("Enter")
    frame.get_by_text("History of phone").wait_for()
    assert frame.locator(f'#lead-rows tr[data-lead="{lead_id}"]').count() == 1
    _no_full_number(page)
    page.screenshot(path=str(screenshots / "lead_loads_lead_by_phone.png"), full_page=True)


def _no_full_number(page) -> None:
    """No page of the Lead loads app (nor the UI around it) holds a full mobile number."""
    for frame in page.frames:
        html = frame.content()
        assert not mobile_numbers_in(html), frame.url
