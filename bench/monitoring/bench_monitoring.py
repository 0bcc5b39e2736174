"""Monitoring service benchmark: Evidently time per window, and the service at steady state.

    .venv/bin/python bench/monitoring/bench_monitoring.py [--rate 50] [--duration 60]
        [--window 1000] [--repeats 3] [--json results.json]

1. **Evidently per window** (in this process): the service's own drift report
   (``monitoring_service.drift.drift_report``: DataDriftPreset over 5 features + the score's
   ValueDrift) and quality report, plus saving the HTML, for windows of 1,000 and 5,000 rows
   against a 5,000-row reference. Baseline in the same run: the same per-column statistic
   (normed Wasserstein distance) computed directly with scipy — the floor of the arithmetic.
2. **Steady state** (a real ``monitoring-service serve`` process on Redis and a real MLflow server
   it starts itself): first idle (no events) for a baseline, then ``--rate`` predictions per
   second (5 candidates each, a label for every prediction) for ``--duration`` seconds, windows
   of ``--window`` predictions. CPU (utime+stime from /proc) and RSS of the service process,
   sampled every second; the evaluation time of each window from the service's own histogram.

Needs Redis (``MLOPS_TEST_REDIS_URL``, default redis://127.0.0.1:6379/0; streams of its own,
deleted at the end). Stops every process it started (by pid).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
import warnings
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import redis

from mlops_common.events.serving import (
    FeedbackEvent,
    ModelRef,
    PredictionEvent,
    ScoredCandidate,
    encode,
)
from mlops_testing.frames import candidate_features, driver_statistics, write_reference
from mlops_testing.processes import stop_process_group
from mlops_testing.redis_server import free_port
from mlops_testing.stack import start_mlflow

REDIS_URL = os.environ.get("MLOPS_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
FEATURES = ["conv_rate", "acc_rate", "avg_daily_trips", "rating", "cancel_rate"]
TICK = os.sysconf("SC_CLK_TCK")


def rows(n: int, seed: int, shift: float = 0.0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(driver_statistics(rng, n))
    frame["conv_rate"] += shift
    logit = 3 * frame["conv_rate"] + frame["rating"] - 3 - 4 * frame["cancel_rate"]
    frame["score"] = 1 / (1 + np.exp(-logit))
    return frame


# --- 1. Evidently per window --------------------------------------------------------------------


def bench_evidently(repeats: int, tmp: Path) -> dict[str, Any]:
    from scipy.stats import wasserstein_distance

    from monitoring_service import drift

    started = time.perf_counter()
    drift.warm_up()
    import_s = time.perf_counter() - started
    reference = rows(5000, 1)
    rng = np.random.default_rng(2)
    labels = (rng.uniform(0, 1, 5000) < reference["score"]).astype(int)
    reference_q = pd.DataFrame({"score": reference["score"], "label": labels})
    cfg = drift.DriftConfig()
    out: dict[str, Any] = {"import_s": round(import_s, 2)}
    for n in (1000, 5000):
        current = rows(n, 3, shift=0.1)
        labelled = pd.DataFrame(
            {
                "score": current["score"],
                "label": (rng.uniform(0, 1, n) < current["score"]).astype(int),
            }
        )
        timings: dict[str, list[float]] = {"drift": [], "quality": [], "html": [], "floor": []}
        for i in range(repeats):
            t = time.perf_counter()
            _, snapshot = drift.drift_report(current, reference, FEATURES, cfg)
            timings["drift"].append(time.perf_counter() - t)
            t = time.perf_counter()
            drift.save_html(snapshot, tmp / f"{n}-{i}.html.gz")
            timings["html"].append(time.perf_counter() - t)
            t = time.perf_counter()
            drift.quality_report(labelled, reference_q, cfg)
            timings["quality"].append(time.perf_counter() - t)
            t = time.perf_counter()
            for column in [*FEATURES, "score"]:
                ref, cur = reference[column].to_numpy(float), current[column].to_numpy(float)
                wasserstein_distance(ref, cur) / max(np.std(ref), 1e-9)
            timings["floor"].append(time.perf_counter() - t)
        medians = {k: statistics.median(v) for k, v in timings.items()}
        total = medians["drift"] + medians["html"] + medians["quality"]
        out[f"rows_{n}"] = {
            **{f"{k}_s": round(v, 4) for k, v in medians.items()},
            "window_total_s": round(total, 3),
            "drift_vs_floor": round(medians["drift"] / medians["floor"], 1),
        }
    return out


# --- 2. steady state ------------------------------------------------------------------------------


def wait_http(url: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(0.3)
    raise RuntimeError(f"{url} did not answer")


def register(url: str, name: str, folder: Path) -> None:
    import mlflow
    import mlflow.sklearn
    from mlflow.tracking import MlflowClient
    from sklearn.linear_model import LogisticRegression

    mlflow.set_tracking_uri(url)
    mlflow.set_experiment(name)
    reference = rows(5000, 1)
    reference["trip_completed"] = np.random.default_rng(4).uniform(0, 1, 5000) < reference["score"]
    ref_dir = write_reference(folder / "reference", reference, FEATURES)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with mlflow.start_run():
            mlflow.log_artifacts(str(ref_dir), artifact_path="reference")
            mlflow.set_tag("monitoring.reference_path", "reference/reference.parquet")
            model = LogisticRegression().fit(reference[FEATURES], reference["trip_completed"])
            info = mlflow.sklearn.log_model(
                model,
                name="model",
                pip_requirements=["scikit-learn"],
                serialization_format=mlflow.sklearn.SERIALIZATION_FORMAT_CLOUDPICKLE,
            )
    version = mlflow.register_model(info.model_uri, name)
    MlflowClient(url).set_registered_model_alias(name, "champion", version.version)


def proc_sample(pid: int) -> tuple[float, int]:
    """(CPU seconds so far, RSS bytes) of a process."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / TICK
    rss = 0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            rss = int(line.split()[1]) * 1024
    return cpu, rss


