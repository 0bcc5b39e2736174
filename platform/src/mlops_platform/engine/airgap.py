"""Air-gapped images: everything docker-compose.yml needs, built on this machine from the Debian
mirror and PyPI, for a host that reaches no container registry (`./run.sh engine images`,
`make airgap-images`).

1. `mlops-airgap/debian:bookworm`: debootstrap --variant=minbase, imported with `docker import`.
2. `mlops-airgap/python:3.11-bookworm`: stands in for python:3.11.17-slim-bookworm, the base of
   the project's own images (PYTHON_BASE_IMAGE).
3. Stand-ins for the third-party services, from Debian packages (platform/docker/airgap/<name>):
   PostgreSQL, Redis, Prometheus, Alertmanager, and the StatsD exporter (the platform's own
   StatsD bridge). Grafana has no package here: it is left out of the air-gapped stack.

Then the stand-ins' names go into the env file (only the *_IMAGE keys, PYTHON_BASE_IMAGE and
MLOPS_AIRGAP; nothing else in it changes). No image is tagged with an official name.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from mlops_platform.engine import engine
from mlops_platform.launcher.envfile import ensure_env_file, set_keys
from mlops_platform.launcher.paths import PLATFORM_DIR, REPO_ROOT
from mlops_platform.launcher.settings import LauncherSettings, launcher_env_file

AIRGAP_DIR = PLATFORM_DIR / "docker" / "airgap"
DEBIAN_IMAGE = "mlops-airgap/debian:bookworm"
DEBIAN_MIRROR = "http://deb.debian.org/debian"
DEBIAN_SUITE = "bookworm"
DEFAULT_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
IMAGE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
APT_SOURCES = (
    f"deb {DEBIAN_MIRROR} {DEBIAN_SUITE} main\n"
    f"deb {DEBIAN_MIRROR} {DEBIAN_SUITE}-updates main\n"
    f"deb http://deb.debian.org/debian-security {DEBIAN_SUITE}-security main\n"
)
GRAFANA_NOTE = (
    "grafana: no package on these registries (Debian, PyPI, npm) and no image without a "
    "registry: the air-gapped stack leaves it out (run.sh prom-graf up starts Prometheus, "
    "Alertmanager and the StatsD exporter only); its dashboards are checked offline"
)


class AirgapError(RuntimeError):
    """An image could not be built; the message names the image and the step."""


@dataclass(frozen=True)
class Image:
    """One image built from platform/docker/airgap/<folder>."""

    folder: str
    name: str
    env_key: str
    # the build context: the image's folder, or the repository (images that copy repo files)
    repo_context: bool = False

    @property
    def dockerfile(self) -> Path:
        return AIRGAP_DIR / self.folder / "Dockerfile"

    @property
    def context(self) -> Path:
        return REPO_ROOT if self.repo_context else AIRGAP_DIR / self.folder


PYTHON = Image("python", "mlops-airgap/python:3.11-bookworm", "PYTHON_BASE_IMAGE")
SERVICES = (
    Image("postgres", "mlops-airgap/postgres:15-bookworm", "POSTGRES_IMAGE"),
    Image("redis", "mlops-airgap/redis:7.0-bookworm", "REDIS_IMAGE"),
    Image("prometheus", "mlops-airgap/prometheus:2.42-bookworm", "PROMETHEUS_IMAGE"),
    Image("alertmanager", "mlops-airgap/alertmanager:0.25-bookworm", "ALERTMANAGER_IMAGE"),
    Image(
        "statsd-exporter",
        "mlops-airgap/statsd-exporter:0.1.0-bookworm",
        "STATSD_EXPORTER_IMAGE",
        repo_context=True,
    ),
)
IMAGES = (PYTHON, *SERVICES)


def env_values() -> dict[str, str]:
    """What the env file gets: every stand-in's name under its compose variable."""
    return {image.env_key: image.name for image in IMAGES} | {"MLOPS_AIRGAP": "true"}


def ca_bundle(environ: Mapping[str, str]) -> Path | None:
    """MLOPS_BUILD_CA_BUNDLE, else the machine's bundle when it exists (public certificates:
    the builds mount it as a BuildKit secret, never into a layer)."""
    raw = environ.get("MLOPS_BUILD_CA_BUNDLE", "").strip()
    if raw:
        path = Path(raw)
        if not path.is_file():
            raise AirgapError(f"MLOPS_BUILD_CA_BUNDLE={raw}: no such file")
        return path
    return DEFAULT_CA_BUNDLE if DEFAULT_CA_BUNDLE.is_file() else None


