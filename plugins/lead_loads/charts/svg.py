"""The SVG pieces every chart of the page is drawn with: numbers and words written out,
shapes, text, legends, and the picture around them.

Every text and attribute value is escaped here, so a chart is safe to insert as is
(``{{ svg|safe }}``). Text is drawn in ``currentColor`` so it follows the page; a shape's
``fill`` is its light colour (``palette``). Every picture has ``role="img"``, an
``aria-label`` and a ``<title>``.
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Sequence

from lead_loads.charts.palette import fill

FONT_PX = 12
LINE_PX = 18
CHAR_PX = FONT_PX * 0.6  # a generous average glyph width, to lay out legends without a font
SWATCH_PX = 10


def esc(value: object) -> str:
    """Text or an attribute's value, escaped for SVG."""
    return html.escape(str(value), quote=True)


def num(value: float) -> str:
    """A coordinate: at most one decimal, no trailing zeros."""
    text = f"{value:.1f}".rstrip("0").rstrip(".")
    return "0" if text in ("", "-0") else text


def pct(ratio: float) -> str:
    """A ratio as a percentage: at most two decimals, no trailing zeros."""
    text = f"{ratio * 100:.2f}".rstrip("0").rstrip(".")
    return f"{text}%"


def count_of(value: object) -> int:
    """A figure as a whole number; a missing or unreadable one is 0."""
    try:
        return int(value or 0)  # type: ignore[call-overload]
    except (TypeError, ValueError):
        return 0


def rect(
    cls: str, x: float, y: float, w: float, h: float, data: str, extra: str = "", tip: str = ""
) -> str:
    start = (
        f'<rect class="{cls}{extra}" fill="{fill(cls)}" x="{num(x)}" y="{num(y)}" '
        f'width="{num(w)}" height="{num(h)}" {data}'
    )
    return f"{start}><title>{esc(tip)}</title></rect>" if tip else f"{start}/>"


def text(x: float, y: float, words: str, cls: str = "label", anchor: str = "start") -> str:
    anchor_attr = "" if anchor == "start" else f' text-anchor="{anchor}"'
    return f'<text class="{cls}" x="{num(x)}" y="{num(y)}"{anchor_attr}>{esc(words)}</text>'


def document(kind: str, width: float, height: float, label: str, body: Iterable[str]) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" class="lead-chart {kind}" role="img" '
        f'aria-label="{esc(label)}" width="{num(width)}" height="{num(height)}" '
        f'viewBox="0 0 {num(width)} {num(height)}" font-family="system-ui, sans-serif" '
        f'font-size="{FONT_PX}" fill="currentColor">'
        f"<title>{esc(label)}</title>{''.join(body)}</svg>"
    )


def empty(kind: str, message: str, width: int = 960) -> str:
    return document(kind, width, 28, message, [text(4, 18, message, "label muted")])


def data(**attrs: object) -> str:
    """``data-`` attributes, escaped; None values left out."""
    return " ".join(
        f'data-{name.replace("_", "-")}="{esc(value)}"'
        for name, value in attrs.items()
        if value is not None
    )


def legend(
    items: Sequence[tuple[str, str, str]], x0: float, y0: float, right: float
) -> tuple[list[str], float]:
    """Swatch-and-words entries from ``y0`` (a line's top), wrapped before ``right``.

    ``items``: (css class, data attributes, words). Returns the markup and the height used.
    The entry's group (``<g class="legend-item">``) carries the data; a class starting with
    ``-`` is drawn without swatch (words only).
    """
    parts: list[str] = []
    x, y = x0, y0
    for cls, data, words in items:
        swatch = not cls.startswith("-")
        width = (SWATCH_PX + 4 if swatch else 0) + len(words) * CHAR_PX + 14
        if x > x0 and x + width > right:
            x, y = x0, y + LINE_PX
        inner = text(x + (SWATCH_PX + 4 if swatch else 0), y + 12, words)
        if swatch:
            inner = (
                f'<rect class="{cls}" fill="{fill(cls)}" x="{num(x)}" y="{num(y + 3)}" '
                f'width="{SWATCH_PX}" height="{SWATCH_PX}"/>{inner}'
            )
        parts.append(f'<g class="legend-item" {data}>{inner}</g>')
        x += width
    return parts, (y - y0) + LINE_PX
