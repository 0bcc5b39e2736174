"""Fixtures of the training pipeline tests.

The steps take DataFrames, so most tests feed them the example generator's tables through the
test-only sources of ``tp_fixtures``.

``mlflow_server`` is a real MLflow tracking server (SQLite, served artifacts) on a free port,
started once per session by the integration tests and stopped by its pid.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from tp_fixtures import CRIPPLED, SMALL_END, SMALL_START, World, make_world, small_settings

from mlops_testing.stack import start_mlflow
from training_pipeline import steps
from training_pipeline.settings import TrainingSettings


@pytest.fixture(scope="session")
def small_world() -> World:
    """200 drivers, 10 days, 20 bookings an hour: 4,800 labelled bookings."""
    return make_world(
        seed=11, n_drivers=200, start=SMALL_START, end=SMALL_END, bookings_per_hour=20
    )


@pytest.fixture(autouse=True)
def _isolated_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Keep the developer's or CI's settings (MLOPS_*, MLFLOW_*, .env) out of the tests."""
    for name in list(os.environ):
        if name.startswith(("MLOPS_", "MLFLOW_")) and not name.startswith("MLOPS_TEST_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("MLOPS_ENV_FILE", str(tmp_path / "no.env"))
    monkeypatch.setenv("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    monkeypatch.setenv("MLOPS_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("AIRFLOW_HOME", str(tmp_path / "airflow"))


@pytest.fixture(scope="session")
def trained_runs(small_world: World, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Run folders evaluated but not registered: ``good`` (default estimator) and ``crippled``
    (a one-split, one-iteration model: clearly worse)."""
    root = tmp_path_factory.mktemp("trained")
    runs: dict[str, Path] = {}
    for name, overrides in (("good", {}), ("crippled", CRIPPLED)):
        settings = small_settings(small_world).with_overrides(overrides)
        run_dir = root / name
        steps.build_training_set(
            run_dir, settings, labels=small_world.labels, features=small_world.features
        )
        steps.validate(run_dir, settings)
        steps.train(run_dir, settings)
        steps.evaluate(run_dir, settings)
        runs[name] = run_dir
    return runs


@pytest.fixture
def fresh_run(trained_runs: dict[str, Path], tmp_path: Path) -> Callable[[str], Path]:
    """A private copy of a trained run folder (not yet registered)."""

    def copy(name: str) -> Path:
        target = tmp_path / f"{name}-{uuid.uuid4().hex[:6]}"
        shutil.copytree(trained_runs[name], target)
        return target

    return copy


# --- a real MLflow server -------------------------------------------------------------------


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real MLflow server (SQLite backend, served artifacts) on a free loopback port."""
    server = start_mlflow(tmp_path_factory.mktemp("mlflow"))
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture
def registry(
    mlflow_server: str, monkeypatch: pytest.MonkeyPatch
) -> Callable[..., TrainingSettings]:
    """Settings factory bound to the real server and a registered model name of its own."""
    name = f"tp_test_{uuid.uuid4().hex[:10]}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server)
    monkeypatch.setenv("MLOPS_TRAINING_MODEL_NAME", name)

    def make(world: World | None = None, **updates: Any) -> TrainingSettings:
        base = {"tracking_uri": mlflow_server, "model_name": name, **updates}
        return small_settings(world, **base) if world is not None else TrainingSettings(**base)

    return make
