"""``data-pipeline emit``: one hour of the configured example world, what the hourly
``example_source`` DAG writes so that the data pipeline's scheduled runs find new data."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest

from data_pipeline.batch import Interval
from data_pipeline.batch.ingest import ingest
from data_pipeline.batch.testing import isolated_settings
from data_pipeline.cli import main
from data_pipeline.example_source import BOOKINGS, ExampleSourceConfig, generate, open_source
from data_pipeline.example_source.emit import emit_hour

HOUR = datetime(2024, 9, 2, 7, tzinfo=UTC)
H = timedelta(hours=1)


def test_emit_writes_the_hour_the_next_pipeline_run_ingests(tmp_path: Path) -> None:
    settings = isolated_settings(
        tmp_path, example_drivers=40, example_seed=3, example_scenario="dirty"
    )
    summary = emit_hour(settings, HOUR)
    again = emit_hour(settings, HOUR)  # idempotent
    assert again["rows"] == summary["rows"]
    world = ExampleSourceConfig(
        seed=3, n_drivers=40, start=HOUR - H, end=HOUR + H, scenario="dirty"
    )
    truth = generate(world)
    ingested = ingest(settings, Interval.of(HOUR, HOUR + H))
    folder = tmp_path / "pipeline" / "driver_hourly_stats" / "20240902T07-20240902T08"
    staged = pd.read_parquet(folder / "raw.parquet")
    stats = truth.driver_hourly_stats
    expected = stats[(stats["created"] >= HOUR) & (stats["created"] < HOUR + H)]
    assert ingested["rows"] == len(expected) == summary["rows"]["driver_hourly_stats"]
    assert set(zip(staged["driver_id"], staged["created"], strict=True)) == set(
        zip(expected["driver_id"], expected["created"], strict=True)
    )
    # labels: only bookings of the hour before, none from the future
    bookings = open_source(settings).read(BOOKINGS, HOUR - 2 * H, HOUR + 2 * H)
    assert len(bookings) == summary["rows"]["bookings"] > 0
    assert bookings["event_timestamp"].between(HOUR - H, HOUR, inclusive="left").all()


def test_emit_cli_rejects_a_partial_hour(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLOPS_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("MLOPS_ENV_FILE", str(tmp_path / "no.env"))
    with pytest.raises(SystemExit) as bad:
        main(["emit", "--hour", "2024-09-02T07:30Z"])
    assert bad.value.code == 2
    assert "hour must be on a whole hour" in capsys.readouterr().err
    monkeypatch.setenv("MLOPS_EXAMPLE_SCENARIO", "covariate_drift")
    with pytest.raises(SystemExit) as drift:
        main(["emit", "--hour", "2024-09-02T07:00Z"])
    assert drift.value.code == 2
    assert "needs drift_start" in capsys.readouterr().err
