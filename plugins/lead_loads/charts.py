"""Server-rendered SVG pictures of the Lead loads page: a run's funnel, the loads' history and
a run's batch strip.

Pure functions from plain values to an SVG string, safe to insert as is (``{{ svg|safe }}``):
every text is escaped here. Text is drawn in ``currentColor`` so it follows the page; fills come
from CSS classes named after the figure (``fig-imported``) or the batch status
(``st-failed``), with a presentation ``fill`` as fallback, and ``CHART_CSS`` (for the page's
``<style>``) holds the palette for light and dark schemes. Every chart has ``role="img"``, an
``aria-label`` and a ``<title>``, and writes its figures out in words and numbers; every bar,
cell and dot carries ``data-`` attributes with its key and value.
"""

from __future__ import annotations

import html
import math
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence

from lead_load.core import run_summary
from lead_load.core.ledger_rules import BatchStatus

# The words of the figures: the report's, the run note's and every page's.
FIGURE_WORDS = run_summary.FIGURE_WORDS

# Where the extracted rows went, and what became of the rows the run owned.
EXTRACTED_PARTS = ("invalid", "duplicates_in_run", "already_loaded", "in_flight", "staged")
OWNED_PARTS = ("staged", "carried_over")
SENT_PARTS = ("imported", "not_imported", "awaiting_callback", "not_sent")

# A presentation status beside ``BatchStatus``: a ``submitted`` batch with no ``unique_id``,
# whose post may or may not have been taken. The caller decides when to pass it.
MAYBE_ACCEPTED = "maybe_accepted"
BATCH_STATUSES: tuple[str, ...] = tuple(status.value for status in BatchStatus)
# Statuses a reader must never miss, however many batches there are: drawn first (on top) in
# a bucket, with at least ALARM_MIN_PX of its height.
ALARM_STATUSES: tuple[str, ...] = (BatchStatus.FAILED.value, MAYBE_ACCEPTED)

# Light-scheme colours, also written as each shape's ``fill`` for a page without CHART_CSS.
# Those that say a state are Airflow 3's (its UI's Chakra palette): success green, failed
# red, running cyan; the greys are its grays; the dark scheme uses lighter shades of each.
_LIGHT = {
    "fig-extracted": "#3e5873",
    "fig-invalid": "#e7000b",
    "fig-duplicates_in_run": "#db2777",
    "fig-already_loaded": "#a3afbe",
    "fig-in_flight": "#2563eb",
    "fig-staged": "#0891b2",
    "fig-carried_over": "#9333ea",
    "fig-imported": "#007600",
    "fig-not_imported": "#ea580c",
    "fig-awaiting_callback": "#d97706",
    "fig-not_sent": "#778ba2",
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
    "fig-staged": "#22d3ee",
    "fig-carried_over": "#c084fc",
    "fig-imported": "#2ecd74",
    "fig-not_imported": "#fb923c",
    "fig-awaiting_callback": "#fbbf24",
    "fig-not_sent": "#a3afbe",
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

FONT_PX = 12
LINE_PX = 18
CHAR_PX = FONT_PX * 0.6  # a generous average glyph width, to lay out legends without a font
SWATCH_PX = 10


def _esc(value: object) -> str:
    return html.escape(str(value), quote=True)


def _n(value: float) -> str:
    """A coordinate: at most one decimal, no trailing zeros."""
    text = f"{value:.1f}".rstrip("0").rstrip(".")
    return "0" if text in ("", "-0") else text


def _pct(ratio: float) -> str:
    text = f"{ratio * 100:.2f}".rstrip("0").rstrip(".")
    return f"{text}%"


def _count(value: object) -> int:
    try:
        return int(value or 0)  # type: ignore[call-overload]
    except (TypeError, ValueError):
        return 0


def _css_name(key: str) -> str:
    return re.sub(r"[^a-z0-9_-]", "_", key.lower())


def _fill(cls: str) -> str:
    """The light colour of a shape's first class (the fallback of a page without CHART_CSS)."""
    return _LIGHT.get(cls.split(" ")[0], _LIGHT["st-other"])


def _rect(
    cls: str, x: float, y: float, w: float, h: float, data: str, extra: str = "", tip: str = ""
) -> str:
    start = (
        f'<rect class="{cls}{extra}" fill="{_fill(cls)}" x="{_n(x)}" y="{_n(y)}" '
        f'width="{_n(w)}" height="{_n(h)}" {data}'
    )
    return f"{start}><title>{_esc(tip)}</title></rect>" if tip else f"{start}/>"


def _text(x: float, y: float, text: str, cls: str = "label", anchor: str = "start") -> str:
    anchor_attr = "" if anchor == "start" else f' text-anchor="{anchor}"'
    return f'<text class="{cls}" x="{_n(x)}" y="{_n(y)}"{anchor_attr}>{_esc(text)}</text>'


def _svg(kind: str, width: float, height: float, label: str, body: Iterable[str]) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" class="lead-chart {kind}" role="img" '
        f'aria-label="{_esc(label)}" width="{_n(width)}" height="{_n(height)}" '
        f'viewBox="0 0 {_n(width)} {_n(height)}" font-family="system-ui, sans-serif" '
        f'font-size="{FONT_PX}" fill="currentColor">'
        f"<title>{_esc(label)}</title>{''.join(body)}</svg>"
    )


