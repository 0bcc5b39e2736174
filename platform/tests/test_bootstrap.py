"""The bootstrap plan (what `./run.sh all up` runs when there is no champion) and its pieces.

The whole bootstrap against a running platform is exercised by the end-to-end test
(tests/e2e, `make e2e`); here: the committed plan is valid and names real DAGs and params, the
window and conf rendering, and the registry check against a real MLflow server.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from mlops_common.airflow import ScheduledInterval
from mlops_platform.launcher.bootstrap import (
    BootstrapError,
    BootstrapPlan,
    BootstrapResult,
    alias_version,
    history_window,
    render_conf,
    stand_in,
)
from mlops_platform.launcher.paths import COMPONENT_DAG_FOLDERS, PLATFORM_DIR, REPO_ROOT
from mlops_platform.launcher.services import service_names
from mlops_platform.launcher.settings import LauncherSettings
from mlops_testing.stack import MlflowServer, start_mlflow


def _dag_params() -> dict[str, set[str]]:
    """dag_id -> its declared params, read from the DAG files' source (no Airflow import)."""
    found: dict[str, set[str]] = {}
    for folder in COMPONENT_DAG_FOLDERS:
        for path in (REPO_ROOT / folder / "dags").glob("*.py"):
            tree = ast.parse(path.read_text())
            for node in ast.walk(tree):
                if not (isinstance(node, ast.Call) and getattr(node.func, "id", "") == "dag"):
                    continue
                kwargs = {kw.arg: kw.value for kw in node.keywords}
                dag_id = kwargs.get("dag_id")
                params = kwargs.get("params")
                if isinstance(dag_id, ast.Constant):
                    dag_name = str(dag_id.value)
                elif isinstance(dag_id, ast.Name):  # DAG_ID = "..."
                    dag_name = next(
                        str(n.value.value)
                        for n in tree.body
                        if isinstance(n, ast.Assign)
                        and isinstance(n.value, ast.Constant)
                        and any(getattr(t, "id", "") == dag_id.id for t in n.targets)
                    )
                else:
                    continue
                keys = set()
                if isinstance(params, ast.Name):  # params=INTERVAL_PARAMS, a module-level dict
                    params = next(
                        (
                            n.value
                            for n in tree.body
                            if isinstance(n, ast.Assign)
                            and any(getattr(t, "id", "") == params.id for t in n.targets)
                        ),
                        None,
                    )
                if isinstance(params, ast.Dict):
                    keys = {str(k.value) for k in params.keys if isinstance(k, ast.Constant)}
                found[dag_name] = keys
    return found


def test_the_committed_plan_names_real_dags_and_their_params() -> None:
    plan = BootstrapPlan.load(PLATFORM_DIR / "bootstrap.yml")
    assert LauncherSettings(_env_file=None).bootstrap_plan == PLATFORM_DIR / "bootstrap.yml"
    dags = _dag_params()
    assert [run.dag for run in plan.runs] == [
        "example_source",
        "driver_features",
        "driver_ranking_training",
    ]
    for run in plan.runs:
        assert run.dag in dags, f"no DAG {run.dag} in any component's dags/ folder"
        assert set(run.conf) <= dags[run.dag], (run.dag, set(run.conf) - dags[run.dag])
    assert set(plan.unpause) <= set(dags)
    assert plan.needs and set(plan.needs) <= set(service_names())
    assert plan.model == "driver_ranking" and plan.alias == "champion"


def test_a_bad_plan_is_refused_with_the_file_named(tmp_path: Path) -> None:
    bad = tmp_path / "plan.yml"
    bad.write_text("model: m\nruns: []\n")
    with pytest.raises(BootstrapError, match=str(bad)):
        BootstrapPlan.load(bad)
    bad.write_text("model: m\nruns: [{dag: d, bogus: 1}]\n")
    with pytest.raises(BootstrapError, match="bogus"):
        BootstrapPlan.load(bad)
    with pytest.raises(BootstrapError, match="No such file"):
        BootstrapPlan.load(tmp_path / "missing.yml")


def test_history_window_ends_at_the_current_whole_hour() -> None:
    start, end = history_window(14, datetime(2026, 3, 9, 17, 42, 7, tzinfo=UTC))
    assert end == datetime(2026, 3, 9, 17, tzinfo=UTC)
    assert start == datetime(2026, 2, 23, 17, tzinfo=UTC)


def test_render_conf_fills_placeholders_at_any_depth() -> None:
    conf = {"start": "{start}", "nested": {"list": ["{end}", 3]}, "n": 1, "none": None}
    assert render_conf(conf, {"start": "S", "end": "E"}) == {
        "start": "S",
        "nested": {"list": ["E", 3]},
        "n": 1,
        "none": None,
    }
    with pytest.raises(KeyError):
        render_conf({"x": "{unknown}"}, {"start": "S"})


