"""Settings of the data pipeline, read from the environment and the env file (prefix ``MLOPS_``).

The env file is ``MLOPS_ENV_FILE`` when set, else ``.env`` in the working directory; variables of
the process environment win over it; empty values count as unset.
"""

from __future__ import annotations

import os
import re
from datetime import datetime, timedelta
from pathlib import Path

from pydantic import AliasChoices, Field, SecretStr, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    DotEnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)
from sqlalchemy.engine import make_url

#: The component's folder (``data_pipeline/``): the default home of the Feast feature repository.
COMPONENT_DIR = Path(__file__).resolve().parents[2]

_PROJECT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_]{0,62}$")


def _default_data_dir() -> Path:
    return Path.cwd() / ".mlops"


def env_file_path() -> Path:
    """``MLOPS_ENV_FILE`` when set, else ``.env`` (relative to the working directory)."""
    return Path(os.environ.get("MLOPS_ENV_FILE", "").strip() or ".env")


class DataPipelineSettings(BaseSettings):
    """The one settings object of the data pipeline.

    ``MLOPS_DATA_DIR``: the platform's data directory (empty: ``<cwd>/.mlops``).
    ``MLOPS_DATABASE_URL``: empty keeps the example source in local parquet files under the data
    directory; a PostgreSQL *server* URL (``postgresql://user@host:5432``) keeps it in the database
    ``<MLOPS_DATABASE_PREFIX>_data`` (default ``mlops_data``) on that server, created when absent;
    the Feast SQL registry lives in the same database.
    ``MLOPS_ONLINE_STORE_URL``: the Feast online store, ``redis://host:port/db`` or
    ``sqlite:///path`` (the launcher sets it for every process); else ``MLOPS_REDIS_URL``; else the
    platform's own redis-server ``redis://127.0.0.1:<REDIS_PORT>/0`` (``REDIS_PORT`` default 6380).
    ``MLOPS_FEAST_PROJECT``: the Feast project (default ``driver_ranking``).
    ``MLOPS_VALIDATION_*``: the validation step's limits (see ``docs/pipeline.md``).
    ``MLOPS_EXAMPLE_*``: the example world that ``data-pipeline emit`` writes hour by hour.
    """

    model_config = SettingsConfigDict(
        env_prefix="MLOPS_",
        env_file=".env",
        env_file_encoding="utf-8",
        env_ignore_empty=True,
        extra="ignore",
    )

    data_dir: Path = Field(default_factory=_default_data_dir)
    database_url: str = ""
    database_prefix: str = "mlops"

    # -- feature store -------------------------------------------------------------------------
    online_store_url: str = ""
    redis_url: str = ""
    bind_host: str = "127.0.0.1"
    redis_port: int = Field(
        default=6380,
        ge=1,
        le=65535,
        validation_alias=AliasChoices("REDIS_PORT", "MLOPS_REDIS_PORT"),
    )
    feast_project: str = "driver_ranking"
    #: the Feast feature repository (default: ``data_pipeline/feature_repo`` of this checkout)
    feature_repo: Path = Field(default_factory=lambda: COMPONENT_DIR / "feature_repo")

    # -- validation ----------------------------------------------------------------------------
    #: a batch whose share of failing rows is above this fails the step (nothing is published)
    validation_max_failure_rate: float = Field(default=0.05, ge=0.0, le=1.0)
    #: a batch with fewer rows than this per hour of its interval fails the step
    validation_min_rows_per_hour: int = Field(default=1, ge=0)
    #: a row whose ``event_timestamp`` is more than this before its delivery (``created``) is late
    validation_max_lateness_hours: float = Field(default=1.0, gt=0.0)
    #: rows delivered with an ``event_timestamp`` more than this after ``created`` are rejected
    validation_max_future_seconds: float = Field(default=60.0, ge=0.0)

    # -- the example world the ``example_source`` DAG emits (``data-pipeline emit``) ---------------
    example_seed: int = Field(default=42, ge=0)
    example_drivers: int = Field(default=1000, ge=1)
    example_scenario: str = "normal"
    example_bookings_per_hour: int = Field(default=30, ge=0)
    example_drift_start: datetime | None = None

    # -- the example company's dispatcher (``data-pipeline dispatch``, the ``traffic`` service) ----
    #: bookings a second sent to the prediction API
    dispatch_rate: float = Field(default=5.0, gt=0.0, le=1000.0)
    dispatch_candidates: int = Field(default=5, ge=1, le=200)
    #: share of bookings assigned to a random scored candidate instead of the ranking's best
    dispatch_explore: float = Field(default=0.3, ge=0.0, le=1.0)
    dispatch_label_delay_min_s: float = Field(default=5.0, ge=0.0)
    dispatch_label_delay_max_s: float = Field(default=30.0, ge=0.0)
    dispatch_seed: int | None = Field(default=None, ge=0)
    #: the prediction API (empty: ``http://<MLOPS_BIND_HOST>:<SERVING_PORT>``)
    dispatch_serving_url: str = ""
    dispatch_timeout_s: float = Field(default=5.0, gt=0.0)
    dispatch_metrics_port: int = Field(
        default=8313,
        ge=0,
        le=65535,
        validation_alias=AliasChoices("DISPATCH_METRICS_PORT", "MLOPS_DISPATCH_METRICS_PORT"),
    )
    serving_port: int = Field(
        default=8172, ge=1, le=65535, validation_alias=AliasChoices("SERVING_PORT")
    )
    serving_api_key: SecretStr = Field(
        default=SecretStr(""), validation_alias=AliasChoices("SERVING_API_KEY")
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Environment first, then ``MLOPS_ENV_FILE`` (when set) or ``.env``."""
        if os.environ.get("MLOPS_ENV_FILE", "").strip():
            dotenv_settings = DotEnvSettingsSource(settings_cls, env_file=env_file_path())
        return init_settings, env_settings, dotenv_settings, file_secret_settings

    @field_validator("feast_project")
    @classmethod
    def _project_name(cls, value: str) -> str:
        if not _PROJECT_NAME.match(value):
            raise ValueError(
                "feast_project must be 1-63 letters, digits and underscores, starting with a "
                f"letter or digit (got {value!r})"
            )
        return value

    @field_validator("online_store_url", "redis_url")
    @classmethod
    def _store_url(cls, value: str) -> str:
        value = value.strip()
        if value and not value.startswith(("redis://", "rediss://", "sqlite:///")):
            raise ValueError(f"expected a redis://, rediss:// or sqlite:/// URL (got {value!r})")
        return value

    @property
    def effective_online_store_url(self) -> str:
        """``MLOPS_ONLINE_STORE_URL``, else ``MLOPS_REDIS_URL``, else the platform's Redis."""
        return (
            self.online_store_url
            or self.redis_url
            or f"redis://{self.bind_host}:{self.redis_port}/0"
        )

    @property
    def dispatch_serving_base_url(self) -> str:
        return (
            self.dispatch_serving_url.strip().rstrip("/")
            or f"http://{self.bind_host}:{self.serving_port}"
        )

    @model_validator(mode="after")
    def _label_delays(self) -> DataPipelineSettings:
        if self.dispatch_label_delay_max_s < self.dispatch_label_delay_min_s:
            raise ValueError(
                "dispatch_label_delay_max_s must not be below dispatch_label_delay_min_s "
                f"({self.dispatch_label_delay_max_s} < {self.dispatch_label_delay_min_s})"
            )
        return self

    @property
    def max_lateness(self) -> timedelta:
        return timedelta(hours=self.validation_max_lateness_hours)

    @property
    def feast_dir(self) -> Path:
        """Feast's local state: ``<data_dir>/feast`` (file registry, SQLite online store)."""
        return self.data_dir / "feast"

    @property
    def offline_dir(self) -> Path:
        """The offline store's root: ``<data_dir>/offline``."""
        return self.data_dir / "offline"

    @property
    def pipeline_dir(self) -> Path:
        """Staged intermediate results of the batch pipeline, per interval."""
        return self.data_dir / "pipeline"

    @property
    def quarantine_dir(self) -> Path:
        """Rows that failed validation, with their reports, per interval."""
        return self.data_dir / "quarantine"

    @property
    def data_database_url(self) -> str | None:
        """URL of the data database (``<prefix>_data``), or None without PostgreSQL."""
        if not self.uses_postgres:
            return None
        url = make_url(self.database_url.strip()).set(database=self.data_database)
        return url.render_as_string(hide_password=False)

    @property
    def data_database(self) -> str:
        return f"{self.database_prefix}_data"

    @property
    def uses_postgres(self) -> bool:
        return bool(self.database_url.strip())

    @property
    def source_dir(self) -> Path:
        """Root of the local-file example source: ``<data_dir>/source``."""
        return self.data_dir / "source"

    @property
    def source_database_url(self) -> str | None:
        """URL of the database holding the example source (schema ``source``), or None for files."""
        if not self.uses_postgres:
            return None
        url = make_url(self.database_url.strip()).set(database=self.data_database)
        return url.render_as_string(hide_password=False)

    @property
    def source_location(self) -> str:
        """Human-readable location of the example source (no password)."""
        if self.uses_postgres:
            url = make_url(self.database_url.strip()).set(database=self.data_database)
            return f"{url.render_as_string(hide_password=True)} (schema source)"
        return str(self.source_dir)
