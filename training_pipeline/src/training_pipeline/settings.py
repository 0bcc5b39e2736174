"""The training pipeline's one settings object (pydantic-settings).

Values come from, in order of precedence: keyword arguments / overrides, the process environment,
the env file (``MLOPS_ENV_FILE``, else ``.env`` in the working directory), the defaults below.

Environment names: the top-level fields take the prefix ``MLOPS_TRAINING_``; nested groups use
``__``: ``MLOPS_TRAINING_GATE__MODE=dry_run``,
``MLOPS_TRAINING_ESTIMATOR__HYPERPARAMETERS='{"max_iter": 50}'``,
``MLOPS_TRAINING_GATE__MINIMUMS='{"roc_auc": 0.75}'``. The shared platform settings
(``mlops_common.settings``, ``mlops_common.features``) keep their platform names:
``MLFLOW_TRACKING_URI`` (unset: the platform's MLflow at ``http://<MLOPS_BIND_HOST>:<MLFLOW_PORT>``),
``MLOPS_DATA_DIR``, the feature store's settings.

Two kinds of fields:

- environment fields (where things are: tracking URI, data directory, registered model name,
  experiment) are always read from the environment of the step that runs;
- run configuration (``RUN_CONFIG_GROUPS``: dataset, window, split, estimator, validation,
  evaluation, gate) is frozen into ``settings.json`` of the run folder by the first step, so every
  later step of one run uses the same configuration even when it runs elsewhere.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)
from pydantic_settings import SettingsConfigDict

from mlops_common.features import FeatureStoreSettings
from mlops_common.registry import CHAMPION, Alias

#: metrics where a larger value is better / where a smaller value is better
HIGHER_IS_BETTER: frozenset[str] = frozenset(
    {"roc_auc", "pr_auc", "precision", "recall", "f1", "accuracy", "top1_accuracy"}
)
LOWER_IS_BETTER: frozenset[str] = frozenset({"log_loss", "brier_score", "ece"})
KNOWN_METRICS: frozenset[str] = HIGHER_IS_BETTER | LOWER_IS_BETTER

#: groups of the run configuration, frozen per run into ``<run_dir>/settings.json``
RUN_CONFIG_GROUPS: tuple[str, ...] = (
    "dataset",
    "window",
    "split",
    "estimator",
    "validation",
    "evaluation",
    "gate",
)

__all__ = ["CHAMPION", "Alias", "TrainingSettings", "load_settings"]

_Strict = ConfigDict(frozen=True, extra="forbid")


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class DatasetConfig(BaseModel):
    """What the model learns from: the feature service, the label and the keys of a row."""

    model_config = _Strict

    feature_service: str = "driver_ranking_v1"
    label_column: str = "trip_completed"
    #: one row of the training set (a labelled booking) and of the candidate sets
    event_id_column: str = "booking_id"
    entity_column: str = "driver_id"
    timestamp_column: str = "event_timestamp"
    #: candidate sets: latent outcome of every candidate and the dispatcher's listing order
    candidate_outcome_column: str = "completed_if_assigned"
    candidate_order_column: str = "position"
    #: columns that must never reach the model (ground truth of the example source)
    forbidden_feature_columns: tuple[str, ...] = ("true_p", "completed_if_assigned")


class WindowConfig(BaseModel):
    """The labelled bookings to learn from: ``[start, end)``.

    ``end`` empty: the current whole UTC hour; ``start`` empty: ``end - days``.
    """

    model_config = _Strict

    start: datetime | None = None
    end: datetime | None = None
    days: float = Field(default=30.0, gt=0)

    @field_validator("start", "end")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        return None if value is None else _utc(value)

    @model_validator(mode="after")
    def _ordered(self) -> WindowConfig:
        if self.start is not None and self.end is not None and self.end <= self.start:
            raise ValueError(
                f"window end ({self.end.isoformat()}) must be after start "
                f"({self.start.isoformat()})"
            )
        return self

    def resolve(self, now: datetime | None = None) -> tuple[datetime, datetime]:
        """The concrete ``(start, end)``: what a run records as its data window."""
        if self.end is not None:
            end = self.end
        else:
            current = _utc(now or datetime.now(UTC))
            end = current.replace(minute=0, second=0, microsecond=0)
        start = self.start if self.start is not None else end - timedelta(days=self.days)
        if end <= start:
            raise ValueError(f"window end ({end.isoformat()}) must be after start")
        return start, end


class SplitConfig(BaseModel):
    """Time-based holdout: train on the past, test on the most recent slice.

    ``test_days`` set: the test slice is the last ``test_days`` of the window's bookings;
    otherwise the most recent ``test_fraction`` of the bookings (cut at a booking time, so every
    test booking is at or after every training booking).
    """

    model_config = _Strict

    test_fraction: float = Field(default=0.2, gt=0.0, lt=1.0)
    test_days: float | None = Field(default=None, gt=0)
    #: the smallest holdout the evaluation is meaningful on
    min_test_rows: int = Field(default=200, ge=1)


class EstimatorConfig(BaseModel):
    """A scikit-learn classifier by import path, its hyperparameters and the seed.

    Only classes under ``sklearn.`` may be named (configuration must not import arbitrary code).
    The seed is passed as ``random_state`` when the estimator takes one.
    """

    model_config = _Strict

    class_path: str = "sklearn.ensemble.HistGradientBoostingClassifier"
    hyperparameters: dict[str, Any] = Field(
        default_factory=lambda: {
            "learning_rate": 0.05,
            "max_iter": 200,
            "max_leaf_nodes": 7,
            "min_samples_leaf": 100,
            "l2_regularization": 1.0,
            # no early stopping: its validation split would be random across time
            "early_stopping": False,
        }
    )
    seed: int = Field(default=42, ge=0, lt=2**32)
    #: OpenMP/BLAS threads while fitting and scoring (0: the libraries' default). One thread is
    #: as fast on this data and immune to oversubscription when other processes share the cores
    threads: int = Field(default=1, ge=0, le=256)

    @field_validator("class_path")
    @classmethod
    def _sklearn_only(cls, value: str) -> str:
        if not value.startswith("sklearn.") or "." not in value.removeprefix("sklearn."):
            raise ValueError(
                f"class_path must name a scikit-learn class, e.g. "
                f"sklearn.ensemble.HistGradientBoostingClassifier (got {value!r})"
            )
        return value


class ValidationConfig(BaseModel):
    """What a training set must satisfy before anything is trained on it."""

    model_config = _Strict

    min_rows: int = Field(default=1000, ge=1)
    #: the label's positive rate must lie in [min_positive_rate, max_positive_rate]
    min_positive_rate: float = Field(default=0.05, ge=0.0, le=1.0)
    max_positive_rate: float = Field(default=0.95, ge=0.0, le=1.0)
    #: largest fraction of nulls allowed in a feature column (0: none)
    max_null_fraction: float = Field(default=0.0, ge=0.0, le=1.0)
    #: every labelled row's candidate set must be present (the ranking metric needs it)
    require_candidates: bool = True

    @model_validator(mode="after")
    def _rates(self) -> ValidationConfig:
        if self.min_positive_rate > self.max_positive_rate:
            raise ValueError("min_positive_rate must not exceed max_positive_rate")
        return self


class EvaluationConfig(BaseModel):
    """Evaluation on the holdout."""

    model_config = _Strict

    #: probability at or above which a row is predicted positive (precision / recall / F1)
    operating_threshold: float = Field(default=0.5, gt=0.0, lt=1.0)
    calibration_bins: int = Field(default=10, ge=2, le=100)
    permutation_repeats: int = Field(default=5, ge=1, le=100)
    #: rows of the holdout used for permutation importance (0: all)
    permutation_max_rows: int = Field(default=5000, ge=0)
    #: holdout rows logged with the model as the monitoring reference (a seeded sample; 0: all)
    reference_max_rows: int = Field(default=5000, ge=0)


class GateMode(StrEnum):
    """``disabled``: no automatic promotion at all (promote by hand); ``dry_run``: decide and
    report, never move an alias; ``enabled``: a passing version gets the alias."""

    DISABLED = "disabled"
    DRY_RUN = "dry_run"
    ENABLED = "enabled"


class GateConfig(BaseModel):
    """The promotion gate, as code.

    A candidate passes when every absolute bound holds AND, when a champion exists, no metric in
    ``max_regression`` is worse than the champion's *on the candidate's holdout* by more than its
    tolerance (absolute units of the metric). With no champion yet, the absolute bounds alone
    decide and a passing version becomes ``champion`` whatever ``promote_to`` says.
    """

    model_config = _Strict

    mode: GateMode = GateMode.ENABLED
    promote_to: Alias = "champion"
    #: absolute minimums of higher-is-better metrics, e.g. {"roc_auc": 0.70}
    minimums: dict[str, float] = Field(
        default_factory=lambda: {"roc_auc": 0.70, "top1_accuracy": 0.80}
    )
    #: absolute maximums of lower-is-better metrics, e.g. {"log_loss": 0.65}
    maximums: dict[str, float] = Field(default_factory=lambda: {"log_loss": 0.65})
    #: metric -> largest allowed regression against the champion on the same holdout
    max_regression: dict[str, float] = Field(
        default_factory=lambda: {"roc_auc": 0.005, "top1_accuracy": 0.01}
    )
    #: what a refusal does to the DAG's gate task: fail it (red) or mark it skipped (pink)
    on_refusal: Literal["fail", "skip"] = "fail"

    @model_validator(mode="after")
    def _known_metrics(self) -> GateConfig:
        for name in self.minimums:
            if name not in HIGHER_IS_BETTER:
                raise ValueError(
                    f"gate minimum on {name!r}: only higher-is-better metrics take a minimum "
                    f"({', '.join(sorted(HIGHER_IS_BETTER))})"
                )
        for name in self.maximums:
            if name not in LOWER_IS_BETTER:
                raise ValueError(
                    f"gate maximum on {name!r}: only lower-is-better metrics take a maximum "
                    f"({', '.join(sorted(LOWER_IS_BETTER))})"
                )
        for name, tolerance in self.max_regression.items():
            if name not in KNOWN_METRICS:
                raise ValueError(f"gate max_regression on unknown metric {name!r}")
            if tolerance < 0:
                raise ValueError(f"gate max_regression[{name!r}] must not be negative")
        return self


class TrainingSettings(FeatureStoreSettings):
    """The one settings object of the training pipeline (see the module docstring)."""

    model_config = SettingsConfigDict(env_prefix="MLOPS_TRAINING_", env_nested_delimiter="__")

    model_name: str = Field(default="driver_ranking", min_length=1)
    experiment_name: str = Field(default="driver_ranking_training", min_length=1)

    dataset: DatasetConfig = Field(default_factory=DatasetConfig)
    window: WindowConfig = Field(default_factory=WindowConfig)
    split: SplitConfig = Field(default_factory=SplitConfig)
    estimator: EstimatorConfig = Field(default_factory=EstimatorConfig)
    validation: ValidationConfig = Field(default_factory=ValidationConfig)
    evaluation: EvaluationConfig = Field(default_factory=EvaluationConfig)
    gate: GateConfig = Field(default_factory=GateConfig)

    @property
    def runs_dir(self) -> Path:
        """Where run folders live: ``<data_dir>/training/runs``."""
        return self.data_dir / "training" / "runs"

    def run_config(self) -> dict[str, Any]:
        """The run configuration (JSON-compatible): what ``settings.json`` of a run holds."""
        dumped = self.model_dump(mode="json", include=set(RUN_CONFIG_GROUPS))
        return {group: dumped[group] for group in RUN_CONFIG_GROUPS}

    def with_run_config(self, run_config: dict[str, Any]) -> TrainingSettings:
        """These environment fields with another run configuration."""
        unknown = set(run_config) - set(RUN_CONFIG_GROUPS)
        if unknown:
            raise ValueError(f"unknown run configuration groups: {sorted(unknown)}")
        return self.model_copy(
            update={
                group: type(getattr(self, group)).model_validate(value)
                for group, value in run_config.items()
            }
        )

    def with_overrides(self, overrides: dict[str, Any]) -> TrainingSettings:
        """Deep-merge ``overrides`` (e.g. from a DAG run's conf) into the run configuration."""
        unknown = set(overrides) - set(RUN_CONFIG_GROUPS)
        if unknown:
            raise ValueError(
                f"cannot override {sorted(unknown)}: overrides may only change "
                f"{', '.join(RUN_CONFIG_GROUPS)}"
            )
        merged = self.run_config()
        for group, value in overrides.items():
            if not isinstance(value, dict):
                raise ValueError(f"override of {group!r} must be an object, got {value!r}")
            merged[group] = _deep_merge(merged[group], value)
        return self.with_run_config(merged)


def _deep_merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def load_settings(**values: Any) -> TrainingSettings:
    """Settings from the environment and the env file; ``values`` win over both."""
    return TrainingSettings(**values)
