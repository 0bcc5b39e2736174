"""Validation of a training set before anything is trained on it (pandera, like the data pipeline).

Checks: the schema (keys, timestamp inside the window, boolean label, numeric features), no
forbidden (ground-truth) column among the features, at least ``min_rows`` rows, a label balance in
``[min_positive_rate, max_positive_rate]``, at most ``max_null_fraction`` nulls per feature, and
that every labelled row's candidate set is present with features.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd
import pandera.pandas as pa
from pandera.errors import SchemaErrors
from pydantic import BaseModel

from training_pipeline.settings import DatasetConfig, ValidationConfig

_MAX_EXAMPLES = 5


class ValidationFailed(Exception):
    """The training set is not fit for training; ``reasons`` name every problem found."""

    def __init__(self, reasons: Sequence[str]) -> None:
        self.reasons = list(reasons)
        super().__init__("training set failed validation: " + "; ".join(self.reasons))


class ValidationReport(BaseModel):
    passed: bool
    reasons: list[str]
    n_rows: int
    n_candidates: int
    positive_rate: float | None
    null_fraction: dict[str, float]


def _null_fraction_check(limit: float) -> pa.Check:
    return pa.Check(
        lambda s: float(s.isna().mean()) <= limit,
        element_wise=False,
        ignore_na=False,
        name="max_null_fraction",
        error=f"max_null_fraction: more than {limit:.2%} nulls",
    )


def _is_numeric() -> pa.Check:
    return pa.Check(
        lambda s: pd.api.types.is_numeric_dtype(s) and not pd.api.types.is_bool_dtype(s),
        element_wise=False,
        name="numeric",
        error="numeric: feature is not numeric",
    )


def training_set_schema(
    dataset: DatasetConfig,
    cfg: ValidationConfig,
    feature_columns: Sequence[str],
    window: tuple[pd.Timestamp, pd.Timestamp] | None = None,
) -> pa.DataFrameSchema:
    ts_checks = []
    if window is not None:
        start, end = window
        ts_checks = [
            pa.Check.ge(start, error=f"before the window start {start.isoformat()}"),
            pa.Check.lt(end, error=f"at or after the window end {end.isoformat()}"),
        ]
    allow_nulls = cfg.max_null_fraction > 0
    columns: dict[str, pa.Column] = {
        dataset.event_id_column: pa.Column(nullable=False, unique=True),
        dataset.timestamp_column: pa.Column(
            pd.DatetimeTZDtype(unit="ns", tz="UTC"), checks=ts_checks, nullable=False
        ),
        dataset.entity_column: pa.Column(nullable=False),
        dataset.label_column: pa.Column(bool, nullable=False),
    }
    for feature in feature_columns:
        columns[feature] = pa.Column(
            nullable=allow_nulls,
            checks=[_is_numeric(), _null_fraction_check(cfg.max_null_fraction)],
        )
    label = dataset.label_column
    forbidden = set(dataset.forbidden_feature_columns)
    return pa.DataFrameSchema(
        columns,
        checks=[
            pa.Check(
                lambda df: len(df) >= cfg.min_rows,
                name="min_rows",
                error=f"min_rows: fewer than validation.min_rows={cfg.min_rows} rows",
            ),
            pa.Check(
                lambda df: (
                    len(df) > 0
                    and cfg.min_positive_rate <= float(df[label].mean()) <= cfg.max_positive_rate
                ),
                name="label_balance",
                error=(
                    f"label_balance: positive rate of {label!r} outside "
                    f"[{cfg.min_positive_rate}, "
                    f"{cfg.max_positive_rate}]"
                ),
            ),
            pa.Check(
                lambda df: not (forbidden & set(df.columns)),
                name="no_ground_truth",
                error=f"no_ground_truth: a forbidden column ({sorted(forbidden)}) is present",
            ),
        ],
        strict=False,
    )


def _describe(errors: SchemaErrors) -> list[str]:
    cases: pd.DataFrame = errors.failure_cases
    reasons: list[str] = []
    for (column, check), group in cases.groupby(["column", "check"], dropna=False, sort=True):
        where = "table" if not isinstance(column, str) else f"column {column!r}"
        values = [str(v) for v in group["failure_case"].head(_MAX_EXAMPLES).tolist()]
        count = len(group)
        example = f" (e.g. {', '.join(values)})" if values and values != ["False"] else ""
        rows = f"{count} failing values" if count > 1 else "failed"
        reasons.append(f"{where}: {check}: {rows}{example}")
    return reasons


def validate_training_set(
    training_set: pd.DataFrame,
    candidates: pd.DataFrame,
    feature_columns: Sequence[str],
    dataset: DatasetConfig,
    cfg: ValidationConfig,
    window: tuple[pd.Timestamp, pd.Timestamp] | None = None,
    candidates_from: pd.Timestamp | None = None,
) -> ValidationReport:
    """Every problem found, not just the first (pandera's lazy validation).

    ``candidates_from``: only rows at or after it need a candidate set (the holdout).
    """
    reasons: list[str] = []
    missing = [
        c
        for c in (
            dataset.event_id_column,
            dataset.timestamp_column,
            dataset.entity_column,
            dataset.label_column,
            *feature_columns,
        )
        if c not in training_set.columns
    ]
    if missing:
        reasons.append(f"training set is missing columns {missing}")
    forbidden = sorted(set(feature_columns) & set(dataset.forbidden_feature_columns))
    if forbidden:
        reasons.append(f"ground-truth columns {forbidden} must never be features")
    label = training_set.get(dataset.label_column)
    positive_rate = float(label.mean()) if label is not None and len(label) else None
    if not missing:
        schema = training_set_schema(dataset, cfg, feature_columns, window)
        try:
            schema.validate(training_set, lazy=True)
        except SchemaErrors as exc:
            reasons.extend(
                f"{r} (observed {positive_rate:.4f})"
                if "label_balance" in r and positive_rate is not None
                else r
                for r in _describe(exc)
            )
    if cfg.require_candidates and not missing:
        ranked = training_set
        if candidates_from is not None:
            ranked = training_set[training_set[dataset.timestamp_column] >= candidates_from]
        reasons.extend(_candidate_problems(ranked, candidates, feature_columns, dataset))
    null_fraction: dict[str, float] = {
        c: float(training_set[c].isna().mean()) for c in feature_columns if c in training_set
    }
    return ValidationReport(
        passed=not reasons,
        reasons=reasons,
        n_rows=len(training_set),
        n_candidates=len(candidates),
        positive_rate=positive_rate,
        null_fraction=null_fraction,
    )


def _candidate_problems(
    training_set: pd.DataFrame,
    candidates: pd.DataFrame,
    feature_columns: Sequence[str],
    dataset: DatasetConfig,
) -> list[str]:
    event = dataset.event_id_column
    needed = [event, dataset.entity_column, dataset.candidate_outcome_column, *feature_columns]
    absent = [c for c in needed if c not in candidates.columns]
    if absent:
        return [f"candidate sets are missing columns {absent}"]
    problems: list[str] = []
    without = ~training_set[event].isin(candidates[event])
    if without.any():
        examples = training_set.loc[without, event].head(_MAX_EXAMPLES).tolist()
        problems.append(
            f"{int(without.sum())} labelled rows have no candidate set (e.g. {examples})"
        )
    pairs = training_set[[event, dataset.entity_column]].merge(
        candidates[[event, dataset.entity_column]], how="left", indicator=True
    )
    not_offered = pairs["_merge"] == "left_only"
    if not_offered.any() and not without.all():
        problems.append(
            f"{int(not_offered.sum())} labelled rows' {dataset.entity_column} is not among their "
            "candidates"
        )
    nulls: dict[str, Any] = {
        c: int(candidates[c].isna().sum()) for c in feature_columns if candidates[c].isna().any()
    }
    if nulls:
        problems.append(f"candidate features have nulls: {nulls}")
    if candidates[dataset.candidate_outcome_column].isna().any():
        problems.append(f"candidate column {dataset.candidate_outcome_column!r} has nulls")
    if candidates.duplicated([event, dataset.entity_column]).any():
        problems.append("candidate sets list a driver twice for one event")
    return problems
