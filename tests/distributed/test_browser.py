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
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import quote

import pytest
from sqlalchemy import create_engine

from lead_load.ledger import browse
from lead_load_devtools.synthetic import generate, write_leads
from tests.distributed.conftest import OUTPUT
from tests.distributed.stack import ADMIN_USER, StackError
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
    from lead_load.glue.settings_catalog import dag_params  # what the DAG file passes as its params

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
        # The grid shows the mapped posts and the run's one wait beside them.
        page.get_by_text("post_batch").first.wait_for()
        page.get_by_text("wait_for_callbacks").first.wait_for()
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
    for key in ("extracted", "imported", "invalid", "duplicates_in_run"):
        assert row.locator(f'[data-figure="{key}"]').inner_text() == str(load.figures[key])
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
    page.goto(f"{run_path}/tasks/post_batch/mapped/0/plugin/lead-batch")
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


# -- one summary on every page -----------------------------------------------------------------

# A day of the schedule (02:00 Asia/Shanghai = 18:00 UTC) no other test loads. The stack's
# tests share one leads table: lead ids here start with a prefix no other test uses (SUM-).
DAY = (datetime(2026, 9, 20, 18, tzinfo=UTC), datetime(2026, 9, 21, 18, tzinfo=UTC))
UNKNOWN_TASK = "123e4567-e89b-12d3-a456-426614174000"
# Mistakes in a run's settings (conf, the reason the run must give); each fails in seconds.
MISTAKES = (
    ({"window_start": "2026-09-20T18:00:00+00:00", "window_end": None}, "set both window_start"),
    (
        {"window_start": "2026-09-21T18:00:00+00:00", "window_end": "2026-09-20T18:00:00+00:00"},
        "must be before window_end",
    ),
    (
        {
            "api_task_id": UNKNOWN_TASK,
            "window_start": "2026-09-20T18:00:00+00:00",
            "window_end": "2026-09-21T18:00:00+00:00",
        },
        f"calling task {UNKNOWN_TASK} not found",
    ),
)
MISTAKE_SECONDS = 30
HOUR = timedelta(hours=1)


def _leads_of_every_kind():
    """A day of synthetic leads (phones missing, too short, fixed lines, words; duplicates)
    plus a lead whose name holds a control character. (The leads table's key keeps lead ids
    present and unique, so those two kinds cannot occur in it.)"""
    import pandas as pd

    leads = generate(300, seed=91, start=DAY[0], end=DAY[1], id_prefix="SUM-")
    at = DAY[0] + (DAY[1] - DAY[0]) / 2
    control = pd.DataFrame(
        [{"lead_id": "SUM-CTRL", "name": "bad\x07name", "phone": "13712340003", "updated_at": at}]
    )
    return leads, control


def _report(stack, run_id: str) -> dict:
    path = f"/dags/lead_load/dagRuns/{quote(run_id, safe='')}/taskInstances/report"
    return stack.api("GET", f"{path}/xcomEntries/return_value")["value"]


def _run(stack, run_id: str) -> dict:
    return stack.api("GET", f"/dags/lead_load/dagRuns/{quote(run_id, safe='')}")


