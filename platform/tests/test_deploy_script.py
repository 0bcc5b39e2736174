"""deploy/deploy.sh (mlops_platform.cicd.deploy): the dry run of every environment, the ref policy,
the model commands, the settings files, and one real run against this machine.

The real run uses DEPLOY_TRANSPORT=local (the "host" is a folder in tmp_path, as with a GitLab
shell runner on the target host), a fake `docker` on PATH that records its arguments (no engine
runs here), and a small HTTP server on a loopback port standing in for the stack's health
endpoints and the prediction API. Everything else is real: rsync, sh, curl, git."""

from __future__ import annotations

import http.server
import json
import os
import re
import shlex
import subprocess
import sys
import threading
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest
import yaml

from mlops_platform.cicd.deploy import (
    COMPONENTS,
    DEV_MEMBERS,
    ENVIRONMENTS,
    IMAGES,
    SHARED_PATHS,
    SYNC_PATHS,
    image_revision,
    read_env_file,
)
from mlops_platform.launcher.envfile import SECRET_KEY_PATTERN
from mlops_testing.http import send_json

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "deploy" / "deploy.sh"
REGISTRY = "registry.example.com"
PREFIX = f"{REGISTRY}/mlops/platform"
PASSWORD = "registry-password-must-not-leak"
HEAD = subprocess.run(
    ["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True, text=True, check=True
).stdout.strip()
COMPOSE_PROFILES = {
    profile
    for service in yaml.safe_load((REPO / "docker-compose.yml").read_text())["services"].values()
    for profile in service.get("profiles", [])
}


def ci_env(**overrides: str) -> dict[str, str]:
    """What a GitLab deploy job of the default branch has (plus the process basics)."""
    env = {
        "PATH": os.environ.get("PATH", os.defpath),
        "HOME": os.environ.get("HOME", "/root"),
        "CI_COMMIT_SHA": HEAD,
        "CI_COMMIT_REF_NAME": "main",
        "CI_DEFAULT_BRANCH": "main",
        "CI_REGISTRY": REGISTRY,
        "CI_REGISTRY_IMAGE": PREFIX,
        "CI_REGISTRY_USER": "gitlab-ci-token",
        "CI_REGISTRY_PASSWORD": PASSWORD,
        "DEPLOY_HOST": "dev.example.internal",
        "DEPLOY_USER": "deployer",
        "GITLAB_USER_LOGIN": "alice",
    }
    env.update(overrides)
    return {k: v for k, v in env.items() if v != ""}


def deploy(*args: str, env: dict[str, str], cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(SCRIPT), *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=300
    )


def would_run(output: str) -> list[str]:
    return [
        line.split("would run: ", 1)[1] for line in output.splitlines() if "would run: " in line
    ]


def steps(output: str) -> list[str]:
    return re.findall(r"^\[\d+/\d+\] ([\w-]+):", output, flags=re.MULTILINE)


# --- dry runs -------------------------------------------------------------------------------


@pytest.mark.parametrize("environment", ["dev", "staging"])
def test_dry_run_prints_every_step_of_a_default_branch_deploy(environment: str) -> None:
    host = f"{environment}.example.internal"
    result = deploy("deploy", environment, "--dry-run", env=ci_env(DEPLOY_HOST=host))
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert steps(out) == ["check-ref", "sync", "release", "pull", "up", "smoke"]
    assert f"{environment} from the default branch main" in out
    assert out.rstrip().endswith("dry run: nothing was executed")
    commands = would_run(out)
    ssh = f"ssh -p 22 -o BatchMode=yes deployer@{host}"
    path = f"/srv/mlops/{environment}"
    # every remote command goes over ssh to the environment's host, into its folder
    assert all(c.startswith((ssh, "rsync", "printf")) for c in commands), commands

    # sync: the compose file, what it mounts and every DAG folder, then the settings file
    [tree, settings] = [c for c in commands if c.startswith("rsync")]
    assert f"-e '{' '.join(ssh.split()[:-1])}'" in tree
    assert tree.endswith(f"deployer@{host}:{path}/")
    for synced in SYNC_PATHS:
        assert f" ./{synced} " in tree
    assert {"./data_pipeline/dags/", "./training_pipeline/dags/", "./model_serving/dags/"} <= set(
        tree.split()
    )
    assert settings.endswith(
        f"deploy/{environment}.env deployer@{host}:{path}/deploy/{environment}.env"
    )

    # release: every image of the environment's profiles, tagged with its revision
    release = out[out.index("release.env' <<'EOF'") :]
    release = release[: release.index("EOF\n", 25)]
    assert f"MLOPS_IMAGE_PREFIX={PREFIX}" in release
    assert f"MLOPS_RELEASE_SHA={HEAD}" in release
    for image in IMAGES:
        revision = image_revision(REPO, HEAD, image)
        assert f"{image.tag_variable}={revision}" in release
        assert f"docker pull --quiet {PREFIX}/{image.name}:{revision}" in out

    # the registry password goes on standard input, masked in the output
    assert PASSWORD not in out + result.stderr
    login = next(c for c in commands if "docker login" in c)
    assert login.startswith("printf '%s\\n' '***' | ssh")
    assert f"--password-stdin {REGISTRY}" in login

    compose = (
        f"docker compose --project-name mlops-{environment} --file docker-compose.yml "
        f"--env-file .env --env-file deploy/{environment}.env --env-file release.env"
    )
    up = next(c for c in commands if " up " in c)
    assert compose in up
    for flag in ("--detach", "--no-build", "--pull never", "--remove-orphans", "--wait"):
        assert flag in up
    assert f"cd {path} && " in up

    # smoke: health endpoints and one prediction with the key read on the host
    smoke = commands[commands.index(up) + 1 :]
    urls = [re.search(r"http://\S+", c)[0].rstrip("'") for c in smoke if "curl" in c]  # type: ignore[index]
    assert urls == [
        "http://127.0.0.1:5000/health",
        "http://127.0.0.1:8080/api/v2/monitor/health",
        "http://127.0.0.1:9090/-/ready",
        "http://127.0.0.1:9093/-/ready",
        "http://127.0.0.1:3000/api/health",
        "http://127.0.0.1:8172/health/live",
        "http://127.0.0.1:8172/health/ready",
        "http://127.0.0.1:8309/metrics",
        "http://127.0.0.1:8311/metrics",
        "http://127.0.0.1:8312/metrics",
        "http://127.0.0.1:8172/v1/predict",
    ]
    predict = smoke[-1]
    assert "SERVING_API_KEY" in predict and "--header @-" in predict
    assert "best_driver_id" in predict and "--fail" in predict
    assert any("redis-cli ping" in c for c in smoke)


def test_dry_run_of_prod_from_a_release_tag() -> None:
    env = ci_env(
        CI_COMMIT_TAG="v1.2.3", CI_COMMIT_REF_NAME="v1.2.3", DEPLOY_HOST="prod.example.internal"
    )
    result = deploy("deploy", "prod", "--dry-run", env=env)
    assert result.returncode == 0, result.stderr
    assert steps(result.stdout) == ["check-ref", "sync", "release", "pull", "up", "smoke"]
    assert "prod from release tag v1.2.3" in result.stdout
    assert "--project-name mlops-prod" in result.stdout
    assert "deployer@prod.example.internal:/srv/mlops/prod/" in result.stdout
    assert "MLOPS_RELEASE_REF=v1.2.3" in result.stdout


@pytest.mark.parametrize(
    ("ref", "tag", "message"),
    [
        ("main", "", "prod deploys only from a tag"),
        ("feature/x", "", "prod deploys only from a tag"),
        ("nightly", "nightly", "release tags look like v1.2.3"),
    ],
)
def test_prod_refuses_a_ref_that_is_not_a_release_tag(ref: str, tag: str, message: str) -> None:
    result = deploy(
        "deploy", "prod", "--dry-run", env=ci_env(CI_COMMIT_REF_NAME=ref, CI_COMMIT_TAG=tag)
    )
    assert result.returncode == 1
    assert message in result.stderr and "refusing to deploy prod" in result.stderr
    assert "would run" not in result.stdout  # refused before any step


def test_dev_and_staging_refuse_other_branches() -> None:
    for environment in ("dev", "staging"):
        result = deploy(
            "deploy", environment, "--dry-run", env=ci_env(CI_COMMIT_REF_NAME="feature/x")
        )
        assert result.returncode == 1
        assert f"refusing to deploy {environment} from branch 'feature/x'" in result.stderr


def test_unknown_environment_is_refused() -> None:
    result = deploy("deploy", "qa", "--dry-run", env=ci_env())
    assert result.returncode == 2
    assert "invalid choice: 'qa'" in result.stderr


def test_real_run_needs_the_host_and_the_registry_password() -> None:
    """Outside a dry run a missing variable is an error naming it, before anything runs."""
    result = deploy("deploy", "dev", env=ci_env(DEPLOY_HOST=""))
    assert result.returncode == 1
    assert "DEPLOY_HOST is not set" in result.stderr
    result = deploy("deploy", "dev", env=ci_env(CI_REGISTRY_PASSWORD=""))
    assert result.returncode == 1
    assert "no registry password" in result.stderr


def test_smoke_alone_and_ssh_options() -> None:
    env = ci_env(
        DEPLOY_SSH_KEY_FILE="/builds/key",
        DEPLOY_SSH_KNOWN_HOSTS_FILE="/builds/kh",
        DEPLOY_PORT="2222",
    )
    result = deploy("smoke", "staging", "--dry-run", env=env)
    assert result.returncode == 0, result.stderr
    assert steps(result.stdout) == ["smoke"]
    first = would_run(result.stdout)[0]
    assert first.startswith(
        "ssh -p 2222 -o BatchMode=yes -i /builds/key -o IdentitiesOnly=yes "
        "-o UserKnownHostsFile=/builds/kh -o StrictHostKeyChecking=yes "
        "deployer@dev.example.internal "
    )


# --- model promotion and rollback -------------------------------------------------------------


def test_model_promote_and_rollback_run_the_training_pipeline_cli() -> None:
    result = deploy(
        "model",
        "prod",
        "promote",
        "7",
        "--reason",
        "better top-1",
        "--dry-run",
        env=ci_env(DEPLOY_HOST="prod.example.internal"),
    )
    assert result.returncode == 0, result.stderr
    [command] = would_run(result.stdout)
    remote = shlex.split(command)[-1]
    assert remote.startswith("cd /srv/mlops/prod && docker compose --project-name mlops-prod")
    assert remote.endswith(
        "exec -T airflow-scheduler training-pipeline promote 7 --reason "
        "'better top-1' --actor gitlab:alice"
    )

    result = deploy("model", "dev", "rollback", "--reason", "drift", "--dry-run", env=ci_env())
    assert result.returncode == 0, result.stderr
    [command] = would_run(result.stdout)
    assert shlex.split(command)[-1].endswith(
        "training-pipeline rollback --reason drift --actor gitlab:alice"
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("promote", "--reason", "x"), "needs a registered model version number"),
        (("promote", "latest", "--reason", "x"), "needs a registered model version number"),
        (("rollback", "--reason", "  "), "needs a reason"),
    ],
)
def test_model_commands_refuse_bad_input(args: tuple[str, ...], message: str) -> None:
    result = deploy("model", "dev", *args, "--dry-run", env=ci_env())
    assert result.returncode == 1
    assert message in result.stderr


