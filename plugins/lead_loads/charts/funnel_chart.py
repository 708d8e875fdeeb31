"""A run's funnel: where its extracted rows went, and what became of the rows it owned.

One horizontal bar per line, all on one scale, each line's parts written out in words and
numbers under it (``svg``); fills by figure (``fig-<key>``, ``palette``).
"""

from __future__ import annotations

from collections.abc import Mapping

from lead_load.core import run_summary
from lead_loads.charts import svg
from lead_loads.charts.palette import fill

# The words of the figures: the report's, the run note's and every page's.
FIGURE_WORDS = run_summary.FIGURE_WORDS

# Where the extracted rows went, and what became of the rows the run owned.
EXTRACTED_PARTS = (
    "invalid",
    "duplicates_in_run",
    "already_loaded",
    "in_flight",
    "suppressed",
    "staged",
)
OWNED_PARTS = ("staged", "carried_over")
SENT_PARTS = (
    "imported",
    "not_imported",
    "awaiting_callback",
    "not_sent",
    "suppressed_before_posting",
)


def funnel(
    figures: Mapping[str, int | None], invalid_by_reason: Mapping[str, int], *, width: int = 960
) -> str:
    """A run's funnel, one horizontal bar per line, all on one scale (px per row):

    ``extracted``; its split ``invalid + duplicates + already loaded + in flight in another run
    + suppressed + staged``; ``invalid`` split by reason (under it); ``staged + carried
    over``, drawn from where ``staged`` starts; and what became of them, ``imported + not
    imported + awaiting callback + not sent + suppressed before posting``. Each line's legend
    writes every part out with its number, zeros too (a zero part has no bar). Missing or
    None figures count as 0; with no ``extracted`` at all (a run that has not extracted yet)
    the picture says "No figures yet".

    Bars: ``<rect class="fig-<key> seg" data-row=... data-figure=<key> data-value=<n>>``
    (reasons: ``fig-invalid reason``, ``data-figure="invalid"``, ``data-reason``).
    """
    if figures.get("extracted") is None:
        return svg.empty("funnel", "No figures yet", width)
    value = {key: svg.count_of(figures.get(key)) for key in FIGURE_WORDS}
    reasons = [(str(reason), svg.count_of(count)) for reason, count in invalid_by_reason.items()]
    before_staged = sum(value[key] for key in EXTRACTED_PARTS[:-1])
    submitted = value["imported"] + value["not_imported"] + value["awaiting_callback"]

    # (row, title, units before the first part, [(css class, figure key, value, words, data)])
    rows: list[tuple[str, str, int, list[tuple[str, str, int, str, str]]]] = [
        ("extracted", "extracted", 0, [_part("extracted", value)]),
        ("split", "extracted =", 0, [_part(key, value) for key in EXTRACTED_PARTS]),
    ]
    if reasons:
        reason_parts = [
            ("fig-invalid reason", "invalid", count, reason, f' data-reason="{svg.esc(reason)}"')
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
        body.append(svg.text(left - 8, y + 14, title, "label row-title", "end"))
        x_units = offset
        for cls, key, count, part_words, data in parts:
            if count > 0:
                tip = f"{part_words}: {count}"
                body.append(
                    f'<rect class="{cls} seg" fill="{fill(cls)}"'
                    f' x="{svg.num(left + x_units * scale)}" y="{svg.num(y)}"'
                    f' width="{svg.num(max(1.0, count * scale))}" height="{bar_px}"'
                    f' data-row="{row}" data-figure="{key}" data-value="{count}"{data}>'
                    f"<title>{svg.esc(tip)}</title></rect>"
                )
            x_units += count
        y += bar_px + 2
        items = [
            (cls, f'data-figure="{key}" data-value="{count}"{data}', f"{words} {count}")
            for cls, key, count, words, data in parts
        ]
        if row == "sent":
            note = f"(submitted {submitted})"
            items.append(("-note", svg.data(figure="submitted", value=submitted), note))
        legend, used = svg.legend(items, left, y, right)
        body.extend(legend)
        y += used + 6

    words = "; ".join(
        f"{FIGURE_WORDS[key]} {value[key]}"
        for key in ("extracted", *EXTRACTED_PARTS, "carried_over", *SENT_PARTS)
    )
    if reasons:
        words += "; invalid by reason: " + ", ".join(f"{r} {c}" for r, c in reasons)
    return svg.document("funnel", width, y, f"Funnel of the run: {words}", body)


def _part(key: str, value: Mapping[str, int]) -> tuple[str, str, int, str, str]:
    return (f"fig-{key}", key, value[key], FIGURE_WORDS[key], "")
