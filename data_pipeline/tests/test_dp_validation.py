"""Validation: every rule catches its defect, nothing else is quarantined, the report names both.

The ``dirty`` scenario's manifest lists every defect the generator made, so the test knows exactly
which rows must be quarantined and for which rule. Local files only (no services).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from data_pipeline.batch import BadInput, Interval, ValidationFailed, staging
from data_pipeline.batch.ingest import ingest
from data_pipeline.batch.validation import validate
from data_pipeline.settings import DataPipelineSettings
from example_project.world.config import ExampleSourceConfig
from mlops_common.sources import DRIVER_HOURLY_STATS, SCHEMAS
from mlops_testing.data import isolated_settings, write_world

T0 = datetime(2024, 5, 1, tzinfo=UTC)
KEY = ["driver_id", "event_timestamp", "created"]

#: the rule (and column) each defect of the generator's manifest must be caught by
EXPECTED_RULE = {
    "null_value": "not_null",
    "out_of_range": "in_range",
    "duplicate": "duplicate_row",
    "late": "late",
}


def _label(defect: str, column: Any) -> str:
    rule = EXPECTED_RULE[defect]
    return f"{rule}:{column}" if isinstance(column, str) and column else rule


@pytest.fixture(scope="module")
def dirty_batch(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A dirty day of 300 drivers, ingested and validated once."""
    data_dir = tmp_path_factory.mktemp("dp_validation")
    settings = isolated_settings(data_dir)
    config = ExampleSourceConfig(
        seed=11, n_drivers=300, start=T0, end=T0 + timedelta(days=1), scenario="dirty"
    )
    data = write_world(settings, config)
    interval = Interval.of(T0, T0 + timedelta(days=1))
    ingest(settings, interval)
    summary = validate(settings, interval)
    quarantine = staging.quarantine_dir(settings, interval)
    return {
        "settings": settings,
        "interval": interval,
        "data": data,
        "summary": summary,
        "report": json.loads((quarantine / staging.QUARANTINE_REPORT).read_text()),
        "rows": pd.read_parquet(quarantine / staging.QUARANTINE_ROWS),
        "valid": pd.read_parquet(staging.interval_dir(settings, interval) / staging.VALID),
        "raw": pd.read_parquet(staging.interval_dir(settings, interval) / staging.RAW),
    }


def _keys(frame: pd.DataFrame) -> set[tuple[int, pd.Timestamp, pd.Timestamp]]:
    return {
        (int(d), pd.Timestamp(e), pd.Timestamp(c))
        for d, e, c in frame[KEY].itertuples(index=False, name=None)
    }


def test_every_manifest_defect_is_quarantined_by_its_rule(dirty_batch: dict[str, Any]) -> None:
    manifest = dirty_batch["data"].dirty_manifest
    assert set(manifest["defect"]) == set(EXPECTED_RULE), "the world must have every defect"
    assert manifest.query("defect == 'out_of_range'")["column"].nunique() == 5
    quarantined = dirty_batch["rows"].set_index(KEY)["failed_rules"]
    missed = []
    for row in manifest.itertuples(index=False):
        key = (row.driver_id, row.event_timestamp, row.created)
        label = _label(row.defect, row.column)
        if key not in quarantined.index or label not in quarantined.loc[key].split(";"):
            missed.append((key, label))
    assert not missed, f"{len(missed)} defects not caught, e.g. {missed[:3]}"


def test_nothing_but_the_defects_is_quarantined(dirty_batch: dict[str, Any]) -> None:
    manifest_keys = _keys(dirty_batch["data"].dirty_manifest)
    quarantined_keys = _keys(dirty_batch["rows"])
    assert quarantined_keys == manifest_keys
    # and the valid rows are exactly the rest of the batch
    assert len(dirty_batch["valid"]) + len(dirty_batch["rows"]) == len(dirty_batch["raw"])
    assert not (_keys(dirty_batch["valid"]) & manifest_keys)


def test_report_names_rules_and_rows(dirty_batch: dict[str, Any]) -> None:
    report = dirty_batch["report"]
    manifest = dirty_batch["data"].dirty_manifest
    assert report["status"] == "quarantined"
    assert report["reason"] is None
    assert report["rows"] == len(dirty_batch["raw"])
    assert report["failed_rows"] == len(dirty_batch["rows"]) == len(_keys(manifest))
    assert report["failure_rate"] == pytest.approx(report["failed_rows"] / report["rows"], 1e-5)
    counts = report["failed_rows_by_rule"]
    assert counts["late"] == (manifest["defect"] == "late").sum()
    # a late row whose original hour is in the same batch is also a duplicate of it
    assert counts["duplicate_row"] >= (manifest["defect"] == "duplicate").sum()
    flagged = dirty_batch["rows"][dirty_batch["rows"]["failed_rules"].str.contains("duplicate_row")]
    assert _keys(flagged) <= _keys(manifest[manifest["defect"].isin(["duplicate", "late"])])
    nulls = manifest.query("defect == 'null_value'")["column"].value_counts()
    for column, n in nulls.items():
        assert counts[f"not_null:{column}"] == n
    # every failure entry names a rule and the row's key; each manifest defect is among them
    failures = {
        (f["driver_id"], f["event_timestamp"], f["created"], f["rule"], f["column"])
        for f in report["failures"]
    }
    for row in manifest.itertuples(index=False):
        rule = EXPECTED_RULE[row.defect]
        column = row.column if rule in ("not_null", "in_range") else None
        entry = (
            int(row.driver_id),
            row.event_timestamp.isoformat(),
            row.created.isoformat(),
            rule,
            column,
        )
        assert entry in failures, entry
    assert set(report["rules"]) >= {"not_null", "in_range", "duplicate_row", "late", "min_rows"}