# --- settings files -----------------------------------------------------------------------------


def compose_variables() -> set[str]:
    return set(re.findall(r"\$\{([A-Z0-9_]+)", (REPO / "docker-compose.yml").read_text()))


DEPLOY_SETTINGS = {
    "DEPLOY_PATH",
    "DEPLOY_PROFILES",
    "DEPLOY_WAIT_TIMEOUT_S",
    "SMOKE_DRIVER_IDS",
    "SMOKE_RETRIES",
    "COMPOSE_PROJECT_NAME",
}


@pytest.mark.parametrize("environment", ENVIRONMENTS)
def test_settings_files_hold_no_secret_and_only_known_keys(environment: str) -> None:
    path = REPO / "deploy" / f"{environment}.env"
    settings = read_env_file(path)
    secrets = [
        key
        for key in settings
        if SECRET_KEY_PATTERN.search(key) or re.search(r"PASSWORD|TOKEN|SECRET|_KEY$", key)
    ]
    assert not secrets, f"{path} holds secrets: {secrets}"
    known = compose_variables() | DEPLOY_SETTINGS | set(read_env_file(REPO / ".env.example"))
    assert set(settings) <= known, f"{path}: unknown keys {set(settings) - known}"
    profiles = set(settings["DEPLOY_PROFILES"].split(","))
    assert profiles <= COMPOSE_PROFILES
    assert {"serving", "mlflow", "airflow"} <= profiles  # the smoke test's prediction needs them
    assert settings["COMPOSE_PROJECT_NAME"] == f"mlops-{environment}"
    assert settings["DEPLOY_PATH"] == f"/srv/mlops/{environment}"
    assert all(i.strip().isdigit() for i in settings["SMOKE_DRIVER_IDS"].split(","))


