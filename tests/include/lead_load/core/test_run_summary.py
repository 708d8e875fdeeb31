"""The run summary's arithmetic, its breakdown, the run note and the asset event's extra."""

from __future__ import annotations

import pytest

from lead_load.core import run_summary

IDENTITY = {
    "window_start": "2026-11-24T00:00:00+00:00",
    "window_end": "2026-11-25T00:00:00+00:00",
    "window_source": "window_start/window_end params",
    "api_task_id": "task-1",
    "dry_run": False,
}
# The demo's shape: 3,000 rows, 155 invalid, 285 duplicates in the run.
EXTRACT = {
    "extracted": 3000,
    "invalid": 155,
    "duplicates_in_run": 285,
    "staged": 2550,
    "already_loaded": 7,
    "in_flight": 3,
    "sex_unknown": 12,
    "updated_at_missing_in_table": 0,
}
STATUSES = {"imported": 2540, "not_imported": 20, "submitted": 0, "staged": 0, "rejected": 440}
CARRIED = {"scheduled__2026-11-23T18:00:00+00:00": 10}
BATCHES = {"settled": 13}
REASONS = {
    "not_a_phone": 100,
    "missing_phone": 55,
    "duplicate_in_run": 285,
    "phone_already_loaded": 2,
}
LANDING = {
    "counts": {"checked": 2570, "in_task": 2560, "agree": 2569, "repaired": {"x": 1}},
    "unrepaired": [],
}


def demo_summary(**extract) -> dict:
    return run_summary.flat_summary(
        IDENTITY, {**EXTRACT, **extract}, STATUSES, CARRIED, BATCHES, LANDING
    )


def test_invalid_rows_and_duplicates_are_separate_and_rejected_is_their_total():
    summary = demo_summary()
    assert (summary["invalid"], summary["duplicates_in_run"], summary["rejected"]) == (
        155,
        285,
        440,
    )
    assert summary["submitted"] == 2560
    assert summary["carried_over"] == 10 and summary["batches"] == 13
    assert run_summary.broken_identities(summary) == []


def test_every_value_of_the_flat_summary_is_a_scalar():
    summary = demo_summary()
    assert all(not isinstance(value, dict | list) for value in summary.values()), summary
    assert summary["sex_unknown"] == 12
    assert summary["landing_check"] == "2569 of 2570 agree, 1 repaired, 0 unrepaired"


def test_a_summary_that_does_not_add_up_says_which_identity_breaks():
    summary = demo_summary(staged=2549)  # one row lost between extract and staging
    assert run_summary.broken_identities(summary) == [
        "extracted (3000) != invalid + duplicates_in_run + already_loaded + in_flight + "
        "suppressed + staged (2999)",
        "staged + carried_over (2559) != submitted + not_sent + suppressed_before_posting (2560)",
    ]


def test_duplicates_do_not_count_towards_the_reject_ratio():
    assert demo_summary()["reject_ratio"] == round((155 + 20) / 3000, 4)
    assert demo_summary(extracted=0)["reject_ratio"] == 0.0


def test_an_extract_of_an_earlier_release_reports_invalid_rows_as_rejected():
    old = {key: value for key, value in EXTRACT.items() if key != "invalid"}
    summary = run_summary.flat_summary(
        IDENTITY, {**old, "rejected": 155}, STATUSES, CARRIED, BATCHES, LANDING
    )
    assert (summary["invalid"], summary["rejected"]) == (155, 440)


def test_the_breakdown_lists_invalid_reasons_that_sum_to_invalid():
    details = run_summary.breakdown(REASONS, CARRIED, BATCHES, LANDING)
    assert details["invalid_by_reason"] == {"missing_phone": 55, "not_a_phone": 100}
    assert sum(details["invalid_by_reason"].values()) == demo_summary()["invalid"]
    assert details["phone_held_by_another_lead"] == 2
    assert details["carried_over_by_run"] == CARRIED
    assert details["landing_check_counts"]["checked"] == 2570


@pytest.mark.parametrize(
    ("landing", "verdict"),
    [
        (None, "did not finish"),
        ({"skipped": "dry run: nothing was sent"}, "skipped: dry run: nothing was sent"),
    ],
)
def test_a_landing_check_that_did_not_count_is_named(landing, verdict):
    assert run_summary.landing_verdict(landing) == verdict


def test_the_run_note_is_one_line_with_the_counts_and_the_window():
    summary = demo_summary()
    note = run_summary.run_note(summary, {"missing_phone": 55, "not_a_phone": 100})
    assert note == (
        "imported 2540 of 3000 extracted; invalid 155 (not_a_phone 100, missing_phone 55); "
        "duplicates 285; already loaded 7; not imported 20; carried over 10; "
        "in flight in another run 3 | window 2026-11-24 00:00 to 2026-11-25 00:00 UTC "
        "(08:00 to 08:00 +08:00), window_start/window_end params"
    )
    assert "\n" not in note


