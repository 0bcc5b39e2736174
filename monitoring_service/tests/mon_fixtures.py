"""Test helpers of the monitoring suite: serving's events (built with
``mlops_common.events.serving``, the one schema), stream names of their own on the real Redis,
a real MLflow server on a free port, a model registered with a reference artifact the way the
training pipeline logs it, the service as a real process.

Everything a test creates has a unique name (streams, registered models) and is deleted after
it; nothing else on the Redis or in MLflow is touched.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
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
from monitoring_service.settings import MonitoringSettings

SettingsFactory = Callable[..., MonitoringSettings]

REDIS_URL = os.environ.get("MLOPS_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
FEATURES = ("conv_rate", "acc_rate", "avg_daily_trips", "rating", "cancel_rate")
WEBHOOK_SECRET = "test-webhook-secret-0123456789abcdef"


def unique(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:10]}"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


# --- data ---------------------------------------------------------------------------------------


def feature_rows(n: int, seed: int = 0, shift: dict[str, float] | None = None) -> pd.DataFrame:
    """Driver statistics like the example source's (``shift`` adds to a feature's values)."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "conv_rate": rng.uniform(0, 1, n),
            "acc_rate": rng.uniform(0, 1, n),
            "avg_daily_trips": rng.integers(0, 60, n).astype(np.int64),
            "rating": rng.uniform(1, 5, n),
            "cancel_rate": rng.uniform(0, 0.3, n),
        }
    )
    for name, delta in (shift or {}).items():
        frame[name] = frame[name] + (int(delta) if name == "avg_daily_trips" else delta)
    return frame


def true_probability(frame: pd.DataFrame) -> np.ndarray:
    logit = 3 * frame["conv_rate"] + frame["rating"] - 3 - 4 * frame["cancel_rate"]
    return np.asarray(1 / (1 + np.exp(-logit)), dtype=float)


def score(frame: pd.DataFrame) -> np.ndarray:
    """The 'model': a fixed function of the features (what serving would return)."""
    return np.clip(true_probability(frame), 0.0, 1.0)


def reference_frame(n: int = 2000, seed: int = 1) -> pd.DataFrame:
    """A reference as the training pipeline logs it: features, ``score``, the label."""
    frame = feature_rows(n, seed)
    frame["score"] = score(frame)
    rng = np.random.default_rng(seed + 100)
    frame["trip_completed"] = rng.uniform(0, 1, n) < true_probability(frame)
    return frame


# --- events -------------------------------------------------------------------------------------


@dataclass
class Traffic:
    """Generates prediction events (5 candidates each) and the matching feedback."""

    model_name: str = "driver_ranking"
    version: str = "1"
    seed: int = 0
    candidates: int = 5
    shift: dict[str, float] = field(default_factory=dict)
    start: datetime = field(default_factory=lambda: datetime.now(UTC))
    spacing_s: float = 0.01
    alias: str = "champion"
    count: int = 0

    def predictions(self, n: int) -> list[tuple[PredictionEvent, pd.DataFrame]]:
        rows = feature_rows(n * self.candidates, self.seed + self.count, self.shift)
        scores = score(rows)
        out = []
        for i in range(n):
            chunk = rows.iloc[i * self.candidates : (i + 1) * self.candidates].copy()
            chunk["score"] = scores[i * self.candidates : (i + 1) * self.candidates]
            chunk["driver_id"] = np.arange(1, self.candidates + 1) + 1000 * (self.count % 50)
            chunk = chunk.sort_values("score", ascending=False)
            when = self.start + timedelta(seconds=self.spacing_s * self.count)
            event = PredictionEvent(
                request_id=f"req-{self.seed}-{self.count}-{uuid.uuid4().hex[:6]}",
                time=when,
                model=ModelRef(name=self.model_name, version=self.version, alias=self.alias),  # type: ignore[arg-type]
                candidates=[
                    ScoredCandidate(
                        driver_id=int(r.driver_id),
                        score=float(r.score),
                        features={
                            "conv_rate": float(r.conv_rate),
                            "acc_rate": float(r.acc_rate),
                            "avg_daily_trips": int(r.avg_daily_trips),
                            "rating": float(r.rating),
                            "cancel_rate": float(r.cancel_rate),
                        },
                    )
                    for r in chunk.itertuples()
                ],
                best_driver_id=int(chunk.iloc[0].driver_id),
            )
            out.append((event, chunk))
            self.count += 1
        return out

    @staticmethod
    def feedback(
        event: PredictionEvent, completed: bool, delay_s: float = 30.0, driver: int | None = None
    ) -> FeedbackEvent:
        return FeedbackEvent(
            request_id=event.request_id,
            time=event.time + timedelta(seconds=delay_s),
            driver_id=driver if driver is not None else event.best_driver_id,
            trip_completed=completed,
            model=event.model,
        )


