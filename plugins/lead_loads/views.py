"""Pure presentation rules of the Lead loads page: times, durations, links, map indexes."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from datetime import UTC, date, datetime
from typing import Any
from urllib.parse import quote, urlencode
from zoneinfo import ZoneInfo

from agent_api.masking import mask_phones_in
from lead_load.core import reject_reasons, run_summary
from lead_load.core.ledger_rules import BatchStatus, RunState
from lead_load.core.loads import DEFAULT_LOAD_ID, LOAD_ID_PATTERN, airflow_run_of
from lead_load.core.phones import classify_phone
from lead_load.core.run_settings import RunSettings
from lead_load.core.window import parse_time

# The default load's DAG: the page's own permission is read access to it (access.py).
DAG_ID = DEFAULT_LOAD_ID
# The mapped task of one batch: its map index is the batch's position in the plan. Runs made
# before the run-wide wait mapped a task group, whose two tasks still open the batch tab.
BATCH_TASK_ID = "post_batch"
BATCH_TASK_IDS = (BATCH_TASK_ID, "batches.post_batch", "batches.wait_for_callback")
# The figures of each run on the list of loads (the run's tab shows every one).
LIST_FIGURES = (
    "extracted",
    "imported",
    "invalid",
    "duplicates_in_run",
    "already_loaded",
    "not_imported",
    "not_sent",
    "carried_over",
)
# The words of the figures and how they add up: one definition, the report's.
FIGURE_WORDS = run_summary.FIGURE_WORDS
IDENTITIES = run_summary.IDENTITIES
figure_of = reject_reasons.figure_of
# The zone the business reads its windows in (the DAG's schedule runs in it).
LOCAL_ZONE = ZoneInfo("Asia/Shanghai")


def in_zones(value: str | datetime | None) -> tuple[str, str]:
    """(UTC, Asia/Shanghai) renderings of a moment, the local one by its offset (never an
    abbreviation such as CST, which names three zones), e.g. ("2026-11-23 18:00:00 UTC",
    "2026-11-24 02:00:00 +08:00"); "-" for no value, and the stored text marked unreadable
    when it is no moment."""
    moment = parse_time(value)
    if moment is None:
        shown = f"{value} (unreadable)" if value not in (None, "") else "-"
        return (shown, shown)
    local = moment.astimezone(LOCAL_ZONE)
    offset = f"{local:%z}"
    return (
        moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC"),
        f"{local:%Y-%m-%d %H:%M:%S} {offset[:3]}:{offset[3:]}",
    )


def window_lines(start: str | datetime | None, end: str | datetime | None) -> tuple[str, str]:
    """A window in two short lines for the list of loads, to the minute:
    ("2026-11-23 18:00 → 2026-11-24 18:00 UTC", "2026-11-24 02:00 → 2026-11-25 02:00 +08:00");
    a bound that cannot be read shows as it is stored."""
    first, last = parse_time(start), parse_time(end)

    def line(zone: Any, label: str | None) -> str:
        shown = [
            f"{moment.astimezone(zone):%Y-%m-%d %H:%M}" if moment else str(raw or "-")
            for moment, raw in ((first, start), (last, end))
        ]
        moment = first or last
        offset = label or (f"{moment.astimezone(zone):%z}" if moment else "+0800")
        if label is None:
            offset = f"{offset[:3]}:{offset[3:]}"
        return f"{shown[0]} \u2192 {shown[1]} {offset}"

    return line(UTC, "UTC"), line(LOCAL_ZONE, None)


def window_problem(start: str | datetime | None, end: str | datetime | None) -> str | None:
    """What is wrong with a run's window as stored, for the page to say beside it."""
    first, last = parse_time(start), parse_time(end)
    if first is None or last is None:
        return None
    if first > last:
        return "reversed: its start is after its end, so it held no row"
    if first == last:
        return "empty: its start is its end, so it held no row"
    return None


def duration(start: datetime | None, end: datetime | None, now: datetime | None = None) -> str:
    """``1h 02m 03s``; a run without an end is measured up to ``now`` (it is going)."""
    if start is None:
        return "-"
    stop = end or now or datetime.now(UTC)
    seconds = max(0, int((stop - start).total_seconds()))
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    if hours:
        return f"{hours}h {minutes:02d}m {seconds:02d}s"
    return f"{minutes}m {seconds:02d}s" if minutes else f"{seconds}s"


# -- what the page says of a request it cannot answer ------------------------------------

BATCH_TAB = (
    f"This tab shows one batch of lead_load: open it on a mapped instance of {BATCH_TASK_ID}."
)
_MAP_INDEX = re.compile(r"[0-9]{1,9}")


