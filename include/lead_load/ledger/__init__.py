"""The ledger: lead_load's memory of every lead, batch and run, in SQL.

``schema`` (tables, upgrades), ``staging`` (a run's leads become ledger rows once per calling task),
``run_lifecycle``, ``planning``, ``batch_lifecycle`` and ``settling`` (a run's row, its plan,
a batch's post and its outcome: the only writers of run and batch states and of the statuses
of a batch's rows), ``counts`` (a run's counts) and ``browse`` (read-only views for people).
SQLAlchemy and ``lead_load.core`` only: no Airflow, no HTTP.
"""
