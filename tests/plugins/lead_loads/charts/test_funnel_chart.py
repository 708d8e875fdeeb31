"""A run's funnel, read back as XML: its bars carry the figures they were given, sized in
proportion to the extracted rows, and its words write those figures out."""

from __future__ import annotations

import airflow  # noqa: F401 - puts the plugins folder on sys.path, as in every Airflow process
import pytest
from lead_loads import charts

from tests.plugins.lead_loads.charts.chart_samples import (
    FIGURES,
    REASONS,
    parse,
    shapes,
    texts,
    width,
)


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
