"""The Airflow UI, driven in Debian's chromium by Playwright: log in, open lead_load, check the
trigger form renders our params with their descriptions, trigger a run and watch it succeed.

No browser is downloaded: the test launches the machine's /usr/bin/chromium (installed by
.ci/run with apt). The screenshot of the grid view lands in test-output/browser/.
"""

from __future__ import annotations

import os
import shutil
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import create_engine

from lead_load_devtools.synthetic import generate, write_leads
from tests.distributed.conftest import OUTPUT
from tests.distributed.stack import ADMIN_USER

pytestmark = [pytest.mark.slow, pytest.mark.distributed]

CHROMIUM = Path(os.environ.get("LEAD_LOAD_CHROMIUM", "/usr/bin/chromium"))
# Without the background-networking flags chromium keeps dialling Google's hosts, which a
# closed network refuses; --no-sandbox because CI runs as root.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]
WINDOW = (datetime(2026, 10, 20, tzinfo=UTC), datetime(2026, 10, 21, tzinfo=UTC))
TIMEOUT_MS = 30_000


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
    finally:
        page.close()

    assert (screenshots / "lead_load_grid.png").stat().st_size > 10_000
    # The run really loaded the leads it was given through the form.
    phones = {n["phone"] for n in stack.simulator.task_numbers(stack.user_id, stack.task_id)}
    assert set(leads.valid_phones) <= phones
