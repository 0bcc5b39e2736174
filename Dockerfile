# The project's five images for the docker runtime, one multi-stage build (ADR "one Dockerfile"):
# one shared builder (uv and the workspace's pyproject files), one locked virtual environment per
# image, one shared runtime base (user, data folder), and one final target per image:
#
#   target       image              runs (docker-compose.yml services)
#   airflow      mlops/airflow      airflow-init, -api-server, -scheduler, -dag-processor, -triggerer
#   mlflow       mlops/mlflow       mlflow (the tracking server, without Airflow)
#   serving      mlops/serving      serving (`model-serving serve`)
#   monitoring   mlops/monitoring   monitoring (`monitoring-service serve`)
#   stream       mlops/stream       stream-producer, stream-consumer, traffic
#
# Build context: the repository root; pick the image with --target:
#   docker build --target serving -t mlops/serving:0.1.0 .
# (docker-compose.yml sets the target per service; `make images` builds them all.)
#
# Everything is installed from the workspace lock (uv.lock) with `uv sync --frozen --no-dev`: the
# images get exactly the versions the tests ran against. No secret is baked in: database URLs,
# keys and passwords come from the environment at run time. No `# syntax=` line: BuildKit would
# fetch that frontend from Docker Hub, and the build must work offline.

# The base image: the official one by default; air-gapped hosts pass a local stand-in
# (docker-compose.yml: PYTHON_BASE_IMAGE, written by ./run.sh engine images).
ARG PYTHON_BASE_IMAGE=python:3.11.17-slim-bookworm

# --- builder: uv and the workspace's metadata (not shipped) ----------------------------------
FROM ${PYTHON_BASE_IMAGE} AS builder

