"""Reference data of a model version, found through its lineage in MLflow.

The training pipeline logs, with every registered version's run, ``reference/reference.parquet``
(the model's feature columns, its out-of-sample ``score`` and the label, a seeded sample of the
holdout) and ``reference/reference.json`` (columns, row count, source), and tags the run and the
version with ``monitoring.reference_path`` (see ``training_pipeline.reference``).

Resolution: ``models:/<name>@champion`` → ``get_model_version_by_alias`` → the version's run →
``download_artifacts(run_id, "reference")`` into ``<MLOPS_DATA_DIR>/monitoring/reference-cache/
<name>/<version>/`` (versions are immutable: a cached copy is never stale and needs no registry).
A watcher thread polls the alias every ``MONITORING_POLL_INTERVAL_S`` and loads the new
champion's reference as soon as the alias moves. Windows of any version (a challenger under
canary, the previous champion's last predictions) get that version's reference the same way.
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from mlops_common import registry
from mlops_common.registry import RegistryUnavailable, alias_version, configure_http, make_client
from mlops_common.threads import Worker
from monitoring_service.drift import LABEL, SCORE
from monitoring_service.metrics import MonitoringMetrics
from monitoring_service.settings import MonitoringSettings

log = logging.getLogger("monitoring_service.reference")

PATH_TAG = registry.REFERENCE_PATH_TAG
DEFAULT_PATH = registry.REFERENCE_PATH
MANIFEST = registry.REFERENCE_MANIFEST_FILE
META = "monitoring.json"


class NoReference(LookupError):
    """The version has no usable reference (permanent: it was registered without one)."""


@dataclass(frozen=True)
class Reference:
    model_name: str
    version: str
    run_id: str
    #: feature columns, ``score`` (float) and ``label`` (0/1 int, when the reference has labels)
    frame: pd.DataFrame
    feature_columns: tuple[str, ...]
    has_labels: bool
    source: str
    path: Path

    @property
    def rows(self) -> int:
        return len(self.frame)

    def describe(self) -> dict[str, Any]:
        """Every field but the data and its folder (JSON-ready), and the number of rows."""
        shown = {k: v for k, v in vars(self).items() if k not in ("frame", "path")}
        return shown | {"rows": self.rows, "feature_columns": list(self.feature_columns)}


def read_reference(folder: Path, model_name: str, version: str, run_id: str) -> Reference:
    """Load a downloaded ``reference/`` folder (parquet + manifest)."""
    manifest_file = folder / MANIFEST
    data_file = folder / Path(DEFAULT_PATH).name
    if not manifest_file.is_file() or not data_file.is_file():
        raise NoReference(f"{folder} lacks {MANIFEST} or {data_file.name}")
    manifest = json.loads(manifest_file.read_text(encoding="utf-8"))
    raw = pd.read_parquet(data_file)
    columns = [str(c) for c in manifest.get("feature_columns") or []]
    score = str(manifest.get("score_column") or SCORE)
    label = manifest.get("label_column")
    missing = [c for c in [*columns, score] if c not in raw.columns]
    if not columns or missing:
        raise NoReference(f"reference of {model_name} v{version} lacks columns {missing}")
    frame = raw[columns].copy()
    frame[SCORE] = raw[score].astype(float)
    has_labels = bool(label) and str(label) in raw.columns
    if has_labels:
        frame[LABEL] = raw[str(label)].astype(int)
    return Reference(
        model_name=model_name,
        version=version,
        run_id=run_id,
        frame=frame,
        feature_columns=tuple(columns),
        has_labels=has_labels,
        source=str(manifest.get("source", "unknown")),
        path=folder,
    )


class ReferenceStore:
    """Reference data per model version (memory, then disk cache, then the registry) and the
    champion alias watcher."""

    def __init__(
        self, settings: MonitoringSettings, metrics: MonitoringMetrics, keep: int = 4
    ) -> None:
        self.settings = settings
        self.metrics = metrics
        self.name = settings.monitoring_model_name
        self.alias = settings.monitoring_champion_alias
        self.cache_dir = settings.reference_cache_dir / self.name
        self.keep = keep
        self._client: Any = None
        self._loaded: OrderedDict[str, Reference] = OrderedDict()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._worker = Worker(self._run, "reference-watcher")
        self._restore_env = configure_http(settings.monitoring_registry_timeout_s)
        #: where the alias points (None: no champion yet), as of the last successful poll
        self.champion_version: str | None = None
        self.polled = False
        self.registry_up: bool | None = None
        self.last_error: str | None = None
        self.champion_error: str | None = None

    # --- lookup ------------------------------------------------------------------------------
    def client(self) -> Any:
        if self._client is None:
            self._client = make_client(self.settings.tracking_uri)
        return self._client

    def get(self, version: str) -> Reference:
        """The reference of ``version``. Raises ``NoReference`` (permanent) or
        ``RegistryUnavailable`` (try again later)."""
        with self._lock:
            found = self._loaded.get(version)
            if found is not None:
                self._loaded.move_to_end(version)
                return found
        reference = self._from_cache(version) or self._download(version)
        with self._lock:
            self._loaded[version] = reference
            self._loaded.move_to_end(version)
            while len(self._loaded) > self.keep:
                self._loaded.popitem(last=False)
        self.metrics.reference_rows.labels(version).set(reference.rows)
        return reference

    def loaded(self) -> list[Reference]:
        with self._lock:
            return list(self._loaded.values())

    def _from_cache(self, version: str) -> Reference | None:
        folder = self.cache_dir / version
        meta = folder / META
        if not meta.is_file():
            return None
        try:
            info = json.loads(meta.read_text(encoding="utf-8"))
            reference = read_reference(folder, self.name, version, str(info["run_id"]))
        except (OSError, ValueError, KeyError, NoReference) as exc:
            log.warning("discarding the cached reference of v%s: %s", version, exc)
            shutil.rmtree(folder, ignore_errors=True)
            return None
        self.metrics.reference_loads.labels("cache", "ok").inc()
        return reference

    def _download(self, version: str) -> Reference:
        """The version's reference from its run's artifacts, into the disk cache."""
        started = time.perf_counter()
        run_id, path = self._locate(version)
        target = self._fetch(version, run_id, path)
        self.metrics.reference_loads.labels("registry", "ok").inc()
        reference = read_reference(target, self.name, version, run_id)
        log.info(
            "loaded the reference of %s v%s: %d rows from run %s in %.2f s",
            self.name,
            version,
            reference.rows,
            run_id,
            time.perf_counter() - started,
        )
        return reference

    def _locate(self, version: str) -> tuple[str, str]:
        """(run id, artifact path of the reference) of the version, from its tags."""
        client = self.client()
        try:
            mv = client.get_model_version(self.name, version)
        except Exception as exc:
            if registry.is_not_found(exc):
                self.metrics.reference_loads.labels("registry", "missing").inc()
                raise NoReference(f"{self.name} v{version} is not in the registry") from None
            self.metrics.reference_loads.labels("registry", "unreachable").inc()
            raise RegistryUnavailable(f"{type(exc).__name__}: {exc}") from exc
        run_id = str(mv.run_id or "")
        path = str((mv.tags or {}).get(PATH_TAG) or "")
        if not path and run_id:
            try:
                path = str(client.get_run(run_id).data.tags.get(PATH_TAG) or "")
            except Exception as exc:
                if not registry.is_not_found(exc):
                    raise RegistryUnavailable(f"{type(exc).__name__}: {exc}") from exc
        if not run_id or not path:
            self.metrics.reference_loads.labels("registry", "missing").inc()
            raise NoReference(
                f"{self.name} v{version} has no reference data (no {PATH_TAG} tag: registered "
                "before the training pipeline logged one, or by hand)"
            )
        return run_id, path

    def _fetch(self, version: str, run_id: str, path: str) -> Path:
        """Download the reference folder and move it, checked and with its meta file, to
        ``<cache>/<version>``; returns that folder."""
        import mlflow.artifacts

        artifact_dir = str(Path(path).parent)
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=self.cache_dir) as tmp:
            try:
                local = mlflow.artifacts.download_artifacts(
                    run_id=run_id,
                    artifact_path=artifact_dir,
                    dst_path=tmp,
                    tracking_uri=self.settings.tracking_uri or None,
                )
            except Exception as exc:
                if registry.is_not_found(exc) or isinstance(exc, OSError | FileNotFoundError):
                    self.metrics.reference_loads.labels("registry", "missing").inc()
                    raise NoReference(
                        f"{self.name} v{version}: artifact {artifact_dir} of run {run_id} "
                        f"cannot be read ({exc})"
                    ) from None
                self.metrics.reference_loads.labels("registry", "unreachable").inc()
                raise RegistryUnavailable(f"{type(exc).__name__}: {exc}") from exc
            read_reference(Path(local), self.name, version, run_id)  # raises when unusable
            (Path(local) / META).write_text(
                json.dumps({"run_id": run_id, "path": path, "downloaded_at": time.time()}),
                encoding="utf-8",
            )
            target = self.cache_dir / version
            shutil.rmtree(target, ignore_errors=True)
            shutil.move(local, target)
        return target

    # --- the champion watcher ------------------------------------------------------------
    def poll(self) -> None:
        """Ask where the alias points; load that version's reference."""
        try:
            version = alias_version(self.client(), self.name, self.alias)
        except RegistryUnavailable as exc:
            self._registry(False, str(exc))
            return
        self._registry(True, None)
        if version != self.champion_version:
            log.info("%s@%s is now %s", self.name, self.alias, version or "unset")
            if self.champion_version is not None:
                self.metrics.champion.labels(self.champion_version).set(0)
        self.champion_version = version
        self.polled = True
        if version is None:
            self.champion_error = None
            return
        self.metrics.champion.labels(version).set(1)
        try:
            self.get(version)
            self.champion_error = None
        except NoReference as exc:
            self.champion_error = str(exc)
        except RegistryUnavailable as exc:
            self._registry(False, str(exc))

    def _registry(self, up: bool, error: str | None) -> None:
        if not up and self.registry_up is not False:
            log.warning("model registry unreachable: %s", error)
        self.registry_up = up
        self.last_error = error if not up else self.last_error
        self.metrics.registry_up.set(1 if up else 0)

    def start(self) -> None:
        self._worker.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.poll()
            except Exception:  # a bug must not end the watcher
                log.exception("reference poll failed")
            self._stop.wait(self.settings.monitoring_poll_interval_s)

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        # the MLflow HTTP settings this object put into the process environment go at once
        # (a process hosting several apps, like the tests, must not keep them)
        self._restore_env()
        self._worker.join(timeout)

    def readiness(self) -> tuple[bool, dict[str, Any]]:
        """Ready when the champion's reference is loaded, or the registry said there is no
        champion yet."""
        detail: dict[str, Any] = {
            "model": self.name,
            "alias": self.alias,
            "registry_reachable": self.registry_up,
            "champion_version": self.champion_version,
            "last_error": self.last_error,
        }
        if not self.polled:
            detail["status"] = "registry not asked successfully yet"
            return False, detail
        if self.champion_version is None:
            detail["status"] = "no champion yet"
            return True, detail
        with self._lock:
            loaded = self._loaded.get(self.champion_version)
        if loaded is not None:
            detail["status"] = "reference loaded"
            detail["reference_rows"] = loaded.rows
            return True, detail
        detail["status"] = self.champion_error or "reference not loaded yet"
        return False, detail
