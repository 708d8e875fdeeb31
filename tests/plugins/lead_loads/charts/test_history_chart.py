"""The loads' history, read back as XML: oldest run on the left, each run's figures on its
column and its dot, the ratios over the line marked, and hundreds of runs still readable."""

from __future__ import annotations

import airflow  # noqa: F401 - puts the plugins folder on sys.path, as in every Airflow process
import pytest
from lead_loads import charts

from tests.plugins.lead_loads.charts.chart_samples import (
    SVG,
    parse,
    shapes,
    texts,
    width,
)


def load(run_id: str, imported: int, rejected: int, ratio: float | None) -> dict:
    return {"run_id": run_id, "imported": imported, "rejected": rejected, "reject_ratio": ratio}


def test_the_history_puts_the_oldest_run_on_the_left_and_marks_ratios_over_the_line():
    newest_first = [load("r3", 500, 10, 0.02), load("r2", 300, 100, 0.25), load("r1", 80, 5, None)]
    root = parse(charts.history(newest_first, 0.2))
    runs = [g for g in root.iter(f"{SVG}g") if g.get("class") == "run"]
    assert [g.get("data-run") for g in runs] == ["r1", "r2", "r3"]
    for g, (_run, imported, rejected, ratio) in zip(
        runs, [("r1", 80, 5, None), ("r2", 300, 100, 0.25), ("r3", 500, 10, 0.02)], strict=True
    ):
        assert int(shapes(g, figure="imported")[0].get("data-value")) == imported
        assert int(shapes(g, figure="rejected")[0].get("data-value")) == rejected
        dots = shapes(g, "circle", figure="reject_ratio")
        assert [float(d.get("data-value")) for d in dots] == ([] if ratio is None else [ratio])
    xs = [float(shapes(g, figure="imported")[0].get("x")) for g in runs]
    assert xs == sorted(xs)
    over = [
        g.get("data-run")
        for g in runs
        for d in g.iter(f"{SVG}circle")
        if "over" in d.get("class").split()
    ]
    assert over == ["r2"]
    (line,) = shapes(root, "line", figure="max_reject_ratio")
    assert float(line.get("data-value")) == 0.2
    # The over dot sits above the line, the other below it (SVG's y grows downwards).
    (high,) = shapes(runs[1], "circle")
    (low,) = shapes(runs[2], "circle")
    assert float(high.get("cy")) < float(line.get("y1")) < float(low.get("cy"))
    # Stacked: rejected on top of imported, heights in proportion.
    imported_bar, rejected_bar = shapes(runs[1], figure="imported")[0], shapes(runs[1])[1]
    assert float(rejected_bar.get("y")) + float(rejected_bar.get("height")) == pytest.approx(
        float(imported_bar.get("y")), abs=0.1
    )
    assert float(imported_bar.get("height")) / float(rejected_bar.get("height")) == pytest.approx(
        3, rel=0.02
    )
    words = " ".join(texts(root))
    assert "3 runs, oldest on the left; 1 over the max reject ratio 20%" in words
    assert "Latest run r3: imported 500, rejected 10, reject ratio 2%" in words
    assert "max reject ratio 20%" in words


def test_without_a_threshold_no_dot_is_over():
    root = parse(charts.history([load("a", 1, 9, 0.9), load("b", 5, 5, 0.5)], None))
    assert shapes(root, "line") == []
    assert all(d.get("class") == "ratio" for d in root.iter(f"{SVG}circle"))


def test_hundreds_of_runs_stay_thin_and_name_only_the_first_and_last():
    loads = [load(f"run_{i}", i * 3, i % 7, (i % 7) / 30) for i in range(400, 0, -1)]
    svg = charts.history(loads, 0.15)
    root = parse(svg)
    bars = shapes(root, figure="imported")
    assert len(bars) == 400
    assert all(0 < width(bar) < 3 for bar in bars)
    names = [t for t in texts(root) if t.startswith("run_")]
    assert names == ["run_1", "run_400"]
    assert len(svg) < 300_000


def test_run_ids_stay_text():
    hostile = '<script>alert("x")</script> & co'
    svg = charts.history([load(hostile, 3, 1, 0.25)], 0.2)
    root = parse(svg)
    assert "<script>" not in svg
    assert not [node for node in root.iter() if node.tag.endswith("script")]
    assert hostile in texts(root)[1]  # the latest run's line
    assert [g.get("data-run") for g in root.iter(f"{SVG}g") if g.get("class") == "run"] == [hostile]
    assert hostile in root.get("aria-label")


def test_no_loads_yet():
    root = parse(charts.history([], 0.2))
    assert texts(root) == ["No loads yet"]


def test_a_run_with_nothing_imported_still_carries_its_figures():
    loads = [
        {"run_id": "zero", "imported": 0, "rejected": 7, "reject_ratio": 0.5},
        {"run_id": "full", "imported": 10, "rejected": 0, "reject_ratio": 0.0},
    ]
    root = parse(charts.history(loads, 0.2))
    groups = {g.get("data-run"): g for g in root.iter(f"{SVG}g") if g.get("data-run")}
    assert (groups["zero"].get("data-imported"), groups["zero"].get("data-rejected")) == ("0", "7")
    assert (groups["full"].get("data-imported"), groups["full"].get("data-rejected")) == ("10", "0")
    assert not [r for r in groups["zero"].iter(f"{SVG}rect") if r.get("data-figure") == "imported"]