def test_settings_file_parser_reports_a_bad_line(tmp_path: Path) -> None:
    bad = tmp_path / "dev.env"
    bad.write_text("DEPLOY_PROFILES=serving\nthis is not an assignment\n")
    result = deploy("deploy", "dev", "--dry-run", "--settings-file", str(bad), env=ci_env())
    assert result.returncode == 1
    assert f"{bad}:2: not a KEY=value line" in result.stderr


# --- the image plan ------------------------------------------------------------------------


def test_plan_prints_each_image_revision(tmp_path: Path) -> None:
    dotenv = tmp_path / "images.env"
    result = deploy("plan", "--dotenv", str(dotenv), env=ci_env())
    assert result.returncode == 0, result.stderr
    planned = read_env_file(dotenv)
    assert set(planned) == {image.tag_variable for image in IMAGES}
    for image in IMAGES:
        assert re.fullmatch(r"[0-9a-f]{40}", planned[image.tag_variable])
        # the revision is a commit that touched one of the image's paths
        paths = [p.rstrip("/") for p in (image.dockerfile, *image.paths, *SHARED_PATHS)]
        touched = subprocess.run(
            ["git", "-C", str(REPO), "log", "--format=%H", HEAD, "--", *paths],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split()
        assert planned[image.tag_variable] == touched[0]


def test_revision_moves_only_with_the_image_inputs(tmp_path: Path) -> None:
    """In a scratch clone: a commit under model_serving/src moves the serving image's revision
    (and the Airflow image's, which carries model_serving) but not mlflow's, stream's or
    monitoring's."""
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "--quiet", str(REPO), str(clone)], check=True)
    before = {image.name: image_revision(clone, "HEAD", image) for image in IMAGES}
    (clone / "model_serving/src/model_serving/__init__.py").write_text('"""changed."""\n')
    git = ["git", "-C", str(clone), "-c", "user.name=t", "-c", "user.email=t@localhost"]
    subprocess.run([*git, "commit", "--quiet", "-am", "serving change"], check=True)
    after = {image.name: image_revision(clone, "HEAD", image) for image in IMAGES}
    moved = {name for name in after if after[name] != before[name]}
    assert moved == {"serving", "airflow"}


