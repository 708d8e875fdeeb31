"""lead_load's pure rules: phones, field mapping, transform, windows, ledger and landing rules.

Nothing here imports Airflow or SQLAlchemy (tests/include/lead_load/test_import_direction.py
checks it), so every rule can be read and tested without a database or a scheduler.
"""