def _empty(kind: str, message: str, width: int = 960) -> str:
    return _svg(kind, width, 28, message, [_text(4, 18, message, "label muted")])


def _data(**attrs: object) -> str:
    """``data-`` attributes, escaped; None values left out."""
    return " ".join(
        f'data-{name.replace("_", "-")}="{_esc(value)}"'
        for name, value in attrs.items()
        if value is not None
    )


def _legend(
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
        inner = _text(x + (SWATCH_PX + 4 if swatch else 0), y + 12, words)
        if swatch:
            inner = (
                f'<rect class="{cls}" fill="{_fill(cls)}" x="{_n(x)}" y="{_n(y + 3)}" '
                f'width="{SWATCH_PX}" height="{SWATCH_PX}"/>{inner}'
            )
        parts.append(f'<g class="legend-item" {data}>{inner}</g>')
        x += width
    return parts, (y - y0) + LINE_PX


# --- a run's funnel ---------------------------------------------------------------------------


def funnel(
    figures: Mapping[str, int | None], invalid_by_reason: Mapping[str, int], *, width: int = 960
) -> str:
    """A run's funnel, one horizontal bar per line, all on one scale (px per row):

    ``extracted``; its split ``invalid + duplicates + already loaded + in flight in another run
    + staged``; ``invalid`` split by reason (under it); ``staged + carried over``, drawn from
    where ``staged`` starts; and what became of them, ``imported + not imported + awaiting
    callback + not sent``. Each line's legend writes every part out with its number, zeros
    too (a zero part has no bar). Missing or None figures count as 0; with no ``extracted``
    at all (a run that has not extracted yet) the picture says "No figures yet".

    Bars: ``<rect class="fig-<key> seg" data-row=... data-figure=<key> data-value=<n>>``
    (reasons: ``fig-invalid reason``, ``data-figure="invalid"``, ``data-reason``).
    """
    if figures.get("extracted") is None:
        return _empty("funnel", "No figures yet", width)
    value = {key: _count(figures.get(key)) for key in FIGURE_WORDS}
    reasons = [(str(reason), _count(count)) for reason, count in invalid_by_reason.items()]
    before_staged = sum(value[key] for key in EXTRACTED_PARTS[:-1])
    submitted = value["imported"] + value["not_imported"] + value["awaiting_callback"]

    # (row, title, units before the first part, [(css class, figure key, value, words, data)])
    rows: list[tuple[str, str, int, list[tuple[str, str, int, str, str]]]] = [
        ("extracted", "extracted", 0, [_part("extracted", value)]),
        ("split", "extracted =", 0, [_part(key, value) for key in EXTRACTED_PARTS]),
    ]
    if reasons:
        reason_parts = [
            ("fig-invalid reason", "invalid", count, reason, f' data-reason="{_esc(reason)}"')
            for reason, count in reasons
        ]
        rows.append(("reasons", "invalid =", 0, reason_parts))
    rows.append(
        ("owned", "owned by the run", before_staged, [_part(key, value) for key in OWNED_PARTS])
    )
    rows.append(
        ("sent", "staged + carried over =", before_staged, [_part(k, value) for k in SENT_PARTS])
    )
    units = max(
        1, *(offset + sum(part[2] for part in parts) for _row, _title, offset, parts in rows)
    )

    title_px = 170
    left, right = title_px, width - 8
    scale = (right - left) / units
    bar_px = 20
    body: list[str] = []
    y = 6.0
    for row, title, offset, parts in rows:
        body.append(_text(left - 8, y + 14, title, "label row-title", "end"))
        x_units = offset
        for cls, key, count, part_words, data in parts:
            if count > 0:
                tip = f"{part_words}: {count}"
                body.append(
                    f'<rect class="{cls} seg" fill="{_fill(cls)}" x="{_n(left + x_units * scale)}"'
                    f' y="{_n(y)}" width="{_n(max(1.0, count * scale))}" height="{bar_px}"'
                    f' data-row="{row}" data-figure="{key}" data-value="{count}"{data}>'
                    f"<title>{_esc(tip)}</title></rect>"
                )
            x_units += count
        y += bar_px + 2
        items = [
            (cls, f'data-figure="{key}" data-value="{count}"{data}', f"{words} {count}")
            for cls, key, count, words, data in parts
        ]
        if row == "sent":
            note = f"(submitted {submitted})"
            items.append(("-note", _data(figure="submitted", value=submitted), note))
        legend, used = _legend(items, left, y, right)
        body.extend(legend)
        y += used + 6

    words = "; ".join(
        f"{FIGURE_WORDS[key]} {value[key]}"
        for key in ("extracted", *EXTRACTED_PARTS, "carried_over", *SENT_PARTS)
    )
    if reasons:
        words += "; invalid by reason: " + ", ".join(f"{r} {c}" for r, c in reasons)
    return _svg("funnel", width, y, f"Funnel of the run: {words}", body)


def _part(key: str, value: Mapping[str, int]) -> tuple[str, str, int, str, str]:
    return (f"fig-{key}", key, value[key], FIGURE_WORDS[key], "")


# --- the loads' history -----------------------------------------------------------------------


def _nice_ceiling(value: float) -> float:
    """The smallest 1, 2, 2.5 or 5 times a power of ten that is >= value (> 0)."""
    if value <= 0:
        return 1.0
    power = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 2.5, 5, 10):
        if step * power >= value * (1 - 1e-9):
            return step * power
    return 10 * power  # pragma: no cover - the loop always returns


