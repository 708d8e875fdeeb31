"""Integration with the AI outbound-call platform's agent-api, shaped like an Airflow provider.

``hooks/`` speak HTTP (sync and async, built on the http provider), ``triggers/`` poll a
batch's callback data in the triggerer, ``sensors/`` wait for a batch's outcome.
The modules beside them hold the pure rules: error classification, retry policy,
connection settings and phone masking.
"""
