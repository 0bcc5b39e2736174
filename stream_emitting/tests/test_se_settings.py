"""Producer settings: where the broker is, env file vs environment, validation."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from example_project.world.config import Scenario
from mlops_common.events.driver_stats import StreamBrokerSettings as BrokerSettings
from mlops_testing.plugin import use_env_file
from stream_emitting.settings import ProducerSettings


def test_defaults_point_at_the_platform_redis() -> None:
    settings = ProducerSettings.load()
    assert settings.broker_url == "redis://127.0.0.1:6380/0"
    assert settings.stream == "mlops:driver_stats"
    assert settings.dead_letter_stream == "mlops:driver_stats:dead"
    assert settings.rate == 10.0 and settings.scenario == Scenario.NORMAL
    assert (settings.driver_id_min, settings.driver_id_max) == (1001, 2000)


def test_broker_url_precedence(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REDIS_PORT", "6999")
    monkeypatch.setenv("MLOPS_BIND_HOST", "127.0.0.2")
    assert BrokerSettings.load().broker_url == "redis://127.0.0.2:6999/0"
    monkeypatch.setenv("MLOPS_ONLINE_STORE_URL", "sqlite:///x/online_store.db")
    assert BrokerSettings.load().broker_url == "redis://127.0.0.2:6999/0"  # not a broker
    monkeypatch.setenv("MLOPS_ONLINE_STORE_URL", "redis://online:6380/0")
    assert BrokerSettings.load().broker_url == "redis://online:6380/0"
    monkeypatch.setenv("MLOPS_REDIS_URL", "redis://external:6379/1")
    assert BrokerSettings.load().broker_url == "redis://external:6379/1"
    monkeypatch.setenv("MLOPS_STREAM_REDIS_URL", "redis://dedicated:6379/2")
    assert BrokerSettings.load().broker_url == "redis://dedicated:6379/2"
    # explicit arguments (the CLI's options) win over everything
    explicit = BrokerSettings.load(stream_redis_url="redis://cli:1/0", stream="s")
    assert explicit.broker_url == "redis://cli:1/0" and explicit.stream == "s"


def test_env_file_from_mlops_env_file_and_environment_wins(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    use_env_file(
        monkeypatch,
        tmp_path / "platform.env",
        "MLOPS_STREAM_RATE=25\nMLOPS_STREAM_SCENARIO=covariate_drift\nREDIS_PORT=7001\n"
        "MLOPS_REDIS_URL=\n",
    )
    monkeypatch.setenv("MLOPS_STREAM_RATE", "40")
    settings = ProducerSettings.load()
    assert settings.rate == 40.0
    assert settings.scenario == Scenario.COVARIATE_DRIFT
    assert settings.broker_url == "redis://127.0.0.1:7001/0"  # empty MLOPS_REDIS_URL = unset


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"rate": 0}, "rate"),
        ({"scenario": "chaos"}, "scenario"),
        ({"driver_id_min": 1500, "driver_id_max": 1400}, "driver id range is empty"),
        ({"driver_id_min": 5}, "driver_id_min"),
        ({"dirty_rate": 1.5}, "dirty_rate"),
        ({"drift_start": "2024-01-01T00:00:00"}, "UTC offset"),
    ],
    ids=str,
)
def test_bad_settings_are_refused(overrides: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        ProducerSettings.load(**overrides)


def test_the_world_follows_the_example_settings_unless_the_stream_has_its_own(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MLOPS_EXAMPLE_SCENARIO", "concept_drift")
    monkeypatch.setenv("MLOPS_EXAMPLE_SEED", "7")
    monkeypatch.setenv("MLOPS_EXAMPLE_DRIFT_START", "2026-01-01T00:00:00Z")
    settings = ProducerSettings.load()
    assert settings.scenario == Scenario.CONCEPT_DRIFT and settings.seed == 7
    assert settings.drift_start is not None and settings.drift_start.year == 2026
    monkeypatch.setenv("MLOPS_STREAM_SCENARIO", "dirty")
    monkeypatch.setenv("MLOPS_STREAM_SEED", "8")
    settings = ProducerSettings.load()
    assert settings.scenario == Scenario.DIRTY and settings.seed == 8