def measure(pid: int, seconds: float) -> dict[str, float]:
    cpu0, _ = proc_sample(pid)
    t0 = time.monotonic()
    samples: list[int] = []
    while time.monotonic() - t0 < seconds:
        time.sleep(1.0)
        samples.append(proc_sample(pid)[1])
    cpu1, _ = proc_sample(pid)
    return {
        "cpu_percent": round(100 * (cpu1 - cpu0) / (time.monotonic() - t0), 1),
        "rss_mib_median": round(statistics.median(samples) / 2**20, 1),
        "rss_mib_max": round(max(samples) / 2**20, 1),
    }


def events(n: int, start: datetime, model: str, seed: int) -> list[tuple[str, dict[str, str]]]:
    frame = rows(n * 5, seed)
    out: list[tuple[str, dict[str, str]]] = []
    rng = np.random.default_rng(seed)
    for i in range(n):
        chunk = frame.iloc[i * 5 : (i + 1) * 5].sort_values("score", ascending=False)
        when = start + timedelta(milliseconds=i)
        event = PredictionEvent(
            request_id=uuid.uuid4().hex,
            time=when,
            model=ModelRef(name=model, version="1", alias="champion"),
            candidates=[
                ScoredCandidate(
                    driver_id=j + 1,
                    score=float(r.score),
                    features=candidate_features(r),
                )
                for j, r in enumerate(chunk.itertuples())
            ],
            best_driver_id=1,
        )
        label = FeedbackEvent(
            request_id=event.request_id,
            time=when + timedelta(seconds=1),
            driver_id=1,
            trip_completed=bool(rng.uniform() < chunk.iloc[0].score),
        )
        out.append(("p", encode(event)))
        out.append(("f", encode(label)))
    return out


def metric(text: str, name: str) -> float:
    from prometheus_client.parser import text_string_to_metric_families

    total = 0.0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name:
                total += sample.value
    return total


def bench_service(rate: int, duration: float, window: int, tmp: Path) -> dict[str, Any]:
    client = redis.Redis.from_url(REDIS_URL)
    prefix = f"bench_mon_{uuid.uuid4().hex[:8]}"
    streams = {"p": f"{prefix}:predictions", "f": f"{prefix}:feedback"}
    mlflow = start_mlflow(tmp / "mlflow")
    mlflow_url = mlflow.url
    service: subprocess.Popen[bytes] | None = None
    try:
        model = f"bench_{uuid.uuid4().hex[:6]}"
        register(mlflow_url, model, tmp)
        port = free_port()
        env = service_env(tmp, port, prefix, streams, model, mlflow_url, window)
        started = time.monotonic()
        command = [str(Path(sys.executable).parent / "monitoring-service"), "serve"]
        quiet = subprocess.DEVNULL
        service = subprocess.Popen(
            command, env=env, stdout=quiet, stderr=quiet, start_new_session=True
        )
        url = f"http://127.0.0.1:{port}"
        wait_http(f"{url}/health/live", 60)
        live_s = time.monotonic() - started
        wait_ready(url, 90)
        ready_s = time.monotonic() - started
        idle = measure(service.pid, 10)
        load = drive_load(client, streams, service.pid, model, rate, duration)
        time.sleep(8)
        return {
            "live_after_s": round(live_s, 1),
            "ready_after_s": round(ready_s, 1),
            "idle": idle,
            "load": load,
            **evaluation_numbers(url),
            "window_predictions": window,
        }
    finally:
        if service is not None:
            stop_process_group(service, 30)
        mlflow.stop()
        keys = list(client.scan_iter(match=f"{prefix}*"))
        if keys:
            client.delete(*keys)
        client.close()


