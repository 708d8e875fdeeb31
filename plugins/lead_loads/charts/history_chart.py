"""The loads' history: one column per run, its imported and rejected rows stacked against
the row axis, its reject ratio a dot against the ratio axis, and the max reject ratio a
dashed line on it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from lead_loads.charts import svg


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
        return svg.empty("history", "No loads yet", width)
    runs = [
        (
            str(load.get("run_id", "")),
            svg.count_of(load.get("imported")),
            svg.count_of(load.get("rejected")),
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
        overview += f"; {over_count} over the max reject ratio {svg.pct(max_reject_ratio)}"
    latest = (
        f"Latest run {latest_id}: imported {latest_imported}, rejected {latest_rejected}, "
        f"reject ratio {'-' if latest_ratio is None else svg.pct(latest_ratio)}"
    )
    caption = f"{overview}. {latest}"
    body.append(svg.text(left, 14, overview, "label caption"))
    body.append(svg.text(left, 14 + svg.LINE_PX, latest, "label caption"))

    for fraction in (0.0, 0.5, 1.0):
        y = bottom - fraction * plot_px
        body.append(
            f'<line class="grid" stroke="currentColor" stroke-opacity="0.15" x1="{svg.num(left)}" '
            f'y1="{svg.num(y)}" x2="{svg.num(right)}" y2="{svg.num(y)}"/>'
        )
        body.append(svg.text(left - 4, y + 4, _rows_tick(rows_top * fraction), "label tick", "end"))
        body.append(svg.text(right + 4, y + 4, svg.pct(ratio_top * fraction), "label tick"))
    body.append(svg.text(left - 4, top - 8, "rows", "label muted", "end"))
    body.append(svg.text(width - 2, top - 8, "reject ratio", "label muted", "end"))

    radius = max(1.5, min(3.5, column / 2))
    for index, (run_id, imported, rejected, ratio) in enumerate(runs):
        x = left + index * column + (column - bar) / 2
        imported_px = imported / rows_top * plot_px
        rejected_px = rejected / rows_top * plot_px
        tip = f"{run_id}: imported {imported}, rejected {rejected}"
        if ratio is not None:
            tip += f", reject ratio {svg.pct(ratio)}"
        # The run's figures on its group too: a zero draws no bar but is still read.
        body.append(
            f'<g class="run" data-run="{svg.esc(run_id)}" data-imported="{imported}" '
            f'data-rejected="{rejected}"><title>{svg.esc(tip)}</title>'
        )
        if imported:
            data = f'data-figure="imported" data-value="{imported}"'
            body.append(svg.rect("fig-imported", x, bottom - imported_px, bar, imported_px, data))
        if rejected:
            data = f'data-figure="rejected" data-value="{rejected}"'
            y = bottom - imported_px - rejected_px
            body.append(svg.rect("fig-rejected", x, y, bar, rejected_px, data))
        if ratio is not None:
            is_over = max_reject_ratio is not None and ratio > max_reject_ratio
            cy = bottom - min(ratio, ratio_top) / ratio_top * plot_px
            body.append(
                f'<circle class="ratio{" over" if is_over else ""}" '
                f'fill="{"#e7000b" if is_over else "currentColor"}" '
                f'cx="{svg.num(left + (index + 0.5) * column)}" cy="{svg.num(cy)}" '
                f'r="{svg.num(radius + (1 if is_over else 0))}" '
                f'data-figure="reject_ratio" data-value="{ratio}"/>'
            )
        body.append("</g>")

    if max_reject_ratio is not None:
        y = bottom - min(max_reject_ratio, ratio_top) / ratio_top * plot_px
        body.append(
            f'<line class="threshold" stroke="#e7000b" stroke-dasharray="6 3" x1="{svg.num(left)}" '
            f'y1="{svg.num(y)}" x2="{svg.num(right)}" y2="{svg.num(y)}" '
            f'data-figure="max_reject_ratio" data-value="{max_reject_ratio}"/>'
        )

    body.append(
        f'<line class="axis" stroke="currentColor" x1="{svg.num(left)}" y1="{svg.num(bottom)}" '
        f'x2="{svg.num(right)}" y2="{svg.num(bottom)}"/>'
    )
    first_id = runs[0][0]
    body.append(svg.text(left, bottom + 14, first_id, "label run-label"))
    if len(runs) > 1:
        body.append(svg.text(right, bottom + 14, latest_id, "label run-label", "end"))

    items = [
        ("fig-imported", svg.data(figure="imported"), "imported"),
        ("fig-rejected", svg.data(figure="rejected"), "rejected"),
        ("-ratio", svg.data(figure="reject_ratio"), "\u25cf reject ratio"),
    ]
    if max_reject_ratio is not None:
        threshold = f"- - max reject ratio {svg.pct(max_reject_ratio)}"
        items.append(
            ("-threshold", svg.data(figure="max_reject_ratio", value=max_reject_ratio), threshold)
        )
    legend, used = svg.legend(items, left, bottom + 22, right)
    body.extend(legend)
    return svg.document(
        "history", width, bottom + 22 + used + 4, f"History of the loads: {caption}", body
    )


def _rows_tick(value: float) -> str:
    if value >= 1_000_000:
        return f"{svg.num(value / 1_000_000)}M"
    if value >= 10_000:
        return f"{svg.num(value / 1_000)}k"
    return svg.num(value)


def _nice_ceiling(value: float) -> float:
    """The smallest 1, 2, 2.5 or 5 times a power of ten that is >= value (> 0)."""
    if value <= 0:
        return 1.0
    power = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 2.5, 5, 10):
        if step * power >= value * (1 - 1e-9):
            return step * power
    return 10 * power  # pragma: no cover - the loop always returns
