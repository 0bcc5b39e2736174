"""The closed loop, end to end, on the local runtime (`make e2e`; about 12 minutes here).

From nothing: `./run.sh all up` on an empty data folder bootstraps the example project (history,
the data DAG, the training DAG, serving on the first champion, the stream, monitoring and the
example traffic). Then the world changes: the example company's trips start to follow the
`concept_drift` relationship (the generator's last three days are rewritten that way through the
`example_source` DAG, and the stream and the dispatcher switch scenario). With no manual step
after that, the test waits for the loop to close:

    labels worsen → monitoring's ROC AUC falls → ModelQualityDegraded fires in Alertmanager →
    the webhook reaches the retraining trigger → the training DAG runs with the alert in its
    conf (recent window) → the gate promotes a new champion → serving answers with it

and checks along the way: not one prediction request failed during the whole run (the
dispatcher's and serving's own counts), the new champion really is better than the old one on
fresh post-drift data the pipeline never saw, every Grafana panel query returns data from the
stack's Prometheus, and `down` leaves no process behind. The numbers it measures are printed and
written to `<tmp>/closed_loop.json`.
"""

from __future__ import annotations

import json
import math
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from mlops_common.airflow import AirflowClient, ScheduledInterval
from mlops_platform.launcher.bootstrap import alias_version
from mlops_platform.launcher.envfile import ensure_env_file
from mlops_platform.launcher.paths import REPO_ROOT
from mlops_platform.observability.dashboards import DASHBOARD_DIR, queries
from mlops_testing.stack import Stack, get_json

# slow: not in `make test`; its own timeout (the suite's default is 15 minutes)
pytestmark = [pytest.mark.slow, pytest.mark.timeout(2400)]

MODEL = "driver_ranking"
DRIFT_DAYS = 3
# What makes the loop fast enough to watch: more traffic, short windows, short label waits.
OVERRIDES = {
    "MLOPS_BOOTSTRAP": "auto",
    "MLOPS_DISPATCH_RATE": "15",
    "MLOPS_DISPATCH_LABEL_DELAY_MIN_S": "1",
    "MLOPS_DISPATCH_LABEL_DELAY_MAX_S": "8",
    "MONITORING_WINDOW_SIZE": "600",
    "MONITORING_WINDOW_SECONDS": "30",
    "MONITORING_LABEL_GRACE_S": "12",
    "MONITORING_POLL_INTERVAL_S": "5",
    "MONITORING_TRIGGER_WINDOW_DAYS": str(DRIFT_DAYS),
    "SERVING_POLL_INTERVAL_S": "5",
}


def log(message: str) -> None:
    print(f"[e2e {time.strftime('%H:%M:%S')}] {message}", flush=True)


def wait(what: str, check: Any, timeout: float, interval: float = 5.0) -> Any:
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while True:
        try:
            result = check()
        except (OSError, urllib.error.URLError, KeyError, ValueError) as exc:
            result, last = None, exc
        if result:
            return result
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f} s waiting for {what} (last error: {last})")
        time.sleep(interval)


def set_env(path: Path, values: dict[str, str]) -> None:
    """Set keys in an env file (replacing their lines, appending the new ones)."""
    lines = path.read_text().splitlines()
    seen: set[str] = set()
    for i, line in enumerate(lines):
        key = line.split("=", 1)[0]
        if key in values:
            lines[i] = f"{key}={values[key]}"
            seen.add(key)
    lines += [f"{k}={v}" for k, v in values.items() if k not in seen]
    path.write_text("\n".join(lines) + "\n")


def metric(url: str, name: str, **labels: str) -> float:
    """Sum of the samples of `name` (with those labels) on a /metrics page."""
    text = urllib.request.urlopen(url, timeout=10).read().decode()
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        head, _, value = line.rpartition(" ")
        if all(f'{k}="{v}"' in head for k, v in labels.items()):
            total += float(value)
    return total


def prom_query(stack: Stack, expr: str) -> list[dict[str, Any]]:
    url = f"{stack.url('PROMETHEUS_PORT')}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    answer = get_json(url)
    assert answer["status"] == "success", answer
    result: list[dict[str, Any]] = answer["data"]["result"]
    return result


def firing(stack: Stack, alertname: str) -> list[dict[str, Any]]:
    alerts = get_json(f"{stack.url('ALERTMANAGER_PORT')}/api/v2/alerts?active=true")
    return [a for a in alerts if a["labels"].get("alertname") == alertname]


