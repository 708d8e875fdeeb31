"""Two `airflow dags test` runs of the same window at once, on one warehouse and ledger
(PostgreSQL) and one target task: every valid lead still lands in the task exactly once.

The second run starts 0, 1 or 3 s after the first, with and without client-side pacing
(``max_requests_per_second``), except paced 1 s apart: pacing lengthens the posting, which the
pairs started together and 3 s apart already overlap (and the overlap benchmark's smoke test,
tests/benchmarks/test_benchmark_smoke.py, runs a small paced pair 1 s apart). Each run is its
own process with its own run id, as two people typing the same command would start them
(tests/dags/overlap.py).

What is asserted, from the simulator and the warehouse, never from what the DAG says:

- the simulator's journal: each valid phone was in exactly one accepted async_number post,
  and nothing else was posted;
- the ledger: a row is ``imported`` iff its phone is in the task, every valid lead's row is
  ``imported``, and the invalid and duplicate leads are ``rejected``;
- both runs succeed. Nothing fails on the platform's side here, so none of the reasons for
  which ``pipeline.report()`` fails a run (rows not sent, rows awaiting a callback, a landing
  check that disagrees, too many rejects) can hold for a run that the other one did not
  disturb: a failed run here is interference, not an honest verdict;
- both stored summaries (``lead_load_runs.summary``) add up, see ``check_summary``;
- a third run afterwards posts nothing and succeeds (checked once, after the first pair).

Sizes: 20,000 leads for the two pairs started together (with and without pacing), 3,000 for
the three others, to save CI time: a pair of 20,000 costs minutes, one of 3,000 about one.
benchmarks/overlap.py measures a 20,000-lead pair 1 s apart.
"""

from __future__ import annotations

import pytest

from lead_load_devtools.synthetic import generate, write_leads
from tests.dags.conftest import WINDOW, make_env
from tests.dags.overlap import (
    DagTestRun,
    accepted_posts,
    last_seq,
    ledger_rows,
    posts_per_phone,
    run_overlapping,
    run_summaries,
)

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

FULL = 20_000
SMALL = 3_000
PACED = {"max_requests_per_second": 20}


def seeded(env, count: int):
    leads = generate(count, seed=7, start=WINDOW[0], end=WINDOW[1])
    write_leads(env.warehouse.engine, leads.frame)
    return leads


def outcome(runs: list[DagTestRun]) -> str:
    return ", ".join(
        f"run {n}: exit {run.returncode} after {run.wall_s} s" for n, run in enumerate(runs, 1)
    )


def carried_over_rows(summary: dict) -> int:
    """Rows this run took over from runs that had finished (by run, or a total; 0 if none)."""
    carried = summary.get("carried_over") or 0
    return sum(carried.values()) if isinstance(carried, dict) else carried


def check_summary(summary: dict) -> None:
    """How the run accounts for what it extracted (``steps.extract.extract_and_stage``):
    every extracted row is invalid (refused by the transform), a duplicate within the run,
    or a candidate that staging found already loaded (imported, refused before, or its phone
    held by another lead), found in flight (another run's), suppressed (its phone on the
    suppression list) or staged:
    ``extracted == invalid + duplicates_in_run + already_loaded + in_flight + suppressed +
    staged``, and ``rejected == invalid + duplicates_in_run``. What it says it sent is checked
    against the platform (``check_sent_against_platform``), not against its own arithmetic."""
    s = summary
    counts = {k: v for k, v in s.items() if isinstance(v, int | dict) and k != "batches"}
    assert s["extracted"] == (
        s["invalid"]
        + s["duplicates_in_run"]
        + s["already_loaded"]
        + s["in_flight"]
        + s["suppressed"]
        + s["staged"]
    ), counts
    assert s["rejected"] == s["invalid"] + s["duplicates_in_run"], counts


