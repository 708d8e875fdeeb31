"""Pure presentation rules of the Lead loads page: times, durations, links, map indexes."""

from __future__ import annotations

from datetime import UTC, datetime
from urllib.parse import quote
from zoneinfo import ZoneInfo

from lead_load.core.window import parse_time

DAG_ID = "lead_load"
# The mapped tasks of one batch: both carry the batch's position in the plan as map index.
BATCH_TASK_IDS = ("batches.post_batch", "batches.wait_for_callback")
# The zone the business reads its windows in (the DAG's schedule runs in it).
LOCAL_ZONE = ZoneInfo("Asia/Shanghai")


def in_zones(value: str | datetime | None) -> tuple[str, str]:
    """(UTC, Asia/Shanghai) renderings of a moment, e.g. ("2026-11-23 18:00 UTC",
    "2026-11-24 02:00 CST"); the raw text twice when it cannot be read."""
    moment = parse_time(value)
    if moment is None:
        return (str(value or "-"), str(value or "-"))
    return (
        moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC"),
        moment.astimezone(LOCAL_ZONE).strftime("%Y-%m-%d %H:%M:%S CST"),
    )


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


def dag_run_href(root: str, run_id: str, dag_id: str = DAG_ID) -> str:
    """The Airflow UI's page of a DAG run."""
    return f"{root}/dags/{quote(dag_id, safe='')}/runs/{quote(run_id, safe='')}"


def task_instance_href(root: str, run_id: str, task_id: str, map_index: int) -> str:
    return f"{dag_run_href(root, run_id)}/tasks/{quote(task_id, safe='')}/mapped/{map_index}"
