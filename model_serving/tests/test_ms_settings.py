"""The settings object: environment over env file over defaults; the secret is required."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlops_testing.plugin import use_env_file
from model_serving.cli import main
from model_serving.settings import ServingSettings

ENV_FILE = (
    "SERVING_PORT=9100\nSERVING_API_KEY=from-file\nMLFLOW_TRACKING_URI=http://file:5000\n"
    "SERVING_CANARY_PERCENT=10\nMLOPS_DATA_DIR=/tmp/file-data\nUNRELATED=1\n"
)


def test_env_file_then_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    use_env_file(monkeypatch, tmp_path / "platform.env", ENV_FILE)
    monkeypatch.setenv("SERVING_PORT", "9200")
    settings = ServingSettings.load()
    assert settings.serving_port == 9200  # environment wins
    assert settings.serving_api_key.get_secret_value() == "from-file"
    assert settings.mlflow_tracking_uri == "http://file:5000"
    assert settings.serving_canary_percent == 10
    assert settings.needs_challenger
    assert settings.state_dir == Path("/tmp/file-data/serving")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://from-the-environment:5000")
    assert ServingSettings.load().tracking_uri == "http://from-the-environment:5000"
    # one name only: the platform's MLflow by default, never a second variable
    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    monkeypatch.setenv("MLOPS_MLFLOW_TRACKING_URI", "http://ignored:5000")
    monkeypatch.setenv("MLOPS_ENV_FILE", str(tmp_path / "none.env"))
    assert ServingSettings.load().tracking_uri == "http://127.0.0.1:5000"


def test_defaults_and_derived_values(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = ServingSettings(mlops_online_store_url="redis://127.0.0.1:6380/0")
    assert settings.serving_poll_interval_s <= 30
    assert settings.serving_auth_required is True
    assert settings.events_redis_url == "redis://127.0.0.1:6380/0"
    assert ServingSettings(mlops_online_store_url="sqlite:///x.db").events_redis_url == ""
    assert ServingSettings(
        mlops_redis_url="redis://r:1/0", mlops_online_store_url="redis://o:2/0"
    ).events_redis_url == ("redis://r:1/0")
    assert not settings.needs_challenger


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("serving_poll_interval_s", 31),
        ("serving_canary_percent", 101),
        ("serving_port", 0),
        ("serving_max_candidates", 0),
    ],
)
def test_out_of_range_values_are_refused(name: str, value: object) -> None:
    with pytest.raises(ValueError, match=name):
        ServingSettings(**{name: value})


def test_the_api_key_is_required_by_default(capsys: pytest.CaptureFixture[str]) -> None:
    assert ServingSettings().auth_problem() is not None
    assert ServingSettings(serving_api_key="k").auth_problem() is None
    assert ServingSettings(serving_auth_required=False).auth_problem() is None
    assert main(["serve"]) == 1
    assert "SERVING_API_KEY is empty" in capsys.readouterr().err


def test_check_prints_settings_without_the_secret(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SERVING_API_KEY", "very-secret-value")
    assert main(["check"]) == 0
    out = capsys.readouterr().out
    assert "very-secret-value" not in out and '"serving_api_key": "***"' in out


def test_invalid_settings_exit_1_naming_the_field(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SERVING_PORT", "not-a-port")
    with pytest.raises(SystemExit) as exit_info:
        main(["check"])
    assert exit_info.value.code == 1
    assert "serving_port" in capsys.readouterr().err


def test_check_redacts_credentials_in_urls(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SERVING_API_KEY", "k")
    monkeypatch.setenv("MLOPS_REDIS_URL", "redis://:redis-secret@r:6379/0")
    monkeypatch.setenv("MLOPS_ONLINE_STORE_URL", "rediss://:feast-secret@o:6379/0")
    monkeypatch.setenv("MLOPS_DATABASE_URL", "postgresql://u:pg-secret@db:5432/x")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://u:mlflow-secret@mlflow:5000")
    monkeypatch.setenv("SERVING_EVENTS_REDIS_URL", "redis://u:events-secret@e:6379/1")
    assert main(["check"]) == 0
    out = capsys.readouterr().out
    assert "secret" not in out, out
    assert '"mlops_redis_url": "redis://:***@r:6379/0"' in out
    assert '"mlops_database_url": "postgresql://u:***@db:5432/x"' in out
