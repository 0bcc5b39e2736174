"""DataPipelineSettings reads MLOPS_* from the environment and .env."""

from __future__ import annotations

from pathlib import Path

import pytest

from data_pipeline.settings import DataPipelineSettings


def test_defaults(workdir: Path) -> None:
    settings = DataPipelineSettings()
    assert settings.data_dir == workdir / ".mlops"
    assert settings.pipeline_dir == workdir / ".mlops" / "pipeline"
    assert not settings.uses_postgres
    assert settings.data_database_url is None
    assert settings.mlops_source == "example"  # the source the batch steps read


def test_environment(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLOPS_DATA_DIR", str(workdir / "state"))
    monkeypatch.setenv("MLOPS_DATABASE_URL", "postgresql://postgres:s3cret@db.example:5432")
    monkeypatch.setenv("MLOPS_SOURCE", "acme")
    settings = DataPipelineSettings()
    assert settings.quarantine_dir == workdir / "state" / "quarantine"
    assert settings.uses_postgres
    assert settings.data_database_url == "postgresql://postgres:s3cret@db.example:5432/mlops_data"
    assert settings.mlops_source == "acme"


def test_empty_values_mean_defaults_and_dotenv_is_read(workdir: Path) -> None:
    (workdir / ".env").write_text(
        "MLOPS_DATA_DIR=\nMLOPS_SOURCE=\nMLOPS_DATABASE_URL=postgresql://u@h:5432/other\n"
        "UNRELATED=1\n"
    )
    settings = DataPipelineSettings()
    assert settings.data_dir == workdir / ".mlops"
    assert settings.mlops_source == "example"
    # a database in the server URL is replaced by the data database
    assert settings.data_database_url == "postgresql://u@h:5432/mlops_data"