def service_env(
    tmp: Path,
    port: int,
    prefix: str,
    streams: dict[str, str],
    model: str,
    mlflow_url: str,
    window: int,
) -> dict[str, str]:
    """The service's environment: this process' without the platform's settings, plus the
    bench's own streams, model, data folder and window size."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("MLOPS_", "MONITORING_", "SERVING_", "MLFLOW_"))
    }
    env.update(
        {
            "MLOPS_ENV_FILE": str(tmp / "none.env"),
            "MLOPS_DATA_DIR": str(tmp / "data"),
            "MONITORING_PORT": str(port),
            "MONITORING_WEBHOOK_SECRET": "bench-secret",
            "MONITORING_EVENTS_REDIS_URL": REDIS_URL,
            "MONITORING_PREDICTION_STREAM": streams["p"],
            "MONITORING_FEEDBACK_STREAM": streams["f"],
            "MONITORING_DEAD_LETTER_STREAM": f"{prefix}:dead",
            "MONITORING_MODEL_NAME": model,
            "MLFLOW_TRACKING_URI": mlflow_url,
            "MONITORING_WINDOW_SIZE": str(window),
            "MONITORING_LABEL_GRACE_S": "2",
            "MONITORING_LOG_LEVEL": "WARNING",
            "SPT_NOENV": "1",
        }
    )
    return env


def wait_ready(url: str, timeout: float) -> None:
    """Until ``/health/ready`` answers 200 or the timeout passes (the bench goes on anyway)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{url}/health/ready", timeout=5):
                return
        except OSError:
            time.sleep(0.5)


def drive_load(
    client: redis.Redis, streams: dict[str, str], pid: int, model: str, rate: int, duration: float
) -> dict[str, float]:
    """``rate`` predictions (and as many labels) per second for ``duration`` seconds, in 10
    batches a second; the service's CPU and RSS meanwhile."""
    total = int(rate * duration)
    batch = max(1, rate // 10)
    t0 = time.monotonic()
    sent = 0
    cpu0, _ = proc_sample(pid)
    rss: list[int] = []
    next_sample = t0 + 1
    while sent < total:
        chunk = events(min(batch, total - sent), datetime.now(UTC), model, sent)
        with client.pipeline(transaction=False) as pipe:
            for kind, fields in chunk:
                pipe.xadd(streams[kind], fields)  # type: ignore[arg-type]
            pipe.execute()
        sent += len(chunk) // 2
        target = t0 + sent / rate
        while time.monotonic() < target:
            if time.monotonic() >= next_sample:
                rss.append(proc_sample(pid)[1])
                next_sample += 1
            time.sleep(min(0.02, max(0.0, target - time.monotonic())))
    elapsed = time.monotonic() - t0
    cpu1, _ = proc_sample(pid)
    return {
        "cpu_percent": round(100 * (cpu1 - cpu0) / elapsed, 1),
        "rss_mib_median": round(statistics.median(rss) / 2**20, 1) if rss else 0.0,
        "rss_mib_max": round(max(rss) / 2**20, 1) if rss else 0.0,
        "predictions_per_s": round(sent / elapsed, 1),
    }


def evaluation_numbers(url: str) -> dict[str, Any]:
    """Events consumed and Evidently seconds per window evaluation, from the service's
    ``/metrics``."""
    with urllib.request.urlopen(f"{url}/metrics", timeout=10) as answer:
        text = answer.read().decode()
    evaluations = metric(text, "monitoring_window_evaluation_seconds_count")
    seconds = metric(text, "monitoring_window_evaluation_seconds_sum")
    return {
        "events_consumed": int(metric(text, "monitoring_events_consumed_total")),
        "evaluations": int(evaluations),
        "evidently_s_per_evaluation": round(seconds / evaluations, 3) if evaluations else None,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--rate", type=int, default=50, help="predictions per second")
    parser.add_argument("--duration", type=float, default=60.0)
    parser.add_argument("--window", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", default=None)
    parser.add_argument("--skip-service", action="store_true")
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    with tempfile.TemporaryDirectory(prefix="bench-monitoring-") as folder:
        tmp = Path(folder)
        results: dict[str, Any] = {"evidently": bench_evidently(args.repeats, tmp)}
        print(json.dumps(results["evidently"], indent=2), flush=True)
        if not args.skip_service:
            service_tmp = tmp / "service"
            service_tmp.mkdir()
            results["service"] = bench_service(args.rate, args.duration, args.window, service_tmp)
            print(json.dumps(results["service"], indent=2), flush=True)
            idle, load = results["service"]["idle"], results["service"]["load"]
            print(
                f"\nCPU under load / idle: {load['cpu_percent']} % / {idle['cpu_percent']} %;"
                f" RSS under load / idle: {load['rss_mib_median']} / {idle['rss_mib_median']}"
                " MiB"
            )
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