def assert_no_hour_ran_twice(airflow: AirflowClient) -> None:
    """The bootstrap's run of each hourly DAG took its latest scheduled hour's place.

    No scheduled run repeated an hour of the bootstrap's window, and the scheduler's next
    interval starts at or after the window's end (it did not get stuck on the stood-in hour).
    """
    headers = {"Authorization": f"Bearer {airflow.token()}"}
    for dag_id in ("example_source", "driver_features"):
        runs = get_json(f"{airflow.base_url}/api/v2/dags/{dag_id}/dagRuns?limit=50", headers)[
            "dag_runs"
        ]
        manual = [run for run in runs if run["run_type"] == "manual"]
        assert len(manual) == 1, runs
        window_end = datetime.fromisoformat(manual[0]["conf"]["end"])
        repeated = [
            run["dag_run_id"]
            for run in runs
            if run["run_type"] == "scheduled"
            and datetime.fromisoformat(run["data_interval_end"]) <= window_end
        ]
        assert not repeated, f"{dag_id}: scheduled runs repeated the bootstrap's hours: {repeated}"
        scheduled = ScheduledInterval.next_of(airflow.wait_for_dag(dag_id))
        assert scheduled is not None and scheduled.start >= window_end, (dag_id, scheduled)


def quality_windows(monitoring: str, version: str) -> list[dict[str, Any]]:
    """The monitoring service's recent windows of `version` that have quality metrics."""
    windows = get_json(f"{monitoring}/v1/windows?limit=50")["windows"]
    return [w for w in windows if w.get("quality") and w["model_version"] == version]


