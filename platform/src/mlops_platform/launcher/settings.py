"""The platform launcher's settings, on the shared base (:mod:`mlops_common.settings`).

Every settings class of the launcher (its own :class:`LauncherSettings`, a service's small
``XxxSettings``, the alert delivery settings) derives from :class:`LauncherEnvSettings`: the
shared fields and rules (data directory, bind host, Redis, MLflow, PostgreSQL) come from the
base, and :meth:`LauncherEnvSettings.load` reads the env file the launcher named (the
environment still wins over it). Which file that is follows the base's rule, anchored at the
repository: ``MLOPS_ENV_FILE``, else ``.env`` at the repo root (:func:`launcher_env_file`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, Protocol, Self

from pydantic import Field, SecretStr

from mlops_common.settings import PlatformSettings, env_file
from mlops_platform.launcher.paths import PLATFORM_DIR, REPO_ROOT

Runtime = Literal["auto", "local", "docker"]
Bootstrap = Literal["auto", "off"]


def launcher_env_file() -> Path:
    """The launcher's env file: the shared rule's, a relative path taken from the repo root
    (where run.sh works)."""
    return REPO_ROOT / env_file()


class HasEnvFile(Protocol):
    """Anything that knows the launcher's env file (a service's Context)."""

    @property
    def env_file(self) -> Path: ...


class LauncherEnvSettings(PlatformSettings):
    """Settings read from the launcher's env file: subclass it and add fields."""

    @classmethod
    def load(cls, source: Path | HasEnvFile | None = None, /, **values: Any) -> Self:
        """Settings from the environment and ``source`` (an env file, or the holder of one)
        instead of the rule's own lookup; ``values`` win over both."""
        if source is not None:
            values["_env_file"] = source if isinstance(source, Path) else source.env_file
        return super().load(**values)


class LauncherSettings(LauncherEnvSettings):
    """Everything `run.sh` needs: runtime, ports, backends and secrets.

    Values come from the process environment first, then from the env file (default `<repo>/.env`,
    written from `.env.example` on the first `up`). A relative data directory is taken from the
    repository root (default `<repo>/.mlops`).
    """

    mlops_runtime: Runtime = "auto"
    compose_project_name: str = "mlops"
    # `all up` on a platform with no champion runs the bootstrap plan
    # (mlops_platform.launcher.bootstrap)
    mlops_bootstrap: Bootstrap = "auto"
    mlops_bootstrap_plan: str = ""
    # docker runtime on a host with no registry: images are the local stand-ins
    # (`./run.sh engine images` sets it) and services without one (Grafana) are left out
    mlops_airgap: bool = False
    # extra CA bundle for image builds behind a TLS-intercepting proxy (empty: the machine's)
    mlops_build_ca_bundle: str = ""

    airflow_port: int = 8080
    serving_port: int = 8172
    monitoring_port: int = 8309
    prometheus_port: int = 9090
    alertmanager_port: int = 9093
    grafana_port: int = 3000
    statsd_exporter_port: int = 9102
    statsd_port: int = 9125

    airflow_admin_user: str = "admin"
    grafana_admin_user: str = "admin"
    airflow_admin_password: SecretStr = Field(default=SecretStr(""))
    airflow_api_secret_key: SecretStr = Field(default=SecretStr(""))
    airflow_jwt_secret: SecretStr = Field(default=SecretStr(""))
    airflow_fernet_key: SecretStr = Field(default=SecretStr(""))
    serving_api_key: SecretStr = Field(default=SecretStr(""))
    monitoring_webhook_secret: SecretStr = Field(default=SecretStr(""))
    grafana_admin_password: SecretStr = Field(default=SecretStr(""))
    postgres_password: SecretStr = Field(default=SecretStr(""))

    @property
    def data_dir(self) -> Path:
        """Root of all local-runtime state (git-ignored)."""
        path = self.mlops_data_dir.expanduser()
        return path if path.is_absolute() else REPO_ROOT / path

    @property
    def bootstrap_plan(self) -> Path:
        raw = self.mlops_bootstrap_plan.strip()
        if not raw:
            return PLATFORM_DIR / "bootstrap.yml"
        path = Path(raw).expanduser()
        return path if path.is_absolute() else REPO_ROOT / path

    def url(self, port: int) -> str:
        """A platform server's URL on this machine."""
        return f"http://{self.loopback_host}:{port}"

    def missing_secrets(self) -> list[str]:
        """Names of secrets that are empty: the launcher refuses to start with any of them."""
        return [
            name.upper()
            for name, value in self.model_dump().items()
            if isinstance(value, SecretStr) and not value.get_secret_value()
        ]