def outcome(event: PredictionEvent, seed: int) -> bool:
    """A label drawn from the chosen driver's true probability."""
    best = next(c for c in event.candidates if c.driver_id == event.best_driver_id)
    frame = pd.DataFrame([best.features])
    rng = np.random.default_rng(seed)
    return bool(rng.uniform() < true_probability(frame)[0])


@dataclass
class Streams:
    """Stream names of a test's own on the real Redis; deleted afterwards."""

    client: redis.Redis
    prefix: str = field(default_factory=lambda: unique("mon_test"))

    @property
    def predictions(self) -> str:
        return f"{self.prefix}:predictions"

    @property
    def feedback(self) -> str:
        return f"{self.prefix}:feedback"

    @property
    def dead(self) -> str:
        return f"{self.prefix}:dead"

    def settings_values(self) -> dict[str, Any]:
        return {
            "monitoring_events_redis_url": REDIS_URL,
            "monitoring_prediction_stream": self.predictions,
            "monitoring_feedback_stream": self.feedback,
            "monitoring_dead_letter_stream": self.dead,
        }

    def env(self) -> dict[str, str]:
        return {k.upper(): str(v) for k, v in self.settings_values().items()}

    def add(self, events: Iterable[PredictionEvent | FeedbackEvent]) -> list[str]:
        ids: list[str] = []
        with self.client.pipeline(transaction=False) as pipe:
            for event in events:
                stream = self.predictions if event.type == "prediction" else self.feedback
                pipe.xadd(stream, encode(event))  # type: ignore[arg-type]
            for sid in pipe.execute():
                ids.append(sid.decode() if isinstance(sid, bytes) else str(sid))
        return ids

    def add_raw(self, stream: str, fields: dict[str, str]) -> str:
        sid = self.client.xadd(stream, fields)  # type: ignore[arg-type]
        return sid.decode() if isinstance(sid, bytes) else str(sid)

    def cleanup(self) -> None:
        keys = list(self.client.scan_iter(match=f"{self.prefix}*", count=1000))
        if keys:
            self.client.delete(*keys)


# --- MLflow (the server: mlops_testing.stack.start_mlflow) -----------------------------------


