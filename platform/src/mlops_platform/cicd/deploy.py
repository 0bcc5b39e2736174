"""Deploys the platform to one environment's host: the script behind the GitLab deploy jobs.

    deploy/deploy.sh deploy <dev|staging|prod> [--dry-run]
    deploy/deploy.sh smoke  <dev|staging|prod> [--dry-run]
    deploy/deploy.sh model  <dev|staging|prod> promote <version> --reason TEXT [--dry-run]
    deploy/deploy.sh model  <dev|staging|prod> rollback --reason TEXT [--dry-run]
    deploy/deploy.sh plan   [--dotenv FILE]

`deploy` runs six steps, each one command (or a few) that `--dry-run` prints instead of running:
check the ref (prod only from a tag), prepare and sync the host (the compose file, the configs it
mounts, the DAG folders, the environment's settings: rsync over ssh), write the release (which
image tag each service runs), log in and pull the images, roll the stack (`docker compose up -d
--wait`), smoke-test it (health endpoints and one prediction with the serving API key). Any failure
exits non-zero with a line naming the step.

Settings come from `deploy/<env>.env` (committed, no secrets) and the environment (GitLab CI
variables, documented in docs/cicd.md). Secrets stay on the target host, in `<DEPLOY_PATH>/.env`,
and in masked CI variables that are passed on standard input, never on a command line.

Images are tagged with a commit SHA: the build job of an image pushes `:$CI_COMMIT_SHA` and
`:<revision>`, the revision being the last commit that changed the image's inputs (its paths
below). A pipeline builds only the images whose inputs changed, so a deploy asks git for each
image's revision: the image of that commit exists whichever pipeline built it, and a re-run of an
older pipeline's deploy job (GitLab's environment rollback) deploys exactly that commit's images.

This module is also the one table of components, their paths and their images: .gitlab-ci.yml's
`rules: changes:` lists are checked against it by platform/tests/test_gitlab_ci.py.

Standard library only, so the deploy job needs nothing but Python, git, ssh, rsync (and curl and
docker on the host).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[4]
ENVIRONMENTS = ("dev", "staging", "prod")

# --- components, their paths, their images -------------------------------------------------
# A path ending in "/" is a folder (GitLab glob "<folder>/**/*"), anything else one file.

#: A change here runs every component's jobs.
SHARED_PATHS: tuple[str, ...] = (
    "uv.lock",
    "pyproject.toml",
    "platform/",
    "Makefile",
    ".gitlab-ci.yml",
    ".ci/",
    # the development-only test support (mlops_testing) most suites use
    "tests/support/",
)

#: workspace members that are not components: no jobs of their own (covered by SHARED_PATHS)
DEV_MEMBERS: tuple[str, ...] = ("tests/support",)

#: the one Dockerfile of the project's images (a target per image)
DOCKERFILE = "Dockerfile"
_CO = ("common/src/", "common/pyproject.toml")
_DP = ("data_pipeline/src/", "data_pipeline/feature_repo/", "data_pipeline/pyproject.toml")
_EX = ("example_project/src/", "example_project/pyproject.toml")
_TP = ("training_pipeline/src/", "training_pipeline/pyproject.toml")
_MS = ("model_serving/src/", "model_serving/pyproject.toml")
_SE = ("stream_emitting/src/", "stream_emitting/pyproject.toml")


@dataclass(frozen=True)
class Component:
    """A workspace member: its lint and test jobs run when one of `paths` (or a shared path)
    changed. `paths` holds its own folder and the sources of the members it depends on."""

    name: str
    paths: tuple[str, ...]

    @property
    def test_paths(self) -> tuple[str, ...]:
        return (f"{self.name}/tests",)


@dataclass(frozen=True)
class Image:
    """An image built by CI and run by docker-compose.yml: `$CI_REGISTRY_IMAGE/<name>`."""

    name: str  # also its target in the root Dockerfile
    component: str  # the CI job suffix: build:<component>
    paths: tuple[str, ...]  # what the image is built from, besides the Dockerfile and shared paths
    services: tuple[str, ...]  # compose services running it
    profiles: tuple[str, ...]  # compose profiles of those services

    @property
    def dockerfile(self) -> str:
        """Every image is a target of the one root Dockerfile (shared builder and runtime)."""
        return DOCKERFILE

    @property
    def target(self) -> str:
        return self.name

    @property
    def tag_variable(self) -> str:
        return f"MLOPS_{self.name.upper()}_IMAGE_TAG"


COMPONENTS: tuple[Component, ...] = (
    # the shared contracts: every component depends on it, so its paths are in every one's
    Component("common", ("common/",)),
    Component(
        "platform",
        (
            "platform/",
            *_CO,
            "docker-compose.yml",
            DOCKERFILE,
            "deploy/",
            "run.sh",
            ".env.example",
            ".dockerignore",
        ),
    ),
    Component("example_project", ("example_project/", *_CO)),
    # stream_emitting's tests run the data pipeline's consumer against its producer
    Component("stream_emitting", ("stream_emitting/", *_CO, *_EX, *_DP)),
    # the data pipeline's tests generate the example world into its source
    Component("data_pipeline", ("data_pipeline/", *_CO, *_EX)),
    # the component tests below build features with the data pipeline and the example world
    Component("training_pipeline", ("training_pipeline/", *_CO, *_DP, *_EX)),
    Component("model_serving", ("model_serving/", *_CO, *_DP, *_EX)),
    Component("monitoring_service", ("monitoring_service/", *_CO)),
)

IMAGES: tuple[Image, ...] = (
    Image(
        "airflow",
        "airflow",
        (".dockerignore", *_CO, *_DP, *_EX, *_TP, *_MS),
        (
            "airflow-init",
            "airflow-api-server",
            "airflow-scheduler",
            "airflow-dag-processor",
            "airflow-triggerer",
        ),
        ("airflow",),
    ),
    Image(
        "mlflow",
        "mlflow",
        (".dockerignore",),
        ("mlflow",),
        ("mlflow",),
    ),
    Image(
        "serving",
        "model_serving",
        (".dockerignore", *_CO, *_MS),
        ("serving",),
        ("serving",),
    ),
    Image(
        "stream",
        "stream_emitting",
        (".dockerignore", *_CO, *_SE, *_EX, *_DP),
        ("stream-producer", "stream-consumer"),
        ("stream",),
    ),
    Image(
        "monitoring",
        "monitoring_service",
        (".dockerignore", *_CO, "monitoring_service/src/", "monitoring_service/pyproject.toml"),
        ("monitoring",),
        ("monitoring",),
    ),
)

#: What a deploy copies to the host: the compose file and everything it bind-mounts.
SYNC_PATHS: tuple[str, ...] = (
    "docker-compose.yml",
    "platform/prometheus/",
    "platform/alertmanager/",
    "platform/grafana/",
    "deploy/k8s/base/files/postgres-initdb.sh",
    "data_pipeline/dags/",
    "training_pipeline/dags/",
    "model_serving/dags/",
)


def gitlab_globs(paths: Sequence[str]) -> list[str]:
    """The `rules: changes:` patterns GitLab (and gitlab-ci-local) match for `paths`, in order,
    without repeats."""
    return list(dict.fromkeys(f"{p}**/*" if p.endswith("/") else p for p in paths))


def component_changes(component: Component) -> list[str]:
    return gitlab_globs([*component.paths, *SHARED_PATHS])


def image_changes(image: Image) -> list[str]:
    return gitlab_globs([image.dockerfile, *image.paths, *SHARED_PATHS])


# --- errors and settings ----------------------------------------------------------------------


class DeployError(RuntimeError):
    """A deploy that must stop: the message names the step and the problem."""


_ASSIGNMENT = re.compile(r"^(?P<key>[A-Za-z_][A-Za-z0-9_]*)=(?P<value>.*)$")


def read_env_file(path: Path) -> dict[str, str]:
    """KEY=value lines (compose's env-file format without interpolation); # comments."""
    if not path.is_file():
        raise DeployError(f"no settings file {path}")
    values: dict[str, str] = {}
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        match = _ASSIGNMENT.match(line)
        if not match:
            raise DeployError(f"{path}:{number}: not a KEY=value line: {raw!r}")
        value = match["value"].strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        values[match["key"]] = value
    return values


@dataclass(frozen=True)
class Ref:
    """The git ref a pipeline runs for (GitLab's CI_COMMIT_* variables)."""

    sha: str
    name: str
    tag: str | None
    default_branch: str

    @classmethod
    def from_environment(cls, env: Mapping[str, str], repo: Path) -> Ref:
        sha = env.get("CI_COMMIT_SHA") or _git(repo, "rev-parse", "HEAD")
        tag = env.get("CI_COMMIT_TAG") or None
        name = (
            env.get("CI_COMMIT_REF_NAME") or tag or _git(repo, "rev-parse", "--abbrev-ref", "HEAD")
        )
        return cls(sha=sha, name=name, tag=tag, default_branch=env.get("CI_DEFAULT_BRANCH", "main"))


PROD_TAG = re.compile(r"^v\d+\.\d+\.\d+$")


def check_ref(environment: str, ref: Ref) -> str:
    """Which refs may deploy where: prod only from a release tag (vX.Y.Z), dev and staging from
    the default branch (or a tag). Returns the reason it is allowed; raises otherwise."""
    if environment == "prod":
        if not ref.tag:
            raise DeployError(
                f"refusing to deploy prod from {ref.name!r}: prod deploys only from a tag "
                "(CI_COMMIT_TAG is empty); tag a commit that passed staging, e.g. "
                "git tag v1.2.3 && git push origin v1.2.3"
            )
        if not PROD_TAG.match(ref.tag):
            raise DeployError(
                f"refusing to deploy prod from tag {ref.tag!r}: release tags look like v1.2.3"
            )
        return f"prod from release tag {ref.tag}"
    if ref.tag:
        return f"{environment} from tag {ref.tag}"
    if ref.name != ref.default_branch:
        raise DeployError(
            f"refusing to deploy {environment} from branch {ref.name!r}: only the default "
            f"branch ({ref.default_branch}) or a tag deploys"
        )
    return f"{environment} from the default branch {ref.name}"


def _git(repo: Path, *args: str) -> str:
    result = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True)
    if result.returncode != 0:
        raise DeployError(f"git {' '.join(args)} failed: {result.stderr.strip()}")
    return result.stdout.strip()


