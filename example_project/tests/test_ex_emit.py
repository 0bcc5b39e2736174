"""``example-project emit``: one hour of the configured example world, what the hourly
``example_source`` DAG writes so that the data pipeline's scheduled runs find new data."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest

from data_pipeline.batch import Interval
from data_pipeline.batch.ingest import ingest
from example_project.cli import main
from example_project.emit import emit_hour, emit_period, emit_task
from example_project.storage import open_example_source
from example_project.world.config import ExampleSourceConfig
from example_project.world.generator import generate
from mlops_common.sources import BOOKINGS
from mlops_testing.data import (
    isolated_example_settings,
    isolated_settings,
    use_environment_of,
)

HOUR = datetime(2024, 9, 2, 7, tzinfo=UTC)
H = timedelta(hours=1)


def test_emit_writes_the_hour_the_next_pipeline_run_ingests(tmp_path: Path) -> None:
    settings = isolated_example_settings(
        tmp_path, example_drivers=40, example_seed=3, example_scenario="dirty"
    )
    summary = emit_hour(settings, HOUR)
    again = emit_hour(settings, HOUR)  # idempotent
    assert again["rows"] == summary["rows"]
    world = ExampleSourceConfig(
        seed=3, n_drivers=40, start=HOUR - H, end=HOUR + H, scenario="dirty"
    )
    truth = generate(world)
    # the data pipeline's run for the hour, reading the configured source (the default: example)
    ingested = ingest(isolated_settings(tmp_path), Interval.of(HOUR, HOUR + H))
    folder = tmp_path / "pipeline" / "driver_hourly_stats" / "20240902T07-20240902T08"
    staged = pd.read_parquet(folder / "raw.parquet")
    stats = truth.driver_hourly_stats
    expected = stats[(stats["created"] >= HOUR) & (stats["created"] < HOUR + H)]
    assert ingested["rows"] == len(expected) == summary["rows"]["driver_hourly_stats"]
    assert set(zip(staged["driver_id"], staged["created"], strict=True)) == set(
        zip(expected["driver_id"], expected["created"], strict=True)
    )
    # labels: only bookings of the hour before, none from the future
    bookings = open_example_source(settings).read(BOOKINGS, HOUR - 2 * H, HOUR + 2 * H)
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


def test_emit_period_writes_the_whole_world_of_the_period(tmp_path: Path) -> None:
    settings = isolated_example_settings(tmp_path, example_drivers=30, example_seed=5)
    start, end = HOUR, HOUR + 30 * H  # more than one 24-hour chunk
    summary = emit_period(settings, start, end)
    truth = generate(ExampleSourceConfig(seed=5, n_drivers=30, start=start, end=end))
    assert summary["rows"] == {table: len(frame) for table, frame in truth.tables().items()}
    source = open_example_source(settings)
    pd.testing.assert_frame_equal(source.read(BOOKINGS, start, end), truth.bookings)
    assert emit_period(settings, start, end)["rows"] == summary["rows"]  # idempotent
    assert len(source.read(BOOKINGS, start, end)) == len(truth.bookings)


def test_emit_task_takes_a_period_an_hour_or_the_data_interval(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from airflow.sdk.exceptions import AirflowFailException

    settings = isolated_settings(tmp_path)
    use_environment_of(settings, monkeypatch)
    monkeypatch.setenv("MLOPS_EXAMPLE_DRIVERS", "20")
    period = emit_task({"params": {"start": "2024-09-02T00:00Z", "end": "2024-09-02T03:00Z"}})
    assert period["start"] == "2024-09-02T00:00:00+00:00"
    assert period["end"] == "2024-09-02T03:00:00+00:00"
    assert period["rows"]["driver_hourly_stats"] == 3 * 20
    hour = emit_task({"params": {"hour": "2024-09-02T05:00Z"}})
    assert hour["hour"] == "2024-09-02T05:00:00+00:00"
    scheduled = emit_task({"params": {}, "data_interval_end": HOUR})
    assert scheduled["hour"] == HOUR.isoformat()
    with pytest.raises(AirflowFailException, match="one of them"):
        emit_task({"params": {"hour": "2024-09-02T05:00Z", "start": "2024-09-02T00:00Z"}})
    with pytest.raises(AirflowFailException, match="both"):
        emit_task({"params": {"start": "2024-09-02T00:00Z"}})
    with pytest.raises(AirflowFailException, match="no data interval"):
        emit_task({"params": {}})


def test_generate_writes_the_configured_world_by_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("MLOPS_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("MLOPS_ENV_FILE", str(tmp_path / "no.env"))
    monkeypatch.setenv("MLOPS_EXAMPLE_DRIVERS", "12")
    monkeypatch.setenv("MLOPS_EXAMPLE_BOOKINGS_PER_HOUR", "4")
    assert main(["generate", "--start", "2024-09-02T00:00Z", "--end", "2024-09-02T02:00Z"]) == 0
    out = capsys.readouterr().out
    assert "driver_hourly_stats: 24 rows" in out and "bookings: 8 rows" in out
    # the command line wins over the settings
    assert (
        main(
            [
                "generate",
                "--start",
                "2024-09-02T00:00Z",
                "--end",
                "2024-09-02T01:00Z",
                "--drivers",
                "7",
            ]
        )
        == 0
    )
    assert "driver_hourly_stats: 7 rows" in capsys.readouterr().out
