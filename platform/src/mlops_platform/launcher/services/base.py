"""What a platform service is, independent of the runtime that runs it."""

from __future__ import annotations

import sys
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import SecretStr

from mlops_platform.launcher.health import Probe, http_probe
from mlops_platform.launcher.online_store import online_store_url
from mlops_platform.launcher.paths import REPO_ROOT
from mlops_platform.launcher.settings import LauncherSettings

#: the environment of a service that must not start a thread pool per core (the API services)
SINGLE_THREADED = {
    "OMP_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
}


@dataclass(frozen=True)
class Context:
    """What a service definition may read: the settings and where state lives."""

    settings: LauncherSettings
    env_file: Path

    @property
    def data_dir(self) -> Path:
        return self.settings.data_dir

    def state_dir(self, service: str) -> Path:
        path = self.data_dir / service
        path.mkdir(parents=True, exist_ok=True)
        return path

    def require(self, secret: SecretStr, name: str) -> None:
        """Refuse to start a service whose secret ``name`` is empty in the env file."""
        if not secret.get_secret_value():
            raise RuntimeError(f"{name} is empty in {self.env_file}")

    def scrape_target(self, job: str, port: int) -> dict[str, list[str]]:
        """One Prometheus scrape job: ``job`` at ``<MLOPS_BIND_HOST>:<port>``."""
        return {job: [f"{self.settings.mlops_bind_host}:{port}"]}

    @staticmethod
    def venv_bin(name: str) -> str:
        """A console script of the platform's own Python environment."""
        return str(Path(sys.executable).parent / name)

    def base_environment(self) -> dict[str, str]:
        """Environment every process of the platform gets: where the platform and its state are."""
        s = self.settings
        return {
            "MLOPS_REPO_ROOT": str(REPO_ROOT),
            "MLOPS_DATA_DIR": str(self.data_dir),
            "MLOPS_INSTANCE": str(self.data_dir),
            "MLOPS_ENV_FILE": str(self.env_file),
            "MLOPS_BIND_HOST": s.mlops_bind_host,
            "MLOPS_DATABASE_URL": s.mlops_database_url,
            "MLOPS_DATABASE_PREFIX": s.mlops_database_prefix,
            "MLOPS_REDIS_URL": s.mlops_redis_url,
            "MLOPS_ONLINE_STORE_URL": online_store_url(s),
            "MLFLOW_TRACKING_URI": s.tracking_uri,
            # setproctitle (imported via gunicorn by Feast) would otherwise blank the process
            # environment, and with it the MLOPS_INSTANCE tag
            "SPT_NOENV": "1",
        }


@dataclass(frozen=True)
class Program:
    """One long-running process of a service."""

    name: str
    command: list[str]
    environment: dict[str, str] = field(default_factory=dict)
    stop_wait_seconds: int = 20


@dataclass(frozen=True)
class Check:
    """A named health probe of a service."""

    name: str
    probe: Probe


class Service(ABC):
    """A group of processes that `run.sh <name> up|down|…` manages as one unit.

    Adding a service to the platform means writing one subclass (`HttpService` for one HTTP
    process on one port) and listing it in `mlops_platform.launcher.services.SERVICES`.
    """

    name: str
    description: str
    depends_on: tuple[str, ...] = ()
    start_timeout: float = 120.0

    def prepare(self, ctx: Context) -> None:  # noqa: B027 - optional hook
        """Install what is missing and create state (databases, folders). Must be idempotent."""

    @abstractmethod
    def programs(self, ctx: Context) -> list[Program]:
        """The processes to supervise; empty when the service is an external or embedded one."""

    @abstractmethod
    def checks(self, ctx: Context) -> list[Check]:
        """Health checks; the service is healthy when all pass."""

    def scrape_targets(self, ctx: Context) -> dict[str, list[str]]:
        """Prometheus scrape job -> host:port targets this service exposes (local runtime)."""
        return {}

    @abstractmethod
    def endpoints(self, ctx: Context) -> list[str]:
        """Lines telling the operator where the service answers and where its credentials are."""


class HttpService(Service):
    """A service of one HTTP process on one port: healthy when ``health_path`` answers with
    ``health_text`` in it; Prometheus scrapes it as the job of the service's name."""

    health_path: str = "/health/live"
    health_text: str = "alive"

    @abstractmethod
    def port(self, ctx: Context) -> int:
        """The port the service listens on."""

    def url(self, ctx: Context) -> str:
        return ctx.settings.url(self.port(ctx))

    def checks(self, ctx: Context) -> list[Check]:
        probe = http_probe(f"{self.url(ctx)}{self.health_path}", expect_text=self.health_text)
        return [Check(self.name, probe)]

    def scrape_targets(self, ctx: Context) -> dict[str, list[str]]:
        return ctx.scrape_target(self.name, self.port(ctx))

    def api_program(
        self, ctx: Context, cli: str, environment: dict[str, str], stop_wait_seconds: int
    ) -> Program:
        """The service's process when it is one of the platform's FastAPI apps: ``<cli> serve``
        with one OpenMP/BLAS thread (``SINGLE_THREADED``)."""
        return Program(
            name=self.name,
            command=[ctx.venv_bin(cli), "serve"],
            environment={**environment, **SINGLE_THREADED},
            stop_wait_seconds=stop_wait_seconds,
        )