def locked_version(package: str, lock: Path = REPO_ROOT / "uv.lock") -> str:
    data = tomllib.loads(lock.read_text())
    for entry in data["package"]:
        if entry["name"] == package:
            return str(entry["version"])
    raise AirgapError(f"{package} is not in {lock}")


def build_args(image: Image) -> dict[str, str]:
    args = {"DEBIAN_BASE_IMAGE": DEBIAN_IMAGE, "PYTHON_BASE_IMAGE": PYTHON.name}
    if image.folder == "statsd-exporter":
        args["PROMETHEUS_CLIENT_VERSION"] = locked_version("prometheus-client")
        args["PYYAML_VERSION"] = locked_version("pyyaml")
        args["PYDANTIC_VERSION"] = locked_version("pydantic")
    return args


def build_command(image: Image, ca: Path | None) -> list[str]:
    """`docker build` through Debian's CLI with BuildKit (env() puts it first on PATH)."""
    command = ["docker", "build", "--progress=plain", "-t", image.name, "-f", str(image.dockerfile)]
    for key, value in build_args(image).items():
        command += ["--build-arg", f"{key}={value}"]
    if ca is not None:
        command += ["--secret", f"id=build_ca,src={ca}"]
    return [*command, str(image.context)]


def debootstrap_command(root: Path) -> list[str]:
    return ["debootstrap", "--variant=minbase", DEBIAN_SUITE, str(root), DEBIAN_MIRROR]


def import_command() -> list[str]:
    return [
        "docker",
        "import",
        "-c",
        f"ENV PATH={IMAGE_PATH}",
        "-c",
        "ENV LANG=C.UTF-8",
        "-c",
        'CMD ["bash"]',
        "-",
        DEBIAN_IMAGE,
    ]


#: dpkg leaves these out of every package installed later (what Debian's and Ubuntu's minimal
#: container images configure): documentation, manual pages, translations. Copyright files stay.
DPKG_EXCLUDES = """\
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
"""


def prepare_rootfs(root: Path) -> None:
    """What an image needs that debootstrap leaves out or in: the security and updates suites,
    no service starts from package scripts (policy-rc.d, as in Docker's own mkimage), no
    downloaded .deb files or package lists, and no documentation, manual pages or translations
    (about 48 MB of the base, and of every image built on it)."""
    (root / "etc/apt/sources.list").write_text(APT_SOURCES)
    policy = root / "usr/sbin/policy-rc.d"
    policy.write_text("#!/bin/sh\nexit 101\n")
    policy.chmod(0o755)
    for folder in (root / "var/cache/apt/archives", root / "var/lib/apt/lists"):
        for entry in folder.glob("*"):
            if entry.is_file():
                entry.unlink()
    (root / "etc/dpkg/dpkg.cfg.d").mkdir(parents=True, exist_ok=True)
    (root / "etc/dpkg/dpkg.cfg.d/excludes").write_text(DPKG_EXCLUDES)
    share = root / "usr/share"
    keep = {share / "locale/locale.alias", *share.glob("doc/*/copyright")}
    for entry in [*share.glob("doc/*/*"), *share.glob("man/*"), *share.glob("info/*")]:
        if entry not in keep:
            _remove(entry)
    for entry in share.glob("locale/*"):
        if entry not in keep:
            _remove(entry)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)  # a doc folder may be a link to another package's


# --- running ---------------------------------------------------------------------------------


def _run(command: Sequence[str], env: Mapping[str, str], what: str, log: Path) -> float:
    """Run `command`, its output appended to `log`; returns the seconds it took."""
    started = time.monotonic()
    with log.open("a") as handle:
        handle.write(f"\n$ {' '.join(command)}\n")
        handle.flush()
        result = subprocess.run(
            list(command), env=dict(env), stdout=handle, stderr=subprocess.STDOUT, check=False
        )
    if result.returncode != 0:
        tail = "\n".join(f"  {line}" for line in log.read_text().splitlines()[-25:])
        raise AirgapError(f"{what} failed (exit {result.returncode}); last lines of {log}:\n{tail}")
    return time.monotonic() - started