@pytest.mark.parametrize(
    ("start", "end", "words"),
    [
        # The schedule's own day, 02:00 to 02:00 in Shanghai: the local dates differ.
        (
            "2026-11-23T18:00:00+00:00",
            "2026-11-24T18:00:00+00:00",
            "window 2026-11-23 18:00 to 2026-11-24 18:00 UTC "
            "(2026-11-24 02:00 to 2026-11-25 02:00 +08:00)",
        ),
        # Params given with an offset or naive (read as UTC); seconds are kept when set.
        (
            "2026-11-24T08:00:00+08:00",
            "2026-11-24 10:30:15",
            "window 2026-11-24 00:00 to 2026-11-24 10:30:15 UTC (08:00 to 18:30:15 +08:00)",
        ),
        # Not a date-time (an older summary): shown as it is.
        (None, None, "window None to None UTC"),
    ],
)
def test_the_note_gives_the_window_in_utc_and_by_the_schedule_zone_offset(start, end, words):
    assert run_summary.note_window(start, end) == words
    assert "CST" not in words


def test_a_failed_or_dry_run_says_so_first_and_the_note_fits_the_api_server():
    summary = {**demo_summary(), "dry_run": True, "problems": ["20 rows were not sent"]}
    note = run_summary.run_note(summary, {f"reason_{n}": n for n in range(200)})
    assert note.startswith("Failed: 20 rows were not sent | Dry run: imported 2540")
    assert len(note) == run_summary.NOTE_MAX_CHARS and note.endswith("...")
    assert run_summary.failure_note("resolve_settings", ["set both"]) == (
        "Failed at resolve_settings: set both"
    )


def test_the_asset_extra_carries_the_counts_and_the_calling_task():
    extra = run_summary.asset_extra(demo_summary())
    assert extra["api_task_id"] == "task-1"
    assert (extra["imported"], extra["extracted"], extra["invalid"]) == (2540, 3000, 155)
    assert "landing_check" not in extra


def test_suppressed_rows_have_figures_of_their_own_that_keep_the_identities():
    """2 rows rejected as suppressed by staging (out of staged), and 4 of the rows the run
    owned taken out of their batches at the claim (out of imported, so 6 fewer): still
    adding up."""
    summary = run_summary.flat_summary(
        IDENTITY,
        {**EXTRACT, "suppressed": 2, "staged": 2548},
        {**STATUSES, "imported": 2534},
        CARRIED,
        BATCHES,
        LANDING,
        suppressed_before_posting=4,
    )
    assert (summary["suppressed"], summary["suppressed_before_posting"]) == (2, 4)
    assert run_summary.broken_identities(summary) == []
    # Neither invalid nor towards the reject ratio, and not in the breakdown's invalid reasons.
    assert summary["invalid"] == 155 and summary["reject_ratio"] == round((155 + 20) / 3000, 4)
    details = run_summary.breakdown({**REASONS, "suppressed": 6}, CARRIED, BATCHES, LANDING)
    assert details["invalid_by_reason"] == {"missing_phone": 55, "not_a_phone": 100}
    note = run_summary.run_note(
        {**summary, "suppressed_after_import": 3}, details["invalid_by_reason"]
    )
    assert (
        "in flight in another run 3; suppressed 2; suppressed before posting 4; "
        "suppressed after import (remove by hand) 3 |"
    ) in note
    assert "suppressed" not in run_summary.run_note(demo_summary(), {})


def test_a_live_run_counts_its_suppressed_rows_by_the_same_rules():
    live = run_summary.live_summary(
        {**EXTRACT, "suppressed": 2, "staged": 2548},
        {**STATUSES, "imported": 2534},
        CARRIED,
        BATCHES,
        4,
    )
    assert run_summary.broken_identities(live) == []
    before_extract = run_summary.live_summary(None, {}, {}, {}, 0)
    assert before_extract["suppressed"] is None
    assert before_extract["suppressed_before_posting"] == 0


def test_the_run_note_names_maybe_accepted_rows_and_what_earlier_runs_left_open():
    summary = {
        **demo_summary(),
        "awaiting_callback": 50,
        "maybe_accepted": 50,
        "left_open_by_earlier_runs": 200,
    }
    note = run_summary.run_note(summary, {})
    assert (
        "awaiting callback 50; of them maybe accepted (answer lost) 50; "
        "unsettled of earlier runs 200 |"
    ) in note