def test_deploy_module_needs_only_the_standard_library() -> None:
    """The deploy job installs no Python packages: -S (no site-packages) must be enough."""
    result = subprocess.run(
        [
            sys.executable,
            "-S",
            "-I",
            str(REPO / "platform/src/mlops_platform/cicd/deploy.py"),
            "deploy",
            "dev",
            "--dry-run",
        ],
        env=ci_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "[6/6] smoke" in result.stdout


def test_components_cover_every_workspace_member() -> None:
    root = tomllib.loads((REPO / "pyproject.toml").read_text())
    members = set(root["tool"]["uv"]["workspace"]["members"])
    assert {c.name for c in COMPONENTS} == members - set(DEV_MEMBERS)
    assert set(DEV_MEMBERS) <= members
    assert all(f"{member}/" in SHARED_PATHS for member in DEV_MEMBERS)


# --- a real run, against this machine -----------------------------------------------------------


class FakeStack(http.server.BaseHTTPRequestHandler):
    """Answers the smoke test's endpoints; `ready` False makes serving's readiness fail."""

    ready = True
    api_key = "the-serving-key"
    predictions: ClassVar[list[dict[str, Any]]] = []

    def log_message(self, *args: Any) -> None:
        pass

    def _send(self, status: int, body: dict[str, Any]) -> None:
        send_json(self, status, body)

    def do_GET(self) -> None:
        if self.path == "/health/ready" and not type(self).ready:
            self._send(503, {"status": "not ready"})
        else:
            self._send(200, {"status": "ok"})

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        if self.path != "/v1/predict" or self.headers.get("X-API-Key") != type(self).api_key:
            self._send(401, {"error": "unauthorized"})
            return
        type(self).predictions.append(body)
        self._send(200, {"best_driver_id": body["driver_ids"][0], "scores": []})


@pytest.fixture
def fake_stack() -> Iterator[int]:
    FakeStack.ready = True
    FakeStack.predictions = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), FakeStack)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


