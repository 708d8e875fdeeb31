"""The Lead loads page: a FastAPI app of server-rendered HTML over the ledger.

Mounted by the api-server under ``MOUNTED_AT`` (see plugins/lead_loads_plugin.py). Every
route reads through ``lead_load.ledger.browse``, which masks phones before anything reaches
a template; a phone typed into the search form travels in a POST body (not in a URL that
access logs keep) and is never rendered back.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

from airflow.api_fastapi.common.db.common import SessionDep
from airflow.api_fastapi.core_api.security import GetUserDep
from airflow.exceptions import AirflowException
from airflow.models.xcom import XComModel
from fastapi import APIRouter, Depends, FastAPI, Form, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from fastapi.templating import Jinja2Templates
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from agent_api.masking import mask_phones_in
from lead_load.core.loads import ledger_run_id
from lead_load.ledger import browse
from lead_loads import charts, export, views
from lead_loads.access import (
    read_dag,
    read_runs,
    read_task_instances,
    read_this_load,
    readable_loads,
)

log = logging.getLogger(__name__)

MOUNTED_AT = "/lead-loads"
PER_PAGE = 50
LOADS_PER_PAGE = 25
# How often a running load's page asks for fresh counts.
POLL_SECONDS = 5
# Rows per query of a CSV export (keyset paging: a page costs the same wherever it falls).
EXPORT_ROWS_PER_QUERY = 5000

templates = Jinja2Templates(directory=Path(__file__).parent / "templates")
templates.env.filters["q"] = lambda value: quote(str(value), safe="")
templates.env.globals.update(
    in_zones=views.in_zones,
    duration=views.duration,
    poll_seconds=POLL_SECONDS,
    views=views,
    charts=charts,
)


def ledger_engine() -> Engine:
    """The ledger's engine, one per process: the lead_warehouse connection, or the one the
    Variable lead_load_ledger_conn_id names (read per request, so an edit shows)."""
    from lead_load.glue.connections import ledger_conn_id, shared_engine_for

    return shared_engine_for(ledger_conn_id())


LedgerDep = Annotated[Engine, Depends(ledger_engine)]


def configured_loads() -> dict[str, Any]:
    """The configured loads by id; none when their folder does not read (a broken file is
    the DAG file's import error, shown on Airflow's DAGs page)."""
    from lead_load.core.loads import LoadConfigError, loads_folder, read_loads

    try:
        return {load.load_id: load for load in read_loads(loads_folder())}
    except LoadConfigError as error:
        log.warning("Lead loads: the loads' configuration cannot be read: %s", error)
        return {}


def known_loads(engine: Engine) -> list[str]:
    """The loads: the default one, those configured, and those the ledger has runs of (a
    load since removed keeps its history)."""
    return sorted({views.DAG_ID, *browse.loads_in_ledger(engine), *configured_loads()})


def ledger_run(
    engine: Engine, run_id: str, dag_id: str | None, loads: list[str] | None = None
) -> str | None:
    """The ledger's id of Airflow run ``run_id`` of load ``dag_id`` (the default load when
    None); None when ``dag_id`` is no load (``loads``: the known ones, if already read)."""
    load = dag_id or views.DAG_ID
    if load != views.DAG_ID and load not in (loads or known_loads(engine)):
        return None
    try:
        return ledger_run_id(load, run_id)
    except ValueError:  # longer than the ledger keeps: a run the ledger cannot have
        return f"{load}/{run_id}"


def create_app() -> FastAPI:
    app = FastAPI(
        title="Lead loads",
        dependencies=[read_dag],
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )

    @app.exception_handler(SQLAlchemyError)
    @app.exception_handler(AirflowException)  # the connection's own errors (glue.connections)
    async def ledger_unreadable(request: Request, error: Exception) -> HTMLResponse:
        log.warning("Lead loads: the ledger cannot be read: %s", mask_phones_in(str(error)))
        return _page(
            request,
            "note.html",
            {"title": "The ledger cannot be read", "note": mask_phones_in(str(error))[:500]},
            status_code=503,
        )

    @app.exception_handler(RequestValidationError)
    async def unreadable_request(request: Request, error: RequestValidationError) -> HTMLResponse:
        # A page, never FastAPI's JSON: these addresses are opened in the UI's frames.
        note = views.unreadable_request(error.errors())
        return _page(request, "note.html", {"title": "Lead loads", "note": note}, 400)

    @app.get("/", response_class=HTMLResponse, dependencies=[read_runs])
    def loads(
        request: Request,
        engine: LedgerDep,
        user: GetUserDep,
        page: int = 1,
        state: str = "",
        load: str = "",
        api_task_id: str = "",
        window_from: str = "",
        window_to: str = "",
    ) -> HTMLResponse:
        filters = views.LoadFilters.of(
            state=state,
            load=load,
            api_task_id=api_task_id,
            window_from=window_from,
            window_to=window_to,
        )
        readable = readable_loads(known_loads(engine), user)
        # The history's line: the chosen load's own max_reject_ratio, else the default's.
        chosen = configured_loads().get(filters.load)
        context = {
            "title": "Lead loads",
            "filters": filters,
            "problems": filters.problems(),
            "calling_tasks": browse.calling_tasks(engine),
            "load_ids": readable,
            "loads": None,
            "max_ratio": chosen.max_reject_ratio if chosen else views.MAX_REJECT_RATIO,
            "ratio_of": f"load {chosen.load_id}'s" if chosen else "the default",
        }
        if context["problems"]:
            return _page(request, "loads.html", context, status_code=400)
        context["loads"] = browse.list_loads(
            engine,
            page=page,
            per_page=LOADS_PER_PAGE,
            readable_loads=readable,
            **filters.arguments(),
        )
        return _page(request, "loads.html", context)

    # A run's routes, at /runs/<run id> (the default load's, and Airflow's tabs, which add
    # ?dag_id=) and at /loads/<dag_id>/runs/<run id> (another load's): included twice below.
    runs = APIRouter(dependencies=[read_this_load])

    @runs.get("/runs/{run_id}", response_class=HTMLResponse, dependencies=[read_runs])
    def load(
        request: Request,
        run_id: str,
        engine: LedgerDep,
        dag_id: str | None = None,
        kind: str | None = None,
        page: int = 1,
        carried_page: int = 1,
    ) -> HTMLResponse:
        run_id = ledger_run(engine, run_id, dag_id)
        if run_id is None:
            return _not_ours(
                request,
                "This tab shows the runs of the loads (lead_load and those configured): DAG "
                f"{mask_phones_in(dag_id or '')} loads no leads.",
            )
        found = browse.get_load(engine, run_id)
        if found is None:
            return _unknown_run(request, run_id)
        context = {
            "title": f"Load {run_id}",
            "load": found,
            "batches": browse.batches_of(engine, run_id),
            "kinds": browse.reject_kinds(engine, run_id),
            "kind": kind,
            "rejects": browse.rejects_of(engine, run_id, kind, page=page, per_page=PER_PAGE),
            "carried": browse.carried_into(engine, run_id, carried_page, PER_PAGE),
        }
        return _page(request, "load.html", context)

    @runs.get("/runs/{run_id}/rejects.csv", dependencies=[read_runs])
    def rejects_csv(
        request: Request,
        run_id: str,
        engine: LedgerDep,
        kind: str | None = None,
        dag_id: str | None = None,
    ) -> Response:
        asked, run_id = run_id, ledger_run(engine, run_id, dag_id)
        if run_id is None or not browse.has_run(engine, run_id):
            return _unknown_run(request, run_id or asked)
        pages = browse.reject_pages(engine, run_id, kind or None, size=EXPORT_ROWS_PER_QUERY)
        # The first page is read before the answer starts: a ledger that cannot be read
        # gets the page's own answer (503), not a file cut short.
        first = next(pages, [])
        return StreamingResponse(
            _streamed(run_id, export.lines(itertools.chain([first], pages))),
            media_type=export.MEDIA_TYPE,
            headers={
                "Content-Disposition": export.content_disposition(run_id),
                "Cache-Control": "no-store",
            },
        )

    @runs.get("/runs/{run_id}/live", dependencies=[read_runs])
    def live(run_id: str, engine: LedgerDep, dag_id: str | None = None) -> JSONResponse:
        run_id = ledger_run(engine, run_id, dag_id)
        if run_id is None:
            return JSONResponse({"error": "no such load"}, status_code=404)
        return JSONResponse(browse.live_counts(engine, run_id))

    @runs.get(
        "/runs/{run_id}/batches/{batch_no}",
        response_class=HTMLResponse,
        dependencies=[read_task_instances],
    )
    def batch(
        request: Request,
        run_id: str,
        batch_no: int,
        engine: LedgerDep,
        page: int = 1,
        dag_id: str | None = None,
    ) -> HTMLResponse:
        asked, run_id = run_id, ledger_run(engine, run_id, dag_id)
        if run_id is None:
            return _unknown_run(request, asked)
        return _batch_page(request, engine, run_id, batch_no, None, page)

    @runs.get(
        "/runs/{run_id}/map-index/{map_index}",
        response_class=HTMLResponse,
        dependencies=[read_task_instances],
    )
    def batch_at(
        request: Request,
        run_id: str,
        map_index: str,
        engine: LedgerDep,
        session: SessionDep,
        dag_id: str | None = None,
        task_id: str | None = None,
        page: int = 1,
    ) -> HTMLResponse:
        # Text, not int: on a task that is not mapped Airflow sends -1, or leaves the
        # {MAP_INDEX} placeholder as it is, and the tab says what it is for instead.
        index = views.map_index_of(map_index)
        loads = known_loads(engine)
        ours = dag_id is None or dag_id in loads
        airflow_run, run_id = run_id, ledger_run(engine, run_id, dag_id, loads) if ours else None
        if not ours or task_id not in (None, *views.BATCH_TASK_IDS) or index is None:
            note = views.not_a_batch(dag_id, task_id, loads)
            context = {"title": "Lead batch", "note": note}
            if run_id and mask_phones_in(run_id) == run_id:  # no typed number in a link
                context["run_id"] = run_id
            return _page(request, "note.html", context)
        batch_no = views.batch_no_at(_plan(session, airflow_run, dag_id or views.DAG_ID), index)
        if batch_no is None:
            return _page(
                request,
                "note.html",
                {
                    "title": f"Batch at map index {index}",
                    "note": "Airflow holds no plan of this run for that map index (was the "
                    "run cleared?); its batches are listed on the load's page.",
                    "run_id": run_id,
                },
                status_code=404,
            )
        return _batch_page(request, engine, run_id, batch_no, index, page)

    @app.get("/leads", response_class=HTMLResponse)
    def lead_by_id(request: Request, engine: LedgerDep, lead_id: str = "") -> HTMLResponse:
        lead_id = lead_id.strip()
        if not lead_id:
            return _lead_page(request)
        history = browse.find_lead(engine, lead_id=lead_id)
        if not (history.rows or history.rejects):
            # Shown back as the notice shows it: a phone typed here by mistake, masked.
            shown = mask_phones_in(lead_id)
            return _lead_page(request, notice=views.no_lead_with_id(lead_id), lead_id=shown)
        return _lead_page(request, history, f"lead id {lead_id}", lead_id=lead_id)

    @app.post("/leads", response_class=HTMLResponse)
    def lead_by_phone(
        request: Request, engine: LedgerDep, phone: Annotated[str, Form()] = ""
    ) -> HTMLResponse:
        typed = phone.strip()
        if not typed:
            return _lead_page(request)
        problem = views.phone_search_problem(typed)
        if problem:
            return _lead_page(request, notice=problem)
        history = browse.find_lead(engine, phone=typed)
        if not (history.rows or history.rejects):
            return _lead_page(request, notice=views.NO_LEAD_WITH_NUMBER)
        # Said back masked: the number itself never goes to the browser, not even the one
        # the user typed.
        return _lead_page(request, history, f"phone {browse.mask_raw(typed)}")

    def _batch_page(
        request: Request,
        engine: Engine,
        run_id: str,
        batch_no: int,
        map_index: int | None,
        page: int,
    ) -> HTMLResponse:
        found = browse.get_batch(engine, run_id, batch_no)
        if found is None:
            return _page(
                request,
                "note.html",
                {"title": f"Batch {batch_no}", "note": "The ledger has no such batch."},
                status_code=404,
            )
        context = {
            "title": f"Batch {batch_no} of {run_id}",
            "batch": found,
            "map_index": map_index,
            "rows": browse.batch_rows(engine, run_id, batch_no, page=page, per_page=PER_PAGE),
        }
        return _page(request, "batch.html", context)

    app.include_router(runs)
    app.include_router(runs, prefix="/loads/{dag_id}")
    return app


def _streamed(run_id: str, lines: Iterator[str]) -> Iterator[str]:
    """The export's lines; a ledger that fails half-way is logged (masked) and the download
    breaks off, so the browser reports it failed rather than keeping a short file."""
    try:
        yield from lines
    except SQLAlchemyError as error:
        masked = mask_phones_in(str(error))
        log.warning("Lead loads: the rejects of %s broke off: %s", run_id, masked)
        # The server logs what breaks a stream off: a masked copy, never the driver's text.
        raise RuntimeError(f"the rejects' CSV broke off: {masked[:500]}") from None


def _plan(session: Any, run_id: str, dag_id: str) -> object:
    """plan_batches' return value for the run, from Airflow's metadata DB (None if gone)."""
    query = XComModel.get_many(
        run_id=run_id,
        key="return_value",
        task_ids="plan_batches",
        dag_ids=dag_id,
        map_indexes=-1,
        limit=1,
    )
    row = session.scalars(query).first()
    return XComModel.deserialize_value(row) if row is not None else None


def _lead_page(
    request: Request,
    history: Any = None,
    searched: str | None = None,
    notice: str | None = None,
    lead_id: str = "",
) -> HTMLResponse:
    context = {"title": "Find a lead", "history": history, "searched": searched}
    return _page(request, "lead.html", {**context, "notice": notice, "lead_id": lead_id})


def _unknown_run(request: Request, run_id: str) -> HTMLResponse:
    from lead_load.glue.connections import ledger_conn_id

    note = views.unknown_run(run_id, ledger_conn_id())
    title = f"Load {mask_phones_in(run_id)}"
    return _page(request, "note.html", {"title": title, "note": note}, status_code=404)


def _not_ours(request: Request, note: str) -> HTMLResponse:
    return _page(request, "note.html", {"title": "Lead loads", "note": note})


def _page(
    request: Request, template: str, context: dict[str, Any], status_code: int = 200
) -> HTMLResponse:
    base = request.scope.get("root_path", "")
    links = {"base": base, "airflow": views.airflow_root(base, MOUNTED_AT)}
    return templates.TemplateResponse(
        request,
        template,
        {**context, **links},
        status_code=status_code,
        headers={"Cache-Control": "no-store"},
    )


app = create_app()
