"""The docker-compose stack end to end, with the commands a user types (`make compose-e2e`).

On a machine with no engine: `./run.sh engine up`, `./run.sh engine images` (the air-gapped
bases), the project's images built by compose, `MLOPS_RUNTIME=docker ./run.sh all up` (with the
bootstrap: data -> features -> training -> champion), every compose healthcheck, predictions with
the key from the env file, every Prometheus target up, a test alert through Alertmanager to the
monitoring webhook, a killed container that comes back with nothing lost, `all status`, then
`all down --volumes` and nothing of the project left. Each phase's time and the image sizes are
printed. `make compose-smoke` runs the short path (build, up, one prediction, down).

An isolated compose project (COMPOSE_PROJECT_NAME) on free loopback ports, its own env file.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from mlops_platform.launcher.envfile import ensure_env_file
from mlops_platform.launcher.paths import REPO_ROOT
from mlops_platform.launcher.runtimes.docker import docker_environment
from mlops_testing.stack import Stack, get_json, http_status

pytestmark = [pytest.mark.compose, pytest.mark.timeout(5400)]

PHASES: dict[str, float] = {}


class ComposeStack(Stack):
    """A Stack on the docker runtime: its own compose project and env file."""

    def docker(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["docker", *args],
            env=docker_environment(self.environment),
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    @property
    def project(self) -> str:
        return str(self.extra_env["COMPOSE_PROJECT_NAME"])

    def containers(self, *flags: str) -> list[str]:
        label = f"label=com.docker.compose.project={self.project}"
        return self.docker("ps", "-q", *flags, "--filter", label).stdout.split()


def phase(name: str, action: Callable[[], Any]) -> Any:
    started = time.monotonic()
    result = action()
    PHASES[name] = time.monotonic() - started
    print(f"\n=== phase {name}: {PHASES[name]:.1f} s", flush=True)
    return result


def ok(result: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    out = (result.stdout + result.stderr)[-6000:]
    print(out, flush=True)
    assert result.returncode == 0, f"{result.args} exited {result.returncode}:\n{out}"
    return result


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ComposeStack]:
    root = tmp_path_factory.mktemp("compose")
    project = f"mlops-e2e-{uuid.uuid4().hex[:6]}"
    s = ComposeStack(
        root,
        extra_env={
            "MLOPS_RUNTIME": "docker",
            "MLOPS_BOOTSTRAP": "auto",
            "COMPOSE_PROJECT_NAME": project,
            # the shipped retraining alerts only: the test alert must reach the webhook without
            # starting a training run that would promote a second version mid-test
            "MONITORING_TRIGGER_ALERTNAMES": "DataDriftSustained,ModelQualityDegraded",
        },
    )
    ensure_env_file(REPO_ROOT / ".env.example", s.env_file)
    phase("engine up", lambda: ok(s.run("engine", "up", timeout=300)))
    phase("air-gapped base images", lambda: ok(s.run("engine", "images", timeout=1200)))
    try:
        yield s
    finally:
        s.run("all", "down", "--volumes", timeout=300)
        print("\nphase times:")
        for name, seconds in PHASES.items():
            print(f"  {name:<32} {seconds:7.1f} s")


def image_sizes(stack: ComposeStack) -> dict[str, str]:
    listing = stack.docker("images", "--format", "{{.Repository}}:{{.Tag}} {{.Size}}").stdout
    sizes = dict(line.split(" ", 1) for line in listing.splitlines() if line.startswith("mlops"))
    print("\nimage sizes:\n" + "\n".join(f"  {k:<48} {v}" for k, v in sorted(sizes.items())))
    return sizes


def predict(stack: ComposeStack, count: int = 1) -> list[dict[str, Any]]:
    answers = []
    for _ in range(count):
        request = urllib.request.Request(
            f"{stack.url('SERVING_PORT')}/v1/predict",
            data=json.dumps({"driver_ids": [1001, 1002, 1003, 1004, 1005]}).encode(),
            headers={
                "Content-Type": "application/json",
                "X-API-Key": stack.env_value("SERVING_API_KEY"),
            },
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            answers.append(json.load(response))
    return answers


def compose_health(stack: ComposeStack) -> dict[str, str]:
    """container name -> its health (or state when it has no healthcheck)."""
    ids = stack.containers("-a")
    inspect = json.loads(stack.docker("inspect", *ids).stdout) if ids else []
    return {
        c["Name"].lstrip("/"): c["State"].get("Health", {}).get("Status", c["State"]["Status"])
        for c in inspect
    }


def wait_for(what: str, condition: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if condition():
                return
        except (OSError, ValueError, KeyError):
            pass
        time.sleep(3)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def all_healthy(stack: ComposeStack) -> bool:
    states = compose_health(stack)
    print(f"  health: {states}", flush=True)
    bad = {n: s for n, s in states.items() if s not in ("healthy", "exited")}
    return bool(states) and not bad


def limits_applied(stack: ComposeStack) -> None:
    """The engine runs every container with the compose file's memory and CPU limit and rotated
    json-file logs (compose honours mem_limit, cpus and logging)."""
    ids = stack.containers("-a")
    for c in json.loads(stack.docker("inspect", *ids).stdout):
        host, name = c["HostConfig"], c["Name"]
        assert host["Memory"] > 0 and host["NanoCpus"] > 0, f"{name}: no limits"
        log = host["LogConfig"]
        assert log["Type"] == "json-file", name
        assert log["Config"] == {"max-size": "10m", "max-file": "3"}, name


def nothing_left(stack: ComposeStack) -> None:
    label = f"label=com.docker.compose.project={stack.project}"
    assert stack.containers("-a") == []
    assert stack.docker("network", "ls", "-q", "--filter", label).stdout.split() == []
    assert stack.docker("volume", "ls", "-q", "--filter", label).stdout.split() == []


def build_and_up(stack: ComposeStack) -> None:
    """`./run.sh all build` (the project's images, sizes printed), then `./run.sh all up`."""
    phase("build project images", lambda: ok(stack.run("all", "build", timeout=2400)))
    sizes = image_sizes(stack)
    assert {"mlops/serving:0.1.0", "mlops/monitoring:0.1.0"} <= set(sizes)
    phase("all up (bootstrap to a champion)", lambda: ok(stack.run("all", "up", timeout=2400)))


def down_and_nothing_left(stack: ComposeStack) -> None:
    phase("all down --volumes", lambda: ok(stack.run("all", "down", "--volumes", timeout=300)))
    nothing_left(stack)


def test_compose_smoke(stack: ComposeStack) -> None:
    """Build, up (with the bootstrap to a champion), one prediction, down."""
    build_and_up(stack)
    [answer] = phase("one prediction", lambda: predict(stack))
    assert answer["model"]["version"] == "1"
    down_and_nothing_left(stack)


def targets_up(stack: ComposeStack) -> bool:
    targets = get_json(f"{stack.url('PROMETHEUS_PORT')}/api/v1/targets")["data"]["activeTargets"]
    health = {t["labels"].get("job", "?") + "/" + t["scrapeUrl"]: t["health"] for t in targets}
    print(f"  targets: {health}", flush=True)
    return bool(health) and all(h == "up" for h in health.values())


def exec_in(stack: ComposeStack, service: str, command: str) -> str:
    [container] = stack.containers("--filter", f"label=com.docker.compose.service={service}")
    return str(ok(stack.docker("exec", container, "sh", "-c", command, timeout=300)).stdout)


def service_versions(stack: ComposeStack) -> dict[str, str]:
    """The version each running service reports (its API, or its binary in the container)."""
    prometheus = get_json(f"{stack.url('PROMETHEUS_PORT')}/api/v1/status/buildinfo")
    alertmanager = get_json(f"{stack.url('ALERTMANAGER_PORT')}/api/v2/status")
    with urllib.request.urlopen(f"{stack.url('MLFLOW_PORT')}/version", timeout=10) as r:
        mlflow = r.read().decode().strip()
    redis_info = exec_in(stack, "redis", "redis-cli info server")
    versions = {
        "prometheus": prometheus["data"]["version"],
        "alertmanager": alertmanager["versionInfo"]["version"],
        "postgres": exec_in(stack, "postgres", "psql --version").split()[2],
        "redis": redis_info.split("redis_version:", 1)[1].split()[0],
        "mlflow": mlflow,
        "airflow": exec_in(stack, "airflow-scheduler", "airflow version").split()[-1],
    }
    print("\nservice versions:\n" + "\n".join(f"  {k:<14} {v}" for k, v in versions.items()))
    return versions


def webhook_calls(stack: ComposeStack) -> float:
    text = urllib.request.urlopen(f"{stack.url('MONITORING_PORT')}/metrics", timeout=10).read()
    return sum(
        float(line.rpartition(" ")[2])
        for line in text.decode().splitlines()
        if line.startswith("monitoring_webhook_requests_total{")
    )


def fire_test_alert(stack: ComposeStack) -> None:
    alert = {
        "labels": {"alertname": "ComposeE2ETest", "action": "retrain", "service": "e2e"},
        "annotations": {"summary": "compose-e2e: a test alert for the webhook route"},
    }
    # Alertmanager answers 200 with an empty body
    assert http_status(f"{stack.url('ALERTMANAGER_PORT')}/api/v2/alerts", data=[alert]) == 200


def test_compose_e2e(stack: ComposeStack) -> None:
    """The whole user path, from images to nothing left."""
    build_and_up(stack)
    again = phase("up again (idempotent)", lambda: ok(stack.run("all", "up", timeout=900)))
    assert "* bootstrap: not needed (driver_ranking@champion is version 1)" in again.stdout
    phase("every healthcheck", lambda: wait_for("healthy", lambda: all_healthy(stack), 600))
    limits_applied(stack)
    answers = phase("20 predictions", lambda: predict(stack, 20))
    assert {a["model"]["version"] for a in answers} == {"1"}
    phase("prometheus targets up", lambda: wait_for("targets", lambda: targets_up(stack), 180))
    versions = phase("service versions", lambda: service_versions(stack))
    # the release whose semantics the promtool rule tests check (platform/prometheus)
    assert versions["prometheus"].startswith("2.42."), versions

    before = webhook_calls(stack)
    phase("test alert -> webhook", lambda: _alert_reaches_webhook(stack, before))

    phase("postgres crash (kill -9), back", lambda: _kill_and_recover(stack, "postgres"))
    assert {a["model"]["version"] for a in predict(stack, 5)} == {"1"}

    status = phase("all status", lambda: stack.run("all", "status", timeout=300))
    print(status.stdout[-4000:])
    assert status.returncode == 0, status.stdout + status.stderr

    phase("all down (volumes kept)", lambda: _down_keeps_volumes(stack))
    up = phase("all up after down", lambda: ok(stack.run("all", "up", timeout=1800)))
    assert "* bootstrap: not needed (driver_ranking@champion is version 1)" in up.stdout
    assert {a["model"]["version"] for a in predict(stack, 5)} == {"1"}

    down_and_nothing_left(stack)


def _down_keeps_volumes(stack: ComposeStack) -> None:
    label = f"label=com.docker.compose.project={stack.project}"
    volumes = set(stack.docker("volume", "ls", "-q", "--filter", label).stdout.split())
    assert volumes
    ok(stack.run("all", "down", timeout=300))
    assert stack.containers("-a") == []
    assert set(stack.docker("volume", "ls", "-q", "--filter", label).stdout.split()) == volumes


def _alert_reaches_webhook(stack: ComposeStack, before: float) -> None:
    fire_test_alert(stack)
    wait_for("the webhook call", lambda: webhook_calls(stack) > before, 120)


def _kill_and_recover(stack: ComposeStack, service: str) -> None:
    """A crash: SIGKILL to the container's main process from the host. (`docker kill` counts as
    a manual stop, which `restart: unless-stopped` rightly does not undo.)"""
    [container] = stack.containers("--filter", f"label=com.docker.compose.service={service}")
    pid = int(ok(stack.docker("inspect", "--format", "{{.State.Pid}}", container)).stdout)
    os.kill(pid, signal.SIGKILL)
    wait_for(f"{service} restarted", lambda: _restarts(stack, container) >= 1, 120)
    wait_for(f"{service} back", lambda: all_healthy(stack), 300)
    # every service's own check too: Airflow reports its metadatabase until it reconnects
    wait_for("all status ok", lambda: stack.run("all", "status", timeout=300).returncode == 0, 300)
    wait_for("serving ready", lambda: _ready(stack), 180)


def _restarts(stack: ComposeStack, container: str) -> int:
    return int(stack.docker("inspect", "--format", "{{.RestartCount}}", container).stdout)


def _ready(stack: ComposeStack) -> bool:
    with urllib.request.urlopen(f"{stack.url('SERVING_PORT')}/health/ready", timeout=5) as r:
        return int(r.status) == 200