def history(loads: Sequence[Mapping], max_reject_ratio: float | None, *, width: int = 960) -> str:
    """The loads' history: one column per run, oldest on the left (``loads`` comes newest
    first, like the list), ``imported`` with ``rejected`` stacked on it, against the row
    axis on the left.

    Each run's ``reject_ratio`` is a dot against the ratio axis on the right, and
    ``max_reject_ratio`` a dashed line on it. The ratio axis runs from 0 to the largest ratio
    shown (the runs' and the threshold) times 1.2, rounded up to 1, 2, 2.5 or 5 times a power
    of ten and at most 100%, so that small ratios stay readable. A dot above the line has
    the class ``over``. Runs with no ratio have no dot. Only the first and last runs are named
    under the columns; the caption writes the latest run's figures out, and each column's
    ``<title>`` its own. Empty ``loads``: "No loads yet".

    Shapes: one ``<g class="run" data-run=<run_id>>`` per run holding its bars
    (``<rect class="fig-imported|fig-rejected" data-figure data-value>``) and its dot
    (``<circle class="ratio [over]" data-figure="reject_ratio" data-value>``); the threshold
    is ``<line class="threshold" data-figure="max_reject_ratio" data-value>``.
    """
    if not loads:
        return _empty("history", "No loads yet", width)
    runs = [
        (
            str(load.get("run_id", "")),
            _count(load.get("imported")),
            _count(load.get("rejected")),
            None if load.get("reject_ratio") is None else float(load["reject_ratio"]),
        )
        for load in reversed(loads)
    ]
    ratios = [ratio for *_, ratio in runs if ratio is not None]
    over_count = sum(
        1
        for *_, ratio in runs
        if ratio is not None and max_reject_ratio is not None and ratio > max_reject_ratio
    )
    rows_top = _nice_ceiling(max(1, *(imported + rejected for _r, imported, rejected, _q in runs)))
    shown = [*ratios, *([max_reject_ratio] if max_reject_ratio is not None else [])]
    ratio_top = min(1.0, _nice_ceiling(max(shown, default=0) * 1.2)) if any(shown) else 1.0

    left, right = 56.0, width - 56.0
    top, plot_px = 58.0, 160.0
    bottom = top + plot_px
    column = (right - left) / len(runs)
    bar = column * (0.8 if column >= 4 else 1.0)
    body: list[str] = []

    latest_id, latest_imported, latest_rejected, latest_ratio = runs[-1]
    overview = f"{len(runs)} runs, oldest on the left"
    if max_reject_ratio is not None:
        overview += f"; {over_count} over the max reject ratio {_pct(max_reject_ratio)}"
    latest = (
        f"Latest run {latest_id}: imported {latest_imported}, rejected {latest_rejected}, "
        f"reject ratio {'-' if latest_ratio is None else _pct(latest_ratio)}"
    )
    caption = f"{overview}. {latest}"
    body.append(_text(left, 14, overview, "label caption"))
    body.append(_text(left, 14 + LINE_PX, latest, "label caption"))

    for fraction in (0.0, 0.5, 1.0):
        y = bottom - fraction * plot_px
        body.append(
            f'<line class="grid" stroke="currentColor" stroke-opacity="0.15" x1="{_n(left)}" '
            f'y1="{_n(y)}" x2="{_n(right)}" y2="{_n(y)}"/>'
        )
        body.append(_text(left - 4, y + 4, _rows_tick(rows_top * fraction), "label tick", "end"))
        body.append(_text(right + 4, y + 4, _pct(ratio_top * fraction), "label tick"))
    body.append(_text(left - 4, top - 8, "rows", "label muted", "end"))
    body.append(_text(width - 2, top - 8, "reject ratio", "label muted", "end"))

    radius = max(1.5, min(3.5, column / 2))
    for index, (run_id, imported, rejected, ratio) in enumerate(runs):
        x = left + index * column + (column - bar) / 2
        imported_px = imported / rows_top * plot_px
        rejected_px = rejected / rows_top * plot_px
        tip = f"{run_id}: imported {imported}, rejected {rejected}"
        if ratio is not None:
            tip += f", reject ratio {_pct(ratio)}"
        # The run's figures on its group too: a zero draws no bar but is still read.
        body.append(
            f'<g class="run" data-run="{_esc(run_id)}" data-imported="{imported}" '
            f'data-rejected="{rejected}"><title>{_esc(tip)}</title>'
        )
        if imported:
            data = f'data-figure="imported" data-value="{imported}"'
            body.append(_rect("fig-imported", x, bottom - imported_px, bar, imported_px, data))
        if rejected:
            data = f'data-figure="rejected" data-value="{rejected}"'
            y = bottom - imported_px - rejected_px
            body.append(_rect("fig-rejected", x, y, bar, rejected_px, data))
        if ratio is not None:
            is_over = max_reject_ratio is not None and ratio > max_reject_ratio
            cy = bottom - min(ratio, ratio_top) / ratio_top * plot_px
            body.append(
                f'<circle class="ratio{" over" if is_over else ""}" '
                f'fill="{"#e7000b" if is_over else "currentColor"}" '
                f'cx="{_n(left + (index + 0.5) * column)}" cy="{_n(cy)}" '
                f'r="{_n(radius + (1 if is_over else 0))}" '
                f'data-figure="reject_ratio" data-value="{ratio}"/>'
            )
        body.append("</g>")

    if max_reject_ratio is not None:
        y = bottom - min(max_reject_ratio, ratio_top) / ratio_top * plot_px
        body.append(
            f'<line class="threshold" stroke="#e7000b" stroke-dasharray="6 3" x1="{_n(left)}" '
            f'y1="{_n(y)}" x2="{_n(right)}" y2="{_n(y)}" data-figure="max_reject_ratio" '
            f'data-value="{max_reject_ratio}"/>'
        )

    body.append(
        f'<line class="axis" stroke="currentColor" x1="{_n(left)}" y1="{_n(bottom)}" '
        f'x2="{_n(right)}" y2="{_n(bottom)}"/>'
    )
    first_id = runs[0][0]
    body.append(_text(left, bottom + 14, first_id, "label run-label"))
    if len(runs) > 1:
        body.append(_text(right, bottom + 14, latest_id, "label run-label", "end"))

    items = [
        ("fig-imported", _data(figure="imported"), "imported"),
        ("fig-rejected", _data(figure="rejected"), "rejected"),
        ("-ratio", _data(figure="reject_ratio"), "\u25cf reject ratio"),
    ]
    if max_reject_ratio is not None:
        threshold = f"- - max reject ratio {_pct(max_reject_ratio)}"
        items.append(
            ("-threshold", _data(figure="max_reject_ratio", value=max_reject_ratio), threshold)
        )
    legend, used = _legend(items, left, bottom + 22, right)
    body.extend(legend)
    return _svg("history", width, bottom + 22 + used + 4, f"History of the loads: {caption}", body)


