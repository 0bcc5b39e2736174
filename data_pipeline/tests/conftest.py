"""Shared fixtures of the data pipeline's tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from mlops_testing.data import scrub_mlops_environment
from mlops_testing.stream import TEST_REDIS_URL, delete_stream_keys, unique_stream


@pytest.fixture(autouse=True)
def _isolated_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    scrub_mlops_environment(monkeypatch)


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The test's own empty working directory (where settings read ``.env`` and put ``.mlops``)."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture
def stream() -> Iterator[str]:
    """A stream key of the test's own; it and the keys derived from it deleted afterwards."""
    name = unique_stream()
    yield name
    delete_stream_keys(TEST_REDIS_URL, name)


@pytest.fixture
def client(redis_client: redis.Redis) -> redis.Redis:
    """The session's client of the real Redis (the mlops_testing plugin's)."""
    return redis_client