def _staged(settings: DataPipelineSettings, interval: Interval, frame: pd.DataFrame) -> None:
    staging.write_parquet(frame, staging.interval_dir(settings, interval) / staging.RAW)


def _clean_rows(n_drivers: int = 20, hour: datetime = T0) -> pd.DataFrame:
    frame = pd.DataFrame(
        {
            "driver_id": range(1001, 1001 + n_drivers),
            "event_timestamp": pd.Timestamp(hour),
            "created": pd.Timestamp(hour) + pd.Timedelta(minutes=5),
            "conv_rate": 0.5,
            "acc_rate": 0.8,
            "avg_daily_trips": 12,
            "rating": 4.6,
            "cancel_rate": 0.05,
        }
    )
    return SCHEMAS[DRIVER_HOURLY_STATS].conform(frame)


def _validate_frame(
    tmp_path: Path, frame: pd.DataFrame, **overrides: Any
) -> tuple[dict[str, Any], DataPipelineSettings, Interval]:
    settings = isolated_settings(tmp_path, **overrides)
    interval = Interval.of(T0, T0 + timedelta(hours=1))
    _staged(settings, interval, frame)
    try:
        summary = validate(settings, interval)
    except ValidationFailed as exc:
        summary = {"failed": str(exc)}
    report = json.loads(
        (staging.interval_dir(settings, interval) / staging.VALIDATION_REPORT).read_text()
    )
    return {**summary, "report": report}, settings, interval


def test_future_rows_and_conflicting_keys_are_caught(tmp_path: Path) -> None:
    frame = _clean_rows()
    frame.loc[3, "event_timestamp"] = frame.loc[3, "created"] + pd.Timedelta(minutes=10)
    conflict = frame.iloc[[5]].copy()
    conflict["conv_rate"] = 0.9  # same key as row 5, different value
    frame = pd.concat([frame, conflict], ignore_index=True)
    result, _, _ = _validate_frame(tmp_path, frame, validation_max_failure_rate=0.5)
    report = result["report"]
    by_rule: dict[str, set[int]] = {}
    for failure in report["failures"]:
        by_rule.setdefault(failure["rule"], set()).add(failure["row"])
    assert by_rule == {"future": {3}, "duplicate_key": {5, 20}}
    assert report["status"] == "quarantined"


def test_wrong_type_fails_the_whole_batch(tmp_path: Path) -> None:
    frame = _clean_rows()
    frame["rating"] = frame["rating"].astype(str)
    result, settings, interval = _validate_frame(tmp_path, frame)
    report = result["report"]
    assert report["status"] == "failed"
    assert [f["rule"] for f in report["batch_failures"]][:1] == ["dtype"]
    assert report["failed_rows"] == len(frame)
    assert "dtype" in result["failed"]
    assert not (staging.interval_dir(settings, interval) / staging.VALID).exists()


def test_missing_column_fails_the_whole_batch(tmp_path: Path) -> None:
    frame = _clean_rows().drop(columns=["cancel_rate"])
    result, _, _ = _validate_frame(tmp_path, frame)
    assert result["report"]["status"] == "failed"
    assert "missing_column" in [f["rule"] for f in result["report"]["batch_failures"]]


def test_minimum_row_count(tmp_path: Path) -> None:
    result, _, _ = _validate_frame(tmp_path, _clean_rows(10), validation_min_rows_per_hour=50)
    assert result["report"]["status"] == "failed"
    assert "min_rows: 10 rows, expected at least 50" in result["failed"]
    ok, _, _ = _validate_frame(tmp_path, _clean_rows(10), validation_min_rows_per_hour=10)
    assert ok["status"] == "passed" and ok["failed_rows"] == 0


def test_failure_rate_limit_and_one_line_reason(tmp_path: Path) -> None:
    frame = _clean_rows(20)
    frame.loc[:2, "conv_rate"] = float("nan")  # 3 of 20 rows = 15 %
    below, _, _ = _validate_frame(tmp_path / "a", frame, validation_max_failure_rate=0.2)
    assert below["status"] == "quarantined" and below["valid_rows"] == 17
    above, settings, interval = _validate_frame(
        tmp_path / "b", frame, validation_max_failure_rate=0.1
    )
    reason = above["failed"]
    assert "\n" not in reason
    assert "3 of 20 rows (15.00%)" in reason and "limit 10.00%" in reason
    assert "not_null:conv_rate 3" in reason
    report_path = staging.quarantine_dir(settings, interval) / staging.QUARANTINE_REPORT
    assert str(report_path) in reason
    assert json.loads(report_path.read_text())["status"] == "failed"
    assert not (staging.interval_dir(settings, interval) / staging.VALID).exists()


def test_intervals_must_be_whole_hours() -> None:
    with pytest.raises(BadInput, match="whole UTC hour"):
        Interval.of("2024-01-01T00:30:00Z", "2024-01-01T02:00:00Z")
    with pytest.raises(BadInput, match="must be after start"):
        Interval.of("2024-01-01T02:00:00Z", "2024-01-01T02:00:00Z")
    with pytest.raises(BadInput, match="invalid time"):
        Interval.of("yesterday", "2024-01-01T02:00:00Z")
    interval = Interval.of("2024-01-01", "2024-01-01T03:00+02:00")
    assert interval.id == "20240101T00-20240101T01"
    assert len(interval.hours) == 1
