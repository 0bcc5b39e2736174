"""The example-project command: generate, oracle, exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from example_project.cli import main
from example_project.storage import LocalFileSource, PostgresSource
from mlops_testing.cli import exit_code, one_line_error, run_console_script, usage_error

SMALL = ["--start", "2024-03-01", "--end", "2024-03-01T06:00", "--drivers", "50"]


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Run in an empty directory so that no .env of the repo is read."""
    monkeypatch.chdir(tmp_path)


def test_generate_writes_local_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("MLOPS_DATA_DIR", str(tmp_path / "state"))
    assert main(["generate", *SMALL, "--chunk-hours", "4"]) == 0
    out = capsys.readouterr().out
    assert f"source: {tmp_path / 'state' / 'source'}" in out
    assert "driver_hourly_stats: 300 rows" in out
    assert "bookings: 180 rows" in out
    assert "booking_candidates: 900 rows" in out
    assert "elapsed:" in out
    source = LocalFileSource(tmp_path / "state" / "source")
    stats = source.read(
        "driver_hourly_stats",
        pd.Timestamp("2024-03-01", tz="UTC"),
        pd.Timestamp("2024-03-02", tz="UTC"),
    )
    assert len(stats) == 300


def test_generate_dirty_writes_the_manifest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("MLOPS_DATA_DIR", str(tmp_path / "state"))
    manifest = tmp_path / "out" / "manifest.csv"
    args = ["generate", *SMALL, "--scenario", "dirty", "--null-rate", "0.1"]
    assert main([*args, "--manifest", str(manifest)]) == 0
    out = capsys.readouterr().out
    frame = pd.read_csv(manifest)
    counts = json.loads(out.split("dirty rows: ")[1].splitlines()[0])
    assert counts == frame["defect"].value_counts().to_dict()
    assert counts["null_value"] > 10


def test_oracle_prints_json(capsys: pytest.CaptureFixture[str]) -> None:
    args = ["oracle", "--start", "2024-03-01", "--end", "2024-03-03", "--scenario", "concept_drift"]
    assert main([*args, "--drift-start", "2024-03-02T00:00Z", "--seed", "5"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["config"]["seed"] == 5
    assert report["config"]["scenario"] == "concept_drift"
    assert set(report) == {"config", "all", "pre_drift", "post_drift"}
    assert report["all"]["n_bookings"] == 48 * 30
    assert 0.6 < report["all"]["oracle_roc_auc"] < 0.95


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["generate", "--start", "yesterday", "--end", "2024-03-02"], "invalid time 'yesterday'"),
        (["generate", "--start", "2024-03-02", "--end", "2024-03-01"], "must be after start"),
        (["oracle", "--start", "2024-03-01T00:30", "--end", "2024-03-02"], "whole hour"),
        (["oracle", *SMALL, "--scenario", "concept_drift"], "needs drift_start"),
        (["oracle", *SMALL, "--scenario", "chaos"], "invalid choice: 'chaos'"),
        (["oracle", *SMALL[:4], "--drivers", "0"], "must be at least 1"),
        (["oracle", *SMALL, "--candidates", "60"], "must not exceed n_drivers"),
        (["oracle", *SMALL, "--late-rate", "2"], "rate must be between 0 and 0.5"),
        (["generate", "--end", "2024-03-02"], "--start"),
        (["frobnicate"], "invalid choice"),
        ([], "required"),
    ],
)
def test_bad_arguments_exit_2(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert message in usage_error(main, args, capsys)


def test_unreachable_database_exits_1(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("MLOPS_DATABASE_URL", "postgresql://postgres@127.0.0.1:1")
    assert exit_code(main, ["generate", *SMALL]) == 1
    assert one_line_error(capsys).startswith("example-project generate: failed: OperationalError")


@pytest.mark.integration
def test_generate_into_postgres_twice(
    pg_database: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    url = make_url(pg_database)
    monkeypatch.setenv("MLOPS_DATABASE_URL", url.set(database=None).render_as_string(False))
    monkeypatch.setenv("MLOPS_DATABASE_PREFIX", (url.database or "").removesuffix("_data"))
    for _ in range(2):
        assert main(["generate", *SMALL, "--scenario", "dirty"]) == 0
    assert "(schema source)" in capsys.readouterr().out
    source = PostgresSource(pg_database)
    with source.engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM source.bookings")).scalar_one() == 180
        n_stats = conn.execute(text("SELECT count(*) FROM source.driver_hourly_stats")).scalar_one()
    source.close()
    assert n_stats > 300  # the dirty scenario adds duplicate and late rows


def test_console_script_is_installed(tmp_path: Path) -> None:
    env = {"MLOPS_DATA_DIR": str(tmp_path / "state")}
    done = run_console_script("example-project", ["oracle", *SMALL], env)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["all"]["n_bookings"] == 180
    bad = run_console_script("example-project", ["oracle", "--start", "x", "--end", "y"], env)
    assert bad.returncode == 2 and "invalid time 'x'" in bad.stderr
