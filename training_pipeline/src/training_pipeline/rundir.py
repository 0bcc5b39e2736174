"""The run folder: how the steps of one training run hand data to each other.

Every step reads its inputs from and writes its outputs to one folder (passed by path), so a step
runs the same from the shell, a test or an Airflow task, on any worker that sees the folder.

```
<run_dir>/
  settings.json           run configuration, frozen by the first step
  trigger.json            why the run started (DAG conf, alert payload), when given
  training_set.parquet    labelled rows with point-in-time features
  candidates.parquet      every candidate of those rows, features as of the booking (evaluation)
  training_set.json       manifest: window, row counts, content hashes, feature service and refs
  validation.json         the validation report
  model.pkl, train.json   the fitted estimator and the split
  test_set.parquet        the holdout rows (most recent slice)
  evaluation.json, plots/ holdout metrics, calibration table, importances, PNG plots
  reference/              the monitoring reference logged by register (training_pipeline.reference)
  registration.json       MLflow run id, model URI, registered version
  gate.json               the promotion decision
```
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from training_pipeline.settings import TrainingSettings


class RunDirError(Exception):
    """A step's input is missing from the run folder (an earlier step did not run)."""


def new_run_id(now: datetime | None = None) -> str:
    return (now or datetime.now(UTC)).astimezone(UTC).strftime("%Y%m%dT%H%M%S%fZ")


def safe_name(value: str) -> str:
    """A file-name-safe form of an identifier (e.g. an Airflow run id)."""
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "_", value).strip("._")
    return cleaned or "run"


@dataclass(frozen=True)
class RunDir:
    path: Path

    SETTINGS = "settings.json"
    TRIGGER = "trigger.json"
    TRAINING_SET = "training_set.parquet"
    CANDIDATES = "candidates.parquet"
    MANIFEST = "training_set.json"
    VALIDATION = "validation.json"
    MODEL = "model.pkl"
    TRAIN = "train.json"
    TEST_SET = "test_set.parquet"
    EVALUATION = "evaluation.json"
    PLOTS = "plots"
    REGISTRATION = "registration.json"
    GATE = "gate.json"

    @classmethod
    def create(cls, path: Path) -> RunDir:
        path.mkdir(parents=True, exist_ok=True)
        return cls(path)

    @classmethod
    def existing(cls, path: Path) -> RunDir:
        if not path.is_dir():
            raise RunDirError(f"run folder {path} does not exist (run build-training-set first)")
        return cls(path)

    def file(self, name: str) -> Path:
        return self.path / name

    def require(self, name: str, produced_by: str) -> Path:
        target = self.file(name)
        if not target.exists():
            raise RunDirError(f"{target} is missing: run the {produced_by} step first")
        return target

    def write_json(self, name: str, payload: Any) -> Path:
        target = self.file(name)
        _atomic_write(target, json.dumps(payload, indent=2, sort_keys=True, default=str) + "\n")
        return target

    def read_json(self, name: str, produced_by: str) -> Any:
        return json.loads(self.require(name, produced_by).read_text(encoding="utf-8"))

    def write_parquet(self, name: str, frame: pd.DataFrame) -> Path:
        target = self.file(name)
        tmp = target.with_name(f".{target.name}.tmp")
        frame.to_parquet(tmp, index=False)
        os.replace(tmp, target)
        return target

    def read_parquet(self, name: str, produced_by: str) -> pd.DataFrame:
        return pd.read_parquet(self.require(name, produced_by))

    # --- the run's frozen configuration -------------------------------------------------------

    def freeze_settings(self, settings: TrainingSettings) -> None:
        self.write_json(self.SETTINGS, settings.run_config())

    def settings(self, environment: TrainingSettings) -> TrainingSettings:
        """``environment``'s environment fields with this run's frozen run configuration (or
        ``environment`` unchanged when the run froze none)."""
        target = self.file(self.SETTINGS)
        if not target.exists():
            return environment
        return environment.with_run_config(json.loads(target.read_text(encoding="utf-8")))


def _atomic_write(target: Path, text: str) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
