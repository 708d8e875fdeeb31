"""The charts' colours: every class a chart draws has its colour in both schemes, and a shape
or a status without one of its own still gets one."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import airflow  # noqa: F401 - puts the plugins folder on sys.path, as in every Airflow process
import pytest
from lead_loads import charts
from lead_loads.charts.palette import fill, status_class

from tests.plugins.lead_loads.charts.chart_samples import (
    FIGURES,
    REASONS,
)


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


def test_a_shape_falls_back_to_its_first_class_light_colour():
    assert fill("fig-imported seg") == "#007600"
    assert fill("no-such-class") == fill("st-other")


@pytest.mark.parametrize(
    ("status", "cls"),
    [("failed", "st-failed"), ("maybe_accepted", "st-maybe_accepted"), ('odd"<s>', "st-other")],
)
def test_a_status_the_palette_has_no_colour_for_is_drawn_as_other(status, cls):
    assert status_class(status) == cls
