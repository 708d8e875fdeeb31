"""The page's SVG pictures, read back as XML: their shapes carry the figures they were given,
sized in proportion, and their words write those figures out."""

from __future__ import annotations

import itertools
import xml.etree.ElementTree as ET

import airflow  # noqa: F401 - puts the plugins folder on sys.path, as in every Airflow process
import pytest
from lead_loads import charts

SVG = "{http://www.w3.org/2000/svg}"

FIGURES = {
    "extracted": 1000,
    "invalid": 15,
    "duplicates_in_run": 3,
    "already_loaded": 20,
    "in_flight": 0,
    "staged": 962,
    "carried_over": 40,
    "imported": 639,
    "not_imported": 12,
    "awaiting_callback": 300,
    "not_sent": 51,
}
REASONS = {"not_mobile": 12, "invalid_field": 3}


def parse(svg: str) -> ET.Element:
    """The picture as XML (it must be well formed), with the attributes every chart has."""
    root = ET.fromstring(svg)  # noqa: S314 - our own output, read back
    assert root.tag == f"{SVG}svg"
    assert root.get("role") == "img"
    assert root.get("aria-label")
    assert root.find(f"{SVG}title").text == root.get("aria-label")
    return root


def texts(root: ET.Element) -> list[str]:
    return ["".join(node.itertext()) for node in root.iter(f"{SVG}text")]


def shapes(root: ET.Element, tag: str = "rect", **data: str) -> list[ET.Element]:
    """The shapes whose data- attributes are ``data`` (legend swatches carry none)."""
    return [
        node
        for node in root.iter(f"{SVG}{tag}")
        if node.get("data-value") is not None
        and all(node.get(f"data-{key.replace('_', '-')}") == value for key, value in data.items())
    ]


def width(node: ET.Element) -> float:
    return float(node.get("width"))


# --- funnel ------------------------------------------------------------------------------------


def test_the_funnel_draws_each_figure_in_proportion_to_the_extracted_rows():
    root = parse(charts.funnel(FIGURES, REASONS))
    (extracted,) = shapes(root, figure="extracted")
    assert extracted.get("data-value") == "1000"
    for row, keys in (
        ("split", charts.EXTRACTED_PARTS),
        ("owned", charts.OWNED_PARTS),
        ("sent", charts.SENT_PARTS),
    ):
        for key in keys:
            drawn = shapes(root, row=row, figure=key)
            if FIGURES[key] == 0:
                assert drawn == []  # no bar for a zero...
                continue
            (bar,) = drawn
            assert int(bar.get("data-value")) == FIGURES[key]
            assert bar.get("class").split()[0] == f"fig-{key}"
            expected = width(extracted) * FIGURES[key] / FIGURES["extracted"]
            assert abs(width(bar) - expected) <= 1, key
    words = texts(root)
    assert "in flight in another run 0" in words  # ...but still its words and number
    for key, value in FIGURES.items():
        assert f"{charts.FIGURE_WORDS[key]} {value}" in words
    assert "(submitted 951)" in words
    label = root.get("aria-label")
    assert "imported 639" in label and "not_mobile 12" in label


def test_the_funnel_splits_invalid_by_reason_and_starts_the_sent_rows_under_staged():
    root = parse(charts.funnel(FIGURES, REASONS))
    reasons = shapes(root, row="reasons")
    assert {(r.get("data-reason"), int(r.get("data-value"))) for r in reasons} == {
        ("not_mobile", 12),
        ("invalid_field", 3),
    }
    assert all("fig-invalid" in r.get("class").split() for r in reasons)
    assert abs(sum(map(width, reasons)) - width(shapes(root, row="split", figure="invalid")[0])) < 1
    assert {"not_mobile 12", "invalid_field 3"} <= set(texts(root))
    staged_x = float(shapes(root, row="split", figure="staged")[0].get("x"))
    assert float(shapes(root, row="owned", figure="staged")[0].get("x")) == staged_x
    assert float(shapes(root, row="sent", figure="imported")[0].get("x")) == staged_x


def test_an_older_run_missing_figures_counts_them_as_zero():
    root = parse(charts.funnel({"extracted": 10, "staged": 10, "imported": None}, {}))
    assert shapes(root, row="reasons") == []
    assert [bar.get("data-figure") for bar in shapes(root, row="split")] == ["staged"]
    assert {"imported 0", "carried over 0", "duplicates 0", "not sent 0"} <= set(texts(root))


@pytest.mark.parametrize("figures", [{}, {"extracted": None, "staged": 3}])
def test_a_run_without_figures_says_so(figures):
    root = parse(charts.funnel(figures, {}))
    assert texts(root) == ["No figures yet"]
    assert root.get("aria-label") == "No figures yet"


def test_the_figures_have_the_pages_words():
    assert charts.FIGURE_WORDS["duplicates_in_run"] == "duplicates"
    assert charts.FIGURE_WORDS["in_flight"] == "in flight in another run"
    assert charts.FIGURE_WORDS["awaiting_callback"] == "awaiting callback"


# --- history -----------------------------------------------------------------------------------


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


# --- batch strip -------------------------------------------------------------------------------


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


# --- style -------------------------------------------------------------------------------------


def test_the_palette_covers_every_class_in_both_schemes():
    light, dark = charts.CHART_CSS.split("@media (prefers-color-scheme: dark)")
    svg = charts.funnel(FIGURES, REASONS) + charts.batch_strip(
        [*charts.BATCH_STATUSES, charts.MAYBE_ACCEPTED, "odd"]
    )
    used = {
        cls
        for node in ET.fromstring(f"<all>{svg}</all>").iter()  # noqa: S314
        for cls in (node.get("class") or "").split()
        if cls.startswith(("fig-", "st-"))
    }
    assert {"fig-imported", "st-failed", "st-maybe_accepted", "st-other"} <= used
    for cls in used | {"fig-rejected"}:
        assert f".{cls} {{" in light and f".{cls} {{" in dark, cls


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