def image_revision(repo: Path, sha: str, image: Image) -> str:
    """The last commit at or before `sha` that changed the image's inputs: its tag."""
    paths = [p.rstrip("/") for p in (image.dockerfile, *image.paths, *SHARED_PATHS)]
    revision = _git(repo, "log", "-1", "--format=%H", sha, "--", *paths)
    if not revision:
        raise DeployError(
            f"no commit changed {image.name}'s inputs up to {sha}: is the clone shallow? "
            "(the deploy and build jobs set GIT_DEPTH: 0)"
        )
    return revision


# --- commands -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Command:
    """One command of a step: argv, optional standard input (masked in the dry run)."""

    argv: tuple[str, ...]
    stdin: str | None = None
    stdin_shown: str | None = None  # what the dry run prints for stdin (None: print it)
    label: str = ""  # what a failure reports (default: the program)

    def render(self) -> str:
        text = shlex.join(self.argv)
        if self.stdin is not None:
            shown = self.stdin if self.stdin_shown is None else self.stdin_shown
            if "\n" in shown.rstrip("\n"):
                text += " <<'EOF'\n" + shown.rstrip("\n") + "\nEOF"
            else:
                text = f"printf '%s\\n' {shlex.quote(shown.rstrip(chr(10)))} | {text}"
        return text


