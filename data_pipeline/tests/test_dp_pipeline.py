"""The batch pipeline end to end on local files (file registry, SQLite online store), and on Redis.

One world, processed once by a module fixture, then inspected by the tests:

- hours 0-4: normal data; processed as one interval, again (idempotency), and hour 1 alone;
- hours 4-6: the ``dirty`` scenario at its default rates (below the failure-rate limit): the bad
  rows are quarantined, the rest flows to the offline and online stores;
- hour 6: ``dirty`` with 30 % nulls (above the limit): validation fails, the stores stay as they
  were.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from data_pipeline import feature_store as fs
from data_pipeline.batch import Interval, ValidationFailed, run_all, run_step, staging
from data_pipeline.batch.transform import to_offline_rows
from data_pipeline.cli import main
from data_pipeline.settings import DataPipelineSettings
from example_project.world.config import DirtyRates, ExampleSourceConfig
from mlops_testing.data import (
    TEST_REDIS_URL,
    delete_redis_project,
    isolated_settings,
    latest_offline,
    online_values,
    read_offline,
    unique_project,
    write_world,
)

T0 = datetime(2024, 6, 3, tzinfo=UTC)
H = timedelta(hours=1)
N_DRIVERS = 150
DRIVERS = list(range(1001, 1001 + N_DRIVERS))


def _config(start: datetime, end: datetime, **values: Any) -> ExampleSourceConfig:
    return ExampleSourceConfig(
        seed=5, n_drivers=N_DRIVERS, start=start, end=end, bookings_per_hour=20, **values
    )


def _file_digests(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*.parquet"))
    }


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    data_dir = tmp_path_factory.mktemp("dp_pipeline")
    settings = isolated_settings(data_dir)
    state: dict[str, Any] = {"settings": settings}
    state["normal"] = write_world(settings, _config(T0, T0 + 6 * H))
    # hours 4-6 re-delivered dirty (the same world with defects); hour 6 very dirty
    state["dirty"] = write_world(settings, _config(T0 + 4 * H, T0 + 6 * H, scenario="dirty"))
    state["very_dirty"] = write_world(
        settings,
        _config(T0 + 6 * H, T0 + 7 * H, scenario="dirty", dirty_rates=DirtyRates(null=0.3)),
    )

    state["first"] = run_all(T0, T0 + 4 * H, settings)
    state["offline_first"] = read_offline(settings)
    state["again"] = run_all(T0, T0 + 4 * H, settings)
    state["offline_again"] = read_offline(settings)
    for step in ("ingest", "validate", "transform", "publish"):
        run_step(step, T0 + H, T0 + 2 * H, settings)
    state["offline_hourly"] = read_offline(settings)

    state["dirty_run"] = run_all(T0 + 4 * H, T0 + 6 * H, settings)
    state["offline_dirty"] = read_offline(settings)
    state["online_dirty"] = online_values(settings, DRIVERS)
    # an old interval materialized again (a backfill after newer runs)
    state["old_materialize"] = run_step("materialize", T0, T0 + H, settings)
    state["online_after_old"] = online_values(settings, DRIVERS)

    offline_root = fs.offline_table_dir(settings)
    state["files_before"] = _file_digests(offline_root)
    with pytest.raises(ValidationFailed) as failed:
        run_all(T0 + 6 * H, T0 + 7 * H, settings)
    state["failure"] = failed.value
    state["files_after"] = _file_digests(offline_root)
    state["online_after"] = online_values(settings, DRIVERS)
    return state


def _summary(results: list[dict[str, Any]], step: str) -> dict[str, Any]:
    return next(r for r in results if r["step"] == step)


def test_clean_interval_flows_to_both_stores(world: dict[str, Any]) -> None:
    first = world["first"]
    assert [r["step"] for r in first] == list(
        ("ingest", "validate", "transform", "publish", "apply", "materialize")
    )
    assert _summary(first, "validate")["status"] == "passed"
    offline = world["offline_first"]
    assert len(offline) == 4 * N_DRIVERS
    expected = world["normal"].driver_hourly_stats
    expected = expected[expected["created"] < T0 + 4 * H]
    pd.testing.assert_frame_equal(
        offline.reset_index(drop=True), to_offline_rows(expected)[0], check_like=True
    )
    assert _summary(first, "materialize")["rows"] == N_DRIVERS
    assert _summary(first, "materialize")["rows_per_second"] > 0


def test_rerunning_an_interval_never_duplicates(world: dict[str, Any]) -> None:
    pd.testing.assert_frame_equal(world["offline_again"], world["offline_first"])
    pd.testing.assert_frame_equal(world["offline_hourly"], world["offline_first"])
    assert _summary(world["again"], "ingest")["rows"] == _summary(world["first"], "ingest")["rows"]
    assert _summary(world["again"], "publish")["rows_replaced"] == 4 * N_DRIVERS
    # one batch file per event date (Feast's file store reads one Dask partition per file)
    root = fs.offline_table_dir(world["settings"])
    assert sorted(str(p.relative_to(root)) for p in root.rglob("*.parquet")) == [
        "date=2024-06-03/batch.parquet"
    ]
    # apply again: no infrastructure change (Feast may re-save the view: materialize stamped the
    # meta of its embedded sources, which the plan reports as an update of the view)
    output = _summary(world["again"], "apply")["output"]
    assert "No changes to infrastructure" in output
    assert "Created" not in output and "Deleted" not in output


def test_below_limit_quarantines_and_the_rest_flows(world: dict[str, Any]) -> None:
    settings: DataPipelineSettings = world["settings"]
    validation = _summary(world["dirty_run"], "validate")
    assert validation["status"] == "quarantined"
    assert 0 < validation["failure_rate"] <= settings.validation_max_failure_rate
    manifest = world["dirty"].dirty_manifest
    offline = world["offline_dirty"]
    new = offline[(offline["created"] >= T0 + 4 * H) & (offline["created"] < T0 + 6 * H)]
    assert len(new) == validation["valid_rows"]
    # no dirty row reached the offline store; every clean row did
    keys = ["driver_id", "event_timestamp", "created"]
    leaked = new.merge(manifest[keys], on=keys)
    assert leaked.empty
    assert new[list(fs.FEATURE_NAMES)].notna().all().all()
    clean = world["dirty"].driver_hourly_stats.merge(
        manifest[keys], on=keys, how="left", indicator=True
    )
    assert len(new) == (clean["_merge"] == "left_only").sum()
    interval = Interval.of(T0 + 4 * H, T0 + 6 * H)
    quarantined = pd.read_parquet(
        staging.quarantine_dir(settings, interval) / staging.QUARANTINE_ROWS
    )
    assert len(quarantined) == validation["failed_rows"] == len(manifest)


def test_online_values_equal_the_latest_offline_ones_sqlite(world: dict[str, Any]) -> None:
    latest = latest_offline(world["settings"])
    online = world["online_dirty"]
    assert list(online.index) == DRIVERS
    pd.testing.assert_frame_equal(
        online, latest[list(fs.FEATURE_NAMES)], check_dtype=False, check_names=False
    )
    # materialization ran for the last interval: the latest hour, or the hour before where the
    # latest row was quarantined
    assert (latest["event_timestamp"] >= T0 + 4 * H).all()
    assert (latest["event_timestamp"] == T0 + 5 * H).mean() > 0.9


def test_an_old_interval_never_puts_older_values_online(world: dict[str, Any]) -> None:
    # SQLite overwrites unconditionally: the window runs up to the newest offline event
    assert world["old_materialize"]["window"]["end"] == (T0 + 5 * H).isoformat()
    pd.testing.assert_frame_equal(world["online_after_old"], world["online_dirty"])


def test_above_limit_fails_and_leaves_the_stores_untouched(world: dict[str, Any]) -> None:
    settings: DataPipelineSettings = world["settings"]
    failure: ValidationFailed = world["failure"]
    message = str(failure)
    assert "\n" not in message and "limit 5.00%" in message and "not_null:" in message
    assert world["files_after"] == world["files_before"]
    pd.testing.assert_frame_equal(world["online_after"], world["online_dirty"])
    interval = Interval.of(T0 + 6 * H, T0 + 7 * H)
    folder = staging.interval_dir(settings, interval)
    assert not (folder / staging.VALID).exists()
    assert not (folder / staging.FEATURES).exists()
    report = json.loads(failure.report.read_text())
    assert report["status"] == "failed"
    assert report["batch_failures"][0]["rule"] == "failure_rate"
    assert report["failure_rate"] > 0.05
    first = report["failures"][0]
    assert {"rule", "column", "row", "driver_id", "event_timestamp", "created"} <= set(first)
    rows = pd.read_parquet(failure.report.parent / staging.QUARANTINE_ROWS)
    assert len(rows) == report["failed_rows"]


def test_cli_exit_codes_and_one_line_reasons(
    world: dict[str, Any], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    settings: DataPipelineSettings = world["settings"]
    monkeypatch.setenv("MLOPS_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("MLOPS_ONLINE_STORE_URL", settings.mlops_online_store_url)
    monkeypatch.setenv("MLOPS_ENV_FILE", str(settings.data_dir / "no-such.env"))
    hour6 = ["--start", "2024-06-03T06:00Z", "--end", "2024-06-03T07:00Z"]
    assert main(["validate", *hour6]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("data-pipeline validate: failed: validation failed for [2024-06-03T06")
    assert len(err.splitlines()) == 1
    # a later step of the rejected interval has nothing to work on
    assert main(["transform", *hour6]) == 1
    assert "run `data-pipeline validate" in capsys.readouterr().err
    with pytest.raises(SystemExit) as bad:
        main(["ingest", "--start", "2024-06-03T06:30Z", "--end", "2024-06-03T07:00Z"])
    assert bad.value.code == 2
    assert "start must be on a whole UTC hour" in capsys.readouterr().err
    with pytest.raises(SystemExit) as missing:
        main(["publish", "--start", "2024-06-03T06:00Z"])
    assert missing.value.code == 2


def test_point_in_time_features_do_not_leak_later_values(world: dict[str, Any]) -> None:
    """Each booking gets the statistics of its own hour, never the next hour's (which changed
    after the booking and is already in the offline store)."""
    settings: DataPipelineSettings = world["settings"]
    normal = world["normal"]
    bookings = normal.bookings[normal.bookings["event_timestamp"] < T0 + 3 * H]
    store = fs.feature_store(settings)
    entity_df = bookings[["driver_id", "event_timestamp"]].reset_index(drop=True)
    result = store.get_historical_features(
        entity_df=entity_df, features=store.get_feature_service(fs.FEATURE_SERVICE)
    ).to_df()
    assert len(result) == len(entity_df)
    stats = normal.driver_hourly_stats.set_index(["driver_id", "event_timestamp"])
    result = result.assign(hour=result["event_timestamp"].dt.floor("h"))
    truth = stats.loc[list(zip(result["driver_id"], result["hour"], strict=True))]
    later = stats.loc[list(zip(result["driver_id"], result["hour"] + H, strict=True))]
    for name in fs.FEATURE_NAMES:
        assert (result[name].to_numpy() == truth[name].to_numpy()).all(), name
    # the next hour's values differ for most bookings: a leak would have been caught
    changed = result["conv_rate"].to_numpy() != later["conv_rate"].to_numpy()
    assert changed.mean() > 0.9


def test_feature_service_serves_the_model_features(world: dict[str, Any]) -> None:
    store = fs.feature_store(world["settings"])
    service = store.get_feature_service(fs.FEATURE_SERVICE)
    refs = [
        f"{p.name_to_use()}:{f.name}" for p in service.feature_view_projections for f in p.features
    ]
    assert refs == list(fs.MODEL_FEATURES)
    view = store.get_feature_view(fs.FEATURE_VIEW)
    assert view.stream_source is not None and view.stream_source.name == fs.PUSH_SOURCE
    assert view.batch_source.name == fs.BATCH_SOURCE
    assert store.get_data_source(fs.PUSH_SOURCE).batch_source.path == fs.OFFLINE_TABLE_PATH
    assert [e.name for e in store.list_entities()] == [fs.ENTITY]


@pytest.mark.integration
def test_online_values_equal_the_latest_offline_ones_redis(world: dict[str, Any]) -> None:
    """Same offline store, materialized into the real Redis under a test-unique project."""
    base: DataPipelineSettings = world["settings"]
    project = unique_project()
    settings = isolated_settings(
        base.data_dir, mlops_online_store_url=TEST_REDIS_URL, mlops_feast_project=project
    )
    try:
        applied = run_step("apply", None, None, settings)
        assert applied["project"] == project
        materialized = run_step("materialize", T0, T0 + 6 * H, settings)
        assert materialized["rows"] == N_DRIVERS
        online = online_values(settings, DRIVERS)
        latest = latest_offline(settings)
        pd.testing.assert_frame_equal(
            online, latest[list(fs.FEATURE_NAMES)], check_dtype=False, check_names=False
        )
    finally:
        assert delete_redis_project(TEST_REDIS_URL, project) >= 0