def map_index_of(text: str) -> int | None:
    """A map index as the Lead batch tab receives it: a non-negative integer, or None for
    what Airflow sends on a task that is not mapped (``-1``, or ``{MAP_INDEX}`` as is)."""
    return int(text) if _MAP_INDEX.fullmatch(text) else None


def not_a_batch(dag_id: str | None, task_id: str | None, loads: Sequence[str] = (DAG_ID,)) -> str:
    """What the Lead batch tab says when opened on a task instance that is no batch
    (``loads``: the DAGs that are loads)."""
    if dag_id is not None and dag_id not in loads:
        task = _shown(task_id) if task_id else "This task"
        return (
            f"{BATCH_TAB} {task} of DAG {_shown(dag_id)} is not a batch: that DAG loads no leads."
        )
    if task_id and task_id not in BATCH_TASK_IDS:
        task = _shown(task_id)
    else:
        task = f"{task_id or 'This task instance'} without a map index"
    return f"{BATCH_TAB} {task} is not a batch; the run's figures are on its Lead load tab."


# Pydantic's error types, as what the value must be.
_EXPECTED = {
    "int_parsing": "must be a whole number",
    "int_type": "must be a whole number",
    "missing": "is missing",
    "string_type": "must be text",
}


def unreadable_request(errors: Sequence[Mapping[str, Any]]) -> str:
    """A plain sentence for a request FastAPI could not validate (never its JSON, never the
    value sent, which could be anything typed into the address)."""
    said = []
    for error in errors:
        where = [
            str(part) for part in error.get("loc", ()) if part not in ("path", "query", "body")
        ]
        name = ".".join(where) or "a value"
        said.append(f"{name} {_EXPECTED.get(str(error.get('type')), 'cannot be read')}")
    return (
        "This address asks for something the page cannot read: "
        + "; ".join(dict.fromkeys(said))
        + ". Follow the page's own links, or start again from the list of loads."
    )


# -- the lead search -------------------------------------------------------------------------

MASKED_NUMBER = "Masked numbers cannot be searched: type the whole number (it is never shown back)."
NO_LEAD_WITH_NUMBER = "The ledger knows no lead with this number."


def phone_search_problem(typed: str) -> str | None:
    """Why a phone typed into the search can match nothing, before asking the ledger: it is
    masked, or it is no mobile number (the ledger keys leads by their normalised mobile
    number). None for a mobile number in any spelling the load accepts."""
    if "*" in unicodedata.normalize("NFKC", typed):
        return MASKED_NUMBER
    number, reason = classify_phone(typed)
    if number is None:
        return (
            f"That is not a mobile number (reason: {reason}): the ledger keys leads by "
            "mobile number, so nothing can match it. A mainland mobile number has 11 digits "
            "and starts with 13 to 19; a +86 prefix, spaces and dashes are fine."
        )
    return None


def no_lead_with_id(lead_id: str) -> str:
    return f"The ledger knows no lead with id {_shown(lead_id)}."


def unknown_run(run_id: str, ledger_conn_id: str) -> str:
    """What to say of a run the ledger has no row of (the run id masked: it came from the
    address, which anybody can type)."""
    return (
        f"The ledger this page reads (connection {ledger_conn_id}) has no row of run "
        f"{_shown(run_id)}. A run writes its first row when recheck_earlier_batches starts, "
        "right after resolve_settings (which writes one only when it fails for good): a run "
        "that has not got that far, or one that wrote to another ledger (make demo uses a "
        "warehouse of its own), has none."
    )


def plural(count: int, word: str, words: str | None = None) -> str:
    """``1 attempt``, ``2 attempts``, ``0 attempts``: a count with its noun agreeing."""
    return f"{count} {word if count == 1 else (words or word + 's')}"


def batch_no_at(plan: object, map_index: int) -> int | None:
    """The batch number behind a map index of the ``batches`` task group: the index is the
    batch's position in plan_batches' return value (a list of ``{"batch_no", "rows"}``). A
    fresh run numbers from 0, a cleared run numbers on, so the two differ in general."""
    if not isinstance(plan, list) or not 0 <= map_index < len(plan):
        return None
    entry = plan[map_index]
    if not isinstance(entry, dict) or not isinstance(entry.get("batch_no"), int):
        return None
    return entry["batch_no"]


def airflow_root(root_path: str, mounted_at: str) -> str:
    """Airflow's own root path, from a mounted app's ``root_path`` (``/base/lead-loads``)."""
    return root_path.removesuffix(mounted_at)


def dag_run_href(root: str, ledger_run: str) -> str:
    """The Airflow UI's page of a run, from its ledger run id (its load's DAG)."""
    dag_id, run_id = airflow_run_of(ledger_run)
    return f"{root}/dags/{quote(dag_id, safe='')}/runs/{quote(run_id, safe='')}"


