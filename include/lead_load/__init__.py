"""lead_load: warehouse leads into the outbound-call platform, exactly once.

Rooms (docs/architecture.md): ``core`` (pure rules), ``ledger`` (SQL), ``steps`` (one per
step of a load) and ``glue`` (Airflow); each imports only the rooms below it.
"""
