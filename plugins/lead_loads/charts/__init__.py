"""Server-rendered SVG pictures of the Lead loads page: a run's funnel, the loads' history and
a run's batch strip.

Pure functions from plain values to an SVG string, safe to insert as is (``{{ svg|safe }}``):
every text is escaped. Text is drawn in ``currentColor`` so it follows the page; fills come
from CSS classes named after the figure (``fig-imported``) or the batch status
(``st-failed``), with a presentation ``fill`` as fallback, and ``CHART_CSS`` (for the page's
``<style>``) holds the palette for light and dark schemes. Every chart has ``role="img"``, an
``aria-label`` and a ``<title>``, and writes its figures out in words and numbers; every bar,
cell and dot carries ``data-`` attributes with its key and value.

The page and its templates use these names from here; the package's modules:

- ``funnel_chart``, ``history_chart``, ``batch_strip_chart``: one chart each;
- ``svg``: the pieces they are drawn with (numbers and words, shapes, text, legends);
- ``palette``: the colours, ``CHART_CSS``.
"""

from lead_loads.charts.batch_strip_chart import (
    ALARM_MIN_PX,
    ALARM_STATUSES,
    BATCH_STATUSES,
    MAYBE_ACCEPTED,
    STRIP_PX,
    batch_strip,
)
from lead_loads.charts.funnel_chart import (
    EXTRACTED_PARTS,
    FIGURE_WORDS,
    OWNED_PARTS,
    SENT_PARTS,
    funnel,
)
from lead_loads.charts.history_chart import history
from lead_loads.charts.palette import CHART_CSS

__all__ = [
    "ALARM_MIN_PX",
    "ALARM_STATUSES",
    "BATCH_STATUSES",
    "CHART_CSS",
    "EXTRACTED_PARTS",
    "FIGURE_WORDS",
    "MAYBE_ACCEPTED",
    "OWNED_PARTS",
    "SENT_PARTS",
    "STRIP_PX",
    "batch_strip",
    "funnel",
    "history",
]
