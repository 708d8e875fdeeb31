"""Two processes run the post step for the same batch, interleaved at every boundary.

Each copy is a real process (``post_step_child``) running the real step against the
simulator over HTTP and a real ledger (SQLite file, PostgreSQL). One copy pauses at a
boundary: before its claim, after its claim and before the request, inside a slow request,
or after the answer and before recording it; with its lease still live, or expired so that
the other copy takes the batch over. Whatever the interleaving, the simulator's journal
must show every phone accepted exactly once, and once the callbacks are in, the ledger
must say imported for exactly the phones the task holds.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy import select

from agent_api.hooks.agent_api import AgentApiHook
from lead_load.core.run_settings import RunSettings
from lead_load.ledger import batch_lifecycle, planning, run_lifecycle, schema, settling, staging
from lead_load.steps import settle
from tests.include.lead_load.samples import candidate
from tests.plugins.agent_api.conftest import account, new_phones  # noqa: F401 (a fixture)

REPO = Path(__file__).resolve().parents[4]
CHILD = "tests.include.lead_load.steps.post_step_child"
RUN = "run-race"
ROWS = 20
LIVE, SHORT = 60.0, 1.0  # lease seconds: outlives the test / expires during the pause


@pytest.fixture
def batch(engine, account):
    """One planned batch of ROWS leads."""
    phones = new_phones(ROWS)
    run_lifecycle.start_run(engine, RUN, account.task_id, ("a", "b"))
    staging.add_candidates(engine, RUN, [candidate(f"l{i:03d}", p) for i, p in enumerate(phones)])
    staging.stage_candidates(engine, RUN, account.task_id)
    (planned,) = planning.plan(engine, RUN, account.task_id, ROWS).batches
    settings = {
        "run_id": RUN,
        "api_task_id": account.task_id,
        "window_start": "2026-11-24T00:00:00+00:00",
        "window_end": "2026-11-25T00:00:00+00:00",
        "batch_size": ROWS,
    }
    return settings, planned["batch_no"], phones


class Copy:
    """One process running the post step."""

    def __init__(self, engine, settings, batch_no, owner, lease, tmp_path, pause_at=None):
        self.barrier = tmp_path / owner
        self.barrier.mkdir()
        self.pause_at = pause_at
        spec = {
            "ledger_url": engine.url.render_as_string(hide_password=False),
            "settings": settings,
            "batch_no": batch_no,
            "owner": owner,
            "lease_seconds": lease,
            "pause_at": pause_at,
            "barrier_dir": str(self.barrier),
        }
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.include.lead_load.steps.post_step_child",
                json.dumps(spec),
            ],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    # Bounds against a hung child, not timing goals: a child imports Airflow before it does
    # anything, which took more than 30 s on a loaded 2-core CI machine.
    def wait_paused(self, timeout: float = 240) -> None:
        deadline = time.monotonic() + timeout
        while not (self.barrier / f"{self.pause_at}.reached").exists():
            assert self.process.poll() is None, self.process.communicate()
            assert time.monotonic() < deadline, f"never reached {self.pause_at}"
            time.sleep(0.02)

    def release(self) -> None:
        (self.barrier / f"{self.pause_at}.go").touch()

    def running(self) -> bool:
        return self.process.poll() is None

    def receipt(self, timeout: float = 240) -> dict:
        out, err = self.process.communicate(timeout=timeout)
        assert self.process.returncode == 0, err[-3000:]
        return json.loads(out.strip().splitlines()[-1])


def accepted_phones(account) -> Counter:
    accepted = [p for p in account.posts() if p["status"] == 200 and p["code"] == 200]
    return Counter(row["phone"] for post in accepted for row in post["body"]["data"])


def settle_and_compare(engine, account, settings, phones) -> None:
    """Every phone accepted once; after the callbacks, imported iff in the task."""
    assert accepted_phones(account) == Counter(phones)
    account.sim.wait_until_processed()
    run_settings = RunSettings.from_dict(settings)
    for unique_id in settling.awaiting_callback(engine, RUN):
        payload = AgentApiHook().get_callback(unique_id)
        numbers = set(AgentApiHook().download_numbers(payload["data"]["url"]))
        settle.apply_outcome(run_settings, engine, AgentApiHook(), unique_id, numbers)
    for open_batch in settling.unsettled_batches(engine, account.task_id):
        # Maybe accepted (no unique_id): only the task's number list settles it.
        assert open_batch["unique_id"] is None
        settle.settle_batch_from_number_list(run_settings, engine, AgentApiHook(), open_batch)
    with engine.connect() as conn:
        rows = conn.execute(select(schema.ledger.c.phone, schema.ledger.c.status)).all()
    in_task = account.imported_phones()
    assert sorted(in_task) == sorted(phones)  # each once
    assert {phone for phone, status in rows if status == "imported"} == set(in_task)
    assert len(rows) == ROWS


def test_a_copy_that_arrives_before_its_claim_ends_with_the_winners_receipt(
    engine,
    account,
    batch,
    tmp_path,
):
    settings, batch_no, phones = batch
    late = Copy(engine, settings, batch_no, "late", LIVE, tmp_path, "before_claim")
    late.wait_paused()
    first = Copy(engine, settings, batch_no, "first", LIVE, tmp_path).receipt()
    late.release()
    assert late.receipt() == first and first["rows"] == ROWS
    settle_and_compare(engine, account, settings, phones)


@pytest.mark.parametrize("pause_at", ["after_claim", "before_recording"])
def test_a_copy_waits_for_a_live_lease_and_ends_with_the_owners_receipt(
    engine,
    account,
    batch,
    tmp_path,
    pause_at,
):
    settings, batch_no, phones = batch
    owner = Copy(engine, settings, batch_no, "owner", LIVE, tmp_path, pause_at)
    owner.wait_paused()
    other = Copy(engine, settings, batch_no, "other", LIVE, tmp_path)
    time.sleep(2)
    assert other.running(), other.receipt()  # waiting for the lease, not posting
    assert len(account.posts()) == (1 if pause_at == "before_recording" else 0)
    owner.release()
    receipt = owner.receipt()
    assert other.receipt() == receipt and receipt["rows"] == ROWS
    settle_and_compare(engine, account, settings, phones)


def test_a_copy_waits_while_the_owners_request_is_on_the_wire(
    engine,
    account,
    batch,
    tmp_path,
):
    settings, batch_no, phones = batch
    # The platform takes the batch at once and answers 1.5 s later (within the timeout).
    account.sim.set_faults(lost_answer_rate=1.0, lost_answer_delay=1.5)
    try:
        owner = Copy(engine, settings, batch_no, "owner", LIVE, tmp_path)
        deadline = time.monotonic() + 240  # a hang guard (the child imports Airflow first)
        while not account.posts():
            assert time.monotonic() < deadline and owner.running()
            time.sleep(0.02)
        other = Copy(engine, settings, batch_no, "other", LIVE, tmp_path)
        receipt = owner.receipt()
        assert other.receipt() == receipt
    finally:
        account.sim.set_faults()
    settle_and_compare(engine, account, settings, phones)


def test_an_owner_paused_past_its_lease_after_the_claim_never_posts(
    engine,
    account,
    batch,
    tmp_path,
):
    settings, batch_no, phones = batch
    paused = Copy(engine, settings, batch_no, "paused", SHORT, tmp_path, "after_claim")
    paused.wait_paused()
    time.sleep(SHORT + 0.5)
    # The lease expired: the other copy looks the rows up in the task (absent), re-stages
    # them and posts them under a claim of its own.
    taker = Copy(engine, settings, batch_no, "taker", LIVE, tmp_path).receipt()
    assert taker["rows"] == ROWS
    paused.release()  # wakes up: its fence (the renewal before the POST) refuses
    assert paused.receipt() == taker
    assert len(account.posts()) == 1
    settle_and_compare(engine, account, settings, phones)


def test_an_owner_paused_past_its_lease_after_the_answer_cannot_record_over_the_new_owner(
    engine,
    account,
    batch,
    tmp_path,
):
    settings, batch_no, phones = batch
    paused = Copy(engine, settings, batch_no, "paused", SHORT, tmp_path, "before_recording")
    paused.wait_paused()
    account.sim.wait_until_processed()  # the platform imported the batch meanwhile
    time.sleep(SHORT + 0.5)
    # The new owner sees that a POST started: the batch may be in the platform, so it keeps
    # the rows as maybe accepted and posts nothing.
    taker = Copy(engine, settings, batch_no, "taker", LIVE, tmp_path).receipt()
    assert taker == {
        "batch_no": batch_no,
        "unique_id": None,
        "rows": ROWS,
        "maybe_accepted": True,
    }
    paused.release()  # its answer came too late to be recorded; it says so and stops
    assert paused.receipt() == taker  # ends with the batch as the ledger has it
    assert len(account.posts()) == 1
    settle_and_compare(engine, account, settings, phones)
    assert batch_lifecycle.batch_state(engine, RUN, batch_no)["status"] == "processed"


def _batch_row(engine, batch_no: int):
    with engine.connect() as conn:
        return conn.execute(
            select(schema.batches).where(
                schema.batches.c.run_id == RUN, schema.batches.c.batch_no == batch_no
            )
        ).one()


def _row_statuses(engine) -> set[str]:
    with engine.connect() as conn:
        return set(
            conn.execute(select(schema.ledger.c.status).where(schema.ledger.c.run_id == RUN))
            .scalars()
            .all()
        )


def test_a_rejected_token_ends_the_batch_failed_and_a_cleared_post_sends_it(engine, account, batch):
    from agent_api.exceptions import AgentApiAuthError
    from lead_load.steps.post import post_batch

    settings, batch_no, _phones = batch
    account.sim.set_faults(expired_token=True)
    with pytest.raises(AgentApiAuthError):
        post_batch(RunSettings.from_dict(settings), batch_no, engine, AgentApiHook(), "first")
    failed = _batch_row(engine, batch_no)
    assert failed.status == "failed"
    assert "put a valid partner token in the password" in failed.error
    assert _row_statuses(engine) == {"staged"}  # the platform has none of them

    account.sim.set_faults(expired_token=False)  # the token fixed, the post task cleared
    receipt = post_batch(RunSettings.from_dict(settings), batch_no, engine, AgentApiHook(), "2")
    assert receipt["rows"] == ROWS and receipt["unique_id"]
    assert _batch_row(engine, batch_no).status == "submitted"


def test_an_unknown_calling_task_ends_the_batch_failed_saying_what_to_check(engine, account, batch):
    from agent_api.exceptions import AgentApiNotFoundError
    from lead_load.steps.post import post_batch

    settings, batch_no, _phones = batch
    unknown = "123e4567-e89b-12d3-a456-426614174000"
    with pytest.raises(AgentApiNotFoundError):
        post_batch(
            RunSettings.from_dict({**settings, "api_task_id": unknown}),
            batch_no,
            engine,
            AgentApiHook(),
            "first",
        )
    failed = _batch_row(engine, batch_no)
    assert failed.status == "failed"
    assert f"the platform does not know calling task {unknown}" in failed.error
    assert "check the api_task_id param or the Variable lead_load_api_task_id" in failed.error
    assert _row_statuses(engine) == {"staged"}
    assert account.imported_phones() == []


def test_rows_suppressed_after_staging_are_taken_out_of_the_batch_before_posting(
    engine, account, batch, caplog
):
    from lead_load.ledger import counts, suppressions
    from lead_load.steps.post import post_batch

    settings, batch_no, phones = batch
    taken_out = [phones[0], phones[5]]
    suppressions.add(engine, [suppressions.Entry(phone) for phone in taken_out])

    with caplog.at_level("INFO", logger="lead_load.steps.post"):
        receipt = post_batch(RunSettings.from_dict(settings), batch_no, engine, AgentApiHook(), "1")

    assert receipt["rows"] == ROWS - 2 and receipt["unique_id"]
    assert accepted_phones(account) == Counter(set(phones) - set(taken_out))
    assert _batch_row(engine, batch_no).rows == ROWS - 2
    with engine.connect() as conn:
        rows = conn.execute(
            select(schema.ledger.c.phone, schema.ledger.c.reason, schema.ledger.c.batch_no).where(
                schema.ledger.c.status == "rejected"
            )
        ).all()
    reason = f"suppressed: taken out of batch {batch_no} before posting"
    assert sorted(rows) == sorted((phone, reason, batch_no) for phone in taken_out)
    assert counts.suppressed_before_posting(engine, RUN) == 2
    said = [r.getMessage() for r in caplog.records if "taken out" in r.getMessage()]
    assert said == [
        f"Batch {batch_no}: 2 rows taken out before posting, their phones were suppressed "
        f"after staging (rejected as suppressed); {ROWS - 2} rows left to post"
    ]
    assert not any(phone in caplog.text for phone in phones)


def test_a_batch_whose_every_row_is_suppressed_ends_processed_with_nothing_posted(
    engine, account, batch, caplog
):
    from lead_load.ledger import suppressions
    from lead_load.steps.post import post_batch

    settings, batch_no, phones = batch
    suppressions.add(engine, [suppressions.Entry(phone) for phone in phones])

    with caplog.at_level("INFO", logger="lead_load.steps.post"):
        receipt = post_batch(RunSettings.from_dict(settings), batch_no, engine, AgentApiHook(), "1")

    assert receipt == {"batch_no": batch_no, "unique_id": None, "rows": 0, "maybe_accepted": False}
    assert account.posts() == []
    row = _batch_row(engine, batch_no)
    assert (row.status, row.rows, row.unique_id) == ("processed", 0, None)
    assert _row_statuses(engine) == {"rejected"}
    assert f"all {ROWS} rows taken out before posting" in caplog.text
    assert "nothing to post, the batch ends processed with nothing posted" in caplog.text
    # A later copy of the step finds the batch done and ends with its receipt.
    again = post_batch(RunSettings.from_dict(settings), batch_no, engine, AgentApiHook(), "2")
    assert again == receipt
