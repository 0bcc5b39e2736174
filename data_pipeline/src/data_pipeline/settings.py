"""Settings of the data pipeline: the platform's shared settings (``mlops_common.settings``,
``mlops_common.features``, ``mlops_common.sources``) plus the pipeline's own, prefixed ``MLOPS_``.

The env file is ``MLOPS_ENV_FILE`` when set, else ``.env`` in the working directory; variables of
the process environment win over it; empty values count as unset.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from mlops_common.features import FeatureStoreSettings
from mlops_common.settings import DataPath
from mlops_common.sources import SourceSettings

if TYPE_CHECKING:
    from sqlalchemy.engine import URL

#: The component's folder (``data_pipeline/``): the default home of the Feast feature repository.
COMPONENT_DIR = Path(__file__).resolve().parents[2]


class DataPipelineSettings(FeatureStoreSettings, SourceSettings):
    """The one settings object of the data pipeline.

    Shared (``mlops_common``): ``MLOPS_DATA_DIR``; ``MLOPS_SOURCE`` (the source the batch steps
    read, ``mlops_common.sources``; default ``example``); ``MLOPS_DATABASE_URL`` (a PostgreSQL
    *server* URL: the Feast SQL registry lives in the database ``<MLOPS_DATABASE_PREFIX>_data``,
    created when absent; empty: a registry file under the data directory); the online store
    (``MLOPS_ONLINE_STORE_URL``, else ``MLOPS_REDIS_URL``, else the platform's own redis-server on
    ``REDIS_PORT``); ``MLOPS_FEAST_PROJECT``.
    Own: ``MLOPS_FEATURE_REPO``, ``MLOPS_VALIDATION_*`` (the validation step's limits, see
    ``docs/pipeline.md``).
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

    @property
    def max_lateness(self) -> timedelta:
        return timedelta(hours=self.validation_max_lateness_hours)

    #: staged intermediate results of the batch pipeline, per interval
    pipeline_dir: ClassVar[DataPath] = DataPath("pipeline")
    #: rows that failed validation, with their reports, per interval
    quarantine_dir: ClassVar[DataPath] = DataPath("quarantine")

    @property
    def data_database_url(self) -> str | None:
        """URL of the data database (``<prefix>_data``), or None without PostgreSQL."""
        if not self.uses_postgres:
            return None
        return self._data_url().render_as_string(hide_password=False)

    def _data_url(self) -> URL:
        from sqlalchemy.engine import make_url

        return make_url(self.mlops_database_url.strip()).set(database=self.data_database)
