# lead_load: the two commands a newcomer needs are `make demo` and `make test`.
# Everything is installed into .venv from requirements/dev.lock, and Airflow's home
# (SQLite metadata DB, logs) lives in .airflow/ inside the repo; both are git-ignored.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

export AIRFLOW_HOME := $(CURDIR)/.airflow
export AIRFLOW__CORE__DAGS_FOLDER := $(CURDIR)/dags
export AIRFLOW__CORE__PLUGINS_FOLDER := $(CURDIR)/plugins
export AIRFLOW__CORE__LOAD_EXAMPLES := False
# One run maps one post_batch per batch: 10,000 batches = 2,000,000 leads (README).
export AIRFLOW__CORE__MAX_MAP_LENGTH := 10000
export AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION := False
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: help install airflow-home demo test lint bench lock clean up

help:
	@echo "make demo   - set up everything and run the lead load on the embedded default"
	@echo "make test   - set up everything, lint, and run the whole test suite"
	@echo "make bench  - run the benchmarks (not part of the tests)"
	@echo "make up     - run Airflow locally (airflow standalone) on http://localhost:8080, user admin"
	@echo "make lock   - re-resolve requirements/dev.in and runtime.in into their locks"

# mysqlclient, the driver of the MySQL provider (MySQL/MariaDB warehouses), has no Linux
# wheels: pip compiles it against the MySQL/MariaDB client headers, found with pkg-config.
# When they are missing, root with apt-get installs Debian's packages; anyone else is told.
MYSQLCLIENT_BUILD_DEPS := default-libmysqlclient-dev pkg-config build-essential

# Reinstall only when the lock or the project metadata changed. A development machine gets
# the dev lock: the runtime lock (what the image installs) plus the test, lint and bench tools.
$(STAMP): requirements/dev.lock pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@if ! pkg-config --exists mysqlclient 2>/dev/null && ! pkg-config --exists mariadb 2>/dev/null; then \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
			echo "Installing the MySQL client headers mysqlclient builds against ($(MYSQLCLIENT_BUILD_DEPS)) ..."; \
			{ apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
				--no-install-recommends $(MYSQLCLIENT_BUILD_DEPS); } > $(VENV)/apt.log 2>&1 \
				|| { tail -20 $(VENV)/apt.log; echo "could not install $(MYSQLCLIENT_BUILD_DEPS)"; exit 1; }; \
		else \
			echo "pip compiles mysqlclient: install the MySQL/MariaDB client headers and pkg-config" \
				"first (Debian/Ubuntu: apt-get install $(MYSQLCLIENT_BUILD_DEPS)), then run make again"; \
			exit 1; \
		fi; \
	fi
	@echo "Installing the locked dependencies into $(VENV) ..."
	@$(BIN)/pip install -q -r requirements/dev.lock > $(VENV)/pip.log 2>&1 \
		|| { grep -v '^WARNING: Location' $(VENV)/pip.log; exit 1; }
	@$(BIN)/pip install -q --no-deps -e . > $(VENV)/pip.log 2>&1 \
		|| { grep -v '^WARNING: Location' $(VENV)/pip.log; exit 1; }
	@$(BIN)/python -c "import airflow, pandas, agent_api" || { echo "install failed"; exit 1; }
	@touch $@

install: $(STAMP)

$(AIRFLOW_HOME)/airflow.db: $(STAMP)
	@mkdir -p $(AIRFLOW_HOME)
	@echo "Preparing the Airflow home in $(AIRFLOW_HOME) ..."
	@$(BIN)/airflow db migrate > $(AIRFLOW_HOME)/db-migrate.log 2>&1 || { cat $(AIRFLOW_HOME)/db-migrate.log; exit 1; }
	@$(BIN)/airflow pools set agent_api 4 "lead_load: concurrent posts to the platform" \
		>> $(AIRFLOW_HOME)/db-migrate.log 2>&1 || { cat $(AIRFLOW_HOME)/db-migrate.log; exit 1; }

airflow-home: $(AIRFLOW_HOME)/airflow.db

demo: airflow-home
	@$(BIN)/python -m lead_load_devtools.demo

# A single-machine Airflow (api-server, scheduler, dag-processor, triggerer) on SQLite,
# wired to the demo's warehouse and a simulator of the platform.
up: airflow-home
	$(BIN)/python -m lead_load_devtools.local_airflow

