"""The settings base: one env-file rule, one Redis rule, one MLflow URI rule."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import pytest

from mlops_common.settings import DataPath, PlatformSettings, env_file

PLATFORM_NAMES = (
    "MLOPS_ENV_FILE",
    "MLOPS_DATA_DIR",
    "MLOPS_BIND_HOST",
    "MLOPS_ONLINE_STORE_URL",
    "MLOPS_REDIS_URL",
    "REDIS_PORT",
    "MLFLOW_TRACKING_URI",
    "MLFLOW_PORT",
    "MLOPS_DATABASE_URL",
    "MLOPS_DATABASE_PREFIX",
)

#: no platform setting from the environment, no .env of the working folder (mlops_testing plugin)
pytestmark = pytest.mark.clear_environment(*PLATFORM_NAMES)


def test_the_env_file_is_mlops_env_file_else_dot_env(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert env_file() == Path(".env")
    (tmp_path / ".env").write_text("MLFLOW_PORT=5100\n")
    assert PlatformSettings().mlflow_port == 5100
    other = tmp_path / "platform.env"
    other.write_text("MLFLOW_PORT=5200\nMLOPS_DATA_DIR=\n")
    monkeypatch.setenv("MLOPS_ENV_FILE", str(other))
    settings = PlatformSettings.load()
    assert settings.mlflow_port == 5200
    assert settings.data_dir == tmp_path / ".mlops"  # empty means the default
    monkeypatch.setenv("MLFLOW_PORT", "5300")  # the environment wins over the file
    assert PlatformSettings.load().mlflow_port == 5300
    assert PlatformSettings.load(mlflow_port=5400).mlflow_port == 5400  # arguments win
    assert PlatformSettings.load(mlflow_port=None).mlflow_port == 5300  # None: not given


def test_no_env_file_when_told_so(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("MLFLOW_PORT=5100\n")
    assert PlatformSettings(_env_file=None).mlflow_port == 5000  # type: ignore[call-arg]


def test_one_redis_rule() -> None:
    bare = PlatformSettings()
    assert bare.redis_url() == ""
    assert bare.redis_url(own_server=True) == "redis://127.0.0.1:6380/0"
    online = PlatformSettings(mlops_online_store_url="redis://online:1/0")
    assert online.redis_url() == "redis://online:1/0"
    sqlite = PlatformSettings(mlops_online_store_url="sqlite:///x.db", redis_port=7000)
    assert sqlite.redis_url() == ""
    assert sqlite.redis_url(own_server=True) == "redis://127.0.0.1:7000/0"
    both = PlatformSettings(
        mlops_redis_url="redis://external:2/1", mlops_online_store_url="redis://online:1/0"
    )
    assert both.redis_url() == "redis://external:2/1"
    assert both.redis_url("", "redis://mine:3/0") == "redis://mine:3/0"  # a component's own first


def test_the_online_store_defaults_to_the_launchers_redis() -> None:
    assert PlatformSettings().online_store_url == "redis://127.0.0.1:6380/0"
    assert PlatformSettings(mlops_bind_host="0.0.0.0").online_store_url == (
        "redis://127.0.0.1:6380/0"
    )
    assert PlatformSettings(mlops_redis_url="redis://r:1/0").online_store_url == "redis://r:1/0"


def test_one_mlflow_uri_name_and_default(monkeypatch: pytest.MonkeyPatch) -> None:
    assert PlatformSettings().tracking_uri == "http://127.0.0.1:5000"
    assert PlatformSettings(mlops_bind_host="10.1.2.3", mlflow_port=5999).tracking_uri == (
        "http://10.1.2.3:5999"
    )
    monkeypatch.setenv("MLOPS_MLFLOW_TRACKING_URI", "http://second-name:5000")
    assert PlatformSettings.load().tracking_uri == "http://127.0.0.1:5000"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://mlflow:5000")
    assert PlatformSettings.load().tracking_uri == "http://mlflow:5000"


def test_database_names_per_component() -> None:
    settings = PlatformSettings(
        mlops_database_url="postgresql://u@db:5432", mlops_database_prefix="acme"
    )
    assert settings.uses_postgres
    assert settings.database_name("mlflow") == "acme_mlflow"
    assert not PlatformSettings().uses_postgres


def test_data_paths_are_derived_from_the_data_directory(tmp_path: Path) -> None:
    class WithPaths(PlatformSettings):
        state_dir: ClassVar[DataPath] = DataPath("x")
        cache_dir: ClassVar[DataPath] = state_dir / "cache"

    settings = WithPaths(_env_file=None, mlops_data_dir=tmp_path / "d")
    assert settings.state_dir == (tmp_path / "d" / "x").resolve()
    assert settings.cache_dir == (tmp_path / "d" / "x" / "cache").resolve()
    assert "state_dir" not in WithPaths.model_fields
    assert WithPaths.cache_dir.parts == ("x", "cache")