@dataclass
class Step:
    name: str
    description: str
    commands: list[Command] = field(default_factory=list)


@dataclass(frozen=True)
class Target:
    """Where a command runs: over ssh on the environment's host, or on this machine
    (DEPLOY_TRANSPORT=local: a GitLab shell runner on the target host, and the tests)."""

    transport: str
    host: str
    user: str
    port: str
    path: str
    ssh_options: tuple[str, ...]

    @property
    def destination(self) -> str:
        return f"{self.user}@{self.host}" if self.user else self.host

    def ssh_argv(self) -> list[str]:
        return ["ssh", "-p", self.port, *self.ssh_options, self.destination]

    def remote(
        self, script: str, stdin: str | None = None, stdin_shown: str | None = None, cd: bool = True
    ) -> Command:
        """`script` (a POSIX shell command line) run on the host, in its deploy folder."""
        line = f"cd {shlex.quote(self.path)} && {script}" if cd else script
        if self.transport == "local":
            return Command(("sh", "-c", line), stdin, stdin_shown)
        return Command((*self.ssh_argv(), line), stdin, stdin_shown)

    def rsync(self, sources: Sequence[str], destination: str, relative: bool) -> Command:
        argv = ["rsync", "--archive", "--compress", "--delete", "--exclude=__pycache__/"]
        if relative:
            argv.append("--relative")
        if self.transport == "local":
            return Command((*argv, *sources, f"{self.path}/{destination}"))
        shell = shlex.join(["ssh", "-p", self.port, *self.ssh_options])
        remote = f"{self.destination}:{self.path}/{destination}"
        return Command((*argv, "-e", shell, *sources, remote))


