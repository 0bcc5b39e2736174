"""Where the steps keep their per-interval results, and atomic file writes.

``<data_dir>/pipeline/driver_hourly_stats/<interval id>/``:

- ``raw.parquet`` (ingest): the rows delivered in the interval, as read from the source;
- ``valid.parquet`` + ``validation.json`` (validate): the rows that passed, and the report;
- ``features.parquet`` (transform): the feature rows to publish;
- ``<step>.json``: each step's summary.

``<data_dir>/quarantine/driver_hourly_stats/<interval id>/`` (validate, only when rows failed):
``rows.parquet`` (the failing rows with the rules they broke) and ``report.json``.

Every write goes to a hidden temporary file in the same folder and is renamed into place, so a
reader (Feast reading the offline store, say) never sees a half-written file, and re-running a
step replaces its output instead of adding to it.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import pandas as pd

from data_pipeline.batch.errors import StepFailed
from data_pipeline.settings import DataPipelineSettings
from mlops_common.intervals import Interval
from mlops_common.sources import DRIVER_HOURLY_STATS

TABLE = DRIVER_HOURLY_STATS

RAW = "raw.parquet"
VALID = "valid.parquet"
FEATURES = "features.parquet"
VALIDATION_REPORT = "validation.json"
QUARANTINE_ROWS = "rows.parquet"
QUARANTINE_REPORT = "report.json"

#: each step's outputs; a step that succeeds removes the outputs of the steps after it, so a later
#: step can never pick up a result computed from an older input
STEP_OUTPUTS: dict[str, tuple[str, ...]] = {
    "ingest": (RAW, "ingest.json"),
    "validate": (VALID, VALIDATION_REPORT, "validate.json"),
    "transform": (FEATURES, "transform.json"),
    "publish": ("publish.json",),
}
STEP_ORDER: tuple[str, ...] = tuple(STEP_OUTPUTS)


def interval_dir(settings: DataPipelineSettings, interval: Interval) -> Path:
    return settings.pipeline_dir / TABLE / interval.id


def quarantine_dir(settings: DataPipelineSettings, interval: Interval) -> Path:
    return settings.quarantine_dir / TABLE / interval.id


def _temporary(path: Path, suffix: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".tmp-{path.stem}-", suffix=suffix, dir=path.parent)
    os.close(fd)
    return Path(name)


def write_parquet(frame: pd.DataFrame, path: Path) -> None:
    """Write ``frame`` to ``path`` atomically (temporary file + rename)."""
    tmp = _temporary(path, ".parquet")
    try:
        frame.reset_index(drop=True).to_parquet(tmp, index=False, engine="pyarrow")
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_json(data: Any, path: Path) -> None:
    """Write ``data`` as indented JSON to ``path`` atomically."""
    tmp = _temporary(path, ".json")
    try:
        tmp.write_text(json.dumps(data, indent=2, default=str) + "\n", encoding="utf-8")
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def read_input(
    settings: DataPipelineSettings, interval: Interval, name: str, producer: str
) -> pd.DataFrame:
    """A staged file of the interval, or a clear error naming the step to run first."""
    path = interval_dir(settings, interval) / name
    if not path.is_file():
        raise StepFailed(
            f"no {name} for interval {interval} in {path.parent}: run `data-pipeline {producer} "
            f"--start {interval.start:%Y-%m-%dT%H:%MZ} --end {interval.end:%Y-%m-%dT%H:%MZ}` first"
        )
    return pd.read_parquet(path, engine="pyarrow")


def clear_downstream(settings: DataPipelineSettings, interval: Interval, step: str) -> None:
    """Remove the staged outputs of every step after ``step`` (see ``STEP_OUTPUTS``)."""
    folder = interval_dir(settings, interval)
    for later in STEP_ORDER[STEP_ORDER.index(step) + 1 :]:
        for name in STEP_OUTPUTS[later]:
            (folder / name).unlink(missing_ok=True)


def stage_output(
    settings: DataPipelineSettings, interval: Interval, step: str, frame: pd.DataFrame, name: str
) -> Path:
    """Write ``step``'s output ``name`` for ``interval`` and remove what the later steps made of
    the one it replaces; returns the output's path."""
    path = interval_dir(settings, interval) / name
    write_parquet(frame, path)
    clear_downstream(settings, interval, step)
    return path


def remove_tree(path: Path) -> None:
    if path.exists():
        shutil.rmtree(path)
