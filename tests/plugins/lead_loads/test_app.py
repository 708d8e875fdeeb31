"""The Lead loads page, served by the api-server's app over a ledger after two real loads:
the numbers on each page are the ledger's, and no full phone number reaches the browser."""

from __future__ import annotations

import csv
import io
import re
from datetime import datetime, timedelta
from html import unescape
from urllib.parse import quote

import pytest
from lead_loads import views
from sqlalchemy import select

from lead_load.core import run_summary
from lead_load.ledger import counts, schema
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


def figures(html: str, scope: str) -> dict[str, str]:
    """The figures (``data-figure`` cells) in the first element marked ``scope``."""
    end = "</tr>" if scope.startswith("<tr") else "</table>"  # a list row, or a table
    found = re.search(rf"{scope}(.*?){end}", html, re.S)
    assert found, f"no {scope}"
    return dict(re.findall(r'data-figure="([a-z_]+)"[^>]*>([^<]*)<', found[1]))


def test_the_list_shows_each_load_with_its_reports_figures(reader, ledger):
    html = no_full_number(reader.get("/lead-loads/"))
    run1 = cells(html, "run", "run-1")
    assert run1[0] == "lead_load"  # the load whose run it is
    assert "2026-11-24 00:00 \u2192 2026-11-25 00:00 UTC" in run1[2]
    assert "2026-11-24 08:00 \u2192 2026-11-25 08:00 +08:00" in run1[2]
    report = counts.recorded_summary(ledger.engine, "run-1")
    shown = figures(html, '<tr data-run="run-1"')
    assert list(shown) == list(views.LIST_FIGURES)
    assert shown == {key: str(report[key]) for key in views.LIST_FIGURES}
    # 9 rows: a-e sent (e refused: already in the task), f g i invalid, h a's duplicate,
    # y z taken over from run-0
    assert [shown[k] for k in ("extracted", "imported", "invalid", "duplicates_in_run")] == [
        "9",
        "6",
        "3",
        "1",
    ]
    assert [shown[k] for k in ("not_imported", "carried_over")] == ["1", "2"]
    # run-0 died before its report: the extract's figures are unknown, its rows went to run-1
    run0 = figures(html, '<tr data-run="run-0"')
    assert run0["extracted"] == "-" and run0["imported"] == "0" and run0["not_sent"] == "0"
    assert "no report" in cells(html, "run", "run-0")[1]
    assert html.index('<tr data-run="run-1"') < html.index('<tr data-run="run-0"')  # newest first
    assert 'href="/dags/lead_load/runs/run-1"' in html


def test_the_list_is_filtered_and_the_form_keeps_what_was_chosen(reader, ledger):
    html = no_full_number(reader.get("/lead-loads/", params={"state": "failed"}))
    assert 'data-run="run-0"' in html and 'data-run="run-1"' not in html
    form = re.search(r'<form id="filters" method="get"[^>]*>(.*?)</form>', html, re.S)[1]
    state = re.search(r'<select name="state">(.*?)</select>', form, re.S)[1]
    assert '<option value="failed" selected>' in state and '<option value="" selected>' not in state
    names = ("state", "load", "api_task_id", "window_from", "window_to")
    assert all(f'name="{name}"' in form for name in names)
    assert '<button type="submit">Filter</button>' in form
    assert f'<option value="{ledger_task(ledger)}">' in html  # the calling tasks it knows

    by_window = no_full_number(
        reader.get("/lead-loads/", params={"window_from": "2026-11-24", "window_to": "2026-11-24"})
    )
    assert 'data-run="run-1"' in by_window and 'data-run="run-0"' not in by_window
    assert 'name="window_from" value="2026-11-24"' in by_window
    by_task = no_full_number(
        reader.get("/lead-loads/", params={"api_task_id": ledger_task(ledger)})
    )
    assert 'data-run="run-1"' in by_task and 'data-run="run-0"' in by_task


def test_filters_that_hide_every_run_say_so(reader, ledger):
    html = no_full_number(reader.get("/lead-loads/", params={"api_task_id": "no-such-task"}))
    assert "No load matches these filters" in html and "reached the ledger yet" not in html
    assert 'value="no-such-task"' in html