class Deployment:
    """Builds the steps for one environment from its settings file and the CI variables."""

    def __init__(
        self,
        environment: str,
        env: Mapping[str, str],
        repo: Path = REPO_ROOT,
        settings_file: Path | None = None,
        dry_run: bool = False,
    ) -> None:
        if environment not in ENVIRONMENTS:
            raise DeployError(
                f"unknown environment {environment!r}; choose one of {', '.join(ENVIRONMENTS)}"
            )
        self.environment = environment
        self.env = env
        self.repo = repo
        self.dry_run = dry_run
        self.settings_file = settings_file or repo / "deploy" / f"{environment}.env"
        defaults = read_env_file(repo / ".env.example")
        self.settings = {**defaults, **read_env_file(self.settings_file)}
        self.target = self._target()

    # -- settings ------------------------------------------------------------------------------
    def setting(self, key: str, default: str | None = None) -> str:
        """A CI variable (DEPLOY_* and CI_* only), else the settings file, else `default`."""
        value = self.env.get(key) if key.startswith(("DEPLOY_", "CI_")) else None
        value = value or self.settings.get(key) or default
        if value is None or value == "":
            if self.dry_run:
                return f"${{{key}}}"  # shown as a placeholder: the real run needs it
            raise DeployError(f"{key} is not set (a GitLab CI variable, see docs/cicd.md)")
        return value

    def _target(self) -> Target:
        transport = self.env.get("DEPLOY_TRANSPORT", "ssh")
        if transport not in {"ssh", "local"}:
            raise DeployError(f"DEPLOY_TRANSPORT={transport!r}: use ssh or local")
        options = ["-o", "BatchMode=yes"]
        key_file = self.env.get("DEPLOY_SSH_KEY_FILE")
        if key_file:
            options += ["-i", key_file, "-o", "IdentitiesOnly=yes"]
        known_hosts = self.env.get("DEPLOY_SSH_KNOWN_HOSTS_FILE")
        if known_hosts:
            options += [
                "-o",
                f"UserKnownHostsFile={known_hosts}",
                "-o",
                "StrictHostKeyChecking=yes",
            ]
        return Target(
            transport=transport,
            host="localhost" if transport == "local" else self.setting("DEPLOY_HOST"),
            user="" if transport == "local" else self.setting("DEPLOY_USER", "deploy"),
            port=self.setting("DEPLOY_PORT", "22"),
            path=self.setting("DEPLOY_PATH", f"/srv/mlops/{self.environment}"),
            ssh_options=tuple(options),
        )

    @property
    def profiles(self) -> list[str]:
        profiles = [p.strip() for p in self.setting("DEPLOY_PROFILES").split(",") if p.strip()]
        if not profiles:
            raise DeployError(f"{self.settings_file}: DEPLOY_PROFILES is empty")
        return profiles

    @property
    def images(self) -> list[Image]:
        return [image for image in IMAGES if set(image.profiles) & set(self.profiles)]

    def compose(self, *args: str) -> str:
        """The docker compose command line on the host (run in DEPLOY_PATH)."""
        argv = [
            "docker",
            "compose",
            "--project-name",
            self.setting("COMPOSE_PROJECT_NAME"),
            "--file",
            "docker-compose.yml",
            # secrets first, then the committed settings, then the release's image tags
            "--env-file",
            ".env",
            "--env-file",
            f"deploy/{self.environment}.env",
            "--env-file",
            "release.env",
        ]
        for profile in self.profiles:
            argv += ["--profile", profile]
        return shlex.join([*argv, *args])

    # -- steps --------------------------------------------------------------------------------
    def release(self, ref: Ref) -> dict[str, str]:
        prefix = self.setting("CI_REGISTRY_IMAGE")
        release = {
            "MLOPS_IMAGE_PREFIX": prefix,
            "MLOPS_RELEASE_SHA": ref.sha,
            "MLOPS_RELEASE_REF": ref.name,
        }
        for image in self.images:
            release[image.tag_variable] = image_revision(self.repo, ref.sha, image)
        return release

    def deploy_steps(self, ref: Ref) -> list[Step]:
        t = self.target
        allowed = check_ref(self.environment, ref)
        steps = [Step("check-ref", allowed)]

        env_file = f"deploy/{self.environment}.env"
        sync = Step(
            "sync", f"sync the compose file, its configs and the DAGs to {t.destination}:{t.path}"
        )
        folder = shlex.quote(t.path)
        sync.commands.append(
            t.remote(
                f"mkdir -p {folder}/deploy && cd {folder} && {{ test -f .env || {{ echo 'missing "
                f"{t.path}/.env on the host: create it with the secrets (docs/cicd.md)' >&2; "
                "exit 1; }; }",
                cd=False,
            )
        )
        sync.commands.append(t.rsync([f"./{p}" for p in SYNC_PATHS], "", relative=True))
        sync.commands.append(t.rsync([str(self.settings_file)], env_file, relative=False))
        steps.append(sync)

        release = self.release(ref)
        body = "".join(f"{key}={value}\n" for key, value in release.items())
        steps.append(
            Step(
                "release",
                "record the image of every service (release.env)",
                [
                    t.remote("cat > release.env.tmp && mv release.env.tmp release.env", stdin=body),
                ],
            )
        )

        registry = self.setting("CI_REGISTRY")
        user = self.env.get("DEPLOY_REGISTRY_USER") or self.setting("CI_REGISTRY_USER")
        password = self.env.get("DEPLOY_REGISTRY_PASSWORD") or self.env.get("CI_REGISTRY_PASSWORD")
        if not password and not self.dry_run:
            raise DeployError(
                "no registry password: DEPLOY_REGISTRY_PASSWORD or CI_REGISTRY_PASSWORD"
            )
        pull = Step("pull", "log in to the registry and pull the release's images")
        pull.commands.append(
            t.remote(
                shlex.join(["docker", "login", "--username", user, "--password-stdin", registry]),
                stdin=password or "",
                stdin_shown="***",
            )
        )
        for image in self.images:
            pull.commands.append(
                t.remote(
                    shlex.join(
                        [
                            "docker",
                            "pull",
                            "--quiet",
                            f"{release['MLOPS_IMAGE_PREFIX']}/{image.name}:"
                            f"{release[image.tag_variable]}",
                        ]
                    )
                )
            )
        pull.commands.append(t.remote(self.compose("pull", "--quiet", "--ignore-buildable")))
        steps.append(pull)

        wait = self.setting("DEPLOY_WAIT_TIMEOUT_S", "600")
        steps.append(
            Step(
                "up",
                "roll the stack to the release and wait for every health check",
                [
                    t.remote(
                        self.compose(
                            "up",
                            "--detach",
                            "--no-build",
                            "--pull",
                            "never",
                            "--remove-orphans",
                            "--wait",
                            "--wait-timeout",
                            wait,
                        )
                    ),
                ],
            )
        )
        steps.append(self.smoke_step())
        return steps

    def _curl(self, *args: str) -> list[str]:
        retries = self.setting("SMOKE_RETRIES", "12")
        return [
            "curl",
            "--fail",
            "--silent",
            "--show-error",
            "--max-time",
            "10",
            "--retry",
            retries,
            "--retry-delay",
            "5",
            "--retry-all-errors",
            *args,
        ]

    def smoke_step(self) -> Step:
        """Health endpoints of every deployed profile, then one prediction."""
        t = self.target
        url = "http://127.0.0.1:{port}{path}"
        endpoints = {
            "mlflow": [("MLFLOW_PORT", "/health")],
            "airflow": [("AIRFLOW_PORT", "/api/v2/monitor/health")],
            "prom-graf": [
                ("PROMETHEUS_PORT", "/-/ready"),
                ("ALERTMANAGER_PORT", "/-/ready"),
                ("GRAFANA_PORT", "/api/health"),
            ],
            "serving": [("SERVING_PORT", "/health/live"), ("SERVING_PORT", "/health/ready")],
            "stream": [
                ("STREAM_PRODUCER_METRICS_PORT", "/metrics"),
                ("STREAM_CONSUMER_METRICS_PORT", "/metrics"),
            ],
            "monitoring": [("MONITORING_PORT", "/metrics")],
        }
        step = Step("smoke", "health endpoints and one prediction")
        for profile in self.profiles:
            for variable, path in endpoints.get(profile, []):
                target = url.format(port=self.setting(variable), path=path)
                check = t.remote(shlex.join(self._curl("--output", "/dev/null", target)))
                step.commands.append(replace(check, label=f"{profile}: GET {target}"))
            if profile == "feast":
                step.commands.append(
                    t.remote(self.compose("exec", "-T", "redis", "redis-cli", "ping"))
                )
        if "serving" in self.profiles:
            ids = [int(i) for i in self.setting("SMOKE_DRIVER_IDS").split(",") if i.strip()]
            body = json.dumps({"request_id": f"smoke-{self.environment}", "driver_ids": ids})
            predict = url.format(port=self.setting("SERVING_PORT"), path="/v1/predict")
            # the key is read on the host from its .env and handed to curl on standard input:
            # it never appears on a command line, in the job log or in this script's output
            key = "key=$(sed -n 's/^SERVING_API_KEY=//p' .env | tail -n 1)"
            curl = shlex.join(
                self._curl(
                    "--header",
                    "@-",
                    "--header",
                    "Content-Type: application/json",
                    "--data",
                    body,
                    predict,
                )
            )
            prediction = t.remote(
                f'{key} && test -n "$key" && printf \'X-API-Key: %s\\n\' "$key" | {curl} '
                "| grep -q '\"best_driver_id\"'"
            )
            step.commands.append(
                replace(
                    prediction,
                    label=f"serving: POST {predict} (a "
                    "prediction with SERVING_API_KEY from the host's .env)",
                )
            )
        return step

    def model_argv(self, action: str, version: str | None, reason: str, actor: str) -> list[str]:
        """`training-pipeline promote|rollback …`, checked: a reason, a version number."""
        if "airflow" not in self.profiles:
            raise DeployError(
                f"{self.environment} runs no airflow profile: no training "
                "pipeline to run the command"
            )
        if not reason.strip():
            raise DeployError(
                "a model promotion or rollback needs a reason (MODEL_REASON): it "
                "is recorded in the promotion log"
            )
        argv = ["training-pipeline", action]
        if action == "promote":
            if not version or not version.isdigit():
                raise DeployError(
                    f"promote needs a registered model version number "
                    f"(MODEL_VERSION), got {version!r}"
                )
            argv.append(version)
        return [*argv, "--reason", reason, "--actor", actor]

    def model_steps(self, action: str, version: str | None, reason: str, actor: str) -> list[Step]:
        argv = self.model_argv(action, version, reason, actor)
        return [
            Step(
                f"model-{action}",
                f"{action} the served model in {self.place}",
                [self.in_airflow(argv)],
            )
        ]

    @property
    def place(self) -> str:
        """Where this deployment runs, for the operator."""
        return self.environment

    def in_airflow(self, argv: Sequence[str]) -> Command:
        """``argv`` run in the deployed Airflow scheduler's container (where the pipelines'
        commands are installed)."""
        return self.target.remote(self.compose("exec", "-T", "airflow-scheduler", *argv))


