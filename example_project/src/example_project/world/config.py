"""Configuration of the example data generator."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from enum import StrEnum

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

#: driver_id of the first driver; driver i (0-based) has driver_id ``DRIVER_ID_OFFSET + i``.
DRIVER_ID_OFFSET = 1001


class Scenario(StrEnum):
    """Named scenarios. Before ``drift_start`` every scenario equals ``normal``."""

    NORMAL = "normal"
    COVARIATE_DRIFT = "covariate_drift"
    CONCEPT_DRIFT = "concept_drift"
    DIRTY = "dirty"


DRIFT_SCENARIOS = frozenset({Scenario.COVARIATE_DRIFT, Scenario.CONCEPT_DRIFT})


def to_utc_hour(value: datetime, name: str) -> datetime:
    """Return ``value`` as an aware UTC datetime; naive values are taken as UTC.

    Raises ValueError when the value is not on a whole hour or lies before 1970.
    """
    value = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    if value.minute or value.second or value.microsecond:
        raise ValueError(f"{name} must be on a whole hour (got {value.isoformat()})")
    if value < datetime(1970, 1, 1, tzinfo=UTC):
        raise ValueError(f"{name} must not be before 1970-01-01 (got {value.isoformat()})")
    return value


class DirtyRates(BaseModel):
    """Defect rates of the ``dirty`` scenario, as fractions of the hourly driver stats rows.

    The number of defects of each kind per hour is Binomial(n_drivers, rate).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    null: float = Field(default=0.01, ge=0.0, le=0.5, description="a feature value set to null")
    out_of_range: float = Field(
        default=0.01, ge=0.0, le=0.5, description="a feature value outside its valid range"
    )
    duplicate: float = Field(
        default=0.005, ge=0.0, le=0.5, description="a row delivered twice (later `created`)"
    )
    late: float = Field(
        default=0.005,
        ge=0.0,
        le=0.5,
        description="an old row (event_timestamp 2-72 h before its delivery hour) delivered again",
    )


class ExampleSourceConfig(BaseModel):
    """What to generate: the hourly period ``[start, end)`` and the world's parameters.

    ``seed``, ``scenario``, ``drift_start``, ``dirty_rates`` and the driver population define the
    world; ``start``/``end`` only choose the slice of it. Generating two adjacent slices gives
    exactly the rows of generating their union at once.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    seed: int = Field(default=42, ge=0, lt=2**63)
    n_drivers: int = Field(default=1000, ge=1, le=1_000_000)
    start: datetime
    end: datetime
    bookings_per_hour: int = Field(default=30, ge=0, le=100_000)
    candidates_per_booking: int = Field(default=5, ge=1, le=100)
    scenario: Scenario = Scenario.NORMAL
    drift_start: datetime | None = None
    dirty_rates: DirtyRates = Field(default_factory=DirtyRates)

    @field_validator("start", "end", "drift_start")
    @classmethod
    def _whole_utc_hour(cls, value: datetime | None, info: ValidationInfo) -> datetime | None:
        if value is None:
            return None
        return to_utc_hour(value, info.field_name or "timestamp")

    @model_validator(mode="after")
    def _consistent(self) -> ExampleSourceConfig:
        if self.end <= self.start:
            raise ValueError(
                f"end ({self.end.isoformat()}) must be after start ({self.start.isoformat()})"
            )
        if self.candidates_per_booking > self.n_drivers:
            raise ValueError(
                f"candidates_per_booking ({self.candidates_per_booking}) must not exceed "
                f"n_drivers ({self.n_drivers})"
            )
        if self.scenario in DRIFT_SCENARIOS and self.drift_start is None:
            raise ValueError(
                f"scenario {self.scenario.value} needs drift_start (an absolute UTC hour, so that "
                "every slice of the period agrees on it)"
            )
        return self

    @property
    def n_hours(self) -> int:
        return int((self.end - self.start) / timedelta(hours=1))

    @property
    def driver_ids(self) -> list[int]:
        return list(range(DRIVER_ID_OFFSET, DRIVER_ID_OFFSET + self.n_drivers))

    def with_period(self, start: datetime, end: datetime) -> ExampleSourceConfig:
        """The same world, another slice of it."""
        return ExampleSourceConfig.model_validate({**self.model_dump(), "start": start, "end": end})
