"""The "Lead loads" page of the Airflow UI: what happened to each row of a load.

A FastAPI app the api-server mounts under ``/lead-loads`` (registered by
``plugins/lead_loads_plugin.py``), server-rendered from the ledger through
``lead_load.ledger.browse``. Airflow's own authentication and the ``lead_load`` DAG's read
permission guard every route (``access``); no full phone number is ever rendered.
"""