# --- the Kubernetes variant (DEPLOY_TARGET=k8s) ------------------------------------------------

DEPLOY_TARGETS = ("compose", "k8s")
K8S_DIR = "deploy/k8s"

#: The Secrets the manifests refer to; they must exist in the namespace before a deploy.
#: deploy/k8s/README.md lists them with their keys and how to create them (a test compares).
K8S_SECRETS = (
    "mlops-postgres",
    "mlops-airflow",
    "mlops-serving",
    "mlops-monitoring",
    "mlops-s3",
    "mlops-git-sync",
    "mlops-registry",
)

#: Airflow's task pods run the scheduler's image: the same replacements as the overlays'
#: (platform/tests/test_k8s_manifests.py renders a release and checks it).
WORKER_IMAGE_REPLACEMENTS: tuple[dict[str, object], ...] = tuple(
    {
        "source": {
            "kind": "Deployment",
            "name": "airflow-scheduler",
            "fieldPath": "spec.template.spec.containers.[name=scheduler].image",
            "options": {"delimiter": ":", "index": index},
        },
        "targets": [
            {
                "select": {"kind": "ConfigMap", "name": "airflow-env"},
                "fieldPaths": [f"data.AIRFLOW__KUBERNETES_EXECUTOR__WORKER_CONTAINER_{field}"],
            }
        ],
    }
    for index, field in ((0, "REPOSITORY"), (1, "TAG"))
)

