"""The producer's driver world restates the example generator's model (stream_emitting cannot
import the data pipeline): at a whole hour, with the generator's own hourly noise, it must give
exactly the generator's values, for every scenario that changes the statistics."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest

from data_pipeline.example_source.config import DRIVER_ID_OFFSET, Scenario
from data_pipeline.example_source.generator import _World, epoch_hour
from stream_emitting import world as stream_world


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
    batch = _World(seed, n, Scenario(scenario), epoch_hour(drift))
    live = stream_world.DriverWorld(
        seed, DRIVER_ID_OFFSET, DRIVER_ID_OFFSET + n - 1, stream_world.Scenario(scenario), drift
    )
    assert stream_world.DRIVER_ID_OFFSET == DRIVER_ID_OFFSET
    assert np.array_equal(live.baseline, batch.baseline)
    assert np.array_equal(live.phase, batch.phase)
    assert np.array_equal(live.day_noise(hour // 24), batch.day_noise(hour // 24))

    rows = np.array([0, 5, 17, 299, 120], dtype=np.int64)
    hour_noise = np.random.default_rng(
        np.random.SeedSequence([seed, 4, hour])  # the generator's hourly stream
    ).standard_normal((n, 5))
    values = live.sample(rows + DRIVER_ID_OFFSET, at, _HourNoise(hour_noise, rows))  # type: ignore[arg-type]
    expected = batch.features(hour)
    for name, column in values.items():
        assert np.array_equal(column, expected[name][rows]), name


def test_shift_constants_match_the_generator() -> None:
    from data_pipeline.example_source import generator

    assert stream_world.COVARIATE_SHIFT_CONV_LOGIT == generator.COVARIATE_SHIFT_CONV_LOGIT
    assert stream_world.COVARIATE_SHIFT_TRIPS_LOG == generator.COVARIATE_SHIFT_TRIPS_LOG
    assert stream_world.COVARIATE_SHIFT_CANCEL_LOGIT == generator.COVARIATE_SHIFT_CANCEL_LOGIT
    assert {s.value for s in stream_world.Scenario} == {s.value for s in Scenario}
