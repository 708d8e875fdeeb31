"""PostBatchOperator: its start in the triggerer (the StartTriggerArgs and what they render to),
its post on a worker against the simulator and a real ledger, and how it ends a failed trigger."""

from __future__ import annotations

import logging
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace

import pytest
from airflow.sdk.exceptions import AirflowException, AirflowFailException

from lead_load.glue.operators import POST_TIMEOUT, PostBatchOperator, post_in_triggerer
from lead_load.glue.triggers import PostBatchTrigger
from lead_load.ledger import batch_lifecycle
from tests.include.lead_load.glue.conftest import (
    RUN,
    as_the_triggerer_starts_it,
    events_of,
    ledger_status,
    trigger_module_in_a_fresh_interpreter,
)

REPO = Path(__file__).resolve().parents[4]


def _operator(**kwargs) -> PostBatchOperator:
    return PostBatchOperator(task_id="post_batch", settings={}, batch={}, **kwargs)


def test_started_as_the_dag_starts_it_the_trigger_posts_the_batch_at_its_map_index(
    ledger_env, account
):
    engine, _, batches, phones = ledger_env
    args = post_in_triggerer()
    operator = _operator(start_from_trigger=True, start_trigger_args=args)
    # Nothing for the triggerer to render: no XCom request through its supervisor.
    assert args.trigger_kwargs == {}
    trigger = as_the_triggerer_starts_it(PostBatchTrigger(**args.trigger_kwargs), map_index=1)

    (event,) = events_of(trigger)

    receipt = event.xcoms["return_value"]
    assert receipt["batch_no"] == batches[1]["batch_no"]
    (post,) = account.posts()
    assert [row["phone"] for row in post["body"]["data"]] == phones[2:4]
    assert ledger_status(engine, batches[1]["batch_no"]) == {"submitted"}
    assert args.trigger_cls == f"{PostBatchTrigger.__module__}.{PostBatchTrigger.__qualname__}"
    assert args.next_method == "execute_complete"
    assert callable(getattr(operator, args.next_method))
    assert args.timeout == POST_TIMEOUT >= timedelta(minutes=10)


def test_the_triggerer_imports_the_post_trigger_without_the_dags_folder(tmp_path):
    classpath = post_in_triggerer().trigger_cls
    module_file = Path(trigger_module_in_a_fresh_interpreter(classpath, tmp_path))
    assert module_file == REPO / "include" / "lead_load" / "glue" / "triggers.py"


def test_on_a_worker_the_operator_posts_its_batch_once(ledger_env, account):
    engine, settings, batches, phones = ledger_env
    operator = PostBatchOperator(task_id="post_batch", settings=settings, batch=batches[0])

    receipt = operator.execute({"ti": SimpleNamespace(try_number=3)})

    (post,) = account.posts()
    assert [row["phone"] for row in post["body"]["data"]] == phones[:2]
    (accepted,) = account.sim.batches()
    assert receipt == {
        "batch_no": batches[0]["batch_no"],
        "unique_id": accepted["unique_id"],
        "rows": 2,
        "maybe_accepted": False,
    }
    assert ledger_status(engine, batches[0]["batch_no"]) == {"submitted"}
    owner = batch_lifecycle.batch_state(engine, RUN, batches[0]["batch_no"])["lease_owner"]
    assert owner.startswith(f"run {RUN} batch {batches[0]['batch_no']} try 3 on ")


def test_on_a_worker_the_operator_waits_out_a_live_lease_then_posts(
    ledger_env, account, monkeypatch, caplog, capfd
):
    engine, settings, batches, phones = ledger_env
    batch_no = batches[1]["batch_no"]
    # A copy that froze right after its claim: its lease runs out in a second.
    batch_lifecycle.claim(engine, RUN, batch_no, "frozen copy", seconds=1)
    monkeypatch.setattr("lead_load.steps.post.LEASE_POLL_SECONDS", 0.2)
    caplog.set_level(logging.INFO)

    receipt = PostBatchOperator(task_id="post_batch", settings=settings, batch=batches[1]).execute(
        {"ti": SimpleNamespace(try_number=1)}
    )

    # The task log (Airflow's, on stdout) says whom it waited for; the step's, what it found.
    assert f"Batch {batch_no} is held by frozen copy" in capfd.readouterr().out
    assert "was interrupted before any post of it started" in caplog.text
    assert receipt["rows"] == 2 and receipt["unique_id"]
    (post,) = account.posts()  # the frozen copy never posted; this one posted once
    assert [row["phone"] for row in post["body"]["data"]] == phones[2:4]
    assert ledger_status(engine, batch_no) == {"submitted"}


@pytest.mark.parametrize(
    ("retryable", "raised"), [(True, AirflowException), (False, AirflowFailException)]
)
def test_a_failed_trigger_fails_the_task_with_its_reason(retryable, raised):
    event = {
        "status": "error",
        "error": "AgentApiTransientError",
        "message": "agent-api error (HTTP 503): busy",
        "retryable": retryable,
    }
    with pytest.raises(raised) as error:
        _operator().execute_complete({}, event)
    assert str(error.value) == "AgentApiTransientError: agent-api error (HTTP 503): busy"
    # Only a retryable error leaves Airflow's retries to apply.
    assert isinstance(error.value, AirflowFailException) is not retryable
