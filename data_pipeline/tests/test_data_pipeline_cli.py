"""The data-pipeline command: the steps read the configured source; exit codes."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from data_pipeline.cli import main
from example_project.world.config import ExampleSourceConfig
from mlops_testing.cli import exit_code, one_line_error
from mlops_testing.data import isolated_settings, write_world

INTERVAL = ["--start", "2024-03-01T00:00Z", "--end", "2024-03-01T06:00Z"]


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Run in an empty directory so that no .env of the repo is read."""
    monkeypatch.chdir(tmp_path)


def test_ingest_reads_the_configured_source(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """``MLOPS_SOURCE`` unset: the example source under the data directory."""
    monkeypatch.setenv("MLOPS_DATA_DIR", str(tmp_path / "state"))
    world = ExampleSourceConfig(
        seed=3,
        n_drivers=20,
        start=datetime(2024, 3, 1, tzinfo=UTC),
        end=datetime(2024, 3, 1, 6, tzinfo=UTC),
    )
    write_world(isolated_settings(tmp_path / "state"), world)
    assert main(["ingest", *INTERVAL]) == 0
    out = capsys.readouterr().out
    summary = json.loads(out[out.index("{") :])
    assert summary["source"] == str(tmp_path / "state" / "source")
    # the rows delivered (created) in the interval: the last hour's deliveries are partly later
    assert 5 * 20 < summary["rows"] <= 6 * 20


def test_an_unknown_source_fails_naming_the_setting(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("MLOPS_SOURCE", "acme")
    assert exit_code(main, ["ingest", *INTERVAL]) == 1
    err = one_line_error(capsys)
    assert err.startswith("data-pipeline ingest: failed: SourceNotFound: MLOPS_SOURCE='acme'")
    assert "installed: example" in err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["ingest", "--start", "yesterday", "--end", "2024-03-02"], "invalid time 'yesterday'"),
        (["ingest", "--start", "2024-03-02", "--end", "2024-03-01"], "must be after"),
        (["validate", "--start", "2024-03-01T00:30Z", "--end", "2024-03-02"], "whole UTC hour"),
        (["ingest", "--end", "2024-03-02"], "--start"),
        # the example company's programs are example-project's, not the pipeline's
        (["generate", *INTERVAL], "invalid choice: 'generate'"),
        (["emit", "--hour", "2024-03-01T05:00Z"], "invalid choice: 'emit'"),
        (["dispatch"], "invalid choice: 'dispatch'"),
        (["frobnicate"], "invalid choice"),
        ([], "required"),
    ],
)
def test_bad_arguments_exit_2(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert exit_code(main, args) == 2
    assert message in capsys.readouterr().err


def test_unreachable_database_exits_1(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("MLOPS_DATABASE_URL", "postgresql://postgres@127.0.0.1:1")
    assert exit_code(main, ["ingest", *INTERVAL]) == 1
    assert one_line_error(capsys).startswith("data-pipeline ingest: failed: OperationalError")


def test_console_script_is_installed(tmp_path: Path) -> None:
    exe = shutil.which("data-pipeline", path=str(Path(sys.executable).parent))
    assert exe is not None, "run `uv sync` so that the data-pipeline entry point exists"
    env = {"PATH": str(Path(exe).parent), "MLOPS_DATA_DIR": str(tmp_path / "state")}
    done = subprocess.run(
        [exe, "ingest", *INTERVAL],
        capture_output=True,
        text=True,
        env=env,
        check=False,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "ingest: 0 rows" in done.stdout  # an empty source: nothing delivered yet
    bad = subprocess.run(
        [exe, "ingest", "--start", "x", "--end", "y"],
        capture_output=True,
        text=True,
        env=env,
        check=False,
        timeout=120,
    )
    assert bad.returncode == 2 and "invalid time 'x'" in bad.stderr
