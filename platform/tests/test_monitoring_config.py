"""Checks of the monitoring configuration in platform/prometheus and platform/alertmanager.

Real tools throughout: promtool and amtool (Debian packages `prometheus` and
`prometheus-alertmanager`) and a real Alertmanager for the inhibition rule. A missing tool fails
the test with the package to install; nothing is skipped.

The StatsD mapping is checked against the exporter the local runtime runs: Debian 12 packages no
statsd_exporter, so the platform ships its own bridge (mlops_platform.observability.statsd,
run as mlops_platform.observability.statsd_bridge) that reads the same mapping file with
statsd_exporter's rules (the docker runtime runs the upstream prom/statsd-exporter image).
`test_statsd_mapping_maps_airflow_names_offline` resolves the Airflow samples with the bridge's
mapper; `test_statsd_exporter_maps_airflow_metrics` sends them to a
running bridge over UDP and reads its /metrics page.
"""

from __future__ import annotations

import contextlib
import functools
import json
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from pf_airflow_samples import DROPPED, SAMPLES, Sample, airflow_registry

from mlops_platform.observability.statsd.mapping import MetricMapper

REPO = Path(__file__).resolve().parents[2]
PROM_DIR = REPO / "platform" / "prometheus"
PROMETHEUS_YML = PROM_DIR / "prometheus.yml"
RULES_DIR = PROM_DIR / "rules"
RULE_TESTS_DIR = PROM_DIR / "tests"
TARGETS_DIR = PROM_DIR / "targets"
STATSD_MAPPING = PROM_DIR / "statsd_mapping.yml"
ALERTMANAGER_YML = REPO / "platform" / "alertmanager" / "alertmanager.yml"

RULE_FILES = sorted(RULES_DIR.glob("*.yml"))
RULE_TEST_FILES = sorted(RULE_TESTS_DIR.glob("*.yml"))

# job -> (docker target, service label) for the docker runtime's committed target files.
DOCKER_TARGETS = {
    "prometheus": (["prometheus:9090"], "prometheus"),
    "alertmanager": (["alertmanager:9093"], "alertmanager"),
    "mlflow": (["mlflow:5000"], "mlflow"),
    "airflow": (["statsd-exporter:9102"], "airflow"),
    "serving": (["serving:8172"], "serving"),
    "monitoring": (["monitoring:8309"], "monitoring"),
    "stream": (["stream-producer:8311", "stream-consumer:8312"], "stream"),
    "traffic": (["traffic:8313"], "traffic"),
}
SEVERITIES = {"critical", "warning"}

# What the local runtime runs in place of statsd_exporter (see the module docstring).
STATSD_BRIDGE = [sys.executable, "-m", "mlops_platform.observability.statsd_bridge"]


# --------------------------------------------------------------------------------------- helpers


def require_binary(*names: str, package: str) -> str:
    """Path of the first of `names` on PATH; fail (never skip) naming the package when none is."""
    for name in names:
        path = shutil.which(name)
        if path:
            return path
    pytest.fail(
        f"{' / '.join(names)} not found on PATH: install the Debian package `{package}` "
        f"(apt-get install -y {package})"
    )


