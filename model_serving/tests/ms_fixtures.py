"""Test helpers of the serving suite: the platform's feature store in a project of its own, a
small model registered in a real MLflow server, free ports, the MLflow server process, a TCP
proxy that makes a real server unreachable on demand.

The feature store is the data pipeline's (``data_pipeline.feature_store``: the repository in
``data_pipeline/feature_repo`` applied to a fresh Feast project, online store on the real Redis or
a SQLite file); the serving code only ever sees a ``feast.FeatureStore``.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import redis

from data_pipeline.feature_store import FEATURE_NAMES, FEATURE_SERVICE, FEATURE_VIEW
from mlops_testing.frames import driver_statistics, stats_frame
from mlops_testing.models import log_and_register
from mlops_testing.redis_server import free_port

FEATURES = FEATURE_NAMES
VIEW = FEATURE_VIEW
SERVICE = FEATURE_SERVICE
REDIS_URL = os.environ.get("MLOPS_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")

API_KEY = "test-serving-key-0123456789"
FRESH_DRIVERS = range(1, 301)
STALE_DRIVERS = range(901, 906)
UNKNOWN_DRIVER = 777_777


def auth(key: str = API_KEY) -> dict[str, str]:
    return {"X-API-Key": key}


def feast_connection_string(url: str) -> str:
    """redis://host:port/db -> Feast's ``host:port,db=N``."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    db = (parts.path or "/0").strip("/") or "0"
    text = f"{parts.hostname or '127.0.0.1'}:{parts.port or 6379},db={db}"
    if parts.password:
        text += f",password={parts.password}"
    return text


def build_store(
    folder: Path, project: str, online: str = "redis", redis_url: str = REDIS_URL
) -> Any:
    """The platform's feature store (``data_pipeline.feature_store``) in a project of its own,
    with the feature repository applied; online store on ``redis_url`` or a SQLite file."""
    from data_pipeline.feature_store import apply, feature_store

    settings = store_settings(folder, project, online, redis_url)
    apply(settings)
    return feature_store(settings)


def store_settings(
    folder: Path, project: str, online: str = "redis", redis_url: str = REDIS_URL
) -> Any:
    """The data pipeline's settings of a test feature store (no env file read)."""
    from data_pipeline.settings import DataPipelineSettings

    folder.mkdir(parents=True, exist_ok=True)
    online_url = redis_url if online == "redis" else f"sqlite:///{folder / 'online.db'}"
    return DataPipelineSettings(
        _env_file=None,  # type: ignore[call-arg]
        mlops_data_dir=folder,
        mlops_online_store_url=online_url,
        mlops_feast_project=project,
        mlops_database_url="",
        mlops_redis_url="",
    )


def write_features(store: Any, ids: Iterable[int], when: datetime, seed: int = 0) -> pd.DataFrame:
    frame = stats_frame(ids, when, seed)
    store.write_to_online_store(VIEW, frame)
    return frame


def drop_project_keys(project: str, url: str = REDIS_URL) -> int:
    """Delete the Redis keys of a test project (keys end with the project name)."""
    client = redis.Redis.from_url(url)
    deleted = 0
    try:
        batch = []
        for key in client.scan_iter(match=f"*{project}", count=1000):
            batch.append(key)
            if len(batch) >= 500:
                deleted += client.delete(*batch)
                batch = []
        if batch:
            deleted += client.delete(*batch)
    finally:
        client.close()
    return deleted


def unique_name(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:10]}"


# --- MLflow -------------------------------------------------------------------------------