@pytest.mark.parametrize(
    ("params", "said"),
    [
        ({"state": "lost"}, "State 'lost' is none of running, finished, failed"),
        ({"window_from": "2026-13-01"}, "window_from '2026-13-01' is not a day written YYYY-MM-DD"),
        ({"window_to": "24/11/2026"}, "window_to '24/11/2026' is not a day written YYYY-MM-DD"),
        (
            {"window_from": "2026-11-25", "window_to": "2026-11-24"},
            "window_from (2026-11-25) is after window_to (2026-11-24)",
        ),
        ({"api_task_id": "x", "state": "13900000001"}, "State is none of"),
    ],
)
def test_a_filter_that_cannot_be_read_is_said_beside_the_form(reader, ledger, params, said):
    answer = reader.get("/lead-loads/", params=params)
    assert answer.status_code == 400 and answer.headers["content-type"].startswith("text/html")
    assert not full_numbers_in(answer.text)
    notice = re.search(
        r'<div class="notice" id="filter-notice"[^>]*>(.*?)</div>', answer.text, re.S
    )
    assert said in notice[1].replace("&#39;", "'")
    assert answer.text.index('id="filters"') < answer.text.index('id="filter-notice"')
    assert "data-run=" not in answer.text and "Traceback" not in answer.text


def test_paging_keeps_the_filters(reader, ledger, monkeypatch):
    from lead_loads import app

    monkeypatch.setattr(app, "LOADS_PER_PAGE", 1)
    html = no_full_number(reader.get("/lead-loads/", params={"window_from": "2026-11-23"}))
    assert "page 1 of 2" in html
    assert 'href="/lead-loads/?window_from=2026-11-23&amp;page=2"' in html
    second = no_full_number(
        reader.get("/lead-loads/", params={"window_from": "2026-11-23", "page": 2})
    )
    assert (
        'data-run="run-0"' in second
        and 'href="/lead-loads/?window_from=2026-11-23&amp;page=1"' in second
    )


def test_the_run_tab_shows_every_figure_of_the_report_and_how_they_add_up(reader, ledger):
    html = no_full_number(reader.get("/lead-loads/runs/run-1"))
    report = counts.recorded_summary(ledger.engine, "run-1")
    shown = figures(html, 'id="summary"')
    assert shown == {key: str(report[key]) for key in run_summary.FIGURE_WORDS}
    assert 'data-source="report"' in html
    identities = re.search(r'id="identities"(.*?)</ul>', html, re.S)[1]
    assert identities.count("<li>") == len(run_summary.IDENTITIES)
    assert "already loaded" in identities and "already_loaded" not in re.sub(
        r"<[^>]+>", "", identities
    )


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
    assert cells(html, "kind", "not_mobile") == ["not_mobile", "2", "invalid"]
    assert cells(html, "kind", "duplicate_in_run") == ["duplicate_in_run", "1", "duplicates"]
    assert cells(html, "lead", "g")[:2] == ["g", "021*****2345"]
    assert cells(html, "lead", "y")[:2] == ["y", "139****0098"]  # carried over from run-0
    assert "<script>" not in html  # the run is over: nothing to poll

    only = no_full_number(reader.get("/lead-loads/runs/run-1?kind=not_mobile"))
    assert 'data-lead="f"' in only and 'data-lead="h"' not in only


def test_the_rejects_of_a_run_download_as_csv_phones_masked(reader, ledger, monkeypatch):
    from lead_loads import app

    answer = reader.get("/lead-loads/runs/run-1/rejects.csv")
    assert answer.status_code == 200 and not full_numbers_in(answer.text)
    assert answer.headers["content-type"] == "text/csv; charset=utf-8"
    assert answer.headers["content-disposition"] == 'attachment; filename="rejects-run-1.csv"'
    rows = list(csv.reader(io.StringIO(answer.text)))
    assert rows[0] == ["lead_id", "raw_phone", "reason", "counted_in", "rejected_at"]
    assert [r[:4] for r in rows[1:]] == [
        ["f", "12345", "not_mobile", "invalid"],
        ["g", "021*****2345", "not_mobile", "invalid"],
        ["h", "139****0001", "duplicate_in_run (kept lead a)", "duplicates"],
        ["i", "", "missing_phone", "invalid"],
    ]
    assert all(datetime.fromisoformat(r[4]).utcoffset() == timedelta(0) for r in rows[1:])
    assert all(r[4].endswith("+00:00") for r in rows[1:])
    # Read a row per query, it is the same file.
    monkeypatch.setattr(app, "EXPORT_ROWS_PER_QUERY", 1)
    assert reader.get("/lead-loads/runs/run-1/rejects.csv").text == answer.text

    only = reader.get("/lead-loads/runs/run-1/rejects.csv", params={"kind": "not_mobile"})
    assert [r[0] for r in csv.reader(io.StringIO(only.text))] == ["lead_id", "f", "g"]