def run(cmd: list[str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def http_get(url: str, timeout: float = 2.0) -> str:
    with urllib.request.urlopen(url, timeout=timeout) as resp:
        body: bytes = resp.read()
        return body.decode()


_EXPOSITION_LINE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)(?:\s+\d+)?$")
_EXPOSITION_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def parse_exposition(text: str) -> list[tuple[str, dict[str, str], float]]:
    """Samples of a Prometheus text exposition as (name, labels, value).

    (A parser of its own, not prometheus_client's: the exporter under test serves its page with
    prometheus_client, so the check reads it independently.)
    """
    samples = []
    for line in text.splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        found = _EXPOSITION_LINE.match(line)
        assert found, f"unparseable exposition line: {line!r}"
        name, raw_labels, value = found.groups()
        labels = {
            k: v.encode().decode("unicode_escape")
            for k, v in _EXPOSITION_LABEL.findall(raw_labels or "")
        }
        samples.append((name, labels, float(value)))
    return samples


def wait_http(url: str, proc: subprocess.Popen[str], deadline_s: float = 20.0) -> None:
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            _, err = proc.communicate(timeout=5)
            pytest.fail(f"{proc.args!r} exited with {proc.returncode}: {err[-2000:]}")
        try:
            http_get(url)
            return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(0.1)
    pytest.fail(f"{url} did not answer within {deadline_s}s")


def stop(proc: subprocess.Popen[str]) -> str:
    """Stop a process this test started (by its pid) and return its stderr."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
    _, err = proc.communicate(timeout=5)
    return err or ""


def amtool(*args: str) -> subprocess.CompletedProcess[str]:
    binary = require_binary("amtool", package="prometheus-alertmanager")
    return run([binary, *args])


def check_config(path: Path) -> None:
    """amtool accepts the Alertmanager configuration at `path`."""
    res = amtool("check-config", str(path))
    assert res.returncode == 0 and "SUCCESS" in res.stdout, res.stdout + res.stderr


def assert_routes(labels: list[str], receivers: str) -> None:
    """An alert with `labels` reaches exactly `receivers` (comma-separated) in alertmanager.yml."""
    res = amtool(
        "config",
        "routes",
        "test",
        f"--config.file={ALERTMANAGER_YML}",
        f"--verify.receivers={receivers}",
        *labels,
    )
    assert res.returncode == 0, res.stdout + res.stderr


@contextlib.contextmanager
def running_alertmanager(config: Path, tmp_path: Path) -> Iterator[str]:
    """A real Alertmanager with `config` on a free loopback port (its URL); stopped by pid."""
    binary = require_binary(
        "prometheus-alertmanager", "alertmanager", package="prometheus-alertmanager"
    )
    port = free_port()
    proc = subprocess.Popen(
        [
            binary,
            f"--config.file={config}",
            f"--storage.path={tmp_path / 'am-data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--cluster.listen-address=",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        wait_http(f"{url}/-/ready", proc)
        yield url
    finally:
        stop(proc)


def post_alerts(alertmanager: str, alerts: list[dict[str, Any]]) -> None:
    """Send `alerts`, starting now, to Alertmanager's API as Prometheus does."""
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    body = [{**alert, "startsAt": now} for alert in alerts]
    req = urllib.request.Request(
        f"{alertmanager}/api/v2/alerts",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(req, timeout=5) as resp:
        assert resp.status == 200


def all_alert_rules() -> list[dict[str, Any]]:
    rules: list[dict[str, Any]] = []
    for path in RULE_FILES:
        for group in load_yaml(path)["groups"]:
            rules.extend(r for r in group["rules"] if "alert" in r)
    return rules


# ------------------------------------------------------------------------------ prometheus.yml


def test_promtool_check_config_is_clean() -> None:
    promtool = require_binary("promtool", package="prometheus")
    res = run([promtool, "check", "config", str(PROMETHEUS_YML)])
    out = res.stdout + res.stderr
    assert res.returncode == 0, out
    # promtool resolves rule and file_sd paths relative to the file and warns when a file is missing
    assert "WARNING" not in out, out
    assert "SUCCESS" in out, out


def test_prometheus_config_is_relative_and_file_sd_only() -> None:
    config = load_yaml(PROMETHEUS_YML)
    assert config["global"]["scrape_interval"] == "15s"
    assert config["global"]["evaluation_interval"] == "15s"
    assert config["rule_files"] == ["rules/*.yml"]

    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert set(jobs) == set(DOCKER_TARGETS)
    for name, job in jobs.items():
        assert "static_configs" not in job, f"job {name}: targets must come from file_sd"
        assert job["file_sd_configs"] == [
            {"files": [f"targets/{name}.json"], "refresh_interval": "30s"}
        ], name
        assert job.get("metrics_path", "/metrics") == "/metrics", name

    managers = config["alerting"]["alertmanagers"]
    assert [m["file_sd_configs"][0]["files"] for m in managers] == [["targets/alertmanager.json"]]


def test_target_files_have_the_expected_shape() -> None:
    files = {p.stem: p for p in TARGETS_DIR.glob("*.json")}
    assert set(files) == set(DOCKER_TARGETS), "one target file per scrape job"
    for job, path in files.items():
        groups = json.loads(path.read_text())
        assert isinstance(groups, list) and groups, path
        for group in groups:
            assert set(group) == {"targets", "labels"}, path
            assert isinstance(group["targets"], list) and group["targets"], path
            for target in group["targets"]:
                assert re.fullmatch(r"[a-z0-9.-]+:\d{1,5}", target), (path, target)
            assert isinstance(group["labels"], dict), path
            assert all(isinstance(v, str) for v in group["labels"].values()), path
        expected_targets, expected_service = DOCKER_TARGETS[job]
        assert groups == [{"targets": expected_targets, "labels": {"service": expected_service}}]


# ----------------------------------------------------------------------------------- rules


def test_promtool_check_rules() -> None:
    promtool = require_binary("promtool", package="prometheus")
    assert RULE_FILES, f"no rule files in {RULES_DIR}"
    res = run([promtool, "check", "rules", *map(str, RULE_FILES)])
    assert res.returncode == 0, res.stdout + res.stderr
    assert "SUCCESS" in res.stdout, res.stdout


@pytest.mark.parametrize("test_file", RULE_TEST_FILES, ids=lambda p: p.name)
def test_promtool_rule_unit_tests(test_file: Path) -> None:
    promtool = require_binary("promtool", package="prometheus")
    res = run([promtool, "test", "rules", str(test_file)])
    assert res.returncode == 0, res.stdout + res.stderr
    assert "SUCCESS" in res.stdout, res.stdout


def test_rule_unit_test_files_exist() -> None:
    assert RULE_TEST_FILES, f"no promtool test files in {RULE_TESTS_DIR}"


def test_every_alert_is_documented_with_a_runbook() -> None:
    alerts = all_alert_rules()
    assert {a["alert"] for a in alerts} >= {"TargetDown", "AirflowDagRunFailed"}
    for alert in alerts:
        name = alert["alert"]
        assert alert.get("labels", {}).get("severity") in SEVERITIES, name
        annotations = alert.get("annotations", {})
        for key in ("summary", "description", "runbook_url"):
            assert str(annotations.get(key, "")).strip(), f"{name}: annotation {key} is missing"
        runbook = REPO / annotations["runbook_url"]
        assert runbook.is_file(), f"{name}: runbook {annotations['runbook_url']} does not exist"
        assert name in runbook.read_text(), f"{name}: runbook {runbook} does not mention it"


def test_every_alert_has_firing_and_quiet_unit_tests() -> None:
    fires: set[str] = set()
    quiet: set[str] = set()
    for path in RULE_TEST_FILES:
        for case in load_yaml(path)["tests"]:
            for check in case.get("alert_rule_test", []):
                (fires if check.get("exp_alerts") else quiet).add(check["alertname"])
    names = {a["alert"] for a in all_alert_rules()}
    assert names <= fires, f"alerts never shown firing: {sorted(names - fires)}"
    assert names <= quiet, f"alerts never shown quiet: {sorted(names - quiet)}"


# ----------------------------------------------------------------------------- alertmanager


def test_amtool_check_config() -> None:
    check_config(ALERTMANAGER_YML)


@pytest.mark.parametrize(
    ("labels", "receiver"),
    [
        (["alertname=TargetDown", "severity=critical", "service=mlflow"], "critical"),
        (["alertname=AirflowDagRunFailed", "severity=warning", "service=airflow"], "default"),
        (["alertname=Unknown"], "default"),
    ],
)
def test_alertmanager_routes_by_severity(labels: list[str], receiver: str) -> None:
    assert_routes(labels, receiver)


def test_alertmanager_groups_by_alertname_and_service() -> None:
    route = load_yaml(ALERTMANAGER_YML)["route"]
    assert route["receiver"] == "default"
    assert route["group_by"] == ["alertname", "service"]


@pytest.fixture
def alertmanager(tmp_path: Path) -> Iterator[str]:
    with running_alertmanager(ALERTMANAGER_YML, tmp_path) as url:
        yield url


@pytest.mark.integration
def test_alertmanager_inhibits_warnings_of_a_down_service(alertmanager: str) -> None:
    post_alerts(
        alertmanager,
        [
            {"labels": {"alertname": "TargetDown", "severity": "critical", "service": "airflow"}},
            {
                "labels": {
                    "alertname": "AirflowDagRunFailed",
                    "severity": "warning",
                    "service": "airflow",
                    "dag_id": "training",
                }
            },
            {"labels": {"alertname": "SomeWarning", "severity": "warning", "service": "serving"}},
        ],
    )
    deadline = time.monotonic() + 10
    states: dict[str, str] = {}
    while time.monotonic() < deadline:
        got = json.loads(http_get(f"{alertmanager}/api/v2/alerts"))
        states = {a["labels"]["alertname"]: a["status"]["state"] for a in got}
        if len(states) == 3 and states["AirflowDagRunFailed"] == "suppressed":
            break
        time.sleep(0.2)
    assert states == {
        "TargetDown": "active",
        "AirflowDagRunFailed": "suppressed",  # same service as the TargetDown
        "SomeWarning": "active",  # another service: not inhibited
    }


# --------------------------------------------------------------- rendered alertmanager.yml

SECRET = "test-webhook-secret-0123456789"


def rendered(
    tmp_path: Path, env: str, webhook_url: str | None, webhook_secret: str | None = None
) -> Path:
    """The local runtime's rendering (URL and secret given) or the docker runtime's (None)."""
    from mlops_platform.observability import alerting

    tmp_path.mkdir(parents=True, exist_ok=True)
    env_file = tmp_path / "test.env"
    env_file.write_text(env)
    config = alerting.render(
        alerting.load_base(ALERTMANAGER_YML),
        alerting.AlertingSettings.load(env_file),
        webhook_url=webhook_url,
        webhook_secret=webhook_secret,
    )
    return alerting.write_config(
        config, tmp_path / "alertmanager.yml", private=webhook_secret is not None
    )


def receiver(config: dict[str, Any], name: str) -> dict[str, Any]:
    found: dict[str, Any] = next(r for r in config["receivers"] if r["name"] == name)
    return found


@pytest.mark.parametrize(
    ("labels", "receivers"),
    [
        (
            ["alertname=ModelQualityDegraded", "action=retrain", "severity=warning"],
            "retrain,default",
        ),
        (
            ["alertname=DataDriftSustained", "action=retrain", "severity=critical"],
            "retrain,critical",
        ),
        (["alertname=ServingHighLatency", "severity=warning", "service=serving"], "default"),
    ],
)
def test_retrain_alerts_reach_the_trigger_and_people(labels: list[str], receivers: str) -> None:
    assert_routes(labels, receivers)


def test_rendering_for_the_local_runtime_is_valid_and_keeps_secrets_private(
    tmp_path: Path,
) -> None:
    url = "http://127.0.0.1:18309/v1/retraining/webhook"
    path = rendered(tmp_path, "", url, SECRET)
    assert path.stat().st_mode & 0o777 == 0o600
    config = load_yaml(path)
    [hook] = receiver(config, "retrain")["webhook_configs"]
    assert hook["url"] == url
    assert hook["http_config"] == {"authorization": {"type": "Bearer", "credentials": SECRET}}
    # nothing else changed, and no delivery integration without its variables
    assert config["route"] == load_yaml(ALERTMANAGER_YML)["route"]
    for name in ("default", "critical"):
        assert set(receiver(config, name)) == {"name"}
    check_config(path)


DELIVERY_ENV = (
    "ALERT_SLACK_WEBHOOK_URL=https://hooks.slack.example/services/T0/B0/XYZ\n"
    "ALERT_SLACK_CHANNEL=#oncall\n"
    "ALERT_EMAIL_TO=oncall@example.org\n"
    "ALERT_SMTP_SMARTHOST=smtp.example.org:587\n"
    "ALERT_SMTP_USERNAME=alerts\n"
    "ALERT_SMTP_AUTH_PASS=smtp-pass\n"
)


def test_slack_and_email_receivers_come_from_the_env_file(tmp_path: Path) -> None:

    local = rendered(tmp_path / "local", DELIVERY_ENV, "http://127.0.0.1:1/x", SECRET)
    config = load_yaml(local)
    for name in ("critical", "default"):
        [slack] = receiver(config, name)["slack_configs"]
        assert slack["api_url"].endswith("/XYZ") and slack["channel"] == "#oncall"
    [email] = receiver(config, "critical")["email_configs"]
    assert email["to"] == "oncall@example.org" and email["auth_password"] == "smtp-pass"
    assert "email_configs" not in receiver(config, "default")
    check_config(local)
    with pytest.raises(ValueError, match="ALERT_SMTP_SMARTHOST"):
        rendered(tmp_path / "bad", "ALERT_EMAIL_TO=oncall@example.org\n", None)


def test_the_docker_rendering_holds_no_secret(tmp_path: Path) -> None:
    path = rendered(tmp_path, DELIVERY_ENV, None)
    text = path.read_text()
    assert "XYZ" not in text and "smtp-pass" not in text
    assert path.stat().st_mode & 0o777 == 0o644  # the container's own user reads it
    config = load_yaml(path)
    # the committed webhook (URL and compose secret file) stays
    assert receiver(config, "retrain") == receiver(load_yaml(ALERTMANAGER_YML), "retrain")
    [slack] = receiver(config, "critical")["slack_configs"]
    assert slack["api_url_file"] == "/run/secrets/alert_slack_webhook_url"
    [email] = receiver(config, "critical")["email_configs"]
    assert email["auth_password_file"] == "/run/secrets/alert_smtp_auth_pass"
    check_config(path)
    compose = load_yaml(REPO / "docker-compose.yml")
    mounted = {
        Path(f).name
        for f in (
            slack["api_url_file"],
            email["auth_password_file"],
            receiver(config, "retrain")["webhook_configs"][0]["http_config"]["authorization"][
                "credentials_file"
            ],
        )
    }
    assert mounted <= set(compose["services"]["alertmanager"]["secrets"]) <= set(compose["secrets"])


@pytest.mark.integration
def test_alertmanager_delivers_retrain_alerts_with_the_bearer_token(tmp_path: Path) -> None:
    """A real Alertmanager with the rendered config; a loopback HTTP server stands in for the
    monitoring service's trigger (tested against Alertmanager in monitoring_service's tests)."""
    import http.server
    import threading

    got: list[tuple[str | None, dict[str, Any]]] = []

    class Receiver(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            got.append((self.headers.get("Authorization"), body))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    path = rendered(
        tmp_path, "", f"http://127.0.0.1:{server.server_port}/v1/retraining/webhook", SECRET
    )
    try:
        with running_alertmanager(path, tmp_path) as url:
            post_alerts(
                url,
                [
                    {
                        "labels": {
                            "alertname": "ModelQualityDegraded",
                            "action": "retrain",
                            "severity": "warning",
                            "service": "monitoring",
                            "model_version": "3",
                        },
                        "annotations": {"summary": "quality"},
                    },
                    {
                        "labels": {
                            "alertname": "ServingHighLatency",
                            "severity": "warning",
                            "service": "serving",
                        },
                    },
                ],
            )
            deadline = time.monotonic() + 40  # group_wait of the retrain route: 10 s
            while not got and time.monotonic() < deadline:
                time.sleep(0.2)
    finally:
        server.shutdown()
    assert got, "Alertmanager sent nothing to the retraining webhook"
    auth, payload = got[0]
    assert auth == f"Bearer {SECRET}"
    assert payload["receiver"] == "retrain" and payload["status"] == "firing"
    assert [a["labels"]["alertname"] for a in payload["alerts"]] == ["ModelQualityDegraded"]


# ---------------------------------------------------------------------------- statsd mapping


def family(sample_name: str) -> str:
    """The metric a histogram's exposition sample belongs to."""
    return re.sub(r"_(bucket|sum|count)$", "", sample_name)


def sample_name_and_value(sample: Sample) -> tuple[str, float]:
    """The exposition sample that shows `sample` arrived, and its expected value."""
    if sample.statsd_type == "ms":
        # statsd_exporter turns milliseconds into seconds
        return sample.expected_name + "_sum", sample.value / 1000
    return sample.expected_name, sample.value


def test_samples_follow_airflows_registry() -> None:
    """Every sample is a metric of the installed Airflow, with exactly its name variables."""
    registry = airflow_registry()
    for sample in SAMPLES:
        assert sample.metric in registry, f"Airflow no longer emits {sample.metric}"
        entry = registry[sample.metric]
        legacy = entry.get("legacy_name", "-")
        if legacy != "-":
            assert set(sample.variables) == set(entry.get("name_variables", [])), sample.metric
        expected_type = {"c": "counter", "g": "gauge", "ms": "timer"}[sample.statsd_type]
        assert entry["type"] == expected_type, sample.metric
    # the names the alerts and the issue depend on, spelled as Airflow spells them
    by_metric = {s.metric: s.statsd_name(registry) for s in SAMPLES}
    assert by_metric["dagrun.duration.failed"] == "airflow.dagrun.duration.failed.training"
    assert by_metric["dagrun.duration.success"] == "airflow.dagrun.duration.success.training"
    assert by_metric["ti_failures"] == "airflow.ti_failures"
    assert by_metric["scheduler_heartbeat"] == "airflow.scheduler_heartbeat"
    assert by_metric["dag_processing.import_errors"] == "airflow.dag_processing.import_errors"


def mapping_config() -> dict[str, Any]:
    config: dict[str, Any] = load_yaml(STATSD_MAPPING)
    return config


def test_statsd_mapping_is_valid() -> None:
    """statsd_exporter's own validation of a mapping file (pkg/mapper: glob match lines, metric
    and label names, `$n` within the captures, increasing buckets) is the bridge's: it loads the
    file or says what is wrong. What the exporters would accept but get wrong is checked here."""
    assert mapping_config()["defaults"]["observer_type"] == "histogram"
    mappings = statsd_mapper().mappings
    assert mappings, "no mappings"
    seen: dict[str, tuple[str, frozenset[str]]] = {}
    for m in mappings:
        if m.regex is not None and m.action != "drop":
            assert m.match.startswith("^") and m.match.endswith("$"), (
                f"{m.describe()}: statsd_exporter searches regexes unanchored; anchor them"
            )
        if m.action == "drop":
            continue
        # one metric name = one help text and one label set, or the exporter refuses samples
        key = (m.help or "", frozenset(name for name, _ in m.labels))
        assert seen.setdefault(m.name, key) == key, f"{m.describe()}: conflicts on {m.name}"
    last = mappings[-1]
    assert (last.match, last.regex is not None, last.action) == (".", True, "drop")


@functools.cache
def statsd_mapper() -> MetricMapper:
    """The mapping file as the bridge reads it (the bridge's own mapper, not a copy of it)."""
    return MetricMapper.from_file(STATSD_MAPPING)


def matching_mapping(name: str) -> int | None:
    """Index of the mapping the exporter applies to `name`."""
    result = statsd_mapper().lookup(name)
    return None if result is None else result.mapping.index


def resolve_offline(name: str) -> tuple[str, dict[str, str]] | None:
    """(metric name, labels) the exporter exports for `name`; None when it is dropped."""
    result = statsd_mapper().lookup(name)
    if result is None or result.mapping.action == "drop":
        return None
    return result.name, dict(result.labels)


def test_statsd_mapping_loads_cleanly_in_the_bridge() -> None:
    """The bridge accepts the file and finds no rule that an earlier rule shadows."""
    assert statsd_mapper().warnings == []


def test_statsd_mapping_maps_airflow_names_offline() -> None:
    """The samples through the bridge's mapper, without a process (see the module docstring)."""
    registry = airflow_registry()
    for sample in SAMPLES:
        name = sample.statsd_name(registry)
        assert resolve_offline(name) == (
            sample.expected_name,
            sample.expected_labels,
        ), name
    for name in DROPPED:
        assert resolve_offline(name) is None, f"{name} should be dropped"


def test_every_statsd_mapping_is_exercised_by_a_sample() -> None:
    """So the integration test below checks every rule against a running exporter."""
    registry = airflow_registry()
    hit = {matching_mapping(s.statsd_name(registry)) for s in SAMPLES}
    for i, m in enumerate(mapping_config()["mappings"]):
        if m.get("action") != "drop":
            assert i in hit, f"no sample for mapping {i} ({m['match']})"


@pytest.fixture
def statsd_exporter() -> Iterator[tuple[int, str]]:
    """The platform's StatsD bridge on loopback, free ports, this repo's mapping; stopped by pid.

    Started with upstream statsd_exporter's flags, as the local runtime starts it.
    """
    http_port = free_port()
    udp_port = free_port(socket.SOCK_DGRAM)
    proc = subprocess.Popen(
        [
            *STATSD_BRIDGE,
            f"--web.listen-address=127.0.0.1:{http_port}",
            f"--statsd.listen-udp=127.0.0.1:{udp_port}",
            "--statsd.listen-tcp=",
            f"--statsd.mapping-config={STATSD_MAPPING}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    log = ""
    try:
        wait_http(f"http://127.0.0.1:{http_port}/metrics", proc)
        yield udp_port, f"http://127.0.0.1:{http_port}/metrics"
    finally:
        log = stop(proc)
    assert "will never be matched" not in log, log
    assert '"level": "error"' not in log, log


@pytest.mark.integration
def test_statsd_exporter_maps_airflow_metrics(statsd_exporter: tuple[int, str]) -> None:
    udp_port, metrics_url = statsd_exporter
    registry = airflow_registry()
    lines = [f"{s.statsd_name(registry)}:{s.value:g}|{s.statsd_type}" for s in SAMPLES]
    lines += [f"{name}:1|c" for name in DROPPED]
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        for line in lines:  # one datagram per line, as the Python statsd client sends them
            sock.sendto(line.encode(), ("127.0.0.1", udp_port))

    # UDP is processed asynchronously: poll until every sample shows up (or time runs out)
    exposed: list[tuple[str, dict[str, str], float]] = []
    missing: list[str] = ["nothing scraped yet"]
    deadline = time.monotonic() + 15
    while missing and time.monotonic() < deadline:
        time.sleep(0.2)
        exposed = parse_exposition(http_get(metrics_url))
        missing = []
        for sample in SAMPLES:
            key, want = sample_name_and_value(sample)
            got = [
                value
                for name, labels, value in exposed
                if name == key and labels == sample.expected_labels
            ]
            if got != [pytest.approx(want)]:
                missing.append(f"{key}{sample.expected_labels} = {want:g}, got {got}")
    assert not missing, "\n".join(missing)

    exported = {family(name) for name, _, _ in exposed if name.startswith("airflow")}
    expected = {s.expected_name for s in SAMPLES}
    assert exported == expected, f"unexpected: {sorted(exported - expected)}"