def training_frame(n: int = 600, seed: int = 0, flip: bool = False) -> tuple[pd.DataFrame, Any]:
    """Generated features and a label that depends on them (``flip`` reverses the signal)."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(driver_statistics(rng, n))
    logit = 3 * frame["conv_rate"] + frame["rating"] - 3 - 4 * frame["cancel_rate"]
    if flip:
        logit = -logit
    label = rng.uniform(0, 1, n) < 1 / (1 + np.exp(-logit))
    return frame, label


def register_model(
    tracking_uri: str,
    name: str,
    *,
    seed: int = 0,
    flip: bool = False,
    kind: str = "hgb",
    feature_service: str = SERVICE,
    alias: str | None = None,
    columns: tuple[str, ...] = FEATURES,
) -> str:
    """Fit a small classifier on generated features, log it with a signature (as the training
    pipeline does: sklearn flavor, predict_proba, skops), register it; returns the version."""
    from mlflow.tracking import MlflowClient
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.linear_model import LogisticRegression

    frame, label = training_frame(seed=seed, flip=flip)
    frame = frame[list(columns)]
    if kind == "hgb":
        model: Any = HistGradientBoostingClassifier(max_iter=30, random_state=seed)
    else:
        model = LogisticRegression(max_iter=200)
    model.fit(frame, label)
    tags = {"features.service": feature_service}
    version = log_and_register(model, frame, tracking_uri, f"{name}-tests", name, **tags)
    if alias:
        MlflowClient(tracking_uri, tracking_uri).set_registered_model_alias(name, alias, version)
    return str(version)


class WritesMarker:
    """Unpickling this object writes a file: what a hostile model version could do on load."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (Path.write_text, (self.marker, "code ran on load"))


def register_hostile_model(tracking_uri: str, name: str, marker: Path, folder: Path) -> str:
    """Register a version in the sklearn flavor's pickle format whose ``model.pkl`` writes
    ``marker`` when unpickled (a valid signature, a valid MLmodel); returns the version."""
    import pickle
    import warnings

    import mlflow
    import mlflow.sklearn
    from mlflow.models import infer_signature
    from sklearn.linear_model import LogisticRegression

    frame, label = training_frame()
    model = LogisticRegression(max_iter=200).fit(frame, label)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=UserWarning)
        signature = infer_signature(frame.head(5), model.predict_proba(frame.head(5)))
        mlflow.sklearn.save_model(
            model, str(folder / "model"), signature=signature, serialization_format="pickle"
        )
    (folder / "model" / "model.pkl").write_bytes(pickle.dumps(WritesMarker(marker)))
    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_registry_uri(tracking_uri)
    mlflow.set_experiment(f"{name}-tests")
    with mlflow.start_run() as run:
        mlflow.log_artifacts(str(folder / "model"), artifact_path="model")
    uri = f"runs:/{run.info.run_id}/model"
    return str(mlflow.register_model(uri, name, tags={"features.service": SERVICE}).version)


def wait_for(predicate: Any, timeout: float, interval: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return bool(predicate())


def iter_chunks(items: list[Any], size: int) -> Iterator[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def metric_value(text: str, name: str, **labels: str) -> float:
    """The sum of a metric's samples in Prometheus text whose labels include ``labels``."""
    from prometheus_client.parser import text_string_to_metric_families

    total = 0.0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                total += sample.value
    return total


class TcpProxy:
    """A TCP forwarder to a real server, to make that server unreachable on demand.

    ``down()`` closes the listener and every connection (clients get "connection refused");
    ``blackhole()`` keeps accepting but never answers (clients time out); ``up()`` forwards
    again on the same port."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.port = free_port()
        self.mode = "down"
        self._listener: socket.socket | None = None
        self._conns: list[socket.socket] = []
        self._lock = threading.Lock()

    @property
    def url_host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def up(self) -> None:
        self._close_all()
        self.mode = "up"
        self._listen()

    def blackhole(self) -> None:
        self._close_all()
        self.mode = "blackhole"
        self._listen()

    def down(self) -> None:
        self.mode = "down"
        self._close_all()

    def _listen(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            with self._lock:
                self._conns.append(client)
            if self.mode != "up":
                continue  # blackhole: hold the connection, never answer
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._conns.append(upstream)
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket) -> None:
        try:
            while True:
                data = source.recv(65536)
                if not data:
                    break
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)

    def _close_all(self) -> None:
        if self._listener is not None:
            # shutdown wakes the thread blocked in accept(); close alone would leave the
            # socket listening until that accept returns
            with contextlib.suppress(OSError):
                self._listener.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                self._listener.close()
            self._listener = None
        with self._lock:
            conns, self._conns = self._conns, []
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                conn.close()
