"""Developer tooling around lead_load: the demo, a local Airflow, seeding and synthetic leads.

Nothing in the runtime package ``lead_load`` imports from here; tests and benchmarks do.
"""
