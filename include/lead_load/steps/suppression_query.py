"""A load's own suppression query: the numbers its owners keep elsewhere (a CRM's opt-outs,
complaints) put on the suppression list before the load stages anything.

A load names the query in its configuration (``suppression_sql``, docs/loads.md); it runs on
the load's warehouse and returns a column ``phone`` (and, if it likes, ``reason``). Every
number it returns is added to ``lead_load_suppressions`` (``ledger.suppressions``), named as
added by the load's query, so staging and the claims reject it as they reject any number on
the list. Adding only: a number the query stops returning stays on the list until someone
removes it (``python -m lead_load suppress remove``), since a query that comes back empty by
mistake must not make numbers callable again. A value that is no mobile number is skipped,
counted and logged masked; it never fails the run.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pandas as pd
from airflow.sdk.exceptions import AirflowFailException
from sqlalchemy import Engine, text

from agent_api.masking import mask_phones_in
from lead_load.core.phones import normalise_phones
from lead_load.core.row_frames import rows_to_frame
from lead_load.ledger import schema, suppressions

log = logging.getLogger(__name__)

CHUNK_ROWS = 20_000


class SuppressionQueryError(AirflowFailException):
    """The load's suppression query does not return a ``phone`` column: no retry can help."""


def added_by(load_id: str) -> str:
    """Who the list says added the query's numbers."""
    return f"load {load_id} (suppression_sql)"


def add_from_query(warehouse: Engine, ledger_engine: Engine, sql: str, load_id: str) -> dict:
    """Run the load's suppression query and put every number it returns on the list, a chunk
    of ``CHUNK_ROWS`` per transaction (adding twice changes nothing, so a retry is safe).
    Returns the counts, also logged: returned, added, already listed, unreadable."""
    schema.create_tables(ledger_engine)
    counts = {"returned": 0, "added": 0, "already": 0, "unreadable": 0}
    for chunk in _chunks(warehouse, sql):
        counts["returned"] += len(chunk)
        normalised = normalise_phones(chunk["phone"])
        readable = normalised["phone"].notna().to_numpy()
        counts["unreadable"] += int((~readable).sum())
        reasons = chunk["reason"] if "reason" in chunk else pd.Series([None] * len(chunk))
        entries = [
            suppressions.Entry(phone, _reason(reason))
            for phone, reason in zip(normalised["phone"][readable], reasons[readable], strict=True)
        ]
        if entries:
            done = suppressions.add(ledger_engine, entries, added_by(load_id))
            counts["added"] += done.added
            counts["already"] += done.already
    log.info(
        "Suppression query of load %s: %d numbers returned, %d added to the suppression "
        "list, %d on it already, %d no mobile number (skipped)",
        load_id,
        counts["returned"],
        counts["added"],
        counts["already"],
        counts["unreadable"],
    )
    return counts


def _reason(value: Any) -> str:
    if value is None or (isinstance(value, float) and pd.isna(value)) or value is pd.NA:
        return "the load's suppression query"
    return mask_phones_in(str(value))[:500]


def _chunks(warehouse: Engine, sql: str) -> Iterator[pd.DataFrame]:
    with warehouse.connect() as conn:
        result = conn.execution_options(stream_results=True).execute(text(sql))
        columns = [name.lower() for name in map(str, result.keys())]
        if "phone" not in columns:
            result.close()  # an unread streaming result would leave MySQL's connection busy
            raise SuppressionQueryError(
                "the load's suppression query (suppression_sql) must return a column named "
                f"phone (and may return reason); it returns: {', '.join(columns) or 'none'}"
            )
        while rows := result.fetchmany(CHUNK_ROWS):
            frame = rows_to_frame(rows, columns)
            yield frame.reset_index(drop=True)
