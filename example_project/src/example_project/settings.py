"""Settings of the example company: the platform's shared settings plus its own (``MLOPS_``).

Shared (``mlops_common``): ``MLOPS_DATA_DIR`` and ``MLOPS_DATABASE_URL`` (where its raw data is
kept, see ``storage``), the feature store (the dispatcher reads the assigned driver's online
features). Own:

- ``MLOPS_EXAMPLE_*``: the world (seed, drivers, scenario, bookings an hour, drift start) that
  ``example-project emit`` writes hour by hour and ``generate`` writes by default; the stream
  producer reads the same variables (``stream_emitting.settings``);
- ``MLOPS_DISPATCH_*``: the dispatcher (``example-project dispatch``, the ``traffic`` service).

The env file is ``MLOPS_ENV_FILE`` when set, else ``.env`` in the working directory; variables of
the process environment win over it; empty values count as unset.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import AliasChoices, Field, SecretStr, model_validator
from pydantic_settings import SettingsConfigDict

from example_project.world.config import ExampleSourceConfig
from mlops_common.features import FeatureStoreSettings


class ExampleProjectSettings(FeatureStoreSettings):
    """The one settings object of the example project."""

    model_config = SettingsConfigDict(env_prefix="MLOPS_")

    # -- the example world (``example-project emit``, the ``example_source`` DAG) ------------------
    example_seed: int = Field(default=42, ge=0)
    example_drivers: int = Field(default=1000, ge=1)
    example_scenario: str = "normal"
    example_bookings_per_hour: int = Field(default=30, ge=0)
    example_drift_start: datetime | None = None

    # -- the dispatcher (``example-project dispatch``, the ``traffic`` service) --------------------
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
    #: the feature service whose online values the outcomes are drawn on (what serving ranks on)
    dispatch_feature_service: str = "driver_ranking_v1"
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
    def _label_delays(self) -> ExampleProjectSettings:
        if self.dispatch_label_delay_max_s < self.dispatch_label_delay_min_s:
            raise ValueError(
                "dispatch_label_delay_max_s must not be below dispatch_label_delay_min_s "
                f"({self.dispatch_label_delay_max_s} < {self.dispatch_label_delay_min_s})"
            )
        return self

    def world_config(self, start: datetime, end: datetime) -> ExampleSourceConfig:
        """The ``MLOPS_EXAMPLE_*`` world, slice ``[start, end)``."""
        return ExampleSourceConfig.model_validate(
            {
                "seed": self.example_seed,
                "n_drivers": self.example_drivers,
                "start": start,
                "end": end,
                "bookings_per_hour": self.example_bookings_per_hour,
                "scenario": self.example_scenario,
                "drift_start": self.example_drift_start,
            }
        )
