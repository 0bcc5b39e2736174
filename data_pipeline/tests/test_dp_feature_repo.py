"""Settings of the feature store and the feature repository's definitions (no services)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from pydantic import ValidationError

from data_pipeline import feature_store as fs
from data_pipeline.settings import COMPONENT_DIR, DataPipelineSettings

REPO = COMPONENT_DIR / "feature_repo"


def test_env_file_from_mlops_env_file_and_environment_wins(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (workdir / ".env").write_text("MLOPS_FEAST_PROJECT=from_dot_env\n")
    env_file = workdir / "platform.env"
    env_file.write_text(
        "MLOPS_FEAST_PROJECT=from_env_file\nMLOPS_REDIS_URL=redis://10.0.0.1:6379/1\n"
        "MLOPS_VALIDATION_MAX_FAILURE_RATE=0.2\n"
    )
    assert DataPipelineSettings().mlops_feast_project == "from_dot_env"
    monkeypatch.setenv("MLOPS_ENV_FILE", str(env_file))
    settings = DataPipelineSettings()
    assert settings.mlops_feast_project == "from_env_file"
    assert settings.validation_max_failure_rate == 0.2
    assert settings.online_store_url == "redis://10.0.0.1:6379/1"
    monkeypatch.setenv("MLOPS_FEAST_PROJECT", "from_environment")
    monkeypatch.setenv("MLOPS_ONLINE_STORE_URL", "sqlite:////tmp/online.db")
    settings = DataPipelineSettings()
    assert settings.mlops_feast_project == "from_environment"
    assert settings.online_store_url == "sqlite:////tmp/online.db"


def test_online_store_defaults_to_the_platform_redis(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert DataPipelineSettings().online_store_url == "redis://127.0.0.1:6380/0"
    monkeypatch.setenv("REDIS_PORT", "7000")
    assert DataPipelineSettings().online_store_url == "redis://127.0.0.1:7000/0"
    settings = DataPipelineSettings()
    assert settings.mlops_feast_project == "driver_ranking"
    assert settings.feature_repo == REPO
    assert settings.offline_dir == workdir / ".mlops" / "offline"
    assert settings.max_lateness == timedelta(hours=1)


def test_bad_settings_are_refused(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLOPS_FEAST_PROJECT", "bad-name!")
    with pytest.raises(ValidationError, match="MLOPS_FEAST_PROJECT"):
        DataPipelineSettings()
    monkeypatch.delenv("MLOPS_FEAST_PROJECT")
    monkeypatch.setenv("MLOPS_ONLINE_STORE_URL", "memcached://x")
    with pytest.raises(ValidationError, match="redis://"):
        DataPipelineSettings()


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("redis://127.0.0.1:6380/0", {"type": "redis", "connection_string": "127.0.0.1:6380,db=0"}),
        ("redis://h", {"type": "redis", "connection_string": "h:6379,db=0"}),
        (
            "rediss://u:p%40ss@h:6390/3",
            {"type": "redis", "connection_string": "h:6390,db=3,username=u,password=p@ss,ssl=true"},
        ),
        ("sqlite:////var/lib/feast/o.db", {"type": "sqlite", "path": "/var/lib/feast/o.db"}),
    ],
)
def test_online_store_config(url: str, expected: dict[str, str]) -> None:
    assert fs.online_store_config(url) == expected


def test_online_store_config_refuses_what_feast_cannot_take() -> None:
    with pytest.raises(ValueError, match="database must be a number"):
        fs.online_store_config("redis://h:6379/x")
    with pytest.raises(ValueError, match="commas"):
        fs.online_store_config("redis://u:a,b@h:6379/0")
    with pytest.raises(ValueError, match="unsupported"):
        fs.online_store_config("http://h")


def test_repository_defines_exactly_the_published_names() -> None:
    repo = fs.load_repo(REPO)
    assert [e.name for e in repo.entities if e.name != "__dummy"] == [fs.ENTITY]
    assert repo.entities[0].join_key == fs.JOIN_KEY
    assert sorted(s.name for s in repo.data_sources) == sorted([fs.BATCH_SOURCE, fs.PUSH_SOURCE])
    (view,) = repo.feature_views
    assert view.name == fs.FEATURE_VIEW
    assert view.online and timedelta(hours=1) < view.ttl <= timedelta(hours=6)
    assert [f.name for f in view.features] == list(fs.FEATURE_NAMES)
    # the view reads the push source: streamed and batch values are the same features
    assert view.stream_source is not None and view.stream_source.name == fs.PUSH_SOURCE
    assert view.batch_source.name == fs.BATCH_SOURCE
    assert view.batch_source.path == fs.OFFLINE_TABLE_PATH
    (service,) = repo.feature_services
    assert service.name == fs.FEATURE_SERVICE
    refs = [f"{p.name}:{f.name}" for p in service.feature_view_projections for f in p.features]
    assert refs == list(fs.MODEL_FEATURES)
    # nothing but definitions: only the definition module is loaded
    assert sorted(p.name for p in REPO.glob("*.py")) == ["driver_features.py"]
    assert (REPO / ".feastignore").is_file()
    assert not (REPO / "feature_store.yaml").exists()


def test_load_repo_honours_feastignore(tmp_path: Path) -> None:
    (tmp_path / "defs.py").write_text((REPO / "driver_features.py").read_text())
    (tmp_path / "scripts").mkdir()
    (tmp_path / "scripts" / "boom.py").write_text("raise RuntimeError('must not be imported')\n")
    (tmp_path / ".feastignore").write_text("scripts/\n")
    repo = fs.load_repo(tmp_path)
    assert [v.name for v in repo.feature_views] == [fs.FEATURE_VIEW]
    with pytest.raises(FileNotFoundError, match="does not exist"):
        fs.load_repo(tmp_path / "missing")
