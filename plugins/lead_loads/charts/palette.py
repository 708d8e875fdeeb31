"""The charts' colours: a CSS class per figure (``fig-imported``) and per batch status
(``st-failed``), for light and dark schemes.

``CHART_CSS`` (for the page's ``<style>``) holds the palette of both schemes; every shape
also carries its light colour as a presentation ``fill`` (``fill``), so a page without the
style still draws in colour.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

# Light-scheme colours, also written as each shape's ``fill`` for a page without CHART_CSS.
# Those that say a state are Airflow 3's (its UI's Chakra palette): success green, failed
# red, running cyan; the greys are its grays; the dark scheme uses lighter shades of each.
_LIGHT = {
    "fig-extracted": "#3e5873",
    "fig-invalid": "#e7000b",
    "fig-duplicates_in_run": "#db2777",
    "fig-already_loaded": "#a3afbe",
    "fig-in_flight": "#2563eb",
    "fig-suppressed": "#57534e",
    "fig-staged": "#0891b2",
    "fig-carried_over": "#9333ea",
    "fig-imported": "#007600",
    "fig-not_imported": "#ea580c",
    "fig-awaiting_callback": "#d97706",
    "fig-not_sent": "#778ba2",
    "fig-suppressed_before_posting": "#44403c",
    "fig-rejected": "#f87171",
    "st-planned": "#a3afbe",
    "st-sending": "#0891b2",
    "st-submitted": "#d97706",
    "st-processed": "#007600",
    "st-failed": "#e7000b",
    "st-carried_over": "#9333ea",
    "st-maybe_accepted": "#ea580c",
    "st-other": "#78716c",
}
_DARK = {
    "fig-extracted": "#a3afbe",
    "fig-invalid": "#ff6467",
    "fig-duplicates_in_run": "#f472b6",
    "fig-already_loaded": "#778ba2",
    "fig-in_flight": "#60a5fa",
    "fig-suppressed": "#a8a29e",
    "fig-staged": "#22d3ee",
    "fig-carried_over": "#c084fc",
    "fig-imported": "#2ecd74",
    "fig-not_imported": "#fb923c",
    "fig-awaiting_callback": "#fbbf24",
    "fig-not_sent": "#a3afbe",
    "fig-suppressed_before_posting": "#d6d3d1",
    "fig-rejected": "#fca5a5",
    "st-planned": "#778ba2",
    "st-sending": "#22d3ee",
    "st-submitted": "#fbbf24",
    "st-processed": "#2ecd74",
    "st-failed": "#ff6467",
    "st-carried_over": "#c084fc",
    "st-maybe_accepted": "#fb923c",
    "st-other": "#a8a29e",
}


def _palette(colours: Mapping[str, str]) -> str:
    return "\n".join(
        f".lead-chart .{name} {{ fill: {colour}; }}" for name, colour in colours.items()
    )


CHART_CSS = f"""\
.lead-chart {{ max-width: 100%; height: auto; overflow: visible; }}
.lead-chart text {{ fill: currentColor; }}
.lead-chart .muted {{ fill-opacity: 0.7; }}
.lead-chart .axis, .lead-chart .grid {{ stroke: currentColor; }}
.lead-chart .grid {{ stroke-opacity: 0.15; }}
.lead-chart .seg {{ stroke: #ffffff; stroke-width: 1; }}
.lead-chart .threshold {{ stroke: #e7000b; stroke-dasharray: 6 3; stroke-width: 1.5; }}
.lead-chart .ratio {{ fill: currentColor; stroke: #ffffff; stroke-width: 1; }}
.lead-chart .ratio.over {{ fill: #e7000b; }}
{_palette(_LIGHT)}
@media (prefers-color-scheme: dark) {{
.lead-chart .seg, .lead-chart .ratio {{ stroke: #09090b; }}
.lead-chart .threshold {{ stroke: #ffa2a2; }}
.lead-chart .ratio.over {{ fill: #ffa2a2; }}
{_palette(_DARK)}
}}
"""


def fill(cls: str) -> str:
    """The light colour of a shape's first class (the fallback of a page without CHART_CSS)."""
    return _LIGHT.get(cls.split(" ")[0], _LIGHT["st-other"])


def status_class(status: str) -> str:
    """The class of a batch status: ``st-<status>``, or ``st-other`` for a status the
    palette has no colour for."""
    name = re.sub(r"[^a-z0-9_-]", "_", status.lower())
    return f"st-{name}" if f"st-{name}" in _LIGHT else "st-other"