_IMAGE_ENTRY = re.compile(r"^(?:-\s+)?(?P<key>name|newName|newTag):\s*(?P<value>\S+)\s*$")


def overlay_images(kustomization: Path) -> dict[str, str]:
    """Image name in the base -> the name the overlay's `images:` block gives it (`- name:`
    then `newName:`; without a newName the name stays). Standard library only: the block keeps
    that simple form, and a test compares the result with a YAML parser's."""
    images: dict[str, str] = {}
    current: str | None = None
    in_block = False
    for raw in kustomization.read_text(encoding="utf-8").splitlines():
        line = raw.split(" #", 1)[0].rstrip()
        if not line or line.lstrip().startswith("#"):
            continue
        if not line[0].isspace() and not line.startswith("-"):
            in_block = line.startswith("images:")
            continue
        match = _IMAGE_ENTRY.match(line.strip()) if in_block else None
        if not match:
            continue
        value = match["value"].strip("'\"")
        if match["key"] == "name":
            current = value
            images[current] = value
        elif match["key"] == "newName" and current is not None:
            images[current] = value
    return images


class KubernetesDeployment(Deployment):
    """The same release on Kubernetes: `kubectl apply -k` of the environment's overlay
    (deploy/k8s/overlays/<env>) wrapped in a release kustomization that sets every image to the
    release's revision and pins the DAGs (git-sync) to the deployed commit; then the rollout
    and a smoke test inside the pods. kubectl talks to the cluster of the job's KUBECONFIG
    (a GitLab File variable, or the GitLab agent's context: DEPLOY_KUBE_CONTEXT)."""

    def _target(self) -> Target:
        return Target("local", "localhost", "", "", str(self.repo), ())

    @property
    def namespace(self) -> str:
        return self.setting("DEPLOY_K8S_NAMESPACE", f"mlops-{self.environment}")

    @property
    def overlay(self) -> str:
        return f"{K8S_DIR}/overlays/{self.environment}"

    @property
    def release_dir(self) -> str:
        return f"{K8S_DIR}/release/{self.environment}"

    @property
    def profiles(self) -> list[str]:
        return ["mlflow", "airflow", "feast", "prom-graf", "serving", "monitoring", "stream"]

    @property
    def images(self) -> list[Image]:
        return list(IMAGES)

    def kubectl(self, *args: str) -> tuple[str, ...]:
        context = self.env.get("DEPLOY_KUBE_CONTEXT")
        return (
            "kubectl",
            *(("--context", context) if context else ()),
            "-n",
            self.namespace,
            *args,
        )

    def release_kustomization(self, ref: Ref) -> dict[str, object]:
        """The release: the overlay, the release's image names and tags, the DAGs' commit."""
        names = overlay_images(self.repo / self.overlay / "kustomization.yaml")
        prefix = self.setting("CI_REGISTRY_IMAGE")
        images = [
            {
                "name": names.get(f"mlops/{image.name}", f"mlops/{image.name}"),
                "newName": f"{prefix}/{image.name}",
                "newTag": image_revision(self.repo, ref.sha, image),
            }
            for image in self.images
        ]
        dags: list[dict[str, str]] = [
            {"op": "replace", "path": "/data/GITSYNC_REF", "value": ref.sha}
        ]
        project_url = self.env.get("CI_PROJECT_URL")
        if project_url:
            dags.append(
                {"op": "replace", "path": "/data/GITSYNC_REPO", "value": f"{project_url}.git"}
            )
        annotation = [
            {
                "op": "add",
                "path": "/spec/template/metadata/annotations/mlops.io~1dags-ref",
                "value": ref.sha,
            }
        ]
        return {
            "apiVersion": "kustomize.config.k8s.io/v1beta1",
            "kind": "Kustomization",
            "resources": [f"../../overlays/{self.environment}"],
            "images": images,
            "patches": [
                {
                    "target": {"kind": "ConfigMap", "name": "airflow-dags-git"},
                    "patch": json.dumps(dags),
                },
                # the dag-processor restarts onto the new commit
                {
                    "target": {"kind": "Deployment", "name": "airflow-dag-processor"},
                    "patch": json.dumps(annotation),
                },
            ],
            "replacements": list(WORKER_IMAGE_REPLACEMENTS),
        }

    def deploy_steps(self, ref: Ref) -> list[Step]:
        steps = [Step("check-ref", check_ref(self.environment, ref))]
        steps.append(
            Step(
                "secrets",
                f"the Secrets exist in namespace {self.namespace} (deploy/k8s/README.md)",
                [
                    replace(
                        Command(self.kubectl("get", "secret", *K8S_SECRETS, "--output=name")),
                        label=f"a Secret is missing in namespace {self.namespace}: create the "
                        "ones deploy/k8s/README.md lists",
                    )
                ],
            )
        )
        body = json.dumps(self.release_kustomization(ref), indent=2) + "\n"
        folder = shlex.quote(self.release_dir)
        steps.append(
            Step(
                "release",
                f"write {self.release_dir}/kustomization.yaml: {self.overlay} with the release's "
                "images and DAG commit",
                [
                    Command(
                        ("sh", "-c", f"mkdir -p {folder} && cat > {folder}/kustomization.yaml"),
                        stdin=body,
                    ),
                    Command(("kubectl", "kustomize", self.release_dir), label="kubectl kustomize"),
                ],
            )
        )
        wait = f"--timeout={self.setting('DEPLOY_WAIT_TIMEOUT_S', '600')}s"
        steps.append(
            Step(
                "apply",
                f"kubectl apply -k {self.release_dir} (namespace {self.namespace})",
                [
                    # a finished one-shot Job cannot be changed in place: the apply recreates it
                    Command(self.kubectl("delete", "job", "minio-setup", "--ignore-not-found")),
                    Command(self.kubectl("apply", "-k", self.release_dir)),
                ],
            )
        )
        selector = "--selector=app.kubernetes.io/part-of=mlops"
        steps.append(
            Step(
                "rollout",
                "wait until every StatefulSet and Deployment runs the release",
                [
                    Command(self.kubectl("rollout", "status", "statefulset", selector, wait)),
                    Command(self.kubectl("rollout", "status", "deployment", selector, wait)),
                ],
            )
        )
        steps.append(self.smoke_step())
        return steps

    def _exec(self, workload: str, container: str, *argv: str) -> tuple[str, ...]:
        return self.kubectl("exec", workload, "-c", container, "--", *argv)

    def _python_get(self, workload: str, container: str, url: str) -> Command:
        code = f"import urllib.request; urllib.request.urlopen({json.dumps(url)}, timeout=10)"
        return replace(
            Command(self._exec(workload, container, "python", "-c", code)),
            label=f"{workload}: GET {url}",
        )

    def smoke_step(self) -> Step:
        """Health endpoints inside each pod, then one prediction inside a serving pod (the API
        key never leaves the pod: the script reads it from the pod's own environment)."""
        step = Step("smoke", "health endpoints and one prediction, inside the pods")
        for workload, container, url in (
            ("deploy/mlflow", "mlflow", "http://127.0.0.1:5000/health"),
            (
                "deploy/airflow-api-server",
                "api-server",
                "http://127.0.0.1:8080/api/v2/monitor/health",
            ),
            ("deploy/serving", "serving", "http://127.0.0.1:8172/health/ready"),
            ("deploy/monitoring", "monitoring", "http://127.0.0.1:8309/health/live"),
            ("deploy/stream-producer", "producer", "http://127.0.0.1:8311/metrics"),
            ("deploy/stream-consumer", "consumer", "http://127.0.0.1:8312/metrics"),
        ):
            step.commands.append(self._python_get(workload, container, url))
        for workload, container, url in (
            ("deploy/prometheus", "prometheus", "http://127.0.0.1:9090/-/ready"),
            ("deploy/alertmanager", "alertmanager", "http://127.0.0.1:9093/-/ready"),
        ):
            step.commands.append(
                replace(
                    Command(self._exec(workload, container, "wget", "-q", "-O", "/dev/null", url)),
                    label=f"{workload}: GET {url}",
                )
            )
        step.commands.append(
            replace(
                Command(self._exec("statefulset/redis", "redis", "redis-cli", "ping")),
                label="redis: PING",
            )
        )
        ids = [int(i) for i in self.setting("SMOKE_DRIVER_IDS").split(",") if i.strip()]
        body = json.dumps({"request_id": f"smoke-{self.environment}", "driver_ids": ids})
        code = (
            "import json, os, urllib.request\n"
            'request = urllib.request.Request("http://127.0.0.1:8172/v1/predict", '
            f"data={json.dumps(body)}.encode(), headers={{"
            '"Content-Type": "application/json", "X-API-Key": os.environ["SERVING_API_KEY"]})\n'
            "answer = json.load(urllib.request.urlopen(request, timeout=10))\n"
            'assert "best_driver_id" in answer, answer\n'
        )
        step.commands.append(
            replace(
                Command(self._exec("deploy/serving", "serving", "python", "-c", code)),
                label="serving: POST /v1/predict inside a serving pod (its own SERVING_API_KEY)",
            )
        )
        return step

    @property
    def place(self) -> str:
        return f"{self.environment} (namespace {self.namespace})"

    def in_airflow(self, argv: Sequence[str]) -> Command:
        return Command(self._exec("deploy/airflow-scheduler", "scheduler", *argv))