def check_sent_against_platform(
    summary: dict, run_rows: list[dict], accepted: set[str], in_task: set[str]
) -> None:
    """The run's figures of what it sent and what landed, against the platform's journal
    (phones in accepted posts) and the task's number list, for the rows the run owns."""
    phones = {r["phone"] for r in run_rows if r["status"] != "rejected"}
    assert summary["submitted"] == len(phones & accepted), (summary, len(phones & accepted))
    assert summary["imported"] == len(phones & in_task), (summary, len(phones & in_task))
    assert summary["staged"] + carried_over_rows(summary) == len(phones), summary


@pytest.mark.parametrize(
    ("offset_s", "pacing", "size"),
    [
        pytest.param(0, {}, FULL, id="together-unpaced-20000"),
        pytest.param(0, PACED, FULL, id="together-paced-20000"),
        pytest.param(1, {}, SMALL, id="1s-apart-unpaced-3000"),
        pytest.param(3, {}, SMALL, id="3s-apart-unpaced-3000"),
        pytest.param(3, PACED, SMALL, id="3s-apart-paced-3000"),
    ],
)
def test_two_runs_of_the_same_window_land_every_valid_lead_exactly_once(
    postgres_lead_load_env, offset_s, pacing, size
):
    env = make_env(postgres_lead_load_env.sim, postgres_lead_load_env.warehouse, **pacing)
    leads = seeded(env, size)
    valid = set(leads.valid_phones)

    runs = run_overlapping(env, offset_s)
    ran = outcome(runs)

    # The platform: each valid phone in exactly one accepted post, nothing else posted.
    per_phone = posts_per_phone(accepted_posts(env))
    twice = sorted(phone for phone, posts in per_phone.items() if posts > 1)
    assert not twice, f"{len(twice)} phones were accepted in more than one post ({ran})"
    assert set(per_phone) == valid, ran
    phones = env.calling_task_phones()
    assert sorted(phones) == sorted(valid), ran

    # The ledger: imported iff the phone is in the task; every valid lead imported.
    rows = ledger_rows(env)
    in_task = set(phones)
    wrong = [
        r
        for r in rows
        if r["status"] != "rejected" and (r["status"] == "imported") != (r["phone"] in in_task)
    ]
    assert not wrong, f"{len(wrong)} ledger rows disagree with the task, e.g. {wrong[:3]} ({ran})"
    status_of = {r["lead_id"]: r["status"] for r in rows}
    kept = set(leads.valid_phones.values())
    assert {lead: status_of.get(lead) for lead in kept} == dict.fromkeys(kept, "imported"), ran
    rejected = {lead for lead, status in status_of.items() if status == "rejected"}
    assert rejected == leads.invalid_leads | leads.duplicate_leads, ran

    # Both runs succeeded, with two run ids, and their summaries add up.
    for number, run in enumerate(runs, 1):
        assert run.returncode == 0, f"run {number} failed ({ran}):\n{run.tail()}"
    summaries = run_summaries(env)
    assert len(summaries) == 2, sorted(summaries)
    for run_id, summary in summaries.items():
        check_summary(summary)
        run_rows = [r for r in rows if r["run_id"] == run_id]
        check_sent_against_platform(summary, run_rows, set(per_phone), in_task)
        assert summary["extracted"] == size
        assert summary["not_imported"] == summary["awaiting_callback"] == 0, summary
        assert summary["not_sent"] == 0, summary
    # Each valid lead was staged by one of the two runs, and imported under one.
    assert sum(s["staged"] for s in summaries.values()) == len(valid), summaries
    assert sum(s["imported"] for s in summaries.values()) == len(valid), summaries

    if offset_s or pacing:
        return  # the third run is the same in every case; once is enough (CI time)
    # A third run finds everything loaded, posts nothing and succeeds.
    since = last_seq(env)
    third = env.run_dag()
    assert third.returncode == 0, (third.stdout + third.stderr)[-4000:]
    assert [e for e in env.sim.journal(since) if e["path"].endswith("/async_number")] == []
    (summary,) = (s for run_id, s in run_summaries(env).items() if run_id not in summaries)
    check_summary(summary)
    assert summary["staged"] == summary["in_flight"] == summary["submitted"] == 0, summary
    assert summary["already_loaded"] == len(valid), summary
