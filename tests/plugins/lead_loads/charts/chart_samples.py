"""What the chart tests share: a run's figures, and the pictures read back as XML (each must
be well formed and carry the attributes every chart has)."""

from __future__ import annotations

import xml.etree.ElementTree as ET

SVG = "{http://www.w3.org/2000/svg}"

FIGURES = {
    "extracted": 1000,
    "invalid": 15,
    "duplicates_in_run": 3,
    "already_loaded": 20,
    "in_flight": 0,
    "suppressed": 4,
    "staged": 958,
    "carried_over": 40,
    "imported": 639,
    "not_imported": 12,
    "awaiting_callback": 300,
    "not_sent": 45,
    "suppressed_before_posting": 2,
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
