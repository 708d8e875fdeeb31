"""lead_load's pure logic: transform, batching and ledger rules, with no Airflow import."""