class Predictor:
    def __init__(self, stack: Stack) -> None:
        self.url = f"{stack.url('SERVING_PORT')}/v1/predict"
        self.key = stack.env_value("SERVING_API_KEY")

    def version(self) -> str:
        request = urllib.request.Request(
            self.url,
            data=json.dumps({"driver_ids": [1001, 1002, 1003, 1004, 1005]}).encode(),
            headers={"Content-Type": "application/json", "X-API-Key": self.key},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            return str(json.load(response)["model"]["version"])


def evaluate_versions(tracking: str, drift_start: datetime, versions: list[str]) -> dict[str, Any]:
    """ROC AUC and top-1 accuracy of each version on post-drift hours after the training data
    (the world ahead of now: no pipeline has seen it)."""
    import mlflow
    import pandas as pd

    from data_pipeline.feature_store import FEATURE_NAMES
    from example_project.world.config import ExampleSourceConfig
    from example_project.world.generator import generate
    from mlops_common.metrics import roc_auc, top1_accuracy

    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    world = generate(
        ExampleSourceConfig(
            start=now + timedelta(hours=1),
            end=now + timedelta(hours=25),
            scenario="concept_drift",
            drift_start=drift_start,
            bookings_per_hour=60,
        )
    )
    stats = world.driver_hourly_stats
    candidates = world.booking_candidates.assign(
        hour=world.booking_candidates["event_timestamp"].dt.floor("h")
    ).merge(stats.rename(columns={"event_timestamp": "hour"}), on=["driver_id", "hour"])
    features = list(FEATURE_NAMES)
    mlflow.set_tracking_uri(tracking)
    result: dict[str, Any] = {"rows": len(candidates)}
    for version in versions:
        model = mlflow.sklearn.load_model(f"models:/{MODEL}/{version}")
        scores = model.predict_proba(candidates[features])[:, 1]
        result[version] = {
            "roc_auc": roc_auc(candidates["completed_if_assigned"].to_numpy(), scores),
            "top1_accuracy": top1_accuracy(candidates, pd.Series(scores, index=candidates.index)),
        }
    return result


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    root = tmp_path_factory.mktemp("closed_loop")
    instance = Stack(root, extra_env={"MLOPS_BOOTSTRAP": "auto"})
    ensure_env_file(REPO_ROOT / ".env.example", instance.env_file)
    set_env(instance.env_file, OVERRIDES)
    try:
        yield instance
    finally:
        instance.down()


def test_the_loop_closes_with_no_failed_prediction(stack: Stack) -> None:
    numbers: dict[str, Any] = {}
    began = time.monotonic()
    up = stack.run("all", "up", timeout=1200)
    assert up.returncode == 0, up.stdout[-4000:] + up.stderr[-4000:]
    numbers["first_up_with_bootstrap_s"] = round(time.monotonic() - began, 1)
    assert "bootstrap: done" in up.stdout, up.stdout[-3000:]
    log(f"platform up and bootstrapped in {numbers['first_up_with_bootstrap_s']} s")

    tracking = stack.url("MLFLOW_PORT")
    predictor = Predictor(stack)
    assert alias_version(tracking, MODEL, "champion") == "1"
    assert predictor.version() == "1"
    airflow = AirflowClient(
        stack.url("AIRFLOW_PORT"),
        stack.env_value("AIRFLOW_ADMIN_USER"),
        stack.env_value("AIRFLOW_ADMIN_PASSWORD"),
    )
    assert_no_hour_ran_twice(airflow)
    dispatch = f"{stack.url('DISPATCH_METRICS_PORT')}/metrics"
    serving = f"{stack.url('SERVING_PORT')}/metrics"
    monitoring = stack.url("MONITORING_PORT")

    # a few quality windows of the first champion on the normal world
    wait(
        "two quality-evaluated windows of version 1",
        lambda: len(quality_windows(monitoring, "1")) >= 2,
        timeout=420,
    )
    assert not firing(stack, "ModelQualityDegraded"), "the healthy champion must not alert"
    normal_auc = prom_query(stack, 'monitoring_quality_roc_auc{model_version="1"}')
    numbers["roc_auc_v1_before_switch"] = float(normal_auc[0]["value"][1])
    log(f"version 1 on the normal world: ROC AUC {numbers['roc_auc_v1_before_switch']:.3f}")

    # ---- the world changes ---------------------------------------------------------------
    now_hour = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    drift_start = now_hour - timedelta(days=DRIFT_DAYS)
    failed_before_switch = metric(dispatch, "dispatch_failed_requests_total")
    bookings_before_switch = metric(dispatch, "dispatch_bookings_total")
    switched = time.monotonic()
    set_env(
        stack.env_file,
        {
            "MLOPS_EXAMPLE_SCENARIO": "concept_drift",
            "MLOPS_EXAMPLE_DRIFT_START": drift_start.isoformat().replace("+00:00", "Z"),
        },
    )
    rewrite = airflow.run_to_end(
        "example_source",
        {"start": drift_start.isoformat(), "end": now_hour.isoformat()},
        timeout=300,
    )
    assert rewrite.state == "success", rewrite
    for service in ("stream", "traffic"):
        restarted = stack.run(service, "restart", timeout=300)
        assert restarted.returncode == 0, restarted.stdout[-2000:] + restarted.stderr[-2000:]
    log(f"switched to concept_drift (drift start {drift_start:%Y-%m-%d %H:%M}Z)")

    alert = wait(
        "ModelQualityDegraded firing in Alertmanager",
        lambda: firing(stack, "ModelQualityDegraded"),
        timeout=900,
        interval=5,
    )
    numbers["switch_to_alert_s"] = round(time.monotonic() - switched, 1)
    assert alert[0]["labels"]["model_version"] == "1"
    assert "retrain" in {r["name"] for r in alert[0]["receivers"]}
    log(f"alert firing {numbers['switch_to_alert_s']} s after the switch")

    decision = wait(
        "a triggered retraining decision",
        lambda: [
            d
            for d in get_json(f"{monitoring}/v1/retraining/decisions")["decisions"]
            if d["decision"] == "triggered"
        ],
        timeout=180,
    )[0]
    numbers["switch_to_trigger_s"] = round(time.monotonic() - switched, 1)
    run_id = decision["dag_run_id"]
    conf = get_json(
        f"{airflow.base_url}/api/v2/dags/driver_ranking_training/dagRuns/"
        f"{urllib.parse.quote(run_id, safe='')}",
        headers={"Authorization": f"Bearer {airflow.token()}"},
    )["conf"]
    assert conf["alert"]["labels"]["alertname"] == "ModelQualityDegraded"
    assert conf["window_days"] == DRIFT_DAYS

    wait(
        "the training run to finish",
        lambda: airflow.run_state("driver_ranking_training", run_id) in ("success", "failed"),
        timeout=900,
    )
    tasks = airflow.task_states("driver_ranking_training", run_id)
    assert airflow.run_state("driver_ranking_training", run_id) == "success", tasks
    assert alias_version(tracking, MODEL, "champion") == "2"
    wait(
        "serving to answer with version 2",
        lambda: predictor.version() == "2",
        timeout=120,
        interval=1,
    )
    numbers["switch_to_new_champion_serving_s"] = round(time.monotonic() - switched, 1)
    log(f"version 2 serving {numbers['switch_to_new_champion_serving_s']} s after the switch")

    # ---- zero failed predictions over the whole run --------------------------------------
    time.sleep(15)  # the new version answers the dispatcher too
    failed_after = metric(dispatch, "dispatch_failed_requests_total")
    assert failed_before_switch == 0 and failed_after == 0, (failed_before_switch, failed_after)
    bookings_after = metric(dispatch, "dispatch_bookings_total")
    numbers["bookings"] = bookings_before_switch + bookings_after
    assert metric(serving, "serving_requests_total", route="/v1/predict", status="500") == 0
    server_errors = [
        line
        for line in urllib.request.urlopen(serving, timeout=10).read().decode().splitlines()
        if line.startswith("serving_requests_total{")
        and 'route="/v1/predict"' in line
        and 'status="5' in line
        and not line.endswith(" 0.0")
    ]
    assert not server_errors, server_errors
    versions_answered = {
        s["metric"]["model_version"]
        for s in prom_query(stack, "sum by (model_version) (serving_predictions_total) > 0")
    }
    assert {"1", "2"} <= versions_answered

    # ---- the retrained model really is better on the new world ---------------------------
    # scored on unseen post-drift data while the monitoring service fills version 2's first window
    with ThreadPoolExecutor(max_workers=1) as pool:
        evaluation = pool.submit(evaluate_versions, tracking, drift_start, ["1", "2"])

        # ---- the new champion is watched, and healthy ------------------------------------------
        v2_windows = wait(
            "two quality-evaluated windows of version 2",
            lambda: found if len(found := quality_windows(monitoring, "2")) >= 2 else None,
            timeout=420,
        )
        scored = evaluation.result(timeout=600)
    numbers["post_drift_eval"] = scored
    log(f"post-drift evaluation: {scored}")
    assert scored["2"]["roc_auc"] > scored["1"]["roc_auc"] + 0.03
    assert scored["2"]["top1_accuracy"] > scored["1"]["top1_accuracy"]

    # the new champion's own windows (mean of its first two, to damp one window's noise)
    aucs = [float(w["quality"]["roc_auc"]) for w in v2_windows]
    numbers["roc_auc_v2_after_switch"] = round(sum(aucs) / len(aucs), 4)
    assert numbers["roc_auc_v2_after_switch"] > 0.74, (aucs, numbers)
    time.sleep(30)  # recording rules and rate() windows over the new version's series
    assert prom_query(stack, 'monitoring_quality_roc_auc{model_version="2"}')
    assert not [
        a for a in firing(stack, "ModelQualityDegraded") if a["labels"]["model_version"] == "2"
    ]

    # ---- every dashboard panel has data ------------------------------------------------------
    empty = []
    for path in sorted(DASHBOARD_DIR.glob("*.json")):
        for title, expr in queries(json.loads(path.read_text())):
            if not prom_query(stack, expr):
                empty.append(f"{path.stem} / {title}: {expr}")
    assert not empty, "panels without data:\n" + "\n".join(empty)

    # ---- numbers for the closing note --------------------------------------------------------
    cpu = prom_query(
        stack, 'max_over_time(rate(process_cpu_seconds_total{job="monitoring"}[5m])[10m:1m])'
    )
    rss = prom_query(stack, 'max_over_time(process_resident_memory_bytes{job="monitoring"}[10m])')
    assert cpu and rss, "the monitoring service exports its process metrics"
    evidently = prom_query(
        stack,
        "sum by (stage) (monitoring_window_evaluation_seconds_sum) / "
        "sum by (stage) (monitoring_window_evaluation_seconds_count)",
    )
    numbers["monitoring_cpu_cores"] = float(cpu[0]["value"][1]) if cpu else math.nan
    numbers["monitoring_rss_mib"] = float(rss[0]["value"][1]) / 2**20 if rss else math.nan
    numbers["evidently_seconds_per_window"] = {
        s["metric"]["stage"]: round(float(s["value"][1]), 3) for s in evidently
    }
    numbers["windows"] = len(get_json(f"{monitoring}/v1/windows?limit=500")["windows"])
    (stack.root / "closed_loop.json").write_text(json.dumps(numbers, indent=2))
    log("numbers: " + json.dumps(numbers))

    stack.down()
    assert stack.pids() == [], "processes left behind by down"
