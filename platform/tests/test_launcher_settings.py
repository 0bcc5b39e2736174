"""The launcher's settings on the shared base: which env file, what wins, and the shared rules
(Redis, MLflow, data directory) as every launcher settings class sees them."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlops_common.settings import PlatformSettings
from mlops_platform.launcher import online_store
from mlops_platform.launcher.online_store import online_store_kind, online_store_url
from mlops_platform.launcher.paths import REPO_ROOT
from mlops_platform.launcher.services.base import Context
from mlops_platform.launcher.services.stream import StreamService, StreamSettings, broker_url
from mlops_platform.launcher.services.traffic import TrafficSettings
from mlops_platform.launcher.settings import LauncherSettings, launcher_env_file
from mlops_platform.observability.alerting import AlertingSettings

SHARED = (
    "MLOPS_ENV_FILE",
    "MLOPS_DATA_DIR",
    "MLOPS_BIND_HOST",
    "MLOPS_REDIS_URL",
    "MLOPS_ONLINE_STORE_URL",
    "MLOPS_STREAM_REDIS_URL",
    "MLFLOW_TRACKING_URI",
    "MLFLOW_PORT",
    "REDIS_PORT",
    "SERVING_PORT",
    "DISPATCH_METRICS_PORT",
    "ALERT_EMAIL_TO",
)

pytestmark = pytest.mark.clear_environment(*SHARED)


def write_env(path: Path, **values: str) -> Path:
    path.write_text("".join(f"{key}={value}\n" for key, value in values.items()))
    return path


def context(env_file: Path) -> Context:
    return Context(settings=LauncherSettings.load(env_file), env_file=env_file)


def test_every_launcher_settings_class_is_on_the_shared_base() -> None:
    for cls in (LauncherSettings, TrafficSettings, StreamSettings, AlertingSettings):
        assert issubclass(cls, PlatformSettings), cls


def test_the_env_file_is_the_shared_rule_anchored_at_the_repo(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    assert launcher_env_file() == REPO_ROOT / ".env"
    monkeypatch.setenv("MLOPS_ENV_FILE", str(tmp_path / "mine.env"))
    assert launcher_env_file() == tmp_path / "mine.env"
    monkeypatch.setenv("MLOPS_ENV_FILE", "deploy/dev.env")
    assert launcher_env_file() == REPO_ROOT / "deploy" / "dev.env"


def test_the_named_env_file_is_read_and_the_environment_wins(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    env = write_env(tmp_path / "named.env", SERVING_PORT="9001", MLFLOW_PORT="5111")
    # a .env in the working directory is not the launcher's file: it is never read
    write_env(tmp_path / ".env", SERVING_PORT="1")
    settings = LauncherSettings.load(env)
    assert (settings.serving_port, settings.mlflow_port) == (9001, 5111)
    monkeypatch.setenv("SERVING_PORT", "9002")
    assert LauncherSettings.load(env).serving_port == 9002
    assert LauncherSettings.load(env, serving_port=9003).serving_port == 9003


def test_service_settings_read_the_launchers_env_file(tmp_path: Path) -> None:
    env = write_env(
        tmp_path / "named.env",
        DISPATCH_METRICS_PORT="8999",
        MLOPS_STREAM_NAME="s",
        ALERT_EMAIL_TO="ops@example.org",
        ALERT_SMTP_AUTH_PASS="",
    )
    ctx = context(env)
    assert TrafficSettings.load(ctx).dispatch_metrics_port == 8999
    assert StreamSettings.load(ctx).mlops_stream_name == "s"
    alerting = AlertingSettings.load(env)
    assert alerting.alert_email_to == "ops@example.org"
    assert alerting.alert_smtp_auth_pass.get_secret_value() == ""


def test_data_dir_is_taken_from_the_repo_root(tmp_path: Path) -> None:
    assert LauncherSettings.load(write_env(tmp_path / "a.env")).data_dir == REPO_ROOT / ".mlops"
    relative = write_env(tmp_path / "b.env", MLOPS_DATA_DIR="state/here")
    assert LauncherSettings.load(relative).data_dir == REPO_ROOT / "state" / "here"
    absolute = write_env(tmp_path / "c.env", MLOPS_DATA_DIR=str(tmp_path / "d"))
    assert LauncherSettings.load(absolute).data_dir == tmp_path / "d"


def test_mlflow_is_the_shared_rule(tmp_path: Path) -> None:
    env = write_env(tmp_path / "a.env", MLFLOW_PORT="5123", MLOPS_BIND_HOST="0.0.0.0")
    ctx = context(env)
    assert ctx.base_environment()["MLFLOW_TRACKING_URI"] == "http://127.0.0.1:5123"
    env = write_env(tmp_path / "b.env", MLFLOW_TRACKING_URI="http://mlflow.internal:80")
    assert context(env).base_environment()["MLFLOW_TRACKING_URI"] == "http://mlflow.internal:80"


def test_redis_is_the_shared_rule(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(online_store.shutil, "which", lambda name: f"/usr/bin/{name}")
    external = context(write_env(tmp_path / "a.env", MLOPS_REDIS_URL="redis://:pw@db:6379/2"))
    assert online_store_kind(external.settings) == "external-redis"
    assert online_store_url(external.settings) == "redis://:pw@db:6379/2"
    assert broker_url(external, StreamSettings.load(external)) == "redis://:pw@db:6379/2"
    own = context(write_env(tmp_path / "b.env", REDIS_PORT="6999"))
    assert online_store_kind(own.settings) == "local-redis"
    assert online_store_url(own.settings) == "redis://127.0.0.1:6999/0"
    assert broker_url(own, StreamSettings.load(own)) == "redis://127.0.0.1:6999/0"
    stream = context(write_env(tmp_path / "c.env", MLOPS_STREAM_REDIS_URL="redis://s:1/0"))
    assert broker_url(stream, StreamSettings.load(stream)) == "redis://s:1/0"
    # a Redis online store URL is the Redis too (the shared rule), anything else is not
    online = context(write_env(tmp_path / "d.env", MLOPS_ONLINE_STORE_URL="redis://o:2/0"))
    assert online_store_url(online.settings) == "redis://o:2/0"
    monkeypatch.setattr(online_store.shutil, "which", lambda name: None)
    sqlite = context(write_env(tmp_path / "e.env", MLOPS_ONLINE_STORE_URL="sqlite:///x.db"))
    assert online_store_kind(sqlite.settings) == "sqlite"
    assert online_store_url(sqlite.settings).endswith("/feast/online_store.db")


def test_the_stream_endpoint_hides_the_broker_password(tmp_path: Path) -> None:
    ctx = context(write_env(tmp_path / "a.env", MLOPS_REDIS_URL="redis://u:secret@db:6379/0"))
    lines = "\n".join(StreamService().endpoints(ctx))
    assert "secret" not in lines and "db:6379" in lines
