"""Shared fixtures of the example project's tests: small world configs and a throw-away
PostgreSQL database."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime

import pytest

from example_project.world.config import ExampleSourceConfig
from mlops_common.postgres import database_url, ensure_database
from mlops_testing.data import scrub_mlops_environment
from mlops_testing.postgres import PG_SERVER_URL, drop_database

START = datetime(2024, 3, 1, tzinfo=UTC)
DRIFT = datetime(2024, 3, 8, tzinfo=UTC)


def _small_config(**overrides: object) -> ExampleSourceConfig:
    values: dict[str, object] = {
        "seed": 7,
        "n_drivers": 120,
        "start": START,
        "end": datetime(2024, 3, 3, tzinfo=UTC),
        "bookings_per_hour": 10,
    }
    values.update(overrides)
    return ExampleSourceConfig.model_validate(values)


@pytest.fixture
def small_config() -> Callable[..., ExampleSourceConfig]:
    """Factory of a small world (120 drivers, 2 days from 2024-03-01, 10 bookings an hour);
    keyword arguments override config fields."""
    return _small_config


@pytest.fixture(autouse=True)
def _isolated_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    scrub_mlops_environment(monkeypatch)


@pytest.fixture
def pg_database() -> Iterator[str]:
    """A fresh database ``mlops_test_<random>_data`` on the real server (the data database of the
    prefix ``mlops_test_<random>``); dropped afterwards."""
    name = f"mlops_test_{uuid.uuid4().hex[:12]}_data"
    assert ensure_database(PG_SERVER_URL, name)
    url = database_url(PG_SERVER_URL, name).render_as_string(hide_password=False)
    try:
        yield url
    finally:
        drop_database(PG_SERVER_URL, name)
