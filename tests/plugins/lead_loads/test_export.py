"""A load's rejects as CSV, on plain values: the columns, the masked phones, the figure each
reason counts in, the guard against formulas and the file's name."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta, timezone
from types import SimpleNamespace

import airflow  # noqa: F401 - puts the plugins folder on sys.path, as in every Airflow process
import pytest
from lead_loads import export

from lead_load.core.reject_reasons import RejectKind, RejectReason


def reject(lead_id="a", raw_phone="139****0001", reason="not_mobile", rejected_at=None):
    stamp = rejected_at or datetime(2026, 11, 24, 1, 2, 3, tzinfo=UTC)
    return SimpleNamespace(lead_id=lead_id, raw_phone=raw_phone, reason=reason, rejected_at=stamp)


def parsed(pages) -> list[list[str]]:
    return list(csv.reader(io.StringIO("".join(export.lines(pages)))))


def test_the_header_comes_first_then_one_line_per_reject_page_by_page():
    pages = [
        [reject("a"), reject("b")],
        [reject("c", reason=str(RejectReason.duplicate_in_run("a")))],
    ]
    lines = list(export.lines(iter(pages)))
    assert len(lines) == 3  # the header, then one text per page
    assert lines[0] == "lead_id,raw_phone,reason,counted_in,rejected_at\r\n"
    rows = parsed(pages)
    assert rows[0] == list(export.HEADER)
    assert rows[1] == ["a", "139****0001", "not_mobile", "invalid", "2026-11-24T01:02:03+00:00"]
    assert rows[3][2:4] == ["duplicate_in_run (kept lead a)", "duplicates"]
    assert parsed([]) == [list(export.HEADER)]


@pytest.mark.parametrize(
    ("reason", "figure"),
    [
        *(
            (str(RejectReason(kind)), "invalid")
            for kind in RejectKind
            if kind
            not in (
                RejectKind.DUPLICATE_IN_RUN,
                RejectKind.PHONE_ALREADY_LOADED,
                RejectKind.SUPPRESSED,
            )
        ),
        (str(RejectReason.invalid_field("name has a control character")), "invalid"),
        (str(RejectReason.duplicate_in_run(7)), "duplicates"),
        (str(RejectReason.phone_already_loaded(7)), "already loaded"),
        (str(RejectReason.suppressed()), "suppressed"),
        ("", "invalid"),
    ],
)
def test_each_reason_says_the_summary_figure_it_counts_in(reason, figure):
    assert export.counted_in(reason) == figure


@pytest.mark.parametrize(
    ("cell", "written"),
    [
        ('=HYPERLINK("http://x")', '\'=HYPERLINK("http://x")'),
        ("+1", "'+1"),
        ("-2", "'-2"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\tx", "'\tx"),
        ("\rx", "'\rx"),
        ("a=b", "a=b"),
        ("139****0001", "139****0001"),
        ("", ""),
        (None, ""),
    ],
)
def test_a_cell_a_spreadsheet_would_run_is_written_as_text(cell, written):
    assert export.guarded(cell) == written


def test_every_cell_is_guarded_lead_ids_and_reasons_too():
    (row,) = parsed([[reject("=1+1", raw_phone="@x", reason="-x")]])[1:]
    assert row[:3] == ["'=1+1", "'@x", "'-x"]


def test_rejected_at_is_iso_8601_in_utc_whatever_zone_it_comes_in():
    shanghai = timezone(timedelta(hours=8))
    for moment in (
        datetime(2026, 11, 24, 9, 0, tzinfo=shanghai),
        datetime(2026, 11, 24, 1, 0),  # SQLite's: no zone, written in UTC
    ):
        (row,) = parsed([[reject(rejected_at=moment)]])[1:]
        assert row[4] == "2026-11-24T01:00:00+00:00"


@pytest.mark.parametrize(
    ("run_id", "name"),
    [
        ("run-1", "rejects-run-1.csv"),
        (
            "manual__2026-11-24T00:00:00+00:00",
            "rejects-manual__2026-11-24T00_00_00_00_00.csv",
        ),
        ('a"b\r\nc/../d', "rejects-a_b_c_.._d.csv"),
        ("运行", "rejects-run.csv"),
    ],
)
def test_the_file_is_named_after_the_run_in_characters_safe_anywhere(run_id, name):
    assert export.filename(run_id) == name
    assert export.content_disposition(run_id) == f'attachment; filename="{name}"'