def register_with_reference(
    tracking_uri: str,
    name: str,
    reference: pd.DataFrame | None,
    *,
    alias: str | None = "champion",
    folder: Path,
) -> str:
    """Register a model version whose run carries a reference laid out as the training
    pipeline logs it (``reference/reference.parquet`` + ``reference.json``, tag
    ``monitoring.reference_path`` on the run and the version); ``reference=None`` registers one
    without. Only ``MlflowClient`` calls with explicit URIs: MLflow's fluent API would set
    process-wide tracking and registry URIs that other suites in the same pytest process would
    then inherit. The monitoring service never loads the model: a placeholder artifact is the
    version's source."""
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    experiment = client.get_experiment_by_name(f"{name}-tests")
    experiment_id = (
        experiment.experiment_id if experiment else client.create_experiment(f"{name}-tests")
    )
    run = client.create_run(experiment_id)
    run_id = run.info.run_id
    out = folder / unique("run")
    (out / "model").mkdir(parents=True)
    (out / "model" / "README").write_text("placeholder: the monitoring tests never load it\n")
    client.log_artifacts(run_id, str(out / "model"), artifact_path="model")
    tags: dict[str, str] = {}
    if reference is not None:
        ref = out / "reference"
        ref.mkdir()
        reference.to_parquet(ref / "reference.parquet", index=False)
        (ref / "reference.json").write_text(
            json.dumps(
                {
                    "format": 1,
                    "rows": len(reference),
                    "source": "holdout",
                    "feature_columns": list(FEATURES),
                    "score_column": "score",
                    "label_column": "trip_completed",
                    "sampled_from": len(reference),
                    "seed": 0,
                    "content_hash": "test",
                }
            )
        )
        client.log_artifacts(run_id, str(ref), artifact_path="reference")
        tags = {
            "monitoring.reference_path": "reference/reference.parquet",
            "monitoring.reference_rows": str(len(reference)),
        }
        for key, value in tags.items():
            client.set_tag(run_id, key, value)
    client.set_terminated(run_id)
    try:
        client.create_registered_model(name)
    except MlflowException as exc:
        if exc.error_code != "RESOURCE_ALREADY_EXISTS":
            raise
    version = client.create_model_version(
        name, source=f"{run.info.artifact_uri}/model", run_id=run_id, tags=tags
    )
    if alias:
        client.set_registered_model_alias(name, alias, version.version)
    return str(version.version)


# --- the service as a process -----------------------------------------------------------------


@dataclass
class ServiceProcess:
    """``monitoring-service serve`` as a real process (its own session: killed by pid)."""

    env: dict[str, str]
    port: int
    log_path: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60.0) -> None:
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [str(Path(sys.executable).parent / "monitoring-service"), "serve"],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"service exited: {self.log_path.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(f"{self.url}/health/live", timeout=2) as answer:
                    if answer.status == 200:
                        return
            except OSError:
                time.sleep(0.2)
        raise RuntimeError(f"service not live: {self.log_path.read_text()[-3000:]}")

    def kill(self, sig: int = signal.SIGKILL, timeout: float = 30.0) -> int:
        assert self.process is not None
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, sig)
        code = self.process.wait(timeout)
        self.process = None
        return code

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            try:
                self.kill(signal.SIGTERM, timeout=20)
            except subprocess.TimeoutExpired:
                self.kill(signal.SIGKILL)


def service_env(
    data_dir: Path, streams: Streams, port: int, extra: dict[str, str] | None = None
) -> dict[str, str]:
    base = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("MLOPS_", "MLFLOW_", "MONITORING_", "SERVING_", "AIRFLOW"))
    }
    base.update(
        {
            "MLOPS_ENV_FILE": str(data_dir / "none.env"),
            "MLOPS_DATA_DIR": str(data_dir),
            "MONITORING_PORT": str(port),
            "MONITORING_WEBHOOK_SECRET": WEBHOOK_SECRET,
            "MONITORING_LOG_LEVEL": "INFO",
            "SPT_NOENV": "1",
            **streams.env(),
            **(extra or {}),
        }
    )
    return base


def get_json(url: str, headers: dict[str, str] | None = None) -> Any:
    request = urllib.request.Request(url, headers=headers or {})
    with urllib.request.urlopen(request, timeout=10) as answer:
        return json.loads(answer.read())


def metric_values(text: str, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    """Samples of one metric in Prometheus text format: labels -> value."""
    from prometheus_client.parser import text_string_to_metric_families

    out: dict[tuple[tuple[str, str], ...], float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name:
                out[tuple(sorted(sample.labels.items()))] = sample.value
    return out


def wait_for(check: Any, timeout: float = 30.0, interval: float = 0.2) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result or time.monotonic() > deadline:
            return result
        time.sleep(interval)