def deployment_for(
    environment: str,
    env: Mapping[str, str],
    settings_file: Path | None = None,
    dry_run: bool = False,
) -> Deployment:
    """The compose deploy, or the Kubernetes one when DEPLOY_TARGET=k8s."""
    target = env.get("DEPLOY_TARGET") or "compose"
    if target not in DEPLOY_TARGETS:
        raise DeployError(f"DEPLOY_TARGET={target!r}: use {' or '.join(DEPLOY_TARGETS)}")
    kind = KubernetesDeployment if target == "k8s" else Deployment
    return kind(environment, env, settings_file=settings_file, dry_run=dry_run)


# --- running --------------------------------------------------------------------------------------


def run_steps(steps: Sequence[Step], *, dry_run: bool, repo: Path) -> None:
    total = len(steps)
    for number, step in enumerate(steps, start=1):
        print(f"[{number}/{total}] {step.name}: {step.description}", flush=True)
        for command in step.commands:
            print(
                ("  would run: " if dry_run else "  $ ") + command.render().replace("\n", "\n    "),
                flush=True,
            )
            if dry_run:
                continue
            result = subprocess.run(command.argv, input=command.stdin, text=True, cwd=repo)
            if result.returncode != 0:
                what = command.label or shlex.join(command.argv[:1])
                raise DeployError(f"step {step.name} failed (exit {result.returncode}): {what}")
    print("dry run: nothing was executed" if dry_run else "done", flush=True)