def test_a_csv_cell_a_spreadsheet_would_run_is_written_as_text(reader, ledger):
    with ledger.engine.begin() as conn:
        conn.execute(
            schema.rejects.insert().values(
                run_id="run-1",
                lead_id="=HYPERLINK(1)",
                api_task_id=ledger_task(ledger),
                raw_phone="@SUM(A1)",
                reason="-x",
                rejected_at=schema.now(),
            )
        )
    text = reader.get("/lead-loads/runs/run-1/rejects.csv").text
    (row,) = [r for r in csv.reader(io.StringIO(text)) if "HYPERLINK" in r[0]]
    assert row[:3] == ["'=HYPERLINK(1)", "'@SUM(A1)", "'-x"]


def test_a_ledger_failing_under_an_export_is_said_masked_and_never_makes_a_short_file(
    reader, ledger, monkeypatch, caplog
):
    from sqlalchemy.exc import OperationalError

    from lead_load.ledger import browse

    lost = OperationalError("SELECT ...", {}, Exception(f"lost, near {PHONES['a']}"))
    real = browse.reject_pages

    def failing_at(page: int):
        def pages(*args, **kwargs):
            for number, found in enumerate(real(*args, **kwargs)):
                if number == page:
                    raise lost
                yield found

        return pages

    # Before the answer starts: the page's own 503, masked.
    monkeypatch.setattr(browse, "reject_pages", failing_at(0))
    answer = reader.get("/lead-loads/runs/run-1/rejects.csv")
    assert answer.status_code == 503 and "139****0001" in answer.text
    assert not full_numbers_in(answer.text)
    # Half-way: the download breaks off, and what the server logs is masked.
    monkeypatch.setattr(browse, "reject_pages", failing_at(1))
    monkeypatch.setattr("lead_loads.app.EXPORT_ROWS_PER_QUERY", 1)
    with pytest.raises(RuntimeError) as broke:
        reader.get("/lead-loads/runs/run-1/rejects.csv")
    assert "139****0001" in str(broke.value) and not full_numbers_in(str(broke.value))
    assert broke.value.__cause__ is None and broke.value.__suppress_context__
    assert "139****0001" in caplog.text and not full_numbers_in(caplog.text)


def test_the_run_tab_links_its_rejects_csv_keeping_the_kind(reader, ledger):
    html = no_full_number(reader.get("/lead-loads/runs/run-1"))
    assert '<a id="rejects-csv" href="/lead-loads/runs/run-1/rejects.csv">' in html
    assert "Download the rejects (CSV)</a>" in html
    of_kind = no_full_number(reader.get("/lead-loads/runs/run-1", params={"kind": "not_mobile"}))
    assert 'id="rejects-csv" href="/lead-loads/runs/run-1/rejects.csv?kind=not_mobile"' in of_kind
    # A run without rejects links it too: the file has its header only.
    assert 'id="rejects-csv"' in no_full_number(reader.get("/lead-loads/runs/run-0"))
    empty = reader.get("/lead-loads/runs/run-0/rejects.csv")
    assert empty.text == "lead_id,raw_phone,reason,counted_in,rejected_at\r\n"


def test_the_csv_of_a_run_the_ledger_does_not_know_is_a_page_saying_so(reader, ledger):
    answer = reader.get("/lead-loads/runs/no-such-run/rejects.csv")
    assert answer.status_code == 404 and answer.headers["content-type"].startswith("text/html")
    assert "has no row of run no-such-run" in answer.text


def test_a_run_the_ledger_does_not_know_says_which_ledger_and_why(reader, ledger):
    answer = reader.get("/lead-loads/runs/manual__2026-11-24")
    assert answer.status_code == 404
    text = re.sub(r"\s+", " ", answer.text)
    assert (
        "The ledger this page reads (connection lead_warehouse) has no row of run "
        "manual__2026-11-24. A run writes its first row when recheck_earlier_batches starts"
    ) in text
    assert "make demo uses a warehouse of its own" in text
    typed = reader.get("/lead-loads/runs/13900000001")  # an address anybody can type
    assert typed.status_code == 404 and not full_numbers_in(typed.text)