def test_a_run_stands_in_only_for_a_scheduled_interval_inside_the_window() -> None:
    start, end = datetime(2026, 3, 1, tzinfo=UTC), datetime(2026, 3, 15, tzinfo=UTC)

    def hour(at: datetime) -> ScheduledInterval:
        return ScheduledInterval(at, at, at + timedelta(hours=1))

    latest = hour(end - timedelta(hours=1))
    assert stand_in(latest, start, end) == latest
    assert stand_in(hour(start), start, end) == hour(start)
    assert stand_in(hour(end), start, end) is None  # the hour after the window is new data
    assert stand_in(hour(start - timedelta(hours=1)), start, end) is None
    assert stand_in(None, start, end) is None  # external triggers only


def test_the_next_scheduled_interval_is_read_from_the_dag_details() -> None:
    dag = {
        "next_dagrun_logical_date": "2026-03-14T23:00:00Z",
        "next_dagrun_data_interval_start": "2026-03-14T23:00:00Z",
        "next_dagrun_data_interval_end": "2026-03-15T00:00:00Z",
    }
    at = datetime(2026, 3, 14, 23, tzinfo=UTC)
    assert ScheduledInterval.next_of(dag) == ScheduledInterval(at, at, at + timedelta(hours=1))
    unscheduled = dict.fromkeys(dag)  # external triggers only: Airflow answers nulls
    assert ScheduledInterval.next_of(unscheduled) is None


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MlflowServer]:
    server = start_mlflow(tmp_path_factory.mktemp("mlflow"))
    yield server
    server.stop()


@pytest.mark.integration
def test_alias_version_reads_the_registry(mlflow_server: MlflowServer) -> None:
    client = MlflowClient(mlflow_server.url, registry_uri=mlflow_server.url)
    assert alias_version(mlflow_server.url, "bootstrap_test_model", "champion") is None
    client.create_registered_model("bootstrap_test_model")
    assert alias_version(mlflow_server.url, "bootstrap_test_model", "champion") is None
    experiment = client.create_experiment("bootstrap_test")
    run = client.create_run(experiment)
    version = client.create_model_version(
        "bootstrap_test_model", source=f"runs:/{run.info.run_id}/model", run_id=run.info.run_id
    )
    client.set_registered_model_alias("bootstrap_test_model", "champion", version.version)
    assert alias_version(mlflow_server.url, "bootstrap_test_model", "champion") == "1"
    with pytest.raises(BootstrapError, match="unreachable"):
        alias_version("http://127.0.0.1:9", "bootstrap_test_model", "champion", timeout=2)


def test_the_background_bootstrap_starts_once_the_services_it_needs_are_healthy(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import threading

    from mlops_platform.launcher import bootstrap as module

    plan = BootstrapPlan.load(PLATFORM_DIR / "bootstrap.yml")
    started = threading.Event()
    healthy: list[str] = []
    seen: list[str] = []
    background = module.BackgroundBootstrap(LauncherSettings(_env_file=None), plan)

    def fake(settings: LauncherSettings, plan: BootstrapPlan, **_: object) -> BootstrapResult:
        seen.extend(healthy)
        started.set()
        return BootstrapResult(True, "ran")

    monkeypatch.setattr(module, "bootstrap", fake)
    for name in service_names():
        healthy.append(name)
        background.service_healthy(name)
        if set(plan.needs) <= set(healthy):
            assert started.wait(10), "the bootstrap starts as soon as its needs are healthy"
            break
        assert not started.is_set()
    assert set(plan.needs) <= set(seen)
    assert "serving" not in seen  # started while serving (and what follows) was still starting
    assert background.finish() == BootstrapResult(True, "ran")


def test_the_background_bootstrap_raises_its_error_in_finish(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from mlops_platform.launcher import bootstrap as module

    def failing(settings: LauncherSettings, plan: BootstrapPlan, **_: object) -> BootstrapResult:
        raise BootstrapError("DAG example_source run r failed")

    monkeypatch.setattr(module, "bootstrap", failing)
    plan = BootstrapPlan.load(PLATFORM_DIR / "bootstrap.yml")
    background = module.BackgroundBootstrap(LauncherSettings(_env_file=None), plan)
    for name in plan.needs:
        background.service_healthy(name)
    with pytest.raises(BootstrapError, match="example_source"):
        background.finish()
    # a plan without needs runs when finish() is called, after every service
    lazy = module.BackgroundBootstrap(
        LauncherSettings(_env_file=None), plan.model_copy(update={"needs": []})
    )
    for name in service_names():
        lazy.service_healthy(name)
    with pytest.raises(BootstrapError, match="example_source"):
        lazy.finish()
