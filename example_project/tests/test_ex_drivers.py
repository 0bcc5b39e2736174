"""The two samplings of the drivers' one formula agree: the stream's continuous-time
``DriverWorld``, at a whole hour and given the generator's own hourly noise, gives exactly the
generator's values, for every scenario that changes the statistics."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest

from example_project.world.config import DRIVER_ID_OFFSET, Scenario
from example_project.world.drivers import STREAM_HOUR, DriverWorld, seeded_rng
from example_project.world.hourly import HourlyDrivers, epoch_hour


class _HourNoise:
    """Stands in for the producer's random stream: returns the generator's hourly noise."""

    def __init__(self, block: np.ndarray, rows: np.ndarray) -> None:
        self.values = block[rows]

    def standard_normal(self, shape: tuple[int, int]) -> np.ndarray:
        assert shape == self.values.shape
        return self.values


@pytest.mark.parametrize("scenario", ["normal", "covariate_drift"])
def test_stream_values_equal_the_generators_at_whole_hours(scenario: str) -> None:
    seed, n = 42, 300
    at = datetime(2024, 3, 5, 17, tzinfo=UTC)
    drift = datetime(2024, 3, 5, tzinfo=UTC)
    hour = epoch_hour(at)
    batch = HourlyDrivers(seed, n, Scenario(scenario), epoch_hour(drift))
    live = DriverWorld(seed, DRIVER_ID_OFFSET, DRIVER_ID_OFFSET + n - 1, Scenario(scenario), drift)
    assert np.array_equal(live.baseline, batch.baseline)
    assert np.array_equal(live.phase, batch.phase)
    assert np.array_equal(live.day_noise(hour // 24), batch.day_noise(hour // 24))

    rows = np.array([0, 5, 17, 299, 120], dtype=np.int64)
    # the generator's hourly stream, spelled out: SeedSequence([seed, 4, hour])
    assert STREAM_HOUR == 4
    hour_noise = np.random.default_rng(np.random.SeedSequence([seed, 4, hour])).standard_normal(
        (n, 5)
    )
    assert np.array_equal(hour_noise, seeded_rng(seed, STREAM_HOUR, hour).standard_normal((n, 5)))
    values = live.sample(rows + DRIVER_ID_OFFSET, at, _HourNoise(hour_noise, rows))  # type: ignore[arg-type]
    expected = batch.features(hour)
    for name, column in values.items():
        assert np.array_equal(column, expected[name][rows]), name


def test_between_whole_hours_the_stream_uses_the_fractional_hour() -> None:
    """At 17:30 the daily cycle is half-way through the hour (the generator knows whole hours
    only): the values are the formula's at hour + 0.5, and differ from 17:00's."""
    live = DriverWorld(42, DRIVER_ID_OFFSET, DRIVER_ID_OFFSET + 999)
    zero = np.zeros((1000, 5))

    class Zero:
        def standard_normal(self, shape: tuple[int, int]) -> np.ndarray:
            return zero[: shape[0]]

    ids = live.driver_ids
    half = datetime(2024, 3, 5, 17, 30, tzinfo=UTC)
    sampled = live.sample(ids, half, Zero())  # type: ignore[arg-type]
    hours = epoch_hour(datetime(2024, 3, 5, 17, tzinfo=UTC)) + 0.5
    expected = live.statistics(ids - DRIVER_ID_OFFSET, hours, zero, drifted=False)
    at_17 = live.sample(ids, datetime(2024, 3, 5, 17, tzinfo=UTC), Zero())  # type: ignore[arg-type]
    for name, column in sampled.items():
        assert np.array_equal(column, expected[name]), name
    assert (sampled["conv_rate"] != at_17["conv_rate"]).mean() > 0.9
