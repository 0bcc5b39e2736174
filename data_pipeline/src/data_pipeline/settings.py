"""Settings of the data pipeline: the platform's shared settings (``mlops_common.settings``,
``mlops_common.features``) plus the pipeline's own, prefixed ``MLOPS_``.

The env file is ``MLOPS_ENV_FILE`` when set, else ``.env`` in the working directory; variables of
the process environment win over it; empty values count as unset.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import AliasChoices, Field, SecretStr, model_validator
from pydantic_settings import SettingsConfigDict

from mlops_common.features import FeatureStoreSettings

if TYPE_CHECKING:
    from sqlalchemy.engine import URL

#: The component's folder (``data_pipeline/``): the default home of the Feast feature repository.
COMPONENT_DIR = Path(__file__).resolve().parents[2]


class DataPipelineSettings(FeatureStoreSettings):
    """The one settings object of the data pipeline.

    Shared (``mlops_common``): ``MLOPS_DATA_DIR``; ``MLOPS_DATABASE_URL`` (empty keeps the example
    source in local parquet files under the data directory; a PostgreSQL *server* URL keeps it
    in the database ``<MLOPS_DATABASE_PREFIX>_data``, created when absent, with the Feast SQL
    registry); the online store (``MLOPS_ONLINE_STORE_URL``, else ``MLOPS_REDIS_URL``, else the
    platform's own redis-server on ``REDIS_PORT``); ``MLOPS_FEAST_PROJECT``.
    Own: ``MLOPS_VALIDATION_*`` (the validation step's limits, see ``docs/pipeline.md``),
    ``MLOPS_EXAMPLE_*`` (the example world that ``data-pipeline emit`` writes hour by hour),
    ``MLOPS_DISPATCH_*`` (the example company's dispatcher).
    """

    model_config = SettingsConfigDict(env_prefix="MLOPS_")

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

    @property
    def dispatch_serving_base_url(self) -> str:
        return (
            self.dispatch_serving_url.strip().rstrip("/")
            or f"http://{self.loopback_host}:{self.serving_port}"
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
        return self._data_url().render_as_string(hide_password=False)

    def _data_url(self) -> URL:
        from sqlalchemy.engine import make_url

        return make_url(self.mlops_database_url.strip()).set(database=self.data_database)

    @property
    def source_dir(self) -> Path:
        """Root of the local-file example source: ``<data_dir>/source``."""
        return self.data_dir / "source"

    @property
    def source_database_url(self) -> str | None:
        """URL of the database holding the example source (schema ``source``), or None for files."""
        return self.data_database_url

    @property
    def source_location(self) -> str:
        """Human-readable location of the example source (no password)."""
        if self.uses_postgres:
            return f"{self._data_url().render_as_string(hide_password=True)} (schema source)"
        return str(self.source_dir)