lint: $(STAMP)
	$(BIN)/ruff check .

# Three pytest processes side by side, each with an Airflow home and metadata DB of its own:
# "alongside" (the overlapping-runs tests, then tests/distributed on one Airflow stack: first,
# so the stack, started by the first distributed test and stopped at the end of the session,
# does not sit idle beside them), "dags" (the end-to-end, reliability and warehouse-matrix DAG runs under
# `airflow dags test`) and the rest of the suite, which the split keeps about as long as dags.
# Most of the first two is waiting on Airflow's loops and the simulator's delays, so together
# they take about as long as the longest one. The outputs of alongside and dags follow when all
# have ended (`tail -f test-output/alongside.log` or `test-output/dags.log` shows them meanwhile).
ALONGSIDE := tests/dags/test_overlapping_runs.py tests/distributed
DAG_RUNS := tests/dags/test_lead_load_e2e.py tests/dags/test_lead_load_reliability.py \
	tests/dags/test_warehouse_matrix.py

test: lint
	@mkdir -p test-output
	@LEAD_LOAD_TEST_AIRFLOW_HOME=$(AIRFLOW_HOME)/tests-alongside \
	$(BIN)/pytest -p no:cacheprovider $(ALONGSIDE) > test-output/alongside.log 2>&1 & \
	alongside=$$!; \
	LEAD_LOAD_TEST_AIRFLOW_HOME=$(AIRFLOW_HOME)/tests-dags \
	$(BIN)/pytest -p no:cacheprovider $(DAG_RUNS) > test-output/dags.log 2>&1 & \
	dags=$$!; \
	$(BIN)/pytest $(foreach path,$(ALONGSIDE) $(DAG_RUNS),--ignore=$(path)); rest=$$?; \
	wait $$dags; dag_runs=$$?; \
	wait $$alongside; other=$$?; \
	echo; echo "===== $(DAG_RUNS) (ran alongside; test-output/dags.log) ====="; \
	cat test-output/dags.log; \
	echo; echo "===== $(ALONGSIDE) (ran alongside; test-output/alongside.log) ====="; \
	cat test-output/alongside.log; \
	echo "alongside: exit $$other; dags: exit $$dag_runs; the rest: exit $$rest"; \
	test $$rest -eq 0 -a $$dag_runs -eq 0 -a $$other -eq 0

# One after the other, full sizes (about 35 minutes); each prints a BENCH_JSON line.
# extraction_memory.py needs PostgreSQL on 127.0.0.1:5432 (user postgres); end_to_end.py
# and shared_airflow.py also Redis on 127.0.0.1:6379 (each starts a distributed Airflow, as the
# distributed tests do).
bench: airflow-home
	$(BIN)/python benchmarks/simulator_throughput.py
	$(BIN)/python benchmarks/transform_vs_duckdb.py
	$(BIN)/python benchmarks/extraction_memory.py
	$(BIN)/python benchmarks/ledger_at_scale.py
	$(BIN)/python benchmarks/end_to_end.py
	$(BIN)/python benchmarks/shared_airflow.py
	$(BIN)/python benchmarks/overlap.py

# The dev lock is resolved and frozen first; the runtime lock is the part of it that
# requirements/runtime.in needs (followed through the frozen packages' metadata), so every
# package pinned in both has the same version.
lock:
	rm -rf .venv-lock && $(PYTHON) -m venv .venv-lock
	.venv-lock/bin/pip install -q -r requirements/dev.in
	{ echo '# Generated by `make lock` from requirements/dev.in: the exact versions of every package.'; \
	  echo '# Python 3.11. Do not edit by hand.'; \
	  .venv-lock/bin/pip freeze --exclude-editable; } > requirements/dev.lock
	{ echo '# Generated by `make lock` from requirements/runtime.in: the packages of dev.lock a deployment'; \
	  echo '# needs, at the same versions. Python 3.11. Do not edit by hand.'; \
	  .venv-lock/bin/python requirements/runtime_subset.py requirements/runtime.in requirements/dev.lock; \
	} > requirements/runtime.lock.new
	mv requirements/runtime.lock.new requirements/runtime.lock
	rm -rf .venv-lock

clean:
	rm -rf $(VENV) $(AIRFLOW_HOME) .pytest_cache .ruff_cache test-output
