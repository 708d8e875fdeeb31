"""StartsInTriggerer and from_xcom: a task that starts in the triggerer keeps its start arguments,
mapped or not, through the serialization the scheduler reads, and its templates pull the
upstream XComs for the task's own map index."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from types import SimpleNamespace

import pytest
from airflow.sdk import DAG
from airflow.serialization.serialized_objects import DagSerialization
from airflow.triggers.base import StartTriggerArgs

from lead_load.glue.start_in_triggerer import (
    FIRST_BATCH_KEY,
    StartsInTriggerer,
    batch_at_map_index,
    from_xcom,
    publish_first_batch_no,
)
from tests.include.lead_load.glue.conftest import TriggererTI

ARGS = StartTriggerArgs(
    trigger_cls="lead_load.glue.triggers.PostBatchTrigger",
    trigger_kwargs={"batch": from_xcom("plan_batches", "[ti.map_index]")},
    next_method="execute_complete",
)
PLAN = [{"batch_no": 0, "rows": 200}, {"batch_no": 1, "rows": 17}]
SETTINGS = {"run_id": "scheduled__2026-11-24", "api_task_id": "任务-1"}


class OneBatch(StartsInTriggerer):
    template_fields = ("batch",)

    def __init__(self, *, batch, **kwargs) -> None:
        super().__init__(**kwargs)
        self.batch = batch


def _as_the_scheduler_sees(build):
    """The DAG that ``build`` fills, after the round trip through its serialized form."""
    start = datetime(2026, 11, 1, tzinfo=UTC)
    with DAG("starts_in_triggerer", schedule=None, start_date=start) as dag:
        build()
    return DagSerialization.from_dict(DagSerialization.to_dict(dag))


@pytest.mark.parametrize("mapped", [True, False])
def test_the_start_arguments_survive_serialization(mapped):
    def build():
        options = {"task_id": "post", "start_from_trigger": True, "start_trigger_args": ARGS}
        if mapped:  # .partial() takes only names that an __init__ declares
            return OneBatch.partial(**options).expand(batch=PLAN)
        return OneBatch(batch=PLAN[0], **options)

    task = _as_the_scheduler_sees(build).get_task("post")

    assert task.start_from_trigger is True
    assert task.start_trigger_args.trigger_cls == ARGS.trigger_cls
    assert task.start_trigger_args.next_method == "execute_complete"
    assert "[ti.map_index]" in str(task.start_trigger_args.trigger_kwargs)


def test_by_default_a_task_starts_on_a_worker():
    task = OneBatch(task_id="post", batch={})
    assert (task.start_from_trigger, task.start_trigger_args) == (False, None)


def test_from_xcom_renders_the_batch_at_the_tasks_own_map_index_as_json():
    task = OneBatch(task_id="post", batch={})
    xcoms = {"plan_batches": PLAN, "resolve_settings": SETTINGS}
    for map_index, batch in enumerate(PLAN):
        ti = TriggererTI(task, map_index, xcoms)
        rendered = task.render_template(from_xcom("plan_batches", "[ti.map_index]"), {"ti": ti})
        assert json.loads(rendered) == batch
    whole = task.render_template(from_xcom("resolve_settings"), {"ti": ti})
    assert json.loads(whole) == SETTINGS  # non-ASCII text survives the JSON


def test_from_xcom_without_json_renders_the_value_as_text():
    task = OneBatch(task_id="post", batch={})
    ti = TriggererTI(task, 0, {"resolve_settings": SETTINGS})
    template = from_xcom("resolve_settings", "['run_id']", as_json=False)
    assert task.render_template(template, {"ti": ti}) == "scheduled__2026-11-24"


def test_a_batch_at_map_index_is_the_first_batch_number_plus_the_map_index():
    task = OneBatch(task_id="post", batch={})
    plan = [{"batch_no": 7, "rows": 200}, {"batch_no": 8, "rows": 200}, {"batch_no": 9, "rows": 3}]
    ti = TriggererTI(SimpleNamespace(task_id="plan_batches"), -1, {})
    pushed = {}
    ti.xcom_push = lambda key, value: pushed.__setitem__(("plan_batches", key), value)
    publish_first_batch_no(ti, plan)
    assert pushed == {("plan_batches", FIRST_BATCH_KEY): 7}

    for map_index, batch in enumerate(plan):
        ti = TriggererTI(task, map_index, pushed)
        rendered = task.render_template(batch_at_map_index("plan_batches"), {"ti": ti})
        assert json.loads(rendered) == {"batch_no": batch["batch_no"]}
        assert ti.pulled == [("plan_batches", FIRST_BATCH_KEY)]  # one scalar, not the plan


def test_an_empty_plan_publishes_no_first_batch_number():
    ti = TriggererTI(SimpleNamespace(task_id="plan_batches"), -1, {})
    ti.xcom_push = lambda key, value: pytest.fail(f"pushed {key}={value}")
    publish_first_batch_no(ti, [])
