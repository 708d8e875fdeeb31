"""The ledger: lead_load's memory of every lead, batch and run, in SQL.

``schema`` (tables, upgrades), ``staging`` (a run's leads become ledger rows once per task),
``batch_lifecycle`` (the only writer of batch and run states) and ``counts`` (a run's counts).
SQLAlchemy and ``lead_load.core`` only: no Airflow, no HTTP.
"""
