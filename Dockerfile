# The project's Airflow image: the official apache/airflow image plus our runtime lock and the
# project's own packages (include/ and plugins/, installed editable so the scheduler, workers
# and the triggerer all import them). Only requirements/runtime.lock goes in: the test, lint
# and bench tools of requirements/dev.lock stay on development machines (docs/dependencies.md).
FROM apache/airflow:3.3.2-python3.11

# mysqlclient (the MySQL provider's driver, for MySQL/MariaDB warehouses) is in the runtime
# lock and has no Linux wheels: when the lock's version is not the one the image already has,
# pip compiles it, against the MariaDB client headers, with pkg-config and a compiler.
USER root
RUN apt-get update \
  && apt-get install -y --no-install-recommends \
         default-libmysqlclient-dev pkg-config build-essential \
  && apt-get autoremove -yqq --purge \
  && apt-get clean \
  && rm -rf /var/lib/apt/lists/*
USER airflow

COPY --chown=airflow:0 requirements/runtime.lock /opt/lead_load/requirements/runtime.lock
COPY --chown=airflow:0 pyproject.toml /opt/lead_load/
# Naming apache-airflow with the image's own version keeps pip from moving Airflow itself.
RUN pip install --no-cache-dir "apache-airflow==${AIRFLOW_VERSION}" \
      -r /opt/lead_load/requirements/runtime.lock
COPY --chown=airflow:0 include /opt/lead_load/include
COPY --chown=airflow:0 plugins /opt/lead_load/plugins
RUN pip install --no-cache-dir --no-deps -e /opt/lead_load
