# The project's Airflow image: the official apache/airflow image plus our locked requirements
# and the project's own packages (include/ and plugins/, installed editable so the
# scheduler, workers and the triggerer all import them).
FROM apache/airflow:3.3.2-python3.11

COPY --chown=airflow:0 requirements.lock pyproject.toml /opt/lead_load/
RUN pip install --no-cache-dir -r /opt/lead_load/requirements.lock
COPY --chown=airflow:0 include /opt/lead_load/include
COPY --chown=airflow:0 plugins /opt/lead_load/plugins
RUN pip install --no-cache-dir --no-deps -e /opt/lead_load
