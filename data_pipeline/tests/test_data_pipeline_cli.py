"""The data-pipeline command: the steps read the configured source; exit codes."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from data_pipeline.cli import main
from example_project.world.config import ExampleSourceConfig
from mlops_testing.cli import exit_code, one_line_error, run_console_script, usage_error
from mlops_testing.data import isolated_settings, write_world

INTERVAL = ["--start", "2024-03-01T00:00Z", "--end", "2024-03-01T06:00Z"]


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No env file (not the repo's .env either) and a data directory of the test's own."""
    monkeypatch.setenv("MLOPS_ENV_FILE", str(tmp_path / "absent.env"))
    monkeypatch.setenv("MLOPS_DATA_DIR", str(tmp_path / "state"))


def test_ingest_reads_the_configured_source(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``MLOPS_SOURCE`` unset: the example source under the data directory."""
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


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "required"),
        (["ingest", "--start", "yesterday", "--end", "2024-03-02"], "invalid time 'yesterday'"),
        (["ingest", "--start", "2024-03-02", "--end", "2024-03-01"], "must be after"),
        (["validate", "--start", "2024-03-01T00:30Z", "--end", "2024-03-02"], "whole UTC hour"),
        (["ingest", "--end", "2024-03-02"], "--start"),
        # the example company's programs are example-project's, not the pipeline's
        (["generate", *INTERVAL], "invalid choice: 'generate'"),
        (["emit", "--hour", "2024-03-01T05:00Z"], "invalid choice: 'emit'"),
        (["dispatch"], "invalid choice: 'dispatch'"),
    ],
)
def test_bad_input_exits_2(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert message in usage_error(main, args, capsys), args


@pytest.mark.parametrize(
    ("variable", "value", "error"),
    [
        # a source name no installed package registers (entry point group mlops.sources)
        ("MLOPS_SOURCE", "acme", "SourceNotFound: MLOPS_SOURCE='acme': no installed source"),
        # the default source (example) in a database that does not answer
        ("MLOPS_DATABASE_URL", "postgresql://postgres@127.0.0.1:1", "OperationalError"),
    ],
)
def test_an_unusable_source_fails_the_step_with_one_line(
    variable: str,
    value: str,
    error: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv(variable, value)
    assert exit_code(main, ["ingest", *INTERVAL]) == 1
    assert one_line_error(capsys).startswith(f"data-pipeline ingest: failed: {error}")


def test_console_script_is_installed(tmp_path: Path) -> None:
    env = {
        "MLOPS_DATA_DIR": str(tmp_path / "state"),
        "MLOPS_ENV_FILE": str(tmp_path / "absent.env"),
    }
    done = run_console_script("data-pipeline", ["ingest", *INTERVAL], env)
    assert done.returncode == 0, done.stderr
    assert "ingest: 0 rows" in done.stdout  # an empty source: nothing delivered yet
    bad = run_console_script("data-pipeline", ["ingest", "--start", "x", "--end", "y"], env)
    assert bad.returncode == 2 and "invalid time 'x'" in bad.stderr
