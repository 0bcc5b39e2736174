# Developer entry points. `make help` lists them.
SHELL := /bin/bash
.DEFAULT_GOAL := help
UV_RUN := source platform/scripts/bootstrap.sh && ensure_uv && uv run --frozen
MYPY_PATHS := common/src platform/src data_pipeline/src training_pipeline/src model_serving/src tests/support/src \
	monitoring_service/src stream_emitting/src example_project/src
PYTEST_PATHS := common/tests platform/tests data_pipeline/tests training_pipeline/tests model_serving/tests \
	monitoring_service/tests stream_emitting/tests example_project/tests tests

.PHONY: help setup up down status test test-fast fuzz e2e faults lint lint-mypy k8s-check format ci-local deploy-dry-run clean-data \
	bench-serving bench-stream bench-monitoring engine engine-down engine-status airgap-images \
	images compose-smoke compose-e2e test-all

help: ## list the targets
	@grep -E '^[a-zA-Z0-9_-]+:.*?## ' $(MAKEFILE_LIST) | \
		awk 'BEGIN {FS = ":.*?## "}; {printf "  make %-14s %s\n", $$1, $$2}'

setup: ## install uv, the locked Python environment and the Debian packages the platform uses
	@source platform/scripts/bootstrap.sh && ensure_python_env
	@.venv/bin/python -m mlops_platform.launcher.system_packages

up: ## bring the whole platform up (same as ./run.sh all up)
	./run.sh all up

down: ## stop every platform process (same as ./run.sh all down)
	./run.sh all down

status: ## health of every service
	./run.sh all status

engine: ## install (Debian docker.io, docker-compose, debootstrap) and start the project's own Docker engine
	./run.sh engine up

engine-down: ## stop the project's Docker engine by its pid and remove the networking it added
	./run.sh engine down

engine-status: ## is the project's Docker engine (or another one) running
	./run.sh engine status

airgap-images: engine ## build the Debian base, Python base and service stand-in images locally; point .env at them
	./run.sh engine images

images: airgap-images ## build the project's images with compose (each once) and print their sizes
	MLOPS_RUNTIME=docker ./run.sh all build

compose-smoke: setup ## the compose stack, short: engine, images, all up (bootstrap), one prediction, down (tests/compose)
	@$(UV_RUN) pytest tests/compose/test_stack.py::test_compose_smoke -m compose -s

compose-e2e: setup ## the compose stack end to end with the time of each phase (tests/compose; starts the engine)
	@$(UV_RUN) pytest tests/compose/test_stack.py::test_compose_e2e -m compose -s

test: setup ## run the whole default test suite (unit + integration against real services)
	@$(UV_RUN) pytest $(wildcard $(PYTEST_PATHS)) -m "not slow and not faults and not compose"

test-fast: setup ## unit tests only (no processes started, no databases)
	@$(UV_RUN) pytest $(wildcard $(PYTEST_PATHS)) -m "not slow and not integration and not faults and not compose"

fuzz: setup ## schemathesis (every check, up to 500 examples per operation and phase) and hostile bodies against both APIs
	@rm -rf .mlops/fuzz
	@export MLOPS_TEST_FUZZ_PROFILE=full MLOPS_TEST_FUZZ_REPORT_DIR=.mlops/fuzz && \
		$(UV_RUN) pytest model_serving/tests monitoring_service/tests -m fuzz
	@cat .mlops/fuzz/*.json

test-all: test compose-smoke ## make test, then the compose smoke test (needs root: starts the engine; not in .ci/run)

e2e: setup ## the closed loop end to end on the local runtime (about 12 minutes; tests/e2e)
	@$(UV_RUN) pytest tests/e2e -m slow -s

faults: setup ## kill -9, Redis stop, full event sink, PostgreSQL restart under load (tests/faults)
	@$(UV_RUN) pytest tests/faults -m faults -p no:cacheprovider

bench-serving: setup ## serving benchmark: this API vs mlflow models serve vs the in-process floor
	@command -v hey >/dev/null || echo "note: the Debian package hey gives the throughput load (else a Python client)"
	@$(UV_RUN) python bench/serving/bench_serving.py --check

bench-stream: setup ## stream consumer throughput against the broker-only baseline
	@$(UV_RUN) python bench/stream/bench_stream.py

bench-monitoring: setup ## Evidently time per window and the monitoring service's CPU and memory
	@$(UV_RUN) python bench/monitoring/bench_monitoring.py

lint: setup ## ruff format --check, ruff check, mypy (strict) over every component, the Kubernetes manifests
	@$(UV_RUN) ruff format --check .
	@$(UV_RUN) ruff check .
	@$(MAKE) --no-print-directory lint-mypy
	@$(MAKE) --no-print-directory k8s-check

lint-mypy: setup ## mypy (strict) over every component's sources
	@$(UV_RUN) mypy $(MYPY_PATHS)

k8s-check: setup ## render every Kubernetes overlay (deploy/k8s), validate it (schemas, strict) and check the policy
	@$(UV_RUN) python -m mlops_platform.cicd.k8s_check

ci-local: setup ## run .gitlab-ci.yml's lint and test jobs under gitlab-ci-local (serving and data pipeline changes)
	@$(UV_RUN) python -m mlops_platform.cicd.ci_local run

deploy-dry-run: ## print what deploys of HEAD to dev, staging (default branch) and prod (tag v0.0.0) would run
	@CI_COMMIT_REF_NAME=main deploy/deploy.sh deploy dev --dry-run && echo && \
		CI_COMMIT_REF_NAME=main deploy/deploy.sh deploy staging --dry-run && echo && \
		CI_COMMIT_REF_NAME=v0.0.0 CI_COMMIT_TAG=v0.0.0 deploy/deploy.sh deploy prod --dry-run

format: setup ## apply ruff's formatter and its automatic lint fixes
	@$(UV_RUN) ruff format .
	@$(UV_RUN) ruff check --fix .

clean-data: ## stop the platform and delete its local data folder (.mlops)
	./run.sh all down --volumes