def test_every_page_shows_the_reports_figures_after_a_backfill_over_a_loaded_day(
    airflow_stack, browser, screenshots
):
    """A day loaded by a manual run, then backfilled (every row already loaded, plus a new
    lead with a loaded phone); then three mistakes. The list, the run tab, its pictures, the
    run note and the report's XCom agree figure by figure; a mistake is red in seconds with
    its reason on the run and on the list; the filters and the rejects' CSV work."""
    from lead_loads.views import LIST_FIGURES
    from playwright.sync_api import expect

    from lead_load.core.run_summary import FIGURE_WORDS

    stack = airflow_stack
    engine = create_engine(stack.warehouse_url)
    leads, control = _leads_of_every_kind()
    write_leads(engine, leads.frame)
    write_leads(engine, control)
    task_id = stack.simulator.create_task(stack.user_id)

    window = {"window_start": DAY[0].isoformat(), "window_end": DAY[1].isoformat()}
    manual = stack.trigger({"api_task_id": task_id, **window})
    (run,) = stack.wait_for_runs([manual], timeout=600)
    assert run["state"] == "success", stack.explain(manual)

    # A new lead holding a loaded phone, then the day backfilled: all of it already loaded.
    taken = next(iter(leads.valid_phones))
    write_leads(
        engine,
        control.assign(lead_id="SUM-TAKEN", name="taken", phone=taken, updated_at=DAY[0] + HOUR),
    )
    engine.dispose()
    before = {r["dag_run_id"] for r in stack.dag_runs()}
    stack.backfill(
        dag_id="lead_load",
        from_date=DAY[0].isoformat(),
        to_date=DAY[0].isoformat(),
        max_active_runs=1,
        reprocess_behavior="none",
        dag_run_conf={"api_task_id": task_id},
    )
    (backfilled,) = [r for r in stack.dag_runs() if r["dag_run_id"] not in before]
    backfill_id = backfilled["dag_run_id"]
    assert backfilled["state"] == "success", stack.explain(backfill_id)

    reports = {run_id: _report(stack, run_id) for run_id in (manual, backfill_id)}
    first, again = reports[manual], reports[backfill_id]
    assert first["imported"] == len(leads.valid_phones) and first["invalid"] > 0
    assert first["duplicates_in_run"] > 0
    assert again["imported"] == 0 and again["already_loaded"] > 0

    failed = _mistakes(stack)

    page = _signed_in(browser, stack)
    try:
        page.goto(f"{stack.base_url}/plugin/lead-loads")
        frame = page.frame_locator("iframe")
        for run_id, report in reports.items():
            row = frame.locator(f'tr[data-run="{run_id}"]')
            row.wait_for()
            for key in LIST_FIGURES:
                shown = row.locator(f'[data-figure="{key}"]').inner_text()
                assert shown == str(report[key]), (run_id, key)
            history = frame.locator(f'#history g[data-run="{run_id}"]')
            assert history.get_attribute("data-imported") == str(report["imported"])
            assert history.get_attribute("data-rejected") == str(report["rejected"])
        for run_id, reason in failed.items():
            why = frame.locator(f'tr[data-run="{run_id}"] [data-why]').inner_text()
            assert reason in why, (run_id, why)
        _no_full_number(page)
        page.screenshot(path=str(screenshots / "summary_list.png"), full_page=True)

        # The filters: by calling task (the two runs of this test), then by state.
        filters = frame.locator("#filters")
        _set(filters.locator('[name="api_task_id"]'), task_id)
        filters.get_by_role("button", name="Filter").click()
        # The filtered page replaces the list: wait until the other runs' rows are gone (the
        # unfiltered page already holds this test's rows, so waiting for them proves nothing).
        listed = frame.locator("#loads tr[data-run]")
        expect(listed).to_have_count(2, timeout=TIMEOUT_MS)
        runs = listed.evaluate_all("rows => rows.map(r => r.dataset.run)")
        assert sorted(runs) == sorted([manual, backfill_id])
        _set(filters.locator('[name="api_task_id"]'), "")
        filters.locator('[name="state"]').select_option("failed")
        filters.get_by_role("button", name="Filter").click()
        expect(frame.locator(f'tr[data-run="{manual}"]')).to_have_count(0, timeout=TIMEOUT_MS)
        frame.locator(f'tr[data-run="{next(iter(failed))}"]').wait_for()
        states = frame.locator("#loads tr[data-run] td.state-failed").count()
        assert states == frame.locator("#loads tr[data-run]").count() >= len(failed)
        assert frame.locator(f'tr[data-run="{manual}"]').count() == 0

        for run_id, report in reports.items():
            _run_tab(page, stack, run_id, report, FIGURE_WORDS, screenshots)
    finally:
        page.close()


