"""The drivers in continuous time (what the stream producer reports on): seeded drivers, valid
values, the covariate drift shift."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from example_project.world.config import Scenario
from example_project.world.drivers import DriverWorld
from mlops_common.events.driver_stats import DriverStatsEvent

AT = datetime(2024, 3, 1, 9, 20, tzinfo=UTC)


def sample(world: DriverWorld, n: int, at: datetime = AT, seed: int = 1) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    drivers = rng.integers(world.driver_id_min, world.driver_id_max + 1, size=n)
    return world.sample(drivers, at, rng)


def test_same_seed_same_drivers_whatever_the_range() -> None:
    small = DriverWorld(42, 1001, 1010)
    large = DriverWorld(42, 1001, 3000)
    assert np.array_equal(small.baseline, large.baseline[:10])
    assert np.array_equal(small.phase, large.phase[:10])
    assert not np.array_equal(DriverWorld(43, 1001, 1010).baseline, small.baseline)
    # a range that does not start at the first driver still uses the drivers' own rows
    tail = DriverWorld(42, 1500, 1600)
    assert np.array_equal(tail.baseline[499:600], large.baseline[499:600])


def test_sampled_statistics_are_always_valid_events() -> None:
    world = DriverWorld(7, 1001, 1500)
    values = sample(world, 20_000)
    assert values["conv_rate"].min() >= 0 and values["conv_rate"].max() <= 1
    assert values["acc_rate"].min() >= 0 and values["acc_rate"].max() <= 1
    assert values["cancel_rate"].min() >= 0 and values["cancel_rate"].max() <= 1
    assert values["rating"].min() >= 1 and values["rating"].max() <= 5
    assert values["avg_daily_trips"].min() >= 0
    assert np.allclose(values["conv_rate"], np.round(values["conv_rate"], 4))
    assert np.allclose(values["rating"], np.round(values["rating"], 2))
    # plausible levels (docs/example_data.md: conv ≈ 0.5, trips ≈ 12, rating ≈ 4.5)
    assert 0.4 < values["conv_rate"].mean() < 0.6
    assert 10 < values["avg_daily_trips"].mean() < 16
    assert 4.2 < values["rating"].mean() < 4.8
    DriverStatsEvent(
        event_id="w:1",
        driver_id=1001,
        event_timestamp=AT,
        produced_at=AT,
        conv_rate=float(values["conv_rate"][0]),
        acc_rate=float(values["acc_rate"][0]),
        avg_daily_trips=int(values["avg_daily_trips"][0]),
        rating=float(values["rating"][0]),
        cancel_rate=float(values["cancel_rate"][0]),
    )


def test_a_driver_keeps_its_level_between_events() -> None:
    """Successive events of one driver vary, but around that driver's own level."""
    world = DriverWorld(42, 1001, 2000)
    rng = np.random.default_rng(3)
    best, worst = (int(np.argmax(world.baseline[:, 1])), int(np.argmin(world.baseline[:, 1])))
    ids = np.array([1001 + best] * 200 + [1001 + worst] * 200)
    conv = world.sample(ids, AT, rng)["conv_rate"]
    assert len(set(conv[:200].tolist())) > 50  # not a constant
    assert conv[:200].mean() > conv[200:].mean() + 0.2


def test_covariate_drift_shifts_the_distributions_from_drift_start() -> None:
    drift_start = AT + timedelta(hours=1)
    normal = DriverWorld(7, 1001, 2000, Scenario.NORMAL)
    drifting = DriverWorld(7, 1001, 2000, Scenario.COVARIATE_DRIFT, drift_start)
    before = sample(drifting, 20_000, AT)
    assert np.array_equal(before["conv_rate"], sample(normal, 20_000, AT)["conv_rate"])
    later = AT + timedelta(hours=2)
    base, after = sample(normal, 20_000, later), sample(drifting, 20_000, later)
    assert after["conv_rate"].mean() < base["conv_rate"].mean() - 0.12
    assert 1.4 < after["avg_daily_trips"].mean() / base["avg_daily_trips"].mean() < 1.75
    assert after["cancel_rate"].mean() > base["cancel_rate"].mean() + 0.02
    assert np.array_equal(after["rating"], base["rating"])  # not shifted
    # without a drift start the drift applies from the first event
    assert DriverWorld(7, 1001, 1002, Scenario.COVARIATE_DRIFT).drifted(AT)


def test_concept_drift_and_dirty_do_not_change_the_statistics() -> None:
    normal = sample(DriverWorld(7, 1001, 2000), 5000)
    for scenario in (Scenario.CONCEPT_DRIFT, Scenario.DIRTY):
        other = sample(DriverWorld(7, 1001, 2000, scenario, AT), 5000)
        for name, values in normal.items():
            assert np.array_equal(values, other[name]), (scenario, name)


@pytest.mark.parametrize("bounds", [(1000, 1005), (1010, 1009)])
def test_driver_range_must_be_in_the_example_world(bounds: tuple[int, int]) -> None:
    with pytest.raises(ValueError, match="driver ids"):
        DriverWorld(1, *bounds)


def test_sampling_outside_the_range_fails() -> None:
    world = DriverWorld(1, 1001, 1005)
    with pytest.raises(ValueError, match="outside"):
        world.sample(np.array([1006]), AT, np.random.default_rng(0))