def test_a_run_with_nothing_to_list_says_so_in_a_sentence(reader, ledger):
    html = no_full_number(reader.get("/lead-loads/runs/run-0"))
    text = re.sub(r"<[^>]+>", "", html)
    assert '<p class="muted" id="batches">No batch was planned.</p>' in html
    assert '<p class="muted" id="reasons">No row was rejected.</p>' in html
    assert "None planned yet" not in text and "None." not in text
    assert "<th>rows</th>" not in html  # no table headers over nothing
    # A figure the extract step never counted is a dash, and says why.
    assert 'title="extracted: not counted, the extract step has not reported it">-<' in html


def test_a_stored_report_that_cannot_be_read_is_said_unreadable(reader, ledger):
    with ledger.engine.begin() as conn:
        conn.execute(
            schema.runs.update().where(schema.runs.c.run_id == "run-1").values(summary="{oops")
        )
    html = no_full_number(reader.get("/lead-loads/runs/run-1"))
    assert "counted from the ledger: the run's stored report is unreadable" in html
    assert figures(html, 'id="summary"')["imported"] == "6"


@pytest.mark.parametrize("path", ["/lead-loads/", "/lead-loads/runs/run-1", "/lead-loads/leads"])
def test_the_page_is_styled_to_sit_in_airflows_ui_and_loads_nothing_from_outside(
    reader, ledger, path
):
    html = no_full_number(reader.get(path))
    styles = "".join(re.findall(r"<style>(.*?)</style>", html, re.S))
    assert "font-family: Inter, " in styles and "system-ui" in styles
    assert styles.count("@media (prefers-color-scheme: dark)") == 2  # the page's, the charts'
    assert '<meta name="color-scheme" content="light dark">' in html
    # Offline: no font, sheet, script or image fetched from anywhere.
    assert "@import" not in styles and "url(" not in styles and "@font-face" not in styles
    assert not re.search(r"<(link|script)[^>]+(href|src)=", html)
    outside = html.replace('xmlns="http://www.w3.org/2000/svg"', "")  # a name, not fetched
    assert "http://" not in outside and "https://" not in outside


def test_live_counts_are_json(reader, ledger):
    answer = reader.get("/lead-loads/runs/run-1/live").json()
    report = counts.recorded_summary(ledger.engine, "run-1")
    assert answer["state"] == "finished" and answer["reported"] is True
    assert answer["batches"] == {"processed": 4}
    assert answer["figures"]["imported"] == report["imported"] == 6


def test_a_running_load_polls_its_live_counts(reader, ledger):
    with ledger.engine.begin() as conn:
        conn.execute(
            schema.runs.update().where(schema.runs.c.run_id == "run-1").values(state="running")
        )
    html = no_full_number(reader.get("/lead-loads/runs/run-1"))
    assert '"/lead-loads/runs/run-1/live"' in html and "setInterval" in html
    # Running again, the run is counted live by the report's rules, and says so.
    report = counts.recorded_summary(ledger.engine, "run-1")
    assert 'data-source="live"' in html
    assert figures(html, 'id="summary"')["imported"] == str(report["imported"])
    assert figures(html, 'id="summary"')["extracted"] == str(report["extracted"])


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


def notice(html: str) -> str | None:
    found = re.search(r'<p class="notice" id="search-notice">(.*?)</p>', html, re.S)
    return found and re.sub(r"\s+", " ", found[1].replace("&#39;", "'"))


def test_a_phone_nobody_had_finds_nothing(reader, ledger):
    html = no_full_number(reader.post("/lead-loads/leads", data={"phone": PHONES["a"][:-1] + "7"}))
    assert notice(html) == "The ledger knows no lead with this number."
    assert "History of" not in html


@pytest.mark.parametrize("typed", ["139****0001", "139＊＊＊＊0001", "*"])
def test_a_masked_number_cannot_be_searched_and_the_page_says_so(reader, ledger, typed):
    html = no_full_number(reader.post("/lead-loads/leads", data={"phone": typed}))
    assert notice(html) == (
        "Masked numbers cannot be searched: type the whole number (it is never shown back)."
    )
    assert "0001" not in html