def _mistakes(stack) -> dict[str, str]:
    """Trigger the three mistakes; each run is red within MISTAKE_SECONDS of starting, with
    the reason in its note. Returns {run id: reason}."""
    failed = {stack.trigger(conf): reason for conf, reason in MISTAKES}
    for run in stack.wait_for_runs(list(failed), timeout=300):
        run_id = run["dag_run_id"]
        assert run["state"] == "failed", run
        took = datetime.fromisoformat(run["end_date"]) - datetime.fromisoformat(run["start_date"])
        assert took.total_seconds() < MISTAKE_SECONDS, (run_id, took)
        note = _run(stack, run_id)["note"] or ""
        assert failed[run_id] in note, (run_id, note)
    return failed


def _signed_in(browser, stack):
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.set_default_timeout(TIMEOUT_MS)
    page.goto(f"{stack.base_url}/auth/login")
    page.locator("input[name=username]").fill(ADMIN_USER)
    page.locator("input[name=password]").fill(stack.password)
    page.locator("button[type=submit]").click()
    page.wait_for_url(lambda url: "/auth/login" not in url)
    return page


def _run_tab(page, stack, run_id: str, report: dict, words: dict, screenshots: Path) -> None:
    """The run's tab, its pictures, its note and its rejects' CSV against its report."""
    page.goto(f"{stack.base_url}/dags/lead_load/runs/{quote(run_id, safe='')}/plugin/lead-load")
    frame = page.frame_locator("iframe")
    frame.locator("#summary").wait_for()
    for key in words:
        shown = frame.locator(f'#summary [data-figure="{key}"]').inner_text()
        assert shown == str(report[key]), (run_id, key)
    for key in ("extracted", "invalid", "duplicates_in_run", "already_loaded", "imported"):
        if report[key]:
            bars = frame.locator(f'#funnel rect[data-figure="{key}"]:not([data-reason])')
            assert str(report[key]) in bars.evaluate_all("bars => bars.map(b => b.dataset.value)")
    if report["batches"]:
        strip = frame.locator("#strip svg")
        assert strip.get_attribute("role") == "img"
        processed = frame.locator('#strip g.legend-item[data-status="processed"]')
        assert processed.get_attribute("data-value") == str(report["batches"])
    note = _run(stack, run_id)["note"]
    for key in ("invalid", "duplicates_in_run", "already_loaded", "not_imported", "carried_over"):
        assert f"{words[key]} {report[key]}" in note, (key, note)
    assert note.startswith(f"imported {report['imported']} of {report['extracted']} extracted")

    # The reasons: the invalid kinds add up to the report's invalid, duplicate_in_run is its
    # duplicates; the rejects' CSV has a line for each, phones masked.
    kinds = {
        row.get_attribute("data-kind"): int(row.locator("td").nth(1).inner_text())
        for row in frame.locator("#reasons tr[data-kind]").all()
    }
    invalid = {
        k: n for k, n in kinds.items() if k not in ("duplicate_in_run", "phone_already_loaded")
    }
    assert sum(invalid.values()) == report["invalid"], kinds
    assert kinds.get("duplicate_in_run", 0) == report["duplicates_in_run"], kinds
    assert {"not_a_phone", "invalid_field"} <= set(invalid), kinds
    _no_full_number(page)
    page.screenshot(path=str(screenshots / f"summary_{run_id[:20]}.png"), full_page=True)

    href = frame.locator("#rejects-csv").get_attribute("href")
    answer = page.request.get(f"{stack.base_url}{href}" if href.startswith("/") else href)
    assert answer.ok and answer.headers["content-type"].startswith("text/csv")
    body = answer.text()
    lines = body.strip().splitlines()
    assert lines[0] == "lead_id,raw_phone,reason,counted_in,rejected_at"
    assert len(lines) - 1 == sum(kinds.values())
    assert not mobile_numbers_in(body)


