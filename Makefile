# Everything runs from the repo root with state under $(LAKEHOUSE_HOME).
SHELL := bash
.DEFAULT_GOAL := help

export LAKEHOUSE_HOME ?= $(CURDIR)/.lakehouse
export DAGSTER_HOME ?= $(LAKEHOUSE_HOME)/dagster
export PYTHONPATH := $(CURDIR)
UV ?= uv
RUN := $(UV) run --frozen
START ?=
DAYS ?= 3
SCALE ?= small
SCALES ?= tiny,small,medium,large
COMMA := ,

.PHONY: cluster-tables cluster-up cluster-status cluster-down cluster-clean cluster-demo test-cluster run-job-named help setup system-deps env manifest demo test test-fast dev lint format clean tables spark-conf spark-sql run screenshot benchmark prometheus stream-reset

help: ## list the targets and the variables they take
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'
	@echo
	@echo "variables (make demo DAYS=7, make run JOB=silver ARGS=..., ...):"
	@echo "  START=YYYY-MM-DD  demo: first day (default: the DAYS days that end yesterday)"
	@echo "  DAYS=3            demo: how many days to generate and run"
	@echo "  SCALE=small       demo: tiny, small, medium, large (1M events a day) or xlarge (10M)"
	@echo "  SCALES=tiny,...   benchmark: the scales to measure one day at (default: all four)"
	@echo "  SCALE=xlarge      benchmark: also one day at xlarge (about 15 minutes more)"
	@echo "  JOB=bronze|silver run: the spark_jobs module to spark-submit; ARGS: its arguments"
	@echo "  SQL=\"...\"         spark-sql: run this statement instead of opening a shell"
	@echo "  PYTEST_ARGS=...   test, test-fast: extra pytest arguments (e.g. -k reconcile)"
	@echo "  LAKEHOUSE_HOME    where all state lives (default: .lakehouse); see README for the rest"

system-deps: ## install Java and the JDBC drivers (Debian), or say what to install
	@deployment/system-deps.sh

env: ## create .venv from uv.lock
	@command -v $(UV) >/dev/null || python3 -m pip install -q uv
	@# Bytecode compiled at install: where PYTHONDONTWRITEBYTECODE is set (CI, containers) Python
	@# never caches it, and every process (each run, dbt, Spark's Python workers) compiled Dagster
	@# and dbt from source again: 5 s of a code location's 10 s load. (Here, not in pyproject's
	@# [tool.uv]: there every `uv run` would check 15,000 files again, a second each.)
	@$(UV) sync --frozen -q --compile-bytecode

manifest: env ## parse the dbt project (dagster-dbt reads target/manifest.json)
	@$(RUN) dbt parse --project-dir dbt_project --profiles-dir dbt_project -q

setup: system-deps env manifest ## everything the demo and the tests need
	@mkdir -p $(DAGSTER_HOME)
	@cp deployment/dagster.yaml $(DAGSTER_HOME)/dagster.yaml
	@# Create (or upgrade) the instance's storage once, here: runs started together from the
	@# CLI would otherwise race to create it and leave it with two schema heads.
	@out=$$($(RUN) dagster instance migrate 2>&1) || { echo "$$out"; exit 1; }
	@# The classes a run's JVM loads, archived once per Java and class path (about 35 s, once):
	@# every run's driver then maps them rather than loading them again (spark_jobs/class_archive.py).
	@$(RUN) python -m spark_jobs.class_archive

demo: setup ## generate DAYS days ending yesterday (or from START) and run the main job on them
	@$(RUN) python -m tools.demo $(if $(START),--start $(START)) --days $(DAYS) --scale $(SCALE)

test: setup ## the whole test suite: every test file on one of two workers (own lakehouse, own Spark)
	@# Real servers the tests start: PostgreSQL; headless Chromium for the UI's pictures.
	@deployment/system-deps.sh postgresql chromium prometheus prometheus-pushgateway
	@$(RUN) pytest -n 2 --dist loadfile -m "not cluster" $(PYTEST_ARGS)

test-fast: env manifest ## the tests marked fast: transforms, rules, definitions, registry, generator; no servers, no dbt run (about a minute; the dbt manifest is parsed first)
	@$(RUN) pytest -m fast $(PYTEST_ARGS)

dev: setup ## the Dagster UI (and daemon) on the demo's state: http://127.0.0.1:3000 (metrics: make prometheus, then LAKEHOUSE_PUSHGATEWAY_URL=http://127.0.0.1:9091 make dev)
	@$(RUN) dg dev --host 127.0.0.1 --port 3000

prometheus: env ## a Pushgateway (:9091) and Prometheus (:9090) with deployment/prometheus/'s rules, in the foreground, for make dev's runs to push to
	@deployment/system-deps.sh prometheus prometheus-pushgateway
	@$(RUN) python -m tools.prometheus