@pytest.mark.parametrize(
    ("typed", "reason"),
    [("12345", "not_mobile"), ("021-5555-12345", "not_mobile"), ("call me", "not_a_phone")],
)
def test_a_value_that_is_no_mobile_number_is_said_so_and_not_searched(
    reader, ledger, typed, reason
):
    # f's raw value was 12345: still, the ledger keys leads by mobile number.
    html = no_full_number(reader.post("/lead-loads/leads", data={"phone": typed}))
    assert notice(html).startswith(
        f"That is not a mobile number (reason: {reason}): the ledger keys leads by mobile "
        "number, so nothing can match it."
    )
    assert typed not in html and "data-lead=" not in html


def test_a_lead_id_search_says_when_the_ledger_knows_no_such_lead(reader, ledger):
    html = no_full_number(reader.get("/lead-loads/leads", params={"lead_id": "zz"}))
    assert notice(html) == "The ledger knows no lead with id zz."
    assert notice(no_full_number(reader.get("/lead-loads/leads", params={"lead_id": " "}))) is None
    assert notice(no_full_number(reader.get("/lead-loads/leads"))) is None
    assert notice(no_full_number(reader.get("/lead-loads/leads", params={"lead_id": "h"}))) is None
    # A number typed where the lead id goes is not shown back whole either.
    typed = no_full_number(reader.get("/lead-loads/leads", params={"lead_id": PHONES["a"]}))
    assert notice(typed) == "The ledger knows no lead with id 139****0001."


@pytest.mark.parametrize(
    ("map_index", "task_id", "said"),
    [
        ("{MAP_INDEX}", "report", "report is not a batch"),
        ("-1", "extract_and_stage", "extract_and_stage is not a batch"),
        ("0", "report", "report is not a batch"),
        ("-1", "post_batch", "post_batch without a map index is not a batch"),
        ("-1", "wait_for_callbacks", "wait_for_callbacks is not a batch"),
        ("x1", None, "This task instance without a map index is not a batch"),
    ],
)
def test_the_batch_tab_on_a_task_that_is_no_batch_says_what_it_is_for(
    reader, ledger, map_index, task_id, said
):
    params = {"dag_id": "lead_load"} | ({"task_id": task_id} if task_id else {})
    answer = reader.get(f"/lead-loads/runs/run-1/map-index/{quote(map_index)}", params=params)
    html = no_full_number(answer)
    assert answer.headers["content-type"].startswith("text/html")
    text = re.sub(r"\s+", " ", html)
    assert (
        "This tab shows one batch of lead_load: open it on a mapped instance of post_batch."
    ) in text
    assert f"{said}; the run's figures are on its Lead load tab." in text.replace("&#39;", "'")
    assert '<a href="/lead-loads/runs/run-1" id="run-link">' in html


def test_the_batch_tab_of_another_dag_says_that_dag_loads_no_leads(reader, ledger):
    params = {"dag_id": "other", "task_id": "t"}
    html = no_full_number(reader.get("/lead-loads/runs/run-1/map-index/-1", params=params))
    assert "t of DAG other is not a batch: that DAG loads no leads." in html
    assert 'id="run-link"' not in html


@pytest.mark.parametrize(
    ("path", "said"),
    [
        ("/lead-loads/runs/run-1/batches/first", "batch_no must be a whole number"),
        ("/lead-loads/?page=last", "page must be a whole number"),
        ("/lead-loads/runs/run-1?page=2x&carried_page=y", "page must be a whole number"),
    ],
)
def test_an_address_the_page_cannot_read_gets_a_page_not_json(reader, ledger, path, said):
    answer = reader.get(path)
    assert answer.status_code == 400 and answer.headers["content-type"].startswith("text/html")
    assert said in answer.text
    assert "This address asks for something the page cannot read" in answer.text
    body = answer.text.split("<body>")[1]
    assert '"detail"' not in body and "last" not in body and "2x" not in body


def test_tabs_of_other_dags_say_so(reader, ledger):
    html = no_full_number(reader.get("/lead-loads/runs/run-1", params={"dag_id": "other"}))
    assert "loads no leads" in html and 'data-batch="0"' not in html
    other_task = reader.get("/lead-loads/runs/run-1/map-index/0", params={"task_id": "report"})
    assert "report is not a batch" in no_full_number(other_task)


