"""lead_load's Airflow glue: what turns the steps into tasks that run in Airflow.

``connections`` (engines from Airflow connections), ``batch_steps`` (the post and record
steps with their engine and hook), ``start_in_triggerer`` (mapped tasks that start in the
triggerer), ``operators`` and ``sensors`` (the mapped tasks), ``triggers`` (their triggerer
side), ``notifications`` (who hears of a failed run). Direction, as in Airflow's providers:
operator/sensor -> trigger -> step -> hook/ledger, never back.
"""