lint: env ## ruff check and format check, sqlfluff on the dbt models, pyright
	@$(RUN) ruff check . && $(RUN) ruff format --check . && $(RUN) sqlfluff lint dbt_project/models && $(RUN) pyright

format: env ## ruff fix and format, sqlfluff fix on the dbt models
	@$(RUN) ruff check --fix . && $(RUN) ruff format . && $(RUN) sqlfluff fix dbt_project/models

clean: ## remove generated state (.lakehouse, dbt target and logs); never source files
	rm -rf $(LAKEHOUSE_HOME) dbt_project/target dbt_project/logs .pytest_cache
	find . -name __pycache__ -type d -prune -not -path './.venv/*' -exec rm -rf {} +

tables: env ## Iceberg tables with row counts, latest snapshots and history (no JVM)
	@$(RUN) python -m tools.tables --history $(or $(HISTORY),3)

spark-conf: env
	@$(RUN) python -c "from spark_jobs.session import prepare, write_spark_defaults; from spark_jobs.settings import Settings; s = Settings.from_env(); prepare(s); write_spark_defaults(s)"

spark-sql: setup spark-conf ## a Spark SQL shell on the catalog; SQL="SHOW TABLES IN gold" runs one statement
	@SPARK_CONF_DIR=$(LAKEHOUSE_HOME)/spark-conf $(RUN) spark-sql --conf spark.sql.catalogImplementation=in-memory $(if $(SQL),-e "$$SQL")

export SQL
# The layers spark_jobs/cli.py runs (its JOBS), read here so a wrong JOB fails before any setup.
SPARK_JOBS := $(shell sed -n 's/^JOBS = (\(.*\))/\1/p' spark_jobs/cli.py | tr -d '",')

run-job-named: # before any setup: a wrong JOB fails at once, naming the valid ones
	@test -n "$(JOB)" || { echo "usage: make run JOB=<$(shell echo $(SPARK_JOBS) | tr " " "|")> ARGS=\"--date YYYY-MM-DD\""; exit 2; }
	@echo " $(SPARK_JOBS) " | grep -q " $(JOB) " || { echo "error: no Spark job '$(JOB)'; the jobs are: $(strip $(SPARK_JOBS))"; exit 2; }

run: run-job-named setup spark-conf ## spark-submit a job: make run JOB=silver ARGS="--date 2026-01-02"
	@SPARK_CONF_DIR=$(LAKEHOUSE_HOME)/spark-conf $(RUN) spark-submit spark_jobs/cli.py $(JOB) $(ARGS)

stream-reset: setup ## replay the inventory stream from scratch: drop its tables and its checkpoint together
	@$(RUN) python -m spark_jobs.cli stream-reset

cluster-up: setup ## the production stack on this box: PostgreSQL, Spark master + 2 workers, Thrift server, S3 API, Pushgateway + Prometheus, Dagster webserver + daemon (deployment/cluster.env)
	@deployment/system-deps.sh postgresql prometheus prometheus-pushgateway
	@$(RUN) python -m tools.cluster up

cluster-status: env ## each component of the stack, where it listens, and whether it answers
	@$(RUN) python -m tools.cluster status

cluster-down: env ## stop exactly what cluster-up started (data stays in $LAKEHOUSE_HOME/cluster)
	@$(RUN) python -m tools.cluster down

cluster-clean: env ## stop the stack and remove its state
	@$(RUN) python -m tools.cluster clean

cluster-tables: env ## make tables on the stack's PostgreSQL catalog (pyiceberg, no JVM)
	@$(RUN) python -m tools.cluster exec -- python -m tools.tables --history $(or $(HISTORY),3)

cluster-demo: env ## make demo's data and report on the stack: the main job launched through the daemon
	@$(RUN) python -m tools.cluster_demo $(if $(START),--start $(START)) --days $(DAYS) --scale $(SCALE)

test-cluster: setup ## the stack's test: up, 3 days through the daemon, Gold = embedded, sensors, a component down, Slack, down (own process)
	@deployment/system-deps.sh postgresql prometheus prometheus-pushgateway
	@$(RUN) pytest -m cluster tests/test_cluster.py $(PYTEST_ARGS)

screenshot: setup ## after make demo: the Silver graph and silver.orders' checks as the UI shows them (deployment/*.png)
	@deployment/system-deps.sh chromium
	@$(RUN) python -m tools.screenshot deployment/

benchmark: setup ## one day at each scale, the seed shape, DuckDB, a 5-day backfill: writes BENCHMARKS.md (SCALES=tiny,small to choose)
	@# (Not $$(or $$(SCALES),tiny,...): make splits that at its commas and took "tiny" alone.)
	@$(RUN) python -m tools.benchmark --scales $(SCALES)$(if $(filter xlarge,$(SCALE)),$(COMMA)xlarge)
