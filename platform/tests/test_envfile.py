"""`.env` generation: fresh secrets on first write, never overwritten, never world-readable."""

from __future__ import annotations

import base64
import stat
from pathlib import Path

import pytest

from mlops_platform.launcher.envfile import SECRET_KEY_PATTERN, ensure_env_file, render_with_secrets
from mlops_platform.launcher.paths import REPO_ROOT
from mlops_platform.launcher.settings import LauncherSettings

EXAMPLE = REPO_ROOT / ".env.example"


def _parse(text: str) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in text.splitlines() if "=" in line and line[0] != "#")
    return {key: value for key, value in pairs}


def test_every_secret_in_the_example_is_empty() -> None:
    values = _parse(EXAMPLE.read_text())
    secrets = {k: v for k, v in values.items() if SECRET_KEY_PATTERN.search(k)}
    assert len(secrets) >= 7
    assert all(v == "" for v in secrets.values()), "no usable default secret may be committed"


def test_first_write_fills_every_secret_with_fresh_values(tmp_path: Path) -> None:
    first = ensure_env_file(EXAMPLE, tmp_path / "a.env")
    second = ensure_env_file(EXAMPLE, tmp_path / "b.env")
    assert first.created and second.created
    a, b = _parse(first.path.read_text()), _parse(second.path.read_text())
    for key in first.generated:
        assert len(a[key]) >= 32
        assert a[key] != b[key], f"{key} must differ between installs"
    assert set(first.generated) == {k for k in a if SECRET_KEY_PATTERN.search(k)}
    fernet = base64.urlsafe_b64decode(a["AIRFLOW_FERNET_KEY"])
    assert len(fernet) == 32
    assert stat.S_IMODE(first.path.stat().st_mode) == 0o600
    settings = LauncherSettings.load(first.path)
    assert settings.missing_secrets() == []


def test_existing_env_file_is_never_overwritten(tmp_path: Path) -> None:
    target = tmp_path / ".env"
    target.write_text("AIRFLOW_ADMIN_PASSWORD=mine\n")
    result = ensure_env_file(EXAMPLE, target)
    assert not result.created
    assert target.read_text() == "AIRFLOW_ADMIN_PASSWORD=mine\n"


def test_settings_report_empty_secrets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / ".env"
    target.write_text(EXAMPLE.read_text())
    monkeypatch.delenv("AIRFLOW_ADMIN_PASSWORD", raising=False)
    missing = LauncherSettings.load(target).missing_secrets()
    assert "AIRFLOW_ADMIN_PASSWORD" in missing and "SERVING_API_KEY" in missing


def test_non_secret_values_are_kept() -> None:
    text, generated = render_with_secrets("A_PORT=1\nX_PASSWORD=\nY_PASSWORD=set\n")
    assert generated == ["X_PASSWORD"]
    assert "A_PORT=1\n" in text and "Y_PASSWORD=set\n" in text
