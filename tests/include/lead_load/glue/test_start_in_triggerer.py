"""StartsInTriggerer and raise_trigger_error: a task that starts in the triggerer keeps its
start arguments, mapped or not, through the serialization the scheduler reads, and ends on a
worker with its trigger's error, retried unless the error says no retry can help."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from airflow.sdk import DAG
from airflow.sdk.exceptions import AirflowException, AirflowFailException
from airflow.serialization.serialized_objects import DagSerialization
from airflow.triggers.base import StartTriggerArgs

from lead_load.glue.start_in_triggerer import StartsInTriggerer, raise_trigger_error

ARGS = StartTriggerArgs(
    trigger_cls="lead_load.glue.triggers.PostBatchTrigger",
    trigger_kwargs={"poll_interval": 2.0},
    next_method="execute_complete",
)
PLAN = [{"batch_no": 0, "rows": 200}, {"batch_no": 1, "rows": 17}]


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
    assert "'poll_interval': 2.0" in str(task.start_trigger_args.trigger_kwargs)


def test_by_default_a_task_starts_on_a_worker():
    task = OneBatch(task_id="post", batch={})
    assert (task.start_from_trigger, task.start_trigger_args) == (False, None)


@pytest.mark.parametrize(
    ("event", "raised"),
    [
        (
            {"error": "AgentApiTransientError", "message": "busy", "retryable": True},
            AirflowException,
        ),
        (
            {"error": "AgentApiAuthError", "message": "token", "retryable": False},
            AirflowFailException,
        ),
        ({"message": "3 polls failed in a row"}, AirflowException),  # unsaid: retried
    ],
)
def test_a_trigger_error_is_raised_retried_unless_it_says_no_retry_can_help(event, raised):
    with pytest.raises(AirflowException) as error:
        raise_trigger_error(event)
    assert type(error.value) is raised
    assert event["message"] in str(error.value)