def main(argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None) -> int:
    env = os.environ if env is None else env
    parser = argparse.ArgumentParser(prog="deploy/deploy.sh", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("deploy", "smoke", "model"):
        p = sub.add_parser(name)
        p.add_argument("environment", choices=ENVIRONMENTS)
        p.add_argument("--dry-run", action="store_true", help="print the commands, run nothing")
        p.add_argument("--settings-file", type=Path, help="instead of deploy/<environment>.env")
        if name == "model":
            p.add_argument("action", choices=("promote", "rollback"))
            p.add_argument("version", nargs="?")
            p.add_argument("--reason", required=True)
            p.add_argument("--actor", default=None)
    plan = sub.add_parser("plan", help="the image tag (revision) of every image")
    plan.add_argument("--dotenv", type=Path, help="also write NAME=value lines to this file")
    args = parser.parse_args(argv)

    try:
        if args.command == "plan":
            ref = Ref.from_environment(env, REPO_ROOT)
            lines = [
                f"{image.tag_variable}={image_revision(REPO_ROOT, ref.sha, image)}"
                for image in IMAGES
            ]
            print("\n".join(lines))
            if args.dotenv:
                args.dotenv.write_text("\n".join(lines) + "\n", encoding="utf-8")
            return 0
        deployment = deployment_for(
            args.environment, env, settings_file=args.settings_file, dry_run=args.dry_run
        )
        if args.command == "deploy":
            steps = deployment.deploy_steps(Ref.from_environment(env, REPO_ROOT))
        elif args.command == "smoke":
            steps = [deployment.smoke_step()]
        else:
            actor = (
                args.actor
                or env.get("MLOPS_ACTOR")
                or (
                    f"gitlab:{env['GITLAB_USER_LOGIN']}"
                    if env.get("GITLAB_USER_LOGIN")
                    else "deploy"
                )
            )
            steps = deployment.model_steps(args.action, args.version, args.reason, actor)
        print(f"{args.command} {args.environment}{' (dry run)' if args.dry_run else ''}")
        run_steps(steps, dry_run=args.dry_run, repo=REPO_ROOT)
    except DeployError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
