"""Evidently on one window: feature drift, prediction (score) drift, classification quality.

Two Evidently reports per window, because Evidently 0.7's classification metrics refuse rows
without a label and drift must see every row:

- **drift**: ``DataDriftPreset`` over the model's feature columns plus ``ValueDrift`` of the
  score, current = every scored candidate of the window, reference = the model's reference
  (``reference.Reference``). Per feature: Evidently's drift score and its verdict (the test
  status of the column's ``ValueDrift``); the share of drifted features (``DriftedColumnsCount``)
  and the dataset-drift flag (share ≥ ``drift_share``, Evidently's definition).
- **quality**: ``RocAuc``, ``Precision``, ``Recall``, ``F1Score``, ``Accuracy`` on the labelled
  rows (score vs label, ``probas_threshold``), with the reference's labelled rows as Evidently's
  reference (the report shows both).

Evidently is imported on first use (about 4-7 s): the evaluator warms it up at start.
"""

from __future__ import annotations

import gzip
import math
import os
import tempfile
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

SCORE = "score"
LABEL = "label"


class NotEnoughData(ValueError):
    """The window has too few rows for the report (the reason says how many)."""


@dataclass(frozen=True)
class DriftConfig:
    method: str | None = None
    threshold: float | None = None
    drift_share: float = 0.5
    probas_threshold: float = 0.5
    min_rows: int = 30
    min_labelled_rows: int = 20


@dataclass(frozen=True)
class ColumnDrift:
    score: float
    drifted: bool
    method: str
    threshold: float


@dataclass
class DriftResult:
    rows: int
    reference_rows: int
    features: dict[str, ColumnDrift]
    drifted_features: int
    drift_share: float
    dataset_drift: bool
    prediction: ColumnDrift | None
    missing_features: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DriftResult:
        values = dict(data)
        values["features"] = {k: ColumnDrift(**v) for k, v in data["features"].items()}
        values["prediction"] = ColumnDrift(**data["prediction"]) if data["prediction"] else None
        return cls(**values)


@dataclass
class QualityResult:
    rows: int
    positives: int
    roc_auc: float | None
    precision: float | None
    recall: float | None
    f1: float | None
    accuracy: float | None
    probas_threshold: float
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def warm_up() -> None:
    """Import Evidently (seconds) so the first window does not pay for it."""
    import evidently.metrics
    import evidently.presets  # noqa: F401


