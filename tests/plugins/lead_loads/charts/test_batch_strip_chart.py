"""A run's batch strip, read back as XML: one cell per batch in plan order while they fit,
buckets beyond that, bounded whatever the mix, and a failed batch always visible."""

from __future__ import annotations

import itertools

import airflow  # noqa: F401 - puts the plugins folder on sys.path, as in every Airflow process
import pytest
from lead_loads import charts

from tests.plugins.lead_loads.charts.chart_samples import (
    SVG,
    parse,
    shapes,
    texts,
)


def test_few_batches_get_one_cell_each_in_plan_order():
    statuses = ["processed", "processed", "failed", "submitted", "planned", "carried_over"]
    root = parse(charts.batch_strip(statuses))
    cells = shapes(root)
    assert [(c.get("data-index"), c.get("data-status")) for c in cells] == [
        (str(i), s) for i, s in enumerate(statuses)
    ]
    assert [c.get("class").split()[0] for c in cells] == [f"st-{s}" for s in statuses]
    assert {"processed 2", "failed 1", "sending 0", "carried_over 1"} <= set(texts(root))
    xs = [float(c.get("x")) for c in cells]
    assert xs == sorted(xs)


def test_five_thousand_batches_fit_in_buckets_and_one_failure_still_shows():
    statuses = ["processed"] * 5000
    statuses[2345] = "failed"
    statuses[4000:4100] = ["planned"] * 100
    svg = charts.batch_strip(statuses)
    assert len(svg) < 200_000
    root = parse(svg)
    buckets = [g for g in root.iter(f"{SVG}g") if g.get("class") == "bucket"]
    assert 0 < len(buckets) < 400
    assert sum(int(g.get("data-batches")) for g in buckets) == 5000
    (failed,) = shapes(root, status="failed")
    assert failed.get("data-value") == "1"
    assert float(failed.get("height")) >= charts.ALARM_MIN_PX
    (holder,) = [g for g in buckets if failed in list(g)]
    assert int(holder.get("data-first")) <= 2345 <= int(holder.get("data-last"))
    for g in buckets:  # each bucket is a full column of its shares
        rects = list(g.iter(f"{SVG}rect"))
        assert sum(float(r.get("height")) for r in rects) == pytest.approx(charts.STRIP_PX, abs=0.3)
        assert sum(int(r.get("data-value")) for r in rects) == int(g.get("data-batches"))
    assert {"processed 4899", "failed 1", "planned 100"} <= set(texts(root))


def test_the_strip_stays_bounded_whatever_the_mix():
    mix = itertools.cycle([*charts.BATCH_STATUSES, charts.MAYBE_ACCEPTED])
    svg = charts.batch_strip(list(itertools.islice(mix, 5000)))
    assert len(svg) < 200_000
    root = parse(svg)
    assert len([g for g in root.iter(f"{SVG}g") if g.get("class") == "bucket"]) < 400
    assert f"{charts.MAYBE_ACCEPTED} 714" in texts(root)


def test_an_unknown_status_is_drawn_under_its_own_name():
    root = parse(charts.batch_strip(["processed", 'odd"<status>']))
    (odd,) = shapes(root, status='odd"<status>')
    assert odd.get("class").split()[0] == "st-other"
    assert 'odd"<status> 1' in texts(root)


def test_the_strips_label_counts_its_batches_in_words_that_agree():
    assert "(one cell per batch, 1 batch)" in parse(charts.batch_strip(["processed"])).get(
        "aria-label"
    )
    two = parse(charts.batch_strip(["processed", "failed"])).get("aria-label")
    assert "(one cell per batch, 2 batches)" in two


def test_no_batches_yet():
    assert texts(parse(charts.batch_strip([]))) == ["No batches yet"]