@pytest.fixture
def local_host(tmp_path: Path, fake_stack: int) -> dict[str, Any]:
    """A deploy folder with its .env, a settings file whose ports all point at the fake stack,
    and a fake docker that logs its arguments."""
    host = tmp_path / "host"
    host.mkdir()
    (host / ".env").write_text(f"POSTGRES_PASSWORD=x\nSERVING_API_KEY={FakeStack.api_key}\n")
    settings = tmp_path / "dev.env"
    ports = {
        key: str(fake_stack)
        for key in (
            "MLFLOW_PORT",
            "AIRFLOW_PORT",
            "PROMETHEUS_PORT",
            "ALERTMANAGER_PORT",
            "GRAFANA_PORT",
            "SERVING_PORT",
            "STREAM_PRODUCER_METRICS_PORT",
            "STREAM_CONSUMER_METRICS_PORT",
        )
    }
    settings.write_text(
        f"DEPLOY_PATH={host}\nDEPLOY_PROFILES=mlflow,airflow,feast,serving,stream\n"
        "COMPOSE_PROJECT_NAME=mlops-dev\nSMOKE_DRIVER_IDS=1001,1002\nSMOKE_RETRIES=1\n"
        + "".join(f"{k}={v}\n" for k, v in ports.items())
    )
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "docker.log"
    fake = bin_dir / "docker"
    fake.write_text(
        f'#!/bin/sh\nprintf "%s\\n" "$*" >> {shlex.quote(str(log))}\n'
        'case "$*" in *login*) cat > /dev/null;; esac\nexit 0\n'
    )
    fake.chmod(0o755)
    env = ci_env(
        DEPLOY_TRANSPORT="local", PATH=f"{bin_dir}{os.pathsep}{os.environ.get('PATH', os.defpath)}"
    )
    return {"host": host, "settings": settings, "log": log, "env": env}


def test_real_deploy_syncs_pulls_rolls_and_smoke_tests(local_host: dict[str, Any]) -> None:
    host: Path = local_host["host"]
    result = deploy(
        "deploy", "dev", "--settings-file", str(local_host["settings"]), env=local_host["env"]
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.rstrip().endswith("done")
    # synced: compose file, configs, DAGs, settings; nothing else of the repo
    assert (host / "docker-compose.yml").read_text() == (REPO / "docker-compose.yml").read_text()
    assert (host / "training_pipeline/dags/driver_ranking_training.py").is_file()
    assert (host / "platform/prometheus/prometheus.yml").is_file()
    assert (host / "deploy/dev.env").read_text() == local_host["settings"].read_text()
    assert not (host / "model_serving/src").exists() and not (host / "uv.lock").exists()
    release = read_env_file(host / "release.env")
    assert release["MLOPS_SERVING_IMAGE_TAG"] == image_revision(REPO, HEAD, IMAGES[2])
    assert "MLOPS_MONITORING_IMAGE_TAG" not in release
    calls = local_host["log"].read_text().splitlines()
    assert calls[0] == f"login --username gitlab-ci-token --password-stdin {REGISTRY}"
    pulled = [c.split()[-1] for c in calls if c.startswith("pull --quiet ")]
    assert pulled == [
        f"{PREFIX}/{name}:{release[f'MLOPS_{name.upper()}_IMAGE_TAG']}"
        for name in ("airflow", "mlflow", "serving", "stream")
    ]
    assert any(c.startswith("compose ") and " up --detach " in c for c in calls)
    assert calls[-1].endswith("exec -T redis redis-cli ping")
    # the prediction reached the stack with the key from the host's .env
    assert FakeStack.predictions == [{"request_id": "smoke-dev", "driver_ids": [1001, 1002]}]
    assert FakeStack.api_key not in result.stdout + result.stderr


def test_real_deploy_fails_when_the_smoke_test_fails(local_host: dict[str, Any]) -> None:
    FakeStack.ready = False
    result = deploy(
        "deploy", "dev", "--settings-file", str(local_host["settings"]), env=local_host["env"]
    )
    assert result.returncode == 1
    assert "step smoke failed (exit 22): serving: GET http://127.0.0.1:" in result.stderr
    assert result.stderr.rstrip().endswith("/health/ready")
    assert FakeStack.predictions == []  # stopped at the first failing check


def test_real_deploy_stops_when_the_host_has_no_env_file(local_host: dict[str, Any]) -> None:
    (local_host["host"] / ".env").unlink()
    result = deploy(
        "deploy", "dev", "--settings-file", str(local_host["settings"]), env=local_host["env"]
    )
    assert result.returncode == 1
    assert "missing" in result.stderr and ".env on the host" in result.stderr
    assert "step sync failed" in result.stderr
    assert not local_host["log"].exists()  # docker never ran


def test_real_smoke_fails_with_a_wrong_api_key(local_host: dict[str, Any]) -> None:
    (local_host["host"] / ".env").write_text("SERVING_API_KEY=not-the-key\n")
    result = deploy(
        "smoke", "dev", "--settings-file", str(local_host["settings"]), env=local_host["env"]
    )
    assert result.returncode == 1
    assert "step smoke failed" in result.stderr and "/v1/predict" in result.stderr
    assert FakeStack.predictions == []