def image_exists(name: str, env: Mapping[str, str]) -> bool:
    return (
        subprocess.run(
            ["docker", "image", "inspect", name], env=dict(env), capture_output=True, check=False
        ).returncode
        == 0
    )


def image_size(name: str, env: Mapping[str, str]) -> int:
    result = subprocess.run(
        ["docker", "image", "inspect", "-f", "{{.Size}}", name],
        env=dict(env),
        capture_output=True,
        text=True,
        check=False,
    )
    return int(result.stdout.strip() or 0)


def build_debian_base(env: Mapping[str, str], work: Path, log: Path) -> str:
    if shutil.which("debootstrap") is None:
        raise AirgapError("debootstrap is missing: ./run.sh engine up installs it")
    root = work / "rootfs"
    seconds = _run(debootstrap_command(root), env, "debootstrap", log)
    prepare_rootfs(root)
    started = time.monotonic()
    with subprocess.Popen(["tar", "-C", str(root), "-c", "."], stdout=subprocess.PIPE) as tar:
        result = subprocess.run(
            import_command(),
            stdin=tar.stdout,
            env=dict(env),
            capture_output=True,
            text=True,
            check=False,
        )
    if result.returncode != 0 or tar.returncode != 0:
        raise AirgapError(f"docker import of {DEBIAN_IMAGE} failed: {result.stderr.strip()}")
    shutil.rmtree(root)
    return f"debootstrap {seconds:.0f} s, docker import {time.monotonic() - started:.0f} s"


def docker_env(environ: Mapping[str, str]) -> dict[str, str]:
    """The caller's engine when one answers, else the project's engine (which must run)."""
    added = engine.runtime_env(environ)
    env = {**environ, **added}
    if not added and not engine.external_engine_answers(engine.default_layout(environ), environ):
        raise AirgapError("no container engine answers: ./run.sh engine up starts the project's")
    env.setdefault("DOCKER_BUILDKIT", "1")
    return env


def build_all(environ: Mapping[str, str], *, rebuild: bool, log: Path) -> list[tuple[str, str]]:
    """Build every image that is missing (all with `rebuild`); returns (image, what happened)."""
    env = docker_env(environ)
    ca = ca_bundle(environ)
    done: list[tuple[str, str]] = []
    if rebuild or not image_exists(DEBIAN_IMAGE, env):
        with tempfile.TemporaryDirectory(prefix="mlops-airgap-") as work:
            done.append((DEBIAN_IMAGE, build_debian_base(env, Path(work), log)))
    else:
        done.append((DEBIAN_IMAGE, "present"))
    for image in IMAGES:
        if not rebuild and image_exists(image.name, env):
            done.append((image.name, "present"))
            continue
        seconds = _run(build_command(image, ca), env, f"building {image.name}", log)
        done.append((image.name, f"built in {seconds:.0f} s"))
        print(f"  {image.name}: built in {seconds:.0f} s", flush=True)
    return done


def main(argv: Sequence[str] | None = None) -> int:
    rebuild = "--rebuild" in (argv or [])
    environ = dict(os.environ)
    env_file = launcher_env_file()
    if env_file.is_file():  # the setting may live in .env, as compose reads it from there
        configured = LauncherSettings.load(env_file).mlops_build_ca_bundle
        environ.setdefault("MLOPS_BUILD_CA_BUNDLE", configured)
    log = engine.default_layout(environ).root / "airgap-build.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    print(f"building the air-gapped images (log: {log})", flush=True)
    started = time.monotonic()
    try:
        done = build_all(environ, rebuild=rebuild, log=log)
    except AirgapError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    ensure_env_file(REPO_ROOT / ".env.example", env_file)
    changed = set_keys(env_file, env_values(), "air-gapped images (./run.sh engine images)")
    env = docker_env(environ)
    print(f"\nimages ({time.monotonic() - started:.0f} s):")
    for name, what in done:
        print(f"  {name:<46} {image_size(name, env) / 1e6:8.0f} MB  {what}")
    print(f"\n{env_file}: {', '.join(changed) if changed else 'already'} set to the stand-ins")
    print(GRAFANA_NOTE)
    return 0