def task_instance_href(root: str, ledger_run: str, task_id: str, map_index: int) -> str:
    run = dag_run_href(root, ledger_run)
    return f"{run}/tasks/{quote(task_id, safe='')}/mapped/{map_index}"


def run_href(base: str, ledger_run: str) -> str:
    """This page's address of a run: ``/runs/<run id>`` for the default load's (as Airflow's
    tab opens it), ``/loads/<load>/runs/<run id>`` for another load's."""
    load_id, run_id = airflow_run_of(ledger_run)
    where = "" if load_id == DEFAULT_LOAD_ID else f"/loads/{quote(load_id, safe='')}"
    return f"{base}{where}/runs/{quote(run_id, safe='')}"


def load_of(ledger_run: str) -> str:
    """The load (DAG) a ledger run belongs to."""
    return airflow_run_of(ledger_run)[0]


def is_load_id(dag_id: str) -> bool:
    """Could be a load's id (the page still asks whether such a load exists)."""
    return bool(re.fullmatch(LOAD_ID_PATTERN, dag_id))


# The line of the loads' history: the DAG's default max_reject_ratio (a run may set its own).
MAX_REJECT_RATIO = RunSettings.__dataclass_fields__["max_reject_ratio"].default


def history_of(loads: list[Any]) -> list[dict[str, Any]]:
    """The list's loads as the history picture reads them (newest first, as listed)."""
    return [
        {
            "run_id": load.run_id,
            "imported": load.figures.get("imported") or 0,
            "rejected": load.figures.get("rejected") or 0,
            "reject_ratio": load.figures.get("reject_ratio"),
        }
        for load in loads
    ]


def strip_statuses(batches: list[Any]) -> list[str]:
    """The batches' statuses for the status strip, in plan order; a batch posted whose answer
    was lost (submitted, no unique_id) shows as maybe accepted."""
    return [
        "maybe_accepted"
        if batch.status == BatchStatus.SUBMITTED and not batch.unique_id
        else str(batch.status)
        for batch in batches
    ]


# -- the list's filters --------------------------------------------------------------------

RUN_STATES: tuple[str, ...] = tuple(state.value for state in RunState)
_DAY = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


@dataclass(frozen=True)
class LoadFilters:
    """The filters of the list of loads, as the form sent them (text: the form shows them
    back as typed). ``problems`` says what cannot be read; ``arguments`` are the keyword
    arguments of ``browse.list_loads`` once there is none."""

    state: str = ""
    load: str = ""
    api_task_id: str = ""
    window_from: str = ""
    window_to: str = ""

    @classmethod
    def of(cls, **values: str | None) -> LoadFilters:
        return cls(**{name: (value or "").strip() for name, value in values.items()})

    @property
    def any(self) -> bool:
        return any(self.query().values())

    def problems(self) -> list[str]:
        found = []
        if self.load and not is_load_id(self.load):
            found.append(f"Load {_echo(self.load)}is no load id (a DAG id): choose one, or all.")
        if self.state and self.state not in RUN_STATES:
            found.append(
                f"State {_echo(self.state)}is none of {', '.join(RUN_STATES)}: choose one, or all."
            )
        for name in ("window_from", "window_to"):
            value = getattr(self, name)
            if value and _day(value) is None:
                found.append(
                    f"{name} {_echo(value)}is not a day written YYYY-MM-DD (e.g. 2026-11-24)."
                )
        first, last = _day(self.window_from), _day(self.window_to)
        if first and last and first > last:
            found.append(
                f"window_from ({first}) is after window_to ({last}): no window lies between."
            )
        return found

    def arguments(self) -> dict[str, Any]:
        return {
            "state": self.state or None,
            "load_id": self.load or None,
            "api_task_id": self.api_task_id or None,
            "window_from": _day(self.window_from),
            "window_to": _day(self.window_to),
        }

    def query(self) -> dict[str, str]:
        """The filters that are set, for links that keep them (paging)."""
        return {f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name)}

    def pager_href(self, base: str) -> str:
        """The list's address with these filters, up to the page number the pager adds."""
        query = urlencode(self.query())
        return f"{base}/?{query}&page=" if query else f"{base}/?page="

    def shown(self, name: str) -> str:
        """A filter's value as the form shows it back: a phone typed by mistake, masked."""
        return _shown(getattr(self, name))


def _day(value: str) -> date | None:
    if not _DAY.fullmatch(value):
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        return None


def _shown(value: str) -> str:
    return mask_phones_in(value)[:200]


def _echo(value: str) -> str:
    """A value the user sent, quoted for a message, unless it holds a phone-shaped number
    (then the message goes without it: masked, a date such as 20261124 would mislead)."""
    shown = value[:80]
    return f"{shown!r} " if mask_phones_in(shown) == shown else ""
