"""LedgerCallbackSensor on a worker (the path it takes without start_from_trigger), against
the simulator and a real ledger."""

from __future__ import annotations

import pytest
from airflow.sdk.exceptions import AirflowFailException

from agent_api.hooks.agent_api import AgentApiHook
from lead_load.glue.sensors import LedgerCallbackSensor
from lead_load.glue.triggers import PostBatchTrigger
from lead_load.ledger import batch_lifecycle
from tests.include.lead_load.glue.test_triggers import (  # noqa: F401 (fixtures)
    RUN,
    events_of,
    ledger_env,
    ledger_status,
)
from tests.plugins.agent_api.conftest import account  # noqa: F401 (a fixture)


def _sensor(settings, batch) -> LedgerCallbackSensor:
    return LedgerCallbackSensor(
        task_id="wait_for_callback",
        settings=settings,
        batch=batch,
        deferrable=False,
        poll_interval=0.05,
        timeout=30,
    )


def test_the_sensor_waits_for_the_posted_batch_and_records_its_outcome(ledger_env, account):
    engine, settings, batches, phones = ledger_env
    (posted,) = events_of(PostBatchTrigger(settings, batches[0]))

    result = _sensor(settings, batches[0]).execute({})

    assert result["unique_id"] == posted.xcoms["return_value"]["unique_id"]
    assert result["imported"] == 2
    assert ledger_status(engine, batches[0]["batch_no"]) == {"imported"}
    assert sorted(account.imported_phones()) == sorted(phones[:2])


def test_a_batch_found_in_the_task_ends_the_wait_without_a_callback(ledger_env, account):
    engine, settings, batches, _ = ledger_env
    batch_no = batches[1]["batch_no"]
    frozen = batch_lifecycle.claim(engine, RUN, batch_no, "frozen worker", seconds=-1)
    AgentApiHook().import_batch(account.task_id, frozen.rows)
    account.sim.wait_until_processed()
    events_of(PostBatchTrigger(settings, batches[1]))  # reconciles: all found, posts nothing

    result = _sensor(settings, batches[1]).execute({})

    assert result == {"batch_no": batch_no, "unique_id": None, "imported": 0, "waited": False}
    assert len(account.posts()) == 1


def test_a_wait_for_a_batch_that_was_never_posted_fails(ledger_env, account):
    _, settings, batches, _ = ledger_env
    with pytest.raises(AirflowFailException, match="is planned\\): its post did not succeed"):
        _sensor(settings, batches[2]).execute({})
    assert account.posts() == []
