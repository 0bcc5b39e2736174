"""Fixtures of the stream_emitting tests: the machine's Redis with a test-unique stream name,
and private redis-servers that a test may kill."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from mlops_testing.redis_server import PrivateRedis

REDIS_URL = os.environ.get("MLOPS_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


@pytest.fixture
def redis_url() -> str:
    return REDIS_URL


@pytest.fixture
def stream_name() -> Iterator[str]:
    """A stream name no one else uses (``test:se:<random>``); deleted afterwards."""
    name = f"test:se:{uuid.uuid4().hex[:12]}"
    yield name
    client = redis.Redis.from_url(REDIS_URL)
    try:
        client.delete(name, f"{name}:dead")
    finally:
        client.close()


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    server = PrivateRedis(tmp_path / "redis")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(autouse=True)
def _isolated_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Keep the developer's MLOPS_* environment and .env out of the tests."""
    for name in list(os.environ):
        if name.startswith("MLOPS_") or name == "REDIS_PORT":
            monkeypatch.delenv(name)
    monkeypatch.setenv("MLOPS_ENV_FILE", str(tmp_path / "absent.env"))
