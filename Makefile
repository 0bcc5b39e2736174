# Developer entry points. `make help` lists them.
SHELL := /bin/bash
.DEFAULT_GOAL := help
UV_RUN := source platform/scripts/bootstrap.sh && ensure_uv && uv run --frozen
PYTEST_PATHS := platform/tests data_pipeline/tests training_pipeline/tests model_serving/tests \
	monitoring_service/tests stream_emitting/tests tests

.PHONY: help setup up down status test test-fast lint format clean-data

help: ## list the targets
	@grep -E '^[a-zA-Z0-9_-]+:.*?## ' $(MAKEFILE_LIST) | \
		awk 'BEGIN {FS = ":.*?## "}; {printf "  make %-14s %s\n", $$1, $$2}'

setup: ## install uv, the locked Python environment and the Debian packages the platform uses
	@source platform/scripts/bootstrap.sh && ensure_python_env
	@.venv/bin/python -m mlops_platform.system_packages

up: ## bring the whole platform up (same as ./run.sh all up)
	./run.sh all up

down: ## stop every platform process (same as ./run.sh all down)
	./run.sh all down

status: ## health of every service
	./run.sh all status

test: setup ## run the whole default test suite (unit + integration against real services)
	@$(UV_RUN) pytest $(wildcard $(PYTEST_PATHS)) -m "not slow"

test-fast: setup ## unit tests only (no processes started, no databases)
	@$(UV_RUN) pytest $(wildcard $(PYTEST_PATHS)) -m "not slow and not integration"

lint: setup ## ruff and mypy over every component
	@$(UV_RUN) ruff check .
	@$(UV_RUN) mypy platform/src data_pipeline/src training_pipeline/src model_serving/src \
		monitoring_service/src stream_emitting/src

format: setup ## apply ruff's automatic fixes
	@$(UV_RUN) ruff check --fix .

clean-data: ## stop the platform and delete its local data folder (.mlops)
	./run.sh all down --volumes