def _set(field, value: str) -> None:
    """Fill a filter, whether the page made it a text input or a select."""
    if field.evaluate("element => element.tagName") == "SELECT":
        field.select_option(value)
    else:
        field.fill(value)


def test_the_lead_loads_page_filters_by_load(airflow_stack, browser, screenshots):
    """A run of the second example load (lapsed_customers, its own table, mapping and calling
    task) beside a run of lead_load: the list names each run's load, and its load filter
    shows one load's runs only."""
    from playwright.sync_api import expect

    from tests.dags.test_configured_loads import seed_customers

    stack = airflow_stack
    engine = create_engine(stack.warehouse_url)
    customers = seed_customers(engine)
    engine.dispose()
    task_id = stack.simulator.create_task(stack.user_id)
    window = {"window_start": "2026-11-24", "window_end": "2026-11-25"}
    ours = stack.trigger({"dry_run": True, **window})
    # Paused as shipped: its calling task set (a scheduled run the unpausing starts needs it
    # too), unpaused for this test only.
    variable = {"key": "lapsed_customers_api_task_id", "value": task_id}
    try:
        stack.api("POST", "/variables", json=variable)
    except StackError:  # set by an earlier run of this test on the same stack
        stack.api("PATCH", f"/variables/{variable['key']}", json=variable)
    stack.api("PATCH", "/dags/lapsed_customers", json={"is_paused": False})
    try:
        theirs = stack.trigger(window, dag_id="lapsed_customers")
        (run,) = stack.wait_for_runs([theirs], dag_id="lapsed_customers", timeout=600)
        assert run["state"] == "success", stack.explain(theirs, dag_id="lapsed_customers")
    finally:
        stack.api("PATCH", "/dags/lapsed_customers", json={"is_paused": True})
    (run,) = stack.wait_for_runs([ours], timeout=600)
    assert run["state"] == "success", stack.explain(ours)
    imported = stack.simulator.task_numbers(stack.user_id, task_id)
    assert sorted(n["phone"] for n in imported) == sorted(customers.values())

    theirs_in_ledger = f"lapsed_customers/{theirs}"
    page = _signed_in(browser, stack)
    try:
        page.goto(f"{stack.base_url}/plugin/lead-loads")
        frame = page.frame_locator("iframe")
        frame.locator(f'tr[data-run="{theirs_in_ledger}"]').wait_for()
        assert frame.locator(f'tr[data-run="{theirs_in_ledger}"] td.load').inner_text() == (
            "lapsed_customers"
        )
        filters = frame.locator("#filters")
        filters.locator('[name="load"]').select_option("lapsed_customers")
        filters.get_by_role("button", name="Filter").click()
        expect(frame.locator(f'tr[data-run="{ours}"]')).to_have_count(0, timeout=TIMEOUT_MS)
        loads = frame.locator("#loads td.load").evaluate_all("cells => cells.map(c => c.innerText)")
        assert loads and set(loads) == {"lapsed_customers"}
        page.screenshot(path=str(screenshots / "filtered_by_load.png"), full_page=True)
        # Its run's tab names the load; its link leads to its own DAG's run in Airflow.
        frame.locator(f'tr[data-run="{theirs_in_ledger}"] td a').first.click()
        expect(frame.locator("#load-id")).to_have_text("lapsed_customers", timeout=TIMEOUT_MS)
        page.goto(f"{stack.base_url}/plugin/lead-loads")
        filters.locator('[name="load"]').select_option("lead_load")
        filters.get_by_role("button", name="Filter").click()
        expect(frame.locator(f'tr[data-run="{theirs_in_ledger}"]')).to_have_count(
            0, timeout=TIMEOUT_MS
        )
        frame.locator(f'tr[data-run="{ours}"]').wait_for()
        loads = frame.locator("#loads td.load").evaluate_all("cells => cells.map(c => c.innerText)")
        assert set(loads) == {"lead_load"}
        _no_full_number(page)
    finally:
        page.close()
