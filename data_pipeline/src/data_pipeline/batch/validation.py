"""Validate: pandera rules over the interval's ingested rows; quarantine what fails, with a report.

Row rules (a row breaking any of them is quarantined):

- ``not_null``: no column may be null;
- ``in_range``: ``conv_rate``, ``acc_rate``, ``cancel_rate`` in [0, 1], ``rating`` in [1, 5],
  ``avg_daily_trips`` in [0, 500], ``driver_id`` >= 1;
- ``duplicate_row``: the same driver, hour and values delivered again (the earliest delivery is
  kept, later copies are quarantined);
- ``duplicate_key``: two rows with the same ``(driver_id, event_timestamp, created)`` but
  different values (every copy is quarantined: there is no telling which is right);
- ``late``: ``event_timestamp`` more than ``validation_max_lateness_hours`` before ``created``
  (an old row delivered again: it must not overwrite newer values);
- ``future``: ``event_timestamp`` more than ``validation_max_future_seconds`` after ``created``.

Batch rules (the whole batch fails):

- ``missing_column`` / ``dtype``: the schema (columns and types);
- ``min_rows``: at least ``validation_min_rows_per_hour`` x hours of the interval rows;
- ``failure_rate``: the share of quarantined rows must not exceed
  ``validation_max_failure_rate``.

When the batch passes, the valid rows go to ``valid.parquet`` and the failing ones, if any, to the
quarantine folder. When it fails, *all* failing rows are quarantined, no valid file exists for the
interval (nothing downstream can run on it) and ``ValidationFailed`` carries a one-line reason.
The report format is documented in ``docs/pipeline.md``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import pandera.pandas as pa
from pandera.errors import SchemaErrors

from data_pipeline.batch import staging
from data_pipeline.batch.errors import ValidationFailed
from data_pipeline.feature_store import FEATURE_NAMES
from data_pipeline.settings import DataPipelineSettings
from mlops_common.intervals import Interval
from mlops_common.sources import DRIVER_HOURLY_STATS, SCHEMAS

KEY: tuple[str, ...] = ("driver_id", "event_timestamp", "created")

#: valid ranges, inclusive
RANGES: dict[str, tuple[float, float]] = {
    "conv_rate": (0.0, 1.0),
    "acc_rate": (0.0, 1.0),
    "avg_daily_trips": (0.0, 500.0),
    "rating": (1.0, 5.0),
    "cancel_rate": (0.0, 1.0),
}

ROW_RULES: dict[str, str] = {
    "not_null": "a value is null",
    "in_range": "a value is outside its valid range",
    "duplicate_row": "the same driver, hour and values delivered again (earliest copy kept)",
    "duplicate_key": "rows share (driver_id, event_timestamp, created) but differ in values",
    "late": "event_timestamp is more than the allowed lateness before created",
    "future": "event_timestamp is after created (beyond the allowed clock skew)",
}
BATCH_RULES: dict[str, str] = {
    "missing_column": "a required column is absent",
    "dtype": "a column has the wrong type",
    "min_rows": "the batch has fewer rows than the minimum for its interval",
    "failure_rate": "the share of failing rows is above the configured limit",
}

#: the report lists at most this many failing (rule, row) pairs; rows.parquet has all of them
MAX_REPORTED_FAILURES = 10_000

_TS = pd.DatetimeTZDtype(unit="ns", tz="UTC")


def _frame_check(name: str, fn: Callable[[pd.DataFrame], pd.Series]) -> pa.Check:
    # no ``error=``: pandera reports the check by its error text when one is given, by name else
    return pa.Check(fn, name=name)


def build_schema(settings: DataPipelineSettings) -> pa.DataFrameSchema:
    """The pandera schema of one batch of ``driver_hourly_stats`` rows."""
    lateness = pd.Timedelta(hours=settings.validation_max_lateness_hours)
    skew = pd.Timedelta(seconds=settings.validation_max_future_seconds)
    dtypes = SCHEMAS[DRIVER_HOURLY_STATS].columns
    columns: dict[str, pa.Column] = {}
    for name, dtype in dtypes.items():
        checks: list[pa.Check] = []
        if name in RANGES:
            lo, hi = RANGES[name]
            checks.append(pa.Check.in_range(lo, hi))
        elif name == "driver_id":
            checks.append(pa.Check.ge(1))
        columns[name] = pa.Column(
            _TS if dtype.startswith("datetime64") else dtype,
            checks=checks,
            nullable=False,
            required=True,
        )
    content = ["driver_id", "event_timestamp", *FEATURE_NAMES]

    def late(df: pd.DataFrame) -> pd.Series:
        ok = df["event_timestamp"] >= df["created"] - lateness
        return ok | df["event_timestamp"].isna() | df["created"].isna()

    def future(df: pd.DataFrame) -> pd.Series:
        ok = df["event_timestamp"] <= df["created"] + skew
        return ok | df["event_timestamp"].isna() | df["created"].isna()

    def duplicate_row(df: pd.DataFrame) -> pd.Series:
        ordered = df.sort_values("created", kind="stable")
        return ~ordered.duplicated(content, keep="first").reindex(df.index)

    def duplicate_key(df: pd.DataFrame) -> pd.Series:
        same_key = df.duplicated(list(KEY), keep=False)
        identical = df.duplicated([*KEY, *FEATURE_NAMES], keep=False)
        return ~(same_key & ~identical)

    return pa.DataFrameSchema(
        columns=columns,
        checks=[
            _frame_check("duplicate_row", duplicate_row),
            _frame_check("duplicate_key", duplicate_key),
            _frame_check("late", late),
            _frame_check("future", future),
        ],
        strict=False,
        coerce=False,
        name=DRIVER_HOURLY_STATS,
    )


def _rule_of(check: str) -> str:
    if check == "not_nullable":
        return "not_null"
    if check.startswith(("in_range", "greater_than_or_equal_to")):
        return "in_range"
    if check == "column_in_dataframe":
        return "missing_column"
    if check.startswith("dtype("):
        return "dtype"
    return check


def find_failures(
    frame: pd.DataFrame, schema: pa.DataFrameSchema
) -> tuple[pd.DataFrame, list[dict[str, Any]]]:
    """Row failures as a frame ``(row, rule, column, value)`` (one line per rule, column and row)
    and batch-level failures (schema: missing columns, wrong types)."""
    empty = pd.DataFrame({"row": pd.Series(dtype="int64"), "rule": [], "column": [], "value": []})
    try:
        schema.validate(frame, lazy=True)
    except SchemaErrors as exc:
        cases = exc.failure_cases
    else:
        return empty, []
    cases = cases.assign(rule=cases["check"].astype(str).map(_rule_of))
    batch_cases = cases[cases["index"].isna()]
    batch = [
        {
            "rule": str(row["rule"]),
            "column": None if pd.isna(row["column"]) else str(row["column"]),
            "detail": f"{row['check']}: {row['failure_case']}",
        }
        for _, row in batch_cases.drop_duplicates(["rule", "column"]).iterrows()
    ]
    rows = cases[cases["index"].notna()]
    frame_level = rows["schema_context"] == "DataFrameSchema"
    failures = pd.DataFrame(
        {
            "row": rows["index"].astype("int64").to_numpy(),
            "rule": rows["rule"].to_numpy(),
            # frame-wide rules name no single column
            "column": rows["column"].where(~frame_level, None).to_numpy(),
            "value": rows["failure_case"].where(~frame_level, None).to_numpy(),
        }
    )
    failures = failures.drop_duplicates(["row", "rule", "column"], ignore_index=True)
    return failures.sort_values(["row", "rule"], kind="stable", ignore_index=True), batch


def _json_value(value: Any) -> Any:
    if value is None:
        return None
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def _label(rule: str, column: Any) -> str:
    return (
        rule
        if column is None or (isinstance(column, float) and math.isnan(column))
        else (f"{rule}:{column}")
    )


def validate(settings: DataPipelineSettings, interval: Interval) -> dict[str, Any]:
    """Validate the interval's ingested rows (see the module docstring); return the report.

    Raises ``ValidationFailed`` when the batch is rejected.
    """
    began = time.perf_counter()
    frame = staging.read_input(settings, interval, staging.RAW, "ingest").reset_index(drop=True)
    folder = staging.interval_dir(settings, interval)
    quarantine = staging.quarantine_dir(settings, interval)
    # nothing of an earlier run of this interval may survive a new verdict
    (folder / staging.VALID).unlink(missing_ok=True)
    staging.clear_downstream(settings, interval, "validate")
    staging.remove_tree(quarantine)

    failures, batch_failures = find_failures(frame, build_schema(settings))
    n_rows = len(frame)
    min_rows = settings.validation_min_rows_per_hour * len(interval.hours)
    if n_rows < min_rows:
        batch_failures.append(
            {
                "rule": "min_rows",
                "column": None,
                "detail": f"{n_rows} rows, expected at least {min_rows} "
                f"({settings.validation_min_rows_per_hour} per hour x {len(interval.hours)} h)",
            }
        )
    schema_broken = any(f["rule"] in ("missing_column", "dtype") for f in batch_failures)
    failed_rows = set(range(n_rows)) if schema_broken else set(failures["row"].unique().tolist())
    n_failed = len(failed_rows)
    rate = n_failed / n_rows if n_rows else 0.0
    limit = settings.validation_max_failure_rate
    if rate > limit:
        batch_failures.append(
            {
                "rule": "failure_rate",
                "column": None,
                "detail": f"{rate:.2%} of {n_rows} rows failed, limit {limit:.2%}",
            }
        )
    status = "failed" if batch_failures else ("quarantined" if n_failed else "passed")

    counts = (
        failures.assign(
            label=[_label(r, c) for r, c in zip(failures["rule"], failures["column"], strict=True)]
        )
        .groupby("label")["row"]
        .nunique()
        .sort_values(ascending=False)
    )
    rule_counts = {str(k): int(v) for k, v in counts.items()}
    report_path = quarantine / staging.QUARANTINE_REPORT
    reason = None
    if status == "failed":
        top = ", ".join(f"{k} {v}" for k, v in list(rule_counts.items())[:5])
        first = batch_failures[0]
        if first["rule"] == "failure_rate":
            reason = (
                f"validation failed for {interval}: {n_failed} of {n_rows} rows ({rate:.2%}) "
                f"broke rules, limit {limit:.2%} ({top}); report: {report_path}"
            )
        else:
            reason = (
                f"validation failed for {interval}: {first['rule']}: {first['detail']}; "
                f"report: {report_path}"
            )

    keys = frame.reindex(columns=list(KEY))
    reported = failures.head(MAX_REPORTED_FAILURES)
    failure_list = [
        {
            "rule": rule,
            "column": None if column is None or pd.isna(column) else str(column),
            "row": int(row),
            "driver_id": _json_value(keys.at[int(row), "driver_id"]),
            "event_timestamp": _json_value(keys.at[int(row), "event_timestamp"]),
            "created": _json_value(keys.at[int(row), "created"]),
            "value": _json_value(value),
        }
        for row, rule, column, value in reported.itertuples(index=False, name=None)
    ]
    report: dict[str, Any] = {
        "table": DRIVER_HOURLY_STATS,
        "interval": {"start": interval.start.isoformat(), "end": interval.end.isoformat()},
        "validated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "status": status,
        "reason": reason,
        "rows": n_rows,
        "valid_rows": n_rows - n_failed if status != "failed" else 0,
        "failed_rows": n_failed,
        "failure_rate": round(rate, 6),
        "max_failure_rate": limit,
        "min_rows": min_rows,
        "rules": {
            **{name: {"kind": "row", "description": d} for name, d in ROW_RULES.items()},
            **{name: {"kind": "batch", "description": d} for name, d in BATCH_RULES.items()},
        },
        "failed_rows_by_rule": rule_counts,
        "batch_failures": batch_failures,
        "failures": failure_list,
        "failures_omitted": max(0, len(failures) - len(failure_list)),
        "quarantine": str(quarantine) if n_failed or status == "failed" else None,
        "valid_output": None,
    }

    if n_failed or status == "failed":
        rows_by_rule = (
            failures.assign(
                label=[
                    _label(r, c) for r, c in zip(failures["rule"], failures["column"], strict=True)
                ]
            )
            .groupby("row")["label"]
            .agg(lambda labels: ";".join(sorted(set(labels))))
        )
        bad = frame.iloc[sorted(failed_rows)].copy()
        bad["failed_rules"] = (
            rows_by_rule.reindex(bad.index).fillna("schema" if schema_broken else "").to_numpy()
        )
        bad.insert(0, "row", bad.index.to_numpy(dtype="int64"))
        staging.write_parquet(bad, quarantine / staging.QUARANTINE_ROWS)

    if status != "failed":
        valid = frame.drop(index=sorted(failed_rows)).reset_index(drop=True)
        staging.write_parquet(valid, folder / staging.VALID)
        report["valid_output"] = str(folder / staging.VALID)
    report["seconds"] = round(time.perf_counter() - began, 3)
    if n_failed or status == "failed":
        staging.write_json(report, report_path)
    staging.write_json(report, folder / staging.VALIDATION_REPORT)
    summary = {
        k: report[k]
        for k in (
            "status",
            "rows",
            "valid_rows",
            "failed_rows",
            "failure_rate",
            "max_failure_rate",
            "failed_rows_by_rule",
            "quarantine",
            "seconds",
        )
    }
    summary = {"step": "validate", "interval": report["interval"], **summary}
    staging.write_json(summary, folder / "validate.json")
    if status == "failed":
        raise ValidationFailed(str(reason), Path(report_path))
    return summary
