"""The platform launcher's one settings object, read from the environment and the `.env` file."""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from mlops_platform.launcher.paths import PLATFORM_DIR, REPO_ROOT

Runtime = Literal["auto", "local", "docker"]
Bootstrap = Literal["auto", "off"]


class PlatformSettings(BaseSettings):
    """Everything `run.sh` needs: runtime, ports, backends and secrets.

    Values come from the process environment first, then from the env file (default `<repo>/.env`,
    written from `.env.example` on the first `up`).
    """

    model_config = SettingsConfigDict(extra="ignore", env_file_encoding="utf-8")

    mlops_runtime: Runtime = "auto"
    mlops_bind_host: str = "127.0.0.1"
    mlops_data_dir: str = ""
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
    mlflow_port: int = 5000
    serving_port: int = 8172
    monitoring_port: int = 8309
    prometheus_port: int = 9090
    alertmanager_port: int = 9093
    grafana_port: int = 3000
    redis_port: int = 6380
    statsd_exporter_port: int = 9102
    statsd_port: int = 9125

    mlops_database_url: str = ""
    # databases on that server are named <prefix>_airflow, <prefix>_mlflow, <prefix>_data
    mlops_database_prefix: str = "mlops"
    mlops_redis_url: str = ""

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

    @classmethod
    def load(cls, env_file: Path) -> PlatformSettings:
        return cls(_env_file=env_file)  # type: ignore[call-arg]

    @cached_property
    def data_dir(self) -> Path:
        """Root of all local-runtime state (git-ignored)."""
        raw = self.mlops_data_dir.strip()
        path = Path(raw).expanduser() if raw else REPO_ROOT / ".mlops"
        return path if path.is_absolute() else (REPO_ROOT / path)

    @property
    def bootstrap_plan(self) -> Path:
        raw = self.mlops_bootstrap_plan.strip()
        if not raw:
            return PLATFORM_DIR / "bootstrap.yml"
        path = Path(raw).expanduser()
        return path if path.is_absolute() else REPO_ROOT / path

    def database_name(self, component: str) -> str:
        return f"{self.mlops_database_prefix}_{component}"

    def url(self, port: int) -> str:
        return f"http://{self.mlops_bind_host}:{port}"

    def missing_secrets(self) -> list[str]:
        """Names of secrets that are empty: the launcher refuses to start with any of them."""
        return [
            name.upper()
            for name, value in self.model_dump().items()
            if isinstance(value, SecretStr) and not value.get_secret_value()
        ]