def test_a_map_index_without_a_plan_in_airflow_is_not_guessed(reader, ledger):
    answer = reader.get(
        "/lead-loads/runs/run-1/map-index/0",
        params={"dag_id": "lead_load", "task_id": "post_batch"},
    )
    assert answer.status_code == 404 and "no plan of this run" in answer.text


def ledger_task(ledger) -> str:
    with ledger.engine.connect() as conn:
        return conn.execute(
            select(schema.runs.c.api_task_id).where(schema.runs.c.run_id == "run-1")
        ).scalar_one()


OTHER_RUN = "lapsed_customers/manual__2026-11-25"  # a run of the example second load


def with_other_load(ledger) -> None:
    """A finished run of another load beside run-0 and run-1: run-1's row and report under
    the ledger run id of the lapsed_customers load."""
    with ledger.engine.begin() as conn:
        row = dict(
            conn.execute(select(schema.runs).where(schema.runs.c.run_id == "run-1")).one()._mapping
        )
        row.update(run_id=OTHER_RUN, started_at=row["started_at"] + timedelta(days=1))
        conn.execute(schema.runs.insert().values(**row))


def test_the_list_names_each_runs_load_and_filters_by_load(reader, ledger):
    with_other_load(ledger)
    html = no_full_number(reader.get("/lead-loads/"))
    assert cells(html, "run", OTHER_RUN)[0] == "lapsed_customers"
    assert cells(html, "run", "run-1")[0] == "lead_load"
    # Its links: this page's own address of the load's run, and its DAG's run in Airflow.
    assert 'href="/lead-loads/loads/lapsed_customers/runs/manual__2026-11-25"' in html
    assert 'href="/dags/lapsed_customers/runs/manual__2026-11-25"' in html
    form = re.search(r'<select name="load" id="load-filter">(.*?)</select>', html, re.S)[1]
    assert '<option value="lapsed_customers">' in form and '<option value="lead_load">' in form

    only = no_full_number(reader.get("/lead-loads/", params={"load": "lapsed_customers"}))
    assert f'data-run="{OTHER_RUN}"' in only and 'data-run="run-1"' not in only
    assert '<option value="lapsed_customers" selected>' in only
    default = no_full_number(reader.get("/lead-loads/", params={"load": "lead_load"}))
    assert 'data-run="run-1"' in default and 'data-run="run-0"' in default
    assert f'data-run="{OTHER_RUN}"' not in default
    unknown = no_full_number(reader.get("/lead-loads/", params={"load": "win_back"}))
    assert "No load matches these filters." in unknown
    bad = reader.get("/lead-loads/", params={"load": "not a load"})
    assert bad.status_code == 400 and "is no load id" in bad.text


def test_another_loads_run_opens_by_its_load_and_airflow_run_id(reader, ledger):
    with_other_load(ledger)
    by_path = no_full_number(
        reader.get("/lead-loads/loads/lapsed_customers/runs/manual__2026-11-25")
    )
    assert '<span id="load-id">lapsed_customers</span>' in by_path
    assert figures(by_path, 'id="summary"') == figures(
        no_full_number(reader.get("/lead-loads/runs/run-1")), 'id="summary"'
    )
    # Airflow's tab opens it with the run id and the DAG id apart.
    by_tab = reader.get(
        "/lead-loads/runs/manual__2026-11-25", params={"dag_id": "lapsed_customers"}
    )
    assert by_tab.status_code == 200 and '<span id="load-id">lapsed_customers</span>' in by_tab.text
    # The default load has no run of that id, and a DAG that is no load gets no page.
    assert reader.get("/lead-loads/runs/manual__2026-11-25").status_code == 404
    other = reader.get("/lead-loads/runs/manual__2026-11-25", params={"dag_id": "canary"})
    assert "DAG canary loads no leads" in other.text
    assert reader.get("/lead-loads/loads/canary/runs/run-1").status_code == 200
    assert "loads no leads" in reader.get("/lead-loads/loads/canary/runs/run-1").text


def test_the_history_of_one_load_draws_that_loads_max_reject_ratio(reader, ledger):
    with_other_load(ledger)
    html = unescape(reader.get("/lead-loads/", params={"load": "lapsed_customers"}).text)
    # The shipped example's own max_reject_ratio is 0.1; the default load's 0.2.
    assert "the line load lapsed_customers's max_reject_ratio (10%" in html
    unfiltered = unescape(reader.get("/lead-loads/").text)
    assert "the line the default max_reject_ratio (20%" in unfiltered
