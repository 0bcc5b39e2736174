"""Settings (env file, serving's shared names, validation) and the command line: ``check``,
``serve`` refusing to start without its secret, ``windows`` and ``report`` reading the state."""

from __future__ import annotations

import gzip
import subprocess
import sys
from pathlib import Path

import pytest
from mon_fixtures import REDIS_URL, Traffic

from monitoring_service.cli import main
from monitoring_service.settings import MonitoringSettings
from monitoring_service.store import Parsed, Store


def _env_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str) -> Path:
    path = tmp_path / "test.env"
    path.write_text(text)
    monkeypatch.setenv("MLOPS_ENV_FILE", str(path))
    return path


def test_settings_share_serving_names_and_resolve_the_redis(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _env_file(
        tmp_path,
        monkeypatch,
        (
            f"MLOPS_DATA_DIR={tmp_path}/data\n"
            "SERVING_EVENTS_PREDICTION_STREAM=custom:predictions\n"
            "SERVING_MODEL_NAME=my_model\n"
            "MLOPS_ONLINE_STORE_URL=redis://127.0.0.1:6380/0\n"
            "MONITORING_TRIGGER_ALERTNAMES=DriftSustained, QualityLow\n"
            "MONITORING_WINDOW_SIZE=250\n"
        ),
    )
    settings = MonitoringSettings.load()
    assert settings.monitoring_prediction_stream == "custom:predictions"
    assert settings.monitoring_feedback_stream == "mlops:serving:feedback"
    assert settings.monitoring_model_name == "my_model"
    assert settings.events_redis_url == "redis://127.0.0.1:6380/0"  # the online store's Redis
    assert settings.monitoring_trigger_alertnames == ["DriftSustained", "QualityLow"]
    assert settings.window_policy.size == 250
    assert settings.db_path == (tmp_path / "data" / "monitoring" / "monitoring.db").resolve()
    monkeypatch.setenv("MLOPS_REDIS_URL", "redis://127.0.0.1:6379/3")
    assert MonitoringSettings.load().events_redis_url == "redis://127.0.0.1:6379/3"
    monkeypatch.setenv("MONITORING_PREDICTION_STREAM", "mine")
    assert MonitoringSettings.load().monitoring_prediction_stream == "mine"  # own name wins
    monkeypatch.delenv("MLOPS_REDIS_URL")
    sqlite_only = MonitoringSettings(mlops_online_store_url="sqlite:///x.db")
    assert sqlite_only.events_redis_url == ""
    assert any("no Redis" in p for p in sqlite_only.problems())


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"monitoring_consumer_name": "bad name!"}, "monitoring_consumer_name"),
        (
            {"monitoring_prediction_stream": "same", "monitoring_feedback_stream": "same"},
            "must differ",
        ),
        ({"monitoring_start_id": "latest"}, "monitoring_start_id"),
        ({"monitoring_window_size": 0}, "monitoring_window_size"),
        ({"monitoring_drift_method": "magic"}, "monitoring_drift_method"),
    ],
)
def test_invalid_settings(values: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        MonitoringSettings(**values)  # type: ignore[arg-type]


def test_check_masks_secrets_and_names_problems(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _env_file(
        tmp_path,
        monkeypatch,
        f"MLOPS_REDIS_URL={REDIS_URL}\nAIRFLOW_ADMIN_PASSWORD=hunter2-airflow\n",
    )
    assert main(["check"]) == 1
    out, err = capsys.readouterr()
    assert "MONITORING_WEBHOOK_SECRET is empty" in err
    assert "hunter2-airflow" not in out and '"airflow_admin_password": "***"' in out
    monkeypatch.setenv("MONITORING_WEBHOOK_SECRET", "s3cret-value-of-the-webhook")
    assert main(["check"]) == 0
    out, _ = capsys.readouterr()
    assert "s3cret-value-of-the-webhook" not in out
    assert f'"events_redis_url": "{REDIS_URL}"' in out
    monkeypatch.setenv("MLOPS_REDIS_URL", "redis://127.0.0.1:9/0")
    assert main(["check"]) == 1
    assert "does not answer" in capsys.readouterr().err
    monkeypatch.setenv("MONITORING_PORT", "not-a-port")
    with pytest.raises(SystemExit) as exited:
        main(["check"])
    assert exited.value.code == 1
    assert "monitoring_port" in capsys.readouterr().err


def test_serve_refuses_to_start_without_the_secret(tmp_path: Path) -> None:
    result = subprocess.run(
        [str(Path(sys.executable).parent / "monitoring-service"), "serve"],
        env={
            "PATH": "/usr/bin:/bin",
            "MLOPS_ENV_FILE": str(tmp_path / "none.env"),
            "MLOPS_REDIS_URL": REDIS_URL,
            "MLOPS_DATA_DIR": str(tmp_path),
        },
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert "MONITORING_WEBHOOK_SECRET is empty" in result.stderr


def test_windows_and_report_read_the_state(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "data"
    _env_file(tmp_path, monkeypatch, f"MLOPS_DATA_DIR={data}\nMONITORING_WINDOW_SIZE=3\n")
    with pytest.raises(SystemExit) as exited:
        main(["windows"])
    assert exited.value.code == 1
    assert "no state database" in capsys.readouterr().err
    settings = MonitoringSettings.load()
    store = Store(settings.db_path, settings.window_policy)
    events = [e for e, _ in Traffic(version="7").predictions(4)]
    [closed] = store.apply([Parsed("prediction", f"1-{i}", e) for i, e in enumerate(events)]).closed
    store.record(closed.window_id, "drifted", drift={"dataset_drift": True, "drift_share": 0.4})
    store.close()
    assert main(["windows"]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split()[:3] == ["id", "version", "state"]
    row = table[2].split()  # newest first: the open window, then the drifted one
    assert row[:3] == [str(closed.window_id), "7", "drifted"] and "0.40" in row
    assert main(["windows", "--json"]) == 0
    assert '"dataset_drift": true' in capsys.readouterr().out

    assert main(["report", str(closed.window_id)]) == 1
    assert "no drift report" in capsys.readouterr().err
    target = settings.reports_dir / str(closed.window_id) / "drift.html.gz"
    target.parent.mkdir(parents=True)
    target.write_bytes(gzip.compress(b"<html>drift</html>"))
    out_file = tmp_path / "r.html"
    assert main(["report", str(closed.window_id), "--output", str(out_file)]) == 0
    assert out_file.read_bytes() == b"<html>drift</html>"
