"""Read-only views of the ledger for people: loads, batches, rejects and one lead's history.

What the "Lead loads" page of the Airflow UI shows (plugins/lead_loads). Plain values come
out, phones already masked: no query here returns a full number, so nothing built on these
can leak one. SQLAlchemy only; every list is paged in SQL, so a run of a million rows costs
one page. Callers use these names from here; the package's modules:

- ``loads``: the runs, listed (paged and filtered) or one by one, with their figures;
- ``rows``: a run's batches and their rows, its rejects (paged, or every one for an
  export), the rows it took over, one lead's history, and ``mask_raw``;
- ``values``: ``Page``, and the ledger's timestamps in UTC.
"""

from lead_load.ledger.browse.loads import (
    Load,
    calling_tasks,
    get_load,
    has_run,
    list_loads,
    live_counts,
    loads_in_ledger,
)
from lead_load.ledger.browse.rows import (
    Batch,
    LeadHistory,
    LedgerRow,
    Reject,
    batch_rows,
    batches_of,
    carried_into,
    find_lead,
    get_batch,
    mask_raw,
    reject_kinds,
    reject_pages,
    rejects_of,
)
from lead_load.ledger.browse.values import Page

__all__ = [
    "Batch",
    "LeadHistory",
    "LedgerRow",
    "Load",
    "Page",
    "Reject",
    "batch_rows",
    "batches_of",
    "calling_tasks",
    "carried_into",
    "find_lead",
    "get_batch",
    "get_load",
    "has_run",
    "list_loads",
    "live_counts",
    "loads_in_ledger",
    "mask_raw",
    "reject_kinds",
    "reject_pages",
    "rejects_of",
]