def _rows_tick(value: float) -> str:
    if value >= 1_000_000:
        return f"{_n(value / 1_000_000)}M"
    if value >= 10_000:
        return f"{_n(value / 1_000)}k"
    return _n(value)


# --- a run's batch strip ----------------------------------------------------------------------

STRIP_PX = 24
MIN_CELL_PX = 2  # one cell per batch while each gets this much
MIN_BUCKET_PX = 6  # otherwise consecutive batches share a column this wide, or wider
MAX_CELLS = 600
MAX_BUCKETS = 160
ALARM_MIN_PX = 8


def _status_class(status: str) -> str:
    name = _css_name(status)
    return f"st-{name}" if f"st-{name}" in _LIGHT else "st-other"


def batch_strip(statuses: Sequence[str], width: int = 960) -> str:
    """A run's batches in plan order, coloured by status, with the count per status under it.

    One cell per batch while each gets ``MIN_CELL_PX`` (``<rect data-index=<position in the
    plan> data-status=...>``); beyond that, consecutive batches share a bucket
    (``<g class="bucket" data-first data-last data-batches>``), a column stacked from its
    statuses' shares (``<rect data-status data-value=<batches>>``), alarming statuses
    (``failed``, ``maybe_accepted``) on top and at least ``ALARM_MIN_PX`` high, so one failed
    batch among thousands still shows. At most ``MAX_BUCKETS`` buckets: the output stays a
    under 200 KB whatever the number of batches. Statuses are ``BatchStatus`` values (and
    ``maybe_accepted``); any other is drawn as ``st-other`` under its own name.
    """
    total = len(statuses)
    if not total:
        return _empty("batch-strip", "No batches yet", width)
    counts = Counter(str(status) for status in statuses)
    order = [*ALARM_STATUSES, *(s for s in BATCH_STATUSES if s not in ALARM_STATUSES)]
    order += sorted(status for status in counts if status not in order)
    rank = {status: index for index, status in enumerate(order)}
    # Crisp edges: no hairline seams between cells that end on a fraction of a pixel.
    body: list[str] = ['<g class="strip" shape-rendering="crispEdges">']
    top = 4.0
    if total <= MAX_CELLS and total * MIN_CELL_PX <= width:
        cell = width / total
        for index, status in enumerate(statuses):
            status = str(status)
            body.append(
                _rect(
                    _status_class(status),
                    index * cell,
                    top,
                    cell,
                    STRIP_PX,
                    f'data-index="{index}" data-status="{_esc(status)}" data-value="1"',
                    " cell",
                    f"position {index} in the plan: {status}",
                )
            )
        shape = f"one cell per batch, {total} {'batch' if total == 1 else 'batches'}"
    else:
        buckets = min(MAX_BUCKETS, width // MIN_BUCKET_PX, total)
        column = width / buckets
        for bucket in range(buckets):
            first, last = bucket * total // buckets, (bucket + 1) * total // buckets
            shares = sorted(
                Counter(str(s) for s in statuses[first:last]).items(),
                key=lambda item: rank[item[0]],
            )
            heights = _stack(shares, last - first)
            tip = ", ".join(f"{count} {status}" for status, count in shares)
            body.append(
                f'<g class="bucket" data-first="{first}" data-last="{last - 1}" '
                f'data-batches="{last - first}"><title>'
                f"{_esc(f'positions {first}-{last - 1} in the plan: {tip}')}</title>"
            )
            y = top
            for (status, count), height in zip(shares, heights, strict=True):
                body.append(
                    _rect(
                        _status_class(status),
                        bucket * column,
                        y,
                        column,
                        height,
                        f'data-status="{_esc(status)}" data-value="{count}"',
                    )
                )
                y += height
            body.append("</g>")
        shape = f"{total} batches in {buckets} columns of about {total / buckets:.0f}"
    body.append("</g>")

    items = [
        (
            _status_class(status),
            _data(status=status, value=counts[status]),
            f"{status} {counts[status]}",
        )
        for status in [*BATCH_STATUSES, *(s for s in order if s not in BATCH_STATUSES)]
        if status in counts or status in BATCH_STATUSES
    ]
    legend, used = _legend(items, 0, top + STRIP_PX + 6, width)
    body.extend(legend)
    words = ", ".join(f"{status} {counts[status]}" for status in order if status in counts)
    label = f"Batches by status ({shape}): {words}"
    return _svg("batch-strip", width, top + STRIP_PX + 6 + used + 2, label, body)


def _stack(shares: Sequence[tuple[str, int]], batches: int) -> list[float]:
    """Heights of a bucket's status shares, summing to STRIP_PX; an alarming status gets at
    least ALARM_MIN_PX, taken from the largest other share."""
    heights = [count / batches * STRIP_PX for _status, count in shares]
    for index, (status, _batches) in enumerate(shares):
        if status in ALARM_STATUSES and heights[index] < ALARM_MIN_PX:
            others = [i for i, (s, _c) in enumerate(shares) if s not in ALARM_STATUSES]
            if not others:
                continue
            biggest = max(others, key=lambda i: heights[i])
            taken = min(ALARM_MIN_PX - heights[index], heights[biggest] - 1)
            heights[index] += taken
            heights[biggest] -= taken
    return heights
