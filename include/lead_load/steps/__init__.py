"""The steps of a load, one module each, written against engines and hooks passed in.

extract -> plan -> post -> settle -> landing_check -> report. The Airflow glue
(``lead_load.glue``) builds the engines and hooks from Airflow's connections and calls these;
nothing here imports the glue. Each step is safe to run again: retries, cleared tasks and
re-runs all go through the ledger's rules.
"""
