"""One copy of the post step in a process of its own, for the race tests.

    python -m tests.include.lead_load.steps.post_step_child SPEC_JSON

SPEC: ledger_url, settings, batch_no, owner, lease_seconds, and optionally pause_at
("before_claim", "after_claim" or "before_recording") with barrier_dir. At the pause point
the process writes ``<barrier_dir>/<pause_at>.reached`` and waits for ``.go``: the real step
runs unchanged around the pause. Prints the step's receipt as JSON on its last line.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from sqlalchemy import create_engine

from agent_api.hooks.agent_api import AgentApiHook
from lead_load.core.run_settings import RunSettings
from lead_load.ledger import batch_lifecycle
from lead_load.steps import post


def pause(barrier: Path, name: str) -> None:
    (barrier / f"{name}.reached").touch()
    while not (barrier / f"{name}.go").exists():
        time.sleep(0.02)


def paused_around(function, barrier: Path, name: str, after: bool):
    def wrapper(*args, **kwargs):
        if not after:
            pause(barrier, name)
        result = function(*args, **kwargs)
        if after:
            pause(barrier, name)
        return result

    return wrapper


def main(spec: dict) -> None:
    barrier = Path(spec.get("barrier_dir") or ".")
    pause_at = spec.get("pause_at")
    if pause_at == "before_claim":
        batch_lifecycle.claim = paused_around(batch_lifecycle.claim, barrier, pause_at, False)
    elif pause_at == "after_claim":
        batch_lifecycle.claim = paused_around(batch_lifecycle.claim, barrier, pause_at, True)
    elif pause_at == "before_recording":
        batch_lifecycle.mark_submitted = paused_around(
            batch_lifecycle.mark_submitted, barrier, pause_at, False
        )
    # The lease's length is the one thing the tests shorten.
    post.lease_seconds = lambda hook: float(spec["lease_seconds"])
    post.LEASE_POLL_SECONDS = 0.2

    engine = create_engine(spec["ledger_url"])
    settings = RunSettings.from_dict(spec["settings"])
    while True:
        outcome = post.post_batch(settings, spec["batch_no"], engine, AgentApiHook(), spec["owner"])
        if not isinstance(outcome, post.LeaseHeld):
            break
        time.sleep(outcome.seconds)
    print(json.dumps(outcome))


if __name__ == "__main__":
    main(json.loads(sys.argv[1]))
