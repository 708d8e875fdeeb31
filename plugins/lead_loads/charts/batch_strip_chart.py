"""A run's batch strip: its batches in plan order, coloured by status, with the count per
status under it. However many batches there are, the strip stays bounded and an alarming
status (a failed or maybe accepted batch) still shows.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from lead_load.core.ledger_rules import BatchStatus
from lead_loads.charts import svg
from lead_loads.charts.palette import status_class

# A presentation status beside ``BatchStatus``: a ``submitted`` batch with no ``unique_id``,
# whose post may or may not have been taken. The caller decides when to pass it.
MAYBE_ACCEPTED = "maybe_accepted"
BATCH_STATUSES: tuple[str, ...] = tuple(status.value for status in BatchStatus)
# Statuses a reader must never miss, however many batches there are: drawn first (on top) in
# a bucket, with at least ALARM_MIN_PX of its height.
ALARM_STATUSES: tuple[str, ...] = (BatchStatus.FAILED.value, MAYBE_ACCEPTED)

# The strip's height, and how it is laid out (px, and at most how many cells or buckets).
STRIP_PX = 24
MIN_CELL_PX = 2  # one cell per batch while each gets this much
MIN_BUCKET_PX = 6  # otherwise consecutive batches share a column this wide, or wider
MAX_CELLS = 600
MAX_BUCKETS = 160
ALARM_MIN_PX = 8


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
        return svg.empty("batch-strip", "No batches yet", width)
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
                svg.rect(
                    status_class(status),
                    index * cell,
                    top,
                    cell,
                    STRIP_PX,
                    f'data-index="{index}" data-status="{svg.esc(status)}" data-value="1"',
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
                f"{svg.esc(f'positions {first}-{last - 1} in the plan: {tip}')}</title>"
            )
            y = top
            for (status, count), height in zip(shares, heights, strict=True):
                body.append(
                    svg.rect(
                        status_class(status),
                        bucket * column,
                        y,
                        column,
                        height,
                        f'data-status="{svg.esc(status)}" data-value="{count}"',
                    )
                )
                y += height
            body.append("</g>")
        shape = f"{total} batches in {buckets} columns of about {total / buckets:.0f}"
    body.append("</g>")

    items = [
        (
            status_class(status),
            svg.data(status=status, value=counts[status]),
            f"{status} {counts[status]}",
        )
        for status in [*BATCH_STATUSES, *(s for s in order if s not in BATCH_STATUSES)]
        if status in counts or status in BATCH_STATUSES
    ]
    legend, used = svg.legend(items, 0, top + STRIP_PX + 6, width)
    body.extend(legend)
    words = ", ".join(f"{status} {counts[status]}" for status in order if status in counts)
    label = f"Batches by status ({shape}): {words}"
    return svg.document("batch-strip", width, top + STRIP_PX + 6 + used + 2, label, body)


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