# binutils: `strip` for slim-venv. Versions follow the bookworm mirror of the base image.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends binutils \
    && rm -rf /var/lib/apt/lists/*

# with-build-ca: pip and uv trust the extra CA bundle of a TLS-intercepting proxy when the build
# gets one as the BuildKit secret build_ca (compose: MLOPS_BUILD_CA_BUNDLE); it never lands in a
# layer, and this stage is not shipped. slim-venv: drops what a runtime never loads.
COPY platform/docker/with-build-ca platform/docker/slim-venv /usr/local/bin/

# uv from PyPI, pinned to the version that wrote uv.lock.
ARG UV_VERSION=0.13.9
RUN --mount=type=secret,id=build_ca \
    with-build-ca pip install --no-cache-dir "uv==${UV_VERSION}"

ENV UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    UV_PYTHON=/usr/local/bin/python3.11 \
    UV_PROJECT_ENVIRONMENT=/opt/venv

WORKDIR /src

# uv needs every workspace member's pyproject.toml to read the workspace; the images install the
# members from their sources as regular (non-editable) packages, so the runtime needs no /src.
COPY pyproject.toml uv.lock ./
COPY common/pyproject.toml common/
COPY platform/pyproject.toml platform/
COPY data_pipeline/pyproject.toml data_pipeline/
COPY training_pipeline/pyproject.toml training_pipeline/
COPY model_serving/pyproject.toml model_serving/
COPY monitoring_service/pyproject.toml monitoring_service/
COPY stream_emitting/pyproject.toml stream_emitting/
COPY example_project/pyproject.toml example_project/
COPY tests/support/pyproject.toml tests/support/
COPY common/src common/src
COPY platform/src platform/src
COPY data_pipeline/src data_pipeline/src
COPY training_pipeline/src training_pipeline/src
COPY model_serving/src model_serving/src
COPY monitoring_service/src monitoring_service/src
COPY stream_emitting/src stream_emitting/src
COPY example_project/src example_project/src

# --- one locked environment per image ---------------------------------------------------------
# One `uv sync` each, from the shared download cache (a cache mount: a rebuild after a source
# change reinstalls from it, it does not download again).

# Airflow: with the LocalExecutor, DAG tasks run inside the scheduler container, so it carries the
# pipelines the DAGs call and the example project (the example_source DAG's step, and the source
# `example` the pipelines read by default). Not slimmed: Airflow's own providers load lazily.
FROM builder AS airflow-venv
RUN --mount=type=cache,target=/root/.cache/uv --mount=type=secret,id=build_ca \
    with-build-ca uv sync --frozen --no-dev --no-editable \
        --package mlops-platform \
        --package data-pipeline \
        --package training-pipeline \
        --package model-serving \
        --package mlops-example-project

# Stream: the producer (stream-emitting) and the consumer (data-pipeline, which pushes to Feast);
# stream-emitting brings the example project (its dispatcher runs from this image too).
FROM builder AS stream-venv
RUN --mount=type=cache,target=/root/.cache/uv --mount=type=secret,id=build_ca \
    with-build-ca uv sync --frozen --no-dev --no-editable \
        --package stream-emitting \
        --package data-pipeline

# The slimmed environments (slim-venv): bytecode is compiled for what the service imports (the
# script's import check), not for every module of every package.
FROM builder AS slim-builder
ENV UV_COMPILE_BYTECODE=0

# MLflow: the root's mlflow-server dependency group (server, psycopg2, Prometheus exporter, S3
# client), no workspace member: the launcher, mlops-platform, would bring Airflow.
FROM slim-builder AS mlflow-venv
RUN --mount=type=cache,target=/root/.cache/uv --mount=type=secret,id=build_ca \
    with-build-ca uv sync --frozen --no-dev --no-install-workspace --only-group mlflow-server \
    && slim-venv /opt/venv mlflow.server

# Serving: Feast's web UI, mypy (a type-checking plugin Feast declares) and Arrow Flight (the
# transport of Feast's remote stores, not linked by pyarrow itself) are never loaded.
FROM slim-builder AS serving-venv
RUN --mount=type=cache,target=/root/.cache/uv --mount=type=secret,id=build_ca \
    with-build-ca uv sync --frozen --no-dev --no-editable --package model-serving \
    && SLIM_DROP=mypy SLIM_PRUNE="feast/ui pyarrow/*flight*" slim-venv /opt/venv \
        model_serving.app model_serving.features feast.feature_store \
        feast.infra.key_encoding_utils feast.infra.online_stores.redis feast.infra.registry.sql \
        mlflow.sklearn sklearn.ensemble pyarrow.parquet

# Monitoring: without plotly's JupyterLab extension (Evidently renders with plotly itself) and
# Arrow Flight.
FROM slim-builder AS monitoring-venv
RUN --mount=type=cache,target=/root/.cache/uv --mount=type=secret,id=build_ca \
    with-build-ca uv sync --frozen --no-dev --no-editable --package monitoring-service \
    && SLIM_PRUNE="jupyterlab_plotly pyarrow/*flight*" slim-venv /opt/venv \
        monitoring_service.app monitoring_service.drift evidently.presets pyarrow.parquet

# --- the shared runtime base ------------------------------------------------------------------
# The platform's uid and gid (50000, the upstream Airflow image's): the data volume (offline
# store files) is shared between the Airflow, stream and serving containers.
FROM ${PYTHON_BASE_IMAGE} AS runtime
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    MLOPS_DATA_DIR=/opt/mlops/data
RUN groupadd --system --gid 50000 mlops \
    && useradd --system --uid 50000 --gid mlops --home-dir /opt/mlops \
        --no-create-home --shell /usr/sbin/nologin mlops \
    && mkdir -p /opt/mlops/data \
    && chown -R mlops:mlops /opt/mlops

# --- airflow: api-server, scheduler, dag-processor, triggerer, `airflow db migrate` -------------
FROM runtime AS airflow
ENV AIRFLOW_HOME=/opt/airflow \
    MLOPS_FEATURE_REPO=/opt/airflow/feature_repo
RUN mkdir -p /opt/airflow/dags /opt/airflow/logs /opt/airflow/auth \
    && chown -R mlops:mlops /opt/airflow
COPY --from=airflow-venv /opt/venv /opt/venv
# The Feast feature repository (the one definition of the features), which the data pipeline's
# `feast apply` task reads: the installed package has no checkout to find it in.
COPY data_pipeline/feature_repo /opt/airflow/feature_repo
USER 50000:50000
WORKDIR /opt/airflow
EXPOSE 8080
# The default role is the api-server; docker-compose.yml overrides the check for the others.
HEALTHCHECK --interval=30s --timeout=10s --start-period=90s --retries=5 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/api/v2/monitor/health', timeout=8)"]
ENTRYPOINT ["airflow"]
CMD ["api-server"]

# --- mlflow: the tracking server (UI, REST API, registry, proxied artifact store) ---------------
# The backend store is PostgreSQL through psycopg2 (compose passes a postgresql+psycopg2:// URL:
# SQLAlchemy 2.1 maps plain postgresql:// to psycopg 3). Its own uid (10001), as before.
FROM runtime AS mlflow
ENV MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false
RUN groupadd --system --gid 10001 mlflow \
    && useradd --system --uid 10001 --gid mlflow --home-dir /mlflow \
        --no-create-home --shell /usr/sbin/nologin mlflow \
    && mkdir -p /mlflow/artifacts \
    && chown -R mlflow:mlflow /mlflow
COPY --from=mlflow-venv /opt/venv /opt/venv
USER 10001:10001
WORKDIR /mlflow
EXPOSE 5000
HEALTHCHECK --interval=30s --timeout=10s --start-period=60s --retries=5 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:5000/health', timeout=8)"]
ENTRYPOINT ["mlflow"]
# A lean single-worker server with artifacts served through it; docker-compose.yml passes the
# full command (backend store, allowed hosts, Prometheus exporter).
CMD ["server", "--host", "0.0.0.0", "--port", "5000", "--workers", "1", \
     "--serve-artifacts", "--artifacts-destination", "/mlflow/artifacts"]

# --- the two FastAPI services (serving, monitoring): uvicorn with one worker ---------------------
# One OpenMP/BLAS thread per process: HistGradientBoosting's default thread count collapses
# throughput when processes share a small machine, and Evidently's statistics share it too.
FROM runtime AS api
ENV OMP_NUM_THREADS=1 \
    OPENBLAS_NUM_THREADS=1 \
    MKL_NUM_THREADS=1 \
    MLOPS_BIND_HOST=0.0.0.0
USER 50000:50000
WORKDIR /opt/mlops
# the API's own port variable: SERVING_PORT or MONITORING_PORT (the image sets one)
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=5 \
    CMD ["python", "-c", "import os, urllib.request; port = os.environ.get('SERVING_PORT') or os.environ['MONITORING_PORT']; urllib.request.urlopen('http://127.0.0.1:%s/health/live' % port, timeout=4)"]

# serving: the prediction API (`model-serving serve`)
FROM api AS serving
ENV SERVING_PORT=8172
COPY --from=serving-venv /opt/venv /opt/venv
EXPOSE 8172
ENTRYPOINT ["model-serving"]
CMD ["serve"]

# monitoring: drift and quality (Evidently), the alert webhook (`monitoring-service serve`)
FROM api AS monitoring
COPY --from=monitoring-venv /opt/venv /opt/venv
ENV MONITORING_PORT=8309
EXPOSE 8309
ENTRYPOINT ["monitoring-service"]
CMD ["serve"]

# --- stream: the driver stats producer and the consumer (and the example dispatcher) ------------
FROM runtime AS stream
ENV MLOPS_FEATURE_REPO=/opt/stream/feature_repo
RUN mkdir -p /opt/stream && chown mlops:mlops /opt/stream
COPY --from=stream-venv /opt/venv /opt/venv
# The Feast feature repository (the one definition of the features), read by the consumer.
COPY data_pipeline/feature_repo /opt/stream/feature_repo
USER 50000:50000
WORKDIR /opt/stream
# producer /metrics 8311, consumer /metrics 8312 (MLOPS_STREAM_*_METRICS_PORT)
EXPOSE 8311 8312
HEALTHCHECK --interval=30s --timeout=10s --start-period=30s --retries=5 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/metrics' % os.environ.get('MLOPS_STREAM_PRODUCER_METRICS_PORT', '8311'), timeout=8)"]
CMD ["stream-emitting", "produce"]
