"""The pieces every chart is drawn with: numbers written short, values escaped, legends that
wrap, and a picture that reads as an image with its label."""

from __future__ import annotations

import airflow  # noqa: F401 - puts the plugins folder on sys.path, as in every Airflow process
import pytest
from lead_loads.charts import svg

from tests.plugins.lead_loads.charts.chart_samples import SVG, parse, texts


@pytest.mark.parametrize(
    ("value", "written"),
    [(960, "960"), (1.0, "1"), (7.5, "7.5"), (12.34, "12.3"), (0.04, "0"), (-0.04, "0")],
)
def test_a_coordinate_has_at_most_one_decimal_and_no_trailing_zero(value, written):
    assert svg.num(value) == written


@pytest.mark.parametrize(
    ("ratio", "written"), [(0.2, "20%"), (0.0215, "2.15%"), (1 / 3, "33.33%"), (0, "0%")]
)
def test_a_ratio_is_written_as_a_percentage(ratio, written):
    assert svg.pct(ratio) == written


@pytest.mark.parametrize(("value", "count"), [(None, 0), ("7", 7), ("seven", 0), (3.9, 3)])
def test_a_figure_that_cannot_be_read_counts_as_zero(value, count):
    assert svg.count_of(value) == count


def test_data_attributes_are_escaped_and_none_is_left_out():
    assert svg.data(figure='a"<b>', value=None) == 'data-figure="a&quot;&lt;b&gt;"'
    assert svg.data(max_reject_ratio=0.2) == 'data-max-reject-ratio="0.2"'


def test_a_legend_wraps_before_the_right_edge_and_a_dash_class_has_no_swatch():
    items = [("fig-imported", 'data-figure="imported"', "x" * 40)] * 3
    parts, height = svg.legend(items, 0, 0, 500)
    assert len(parts) == 3 and height == 3 * svg.LINE_PX  # one entry per line
    (note,), one_line = svg.legend([("-note", "", "a note")], 0, 0, 500)
    assert "<rect" not in note and one_line == svg.LINE_PX
    assert 'fill="#007600"' in parts[0]  # the swatch's light colour


def test_a_picture_is_an_image_labelled_with_its_words_escaped():
    root = parse(svg.document("kind", 100, 20, 'a <b> & "c"', [svg.text(1, 2, "<x>")]))
    assert root.get("class") == "lead-chart kind"
    assert root.get("aria-label") == 'a <b> & "c"'
    assert texts(root) == ["<x>"]
    assert texts(parse(svg.empty("kind", "Nothing yet"))) == ["Nothing yet"]
    (rect,) = parse(
        svg.document("k", 10, 10, "r", [svg.rect("st-failed", 0, 0, 1, 1, "", tip="a & b")])
    ).iter(f"{SVG}rect")
    assert rect.find(f"{SVG}title").text == "a & b"
