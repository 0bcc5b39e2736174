"""Fixtures of the monitoring tests: the real Redis (streams of each test's own), a real MLflow
server per session, settings pointed at them.

Helpers live in ``mon_fixtures`` (imported by name; never ``from conftest import``)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from mon_fixtures import (
    WEBHOOK_SECRET,
    SettingsFactory,
    Streams,
)

from mlops_testing.plugin import cleaned_up, isolate_environment
from monitoring_service.settings import MonitoringSettings


def pytest_configure(config: pytest.Config) -> None:
    # Evidently 0.7 imports modules that warn about their own dependencies' deprecations
    for module in ("evidently", "litestar", "numpy"):
        config.addinivalue_line("filterwarnings", f"ignore::DeprecationWarning:{module}.*")
    config.addinivalue_line("filterwarnings", "ignore::DeprecationWarning:litestar.*")
    config.addinivalue_line("filterwarnings", "ignore:.*numpy.core is deprecated.*")
    config.addinivalue_line("filterwarnings", "ignore:invalid escape sequence")
    config.addinivalue_line("filterwarnings", "ignore:Call to deprecated function 'Dependency'")
    config.addinivalue_line("filterwarnings", "ignore:Use of deprecated class 'DependencyKwarg'")


@pytest.fixture(autouse=True)
def _isolated_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Keep the developer's or CI's settings (MLOPS_*, MLFLOW_*, MONITORING_*, SERVING_*,
    AIRFLOW_*, .env) out of the tests."""
    isolate_environment(
        monkeypatch, tmp_path, ("MLOPS_", "MLFLOW_", "MONITORING_", "SERVING_", "AIRFLOW_")
    )


@pytest.fixture
def streams(redis_client: redis.Redis) -> Iterator[Streams]:
    yield from cleaned_up(Streams(redis_client))


@pytest.fixture
def make_settings(tmp_path: Path, streams: Streams) -> SettingsFactory:
    """Settings of a service instance of the test's own (data folder, streams); MLflow only
    when the test passes ``mlflow_tracking_uri``."""

    def factory(**overrides: Any) -> MonitoringSettings:
        values: dict[str, Any] = {
            "mlops_data_dir": tmp_path / "data",
            "monitoring_webhook_secret": WEBHOOK_SECRET,
            "monitoring_consumer_name": "test-consumer",
            "monitoring_block_ms": 100,
            "monitoring_poll_interval_s": 0.5,
            "monitoring_label_slack_s": 0.5,
            "mlflow_tracking_uri": "http://127.0.0.1:9",  # nothing listens: unreachable
            "monitoring_registry_timeout_s": 2,
            **streams.settings_values(),
        }
        values.update(overrides)
        return MonitoringSettings(**values)

    return factory