def _finite(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _numeric(series: pd.Series) -> bool:
    return bool(pd.api.types.is_numeric_dtype(series)) and not pd.api.types.is_bool_dtype(series)


def _definition(columns: list[str], frame: pd.DataFrame, **extra: Any) -> Any:
    from evidently import DataDefinition

    numerical = [c for c in columns if _numeric(frame[c])]
    categorical = [c for c in columns if c not in numerical]
    return DataDefinition(
        numerical_columns=numerical, categorical_columns=categorical or None, **extra
    )


def align(current: pd.DataFrame, reference: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """The current rows typed like the reference's columns (JSON turns int64 into int, missing
    values into None): numeric reference columns become numeric, the rest strings."""
    out = pd.DataFrame(index=current.index)
    for column in columns:
        values = current[column] if column in current else pd.Series(None, index=current.index)
        if _numeric(reference[column]):
            converted = pd.to_numeric(values, errors="coerce")
            if pd.api.types.is_integer_dtype(reference[column]) and not converted.isna().any():
                converted = converted.astype(reference[column].dtype)
            out[column] = converted
        elif pd.api.types.is_bool_dtype(reference[column]):
            out[column] = values.astype("boolean")
        else:
            out[column] = values.astype("string")
    return out


def drift_report(
    current: pd.DataFrame,
    reference: pd.DataFrame,
    feature_columns: list[str],
    cfg: DriftConfig,
) -> tuple[DriftResult, Any]:
    """Drift of the features and of the score: ``current`` and ``reference`` hold the feature
    columns and ``score``. Returns the result and the Evidently snapshot (for the HTML)."""
    from evidently import Dataset, Report
    from evidently.metrics import ValueDrift
    from evidently.presets import DataDriftPreset

    started = time.perf_counter()
    if len(current) < cfg.min_rows:
        raise NotEnoughData(f"{len(current)} rows < MONITORING_MIN_ROWS={cfg.min_rows}")
    present = [c for c in feature_columns if c in current and current[c].notna().any()]
    missing = [c for c in feature_columns if c not in present]
    if not present:
        raise NotEnoughData(f"none of the reference's features {feature_columns} in the events")
    columns = [*present, SCORE]
    cur = align(current, reference, present)
    cur[SCORE] = pd.to_numeric(current[SCORE], errors="coerce")
    ref = reference[columns]
    definition = _definition(columns, ref)
    metrics: list[Any] = [
        DataDriftPreset(
            columns=present,
            drift_share=cfg.drift_share,
            method=cfg.method,
            threshold=cfg.threshold,
        ),
        ValueDrift(column=SCORE, method=cfg.method, threshold=cfg.threshold),
    ]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        snapshot = Report(metrics, include_tests=True).run(
            current_data=Dataset.from_pandas(cur, data_definition=definition),
            reference_data=Dataset.from_pandas(ref, data_definition=definition),
        )
    result = parse_drift(snapshot.dict(), present, len(cur), len(ref), cfg.drift_share)
    result.missing_features = missing
    result.seconds = round(time.perf_counter() - started, 4)
    return result, snapshot


def parse_drift(
    data: dict[str, Any], features: list[str], rows: int, reference_rows: int, drift_share: float
) -> DriftResult:
    """The numbers of a drift snapshot's ``dict()``."""
    verdicts: dict[str, bool] = {}
    for test in data.get("tests", []):
        metric_id = (test.get("metric_config") or {}).get("metric_id")
        if metric_id is not None and test.get("id") == "drift":
            verdicts[metric_id] = test.get("status") == "FAIL"
    columns: dict[str, ColumnDrift] = {}
    count: float | None = None
    share: float | None = None
    for metric in data.get("metrics", []):
        config = metric.get("config") or {}
        kind = str(config.get("type", ""))
        if kind.endswith(":ValueDrift"):
            score = _finite(metric.get("value"))
            column = str(config["column"])
            columns[column] = ColumnDrift(
                score=score if score is not None else float("nan"),
                drifted=verdicts.get(str(metric["id"]), False),
                method=str(config.get("method")),
                threshold=float(config.get("threshold") or float("nan")),
            )
        elif kind.endswith(":DriftedColumnsCount"):
            value = metric.get("value") or {}
            count, share = _finite(value.get("count")), _finite(value.get("share"))
    feature_drift = {name: columns[name] for name in features if name in columns}
    if count is None or share is None:
        count = float(sum(c.drifted for c in feature_drift.values()))
        share = count / max(1, len(feature_drift))
    return DriftResult(
        rows=rows,
        reference_rows=reference_rows,
        features=feature_drift,
        drifted_features=int(count),
        drift_share=float(share),
        dataset_drift=bool(share >= drift_share),
        prediction=columns.get(SCORE),
    )


def quality_report(
    labelled: pd.DataFrame, reference: pd.DataFrame | None, cfg: DriftConfig
) -> tuple[QualityResult, Any]:
    """Classification quality of the labelled rows (``score``, ``label`` 0/1)."""
    started = time.perf_counter()
    rows = len(labelled)
    positives = int(labelled[LABEL].sum()) if rows else 0
    if rows < cfg.min_labelled_rows:
        raise NotEnoughData(
            f"{rows} labelled rows < MONITORING_MIN_LABELLED_ROWS={cfg.min_labelled_rows}"
        )
    baseline = None if reference is None or not len(reference) else _score_and_label(reference)
    snapshot = _run_quality(_score_and_label(labelled), baseline, cfg.probas_threshold)
    values: dict[str, float | None] = {}
    for metric in snapshot.dict().get("metrics", []):
        kind = str((metric.get("config") or {}).get("type", "")).rsplit(":", 1)[-1]
        values[kind] = _finite(metric.get("value"))
    one_class = positives in (0, rows)
    result = QualityResult(
        rows=rows,
        positives=positives,
        # one class only: ROC AUC is undefined (Evidently gives NaN)
        roc_auc=None if one_class else values.get("RocAuc"),
        precision=values.get("Precision"),
        recall=values.get("Recall"),
        f1=values.get("F1Score"),
        accuracy=values.get("Accuracy"),
        probas_threshold=cfg.probas_threshold,
        seconds=round(time.perf_counter() - started, 4),
    )
    return result, snapshot


def _score_and_label(frame: pd.DataFrame) -> pd.DataFrame:
    """``score`` as float and ``label`` as 0/1 int, the two columns Evidently classifies."""
    return pd.DataFrame(
        {
            SCORE: pd.to_numeric(frame[SCORE], errors="coerce").astype(float),
            LABEL: frame[LABEL].astype(int),
        }
    )


def _run_quality(current: pd.DataFrame, reference: pd.DataFrame | None, threshold: float) -> Any:
    """The Evidently snapshot of the classification metrics at ``threshold``."""
    from evidently import BinaryClassification, Dataset, Report
    from evidently.metrics import Accuracy, F1Score, Precision, Recall, RocAuc

    definition = _definition(
        [SCORE],
        current,
        classification=[BinaryClassification(target=LABEL, prediction_probas=SCORE, pos_label=1)],
    )
    metrics = [
        metric(probas_threshold=threshold)
        for metric in (RocAuc, Precision, Recall, F1Score, Accuracy)
    ]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return Report(metrics).run(
            current_data=Dataset.from_pandas(current, data_definition=definition),
            reference_data=(
                None
                if reference is None
                else Dataset.from_pandas(reference, data_definition=definition)
            ),
        )


def save_html(snapshot: Any, target: Path) -> int:
    """Write the snapshot's self-contained HTML page gzip-compressed (about 1.2 MB instead of
    4 MB), atomically; returns the compressed size."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        page = Path(tmp) / "report.html"
        snapshot.save_html(str(page))
        packed = Path(tmp) / "report.html.gz"
        with page.open("rb") as source, gzip.open(packed, "wb", compresslevel=6) as sink:
            while chunk := source.read(1 << 20):
                sink.write(chunk)
        os.replace(packed, target)
    return target.stat().st_size
