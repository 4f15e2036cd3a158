# Everything runs from the repo root with state under $(LAKEHOUSE_HOME).
SHELL := bash
.DEFAULT_GOAL := help

export LAKEHOUSE_HOME ?= $(CURDIR)/.lakehouse
export DAGSTER_HOME ?= $(LAKEHOUSE_HOME)/dagster
export PYTHONPATH := $(CURDIR)
UV ?= uv
RUN := $(UV) run --frozen
START ?= 2026-01-01
DAYS ?= 3
SCALE ?= small

.PHONY: help setup system-deps env manifest demo test dev lint format clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

system-deps: ## install Java and the JDBC drivers (Debian), or say what to install
	@deployment/system-deps.sh

env: ## create .venv from uv.lock
	@command -v $(UV) >/dev/null || python3 -m pip install -q uv
	@$(UV) sync --frozen -q

manifest: env ## parse the dbt project (dagster-dbt reads target/manifest.json)
	@$(RUN) dbt parse --project-dir dbt_project --profiles-dir dbt_project -q

setup: system-deps env manifest ## everything the demo and the tests need
	@mkdir -p $(DAGSTER_HOME)
	@cp -n deployment/dagster.yaml $(DAGSTER_HOME)/dagster.yaml 2>/dev/null || true

demo: setup ## generate $(DAYS) days and run the main job over them through Dagster
	@$(RUN) python -m lakehouse_assets.demo --start $(START) --days $(DAYS) --scale $(SCALE)

test: setup ## run the test suite
	@$(RUN) pytest $(PYTEST_ARGS)

dev: setup ## the Dagster UI (and daemon) on the demo's state: http://127.0.0.1:3000
	@$(RUN) dagster dev -w workspace.yaml -h 127.0.0.1 -p 3000

lint: env ## ruff check and format check
	@$(RUN) ruff check . && $(RUN) ruff format --check .

format: env ## ruff fix and format
	@$(RUN) ruff check --fix . && $(RUN) ruff format .

clean: ## remove generated state (.lakehouse, dbt target and logs); never source files
	rm -rf $(LAKEHOUSE_HOME) dbt_project/target dbt_project/logs .pytest_cache
	find . -name __pycache__ -type d -prune -not -path './.venv/*' -exec rm -rf {} +
