"""Settings of the driver stats stream, read from the environment and the env file.

The env file is ``MLOPS_ENV_FILE`` when set, else ``.env`` in the working directory; variables of
the process environment win over it. Empty values count as unset.

``mlops_common.events.driver_stats.StreamBrokerSettings`` is the stream's contract (where the
broker is, which stream): the producer's ``ProducerSettings`` and the data pipeline's consumer
settings both extend it, so the two sides cannot disagree on the defaults.
"""

from __future__ import annotations

from datetime import datetime
from typing import Self

from pydantic import AliasChoices, Field, field_validator, model_validator

from example_project.world.config import DRIVER_ID_OFFSET, Scenario
from mlops_common.events.driver_stats import StreamBrokerSettings


class ProducerSettings(StreamBrokerSettings):
    """The producer: rate, scenario and the drivers it reports on."""

    rate: float = Field(default=10.0, gt=0.0, le=100_000.0, validation_alias="MLOPS_STREAM_RATE")
    # The world: the stream's own variable, else the example world's (MLOPS_EXAMPLE_*), so that
    # one setting switches the batch data, the stream and the example traffic together.
    scenario: Scenario = Field(
        default=Scenario.NORMAL,
        validation_alias=AliasChoices("MLOPS_STREAM_SCENARIO", "MLOPS_EXAMPLE_SCENARIO"),
    )
    seed: int = Field(
        default=42,
        ge=0,
        lt=2**63,
        validation_alias=AliasChoices("MLOPS_STREAM_SEED", "MLOPS_EXAMPLE_SEED"),
    )
    #: the drivers reported on (the example world's drivers are 1001 .. 1000 + n)
    driver_id_min: int = Field(
        default=DRIVER_ID_OFFSET, ge=DRIVER_ID_OFFSET, validation_alias="MLOPS_STREAM_DRIVER_ID_MIN"
    )
    driver_id_max: int = Field(
        default=2000, ge=DRIVER_ID_OFFSET, validation_alias="MLOPS_STREAM_DRIVER_ID_MAX"
    )
    #: covariate_drift starts here (UTC); empty: from the producer's start
    drift_start: datetime | None = Field(
        default=None,
        validation_alias=AliasChoices("MLOPS_STREAM_DRIFT_START", "MLOPS_EXAMPLE_DRIFT_START"),
    )
    #: dirty: fraction of events emitted malformed, and of valid events sent twice
    dirty_rate: float = Field(
        default=0.05, ge=0.0, le=1.0, validation_alias="MLOPS_STREAM_DIRTY_RATE"
    )
    duplicate_rate: float = Field(
        default=0.02, ge=0.0, le=1.0, validation_alias="MLOPS_STREAM_DUPLICATE_RATE"
    )
    #: XADD ... MAXLEN ~ <maxlen>: the stream keeps about this many entries
    maxlen: int = Field(default=100_000, ge=100, validation_alias="MLOPS_STREAM_MAXLEN")
    #: /metrics port of the producer (0: no metrics server)
    metrics_port: int = Field(
        default=0, ge=0, le=65535, validation_alias="MLOPS_STREAM_PRODUCER_METRICS_PORT"
    )
    #: prefix of the event ids; empty: a random one per process
    producer_id: str = Field(default="", validation_alias="MLOPS_STREAM_PRODUCER_ID")
    #: reconnect backoff: first and longest wait, seconds
    backoff_initial: float = Field(
        default=0.1, gt=0.0, le=60.0, validation_alias="MLOPS_STREAM_BACKOFF_INITIAL"
    )
    backoff_max: float = Field(
        default=5.0, gt=0.0, le=600.0, validation_alias="MLOPS_STREAM_BACKOFF_MAX"
    )

    @field_validator("drift_start")
    @classmethod
    def _utc(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("drift_start needs a UTC offset, e.g. 2024-01-01T00:00:00Z")
        return value

    @model_validator(mode="after")
    def _driver_range(self) -> Self:
        if self.driver_id_max < self.driver_id_min:
            raise ValueError(f"driver id range is empty: {self.driver_id_min}-{self.driver_id_max}")
        if self.driver_id_max - DRIVER_ID_OFFSET >= 1_000_000:
            raise ValueError(f"driver ids stop at {DRIVER_ID_OFFSET + 999_999}")
        return self
