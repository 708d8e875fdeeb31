"""RunSettings: built from a run's Params, every empty Param taking the one default."""

from __future__ import annotations

from lead_load.core.run_settings import RunSettings

WINDOW = ("2026-11-24T00:00:00+00:00", "2026-11-25T00:00:00+00:00")


def test_empty_params_take_the_defaults() -> None:
    built = RunSettings.from_params(
        {"batch_size": None, "sub_user_id": "", "max_reject_ratio": None}, "run-1", "task", WINDOW
    )
    assert built == RunSettings(
        run_id="run-1", api_task_id="task", window_start=WINDOW[0], window_end=WINDOW[1]
    )
    assert built.batch_size == 200
    assert built.max_reject_ratio == 0.2
    assert built.sub_user_id is None


def test_given_params_are_kept_with_their_types() -> None:
    built = RunSettings.from_params(
        {"batch_size": "50", "dry_run": 1, "max_reject_ratio": "0.5", "sub_user_id": "sub"},
        "run-1",
        "task",
        WINDOW,
    )
    assert (built.batch_size, built.dry_run, built.max_reject_ratio, built.sub_user_id) == (
        50,
        True,
        0.5,
        "sub",
    )


def test_a_dict_round_trip_is_lossless() -> None:
    built = RunSettings.from_params({"ignore_crm": True}, "run-1", "task", WINDOW)
    assert RunSettings.from_dict(built.to_dict()) == built
