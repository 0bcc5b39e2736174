"""The evaluator: Evidently for every closed window, in a worker thread (off the HTTP and the
consumer paths).

The work list is the state database itself (``Store.due``): windows ``closed`` get their drift
evaluation, windows ``drifted`` whose label deadline the consumer's watermark has passed get
their quality evaluation. A restart therefore resumes exactly where it stopped. Windows are
evaluated oldest first, so the gauges end up holding the newest window of each version.

Reference unavailable because the registry does not answer: the window waits and is retried
(backoff up to a minute). A version without reference data: drift is skipped with that reason,
quality is still computed. An Evidently failure is recorded on the window, counted, and the
window moves on (never retried in a loop).
"""

from __future__ import annotations

import contextlib
import json
import logging
import shutil
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mlops_common.registry import RegistryUnavailable
from monitoring_service import drift
from monitoring_service.drift import LABEL, SCORE, DriftConfig, DriftResult, NotEnoughData
from monitoring_service.metrics import QUALITY, MonitoringMetrics
from monitoring_service.reference import NoReference, Reference, ReferenceStore
from monitoring_service.settings import MonitoringSettings
from monitoring_service.store import Store
from monitoring_service.windows import Window

log = logging.getLogger("monitoring_service.evaluator")

DRIFT_REPORT = "drift.html.gz"
QUALITY_REPORT = "quality.html.gz"
#: versions whose per-version gauges are exported (the most recently evaluated ones)
EXPORTED_VERSIONS = 3


def drift_config(settings: MonitoringSettings) -> DriftConfig:
    return DriftConfig(
        method=settings.monitoring_drift_method,
        threshold=settings.monitoring_drift_threshold,
        drift_share=settings.monitoring_drift_share,
        probas_threshold=settings.monitoring_probas_threshold,
        min_rows=settings.monitoring_min_rows,
        min_labelled_rows=settings.monitoring_min_labelled_rows,
    )


def feature_frame(rows: pd.DataFrame) -> pd.DataFrame:
    """The candidates' model inputs (the events' ``features`` JSON) plus ``score``."""
    records = [json.loads(text) for text in rows["features"]] if len(rows) else []
    frame = (
        pd.DataFrame.from_records(records, index=rows.index)
        if records
        else pd.DataFrame(index=rows.index)
    )
    frame[SCORE] = rows["score"].astype(float)
    return frame


def label_summary(rows: pd.DataFrame) -> dict[str, Any]:
    """Coverage and delay of a window's labels (rows from ``Store.rows``)."""
    predictions = int(rows["entry_id"].nunique()) if len(rows) else 0
    labelled = rows[rows["label"].notna()]
    labelled_predictions = int(labelled["entry_id"].nunique()) if len(labelled) else 0
    delays = (labelled["label_time"] - labelled["prediction_time"]).to_numpy(dtype=float)
    summary: dict[str, Any] = {
        "predictions": predictions,
        "labelled_predictions": labelled_predictions,
        "labelled_rows": len(labelled),
        "coverage": labelled_predictions / predictions if predictions else None,
        "delay_seconds": None,
    }
    if len(delays):
        summary["delay_seconds"] = {
            "median": float(np.median(delays)),
            "p90": float(np.quantile(delays, 0.9)),
            "max": float(delays.max()),
        }
    return summary


class Evaluator:
    def __init__(
        self,
        settings: MonitoringSettings,
        store: Store,
        references: ReferenceStore,
        metrics: MonitoringMetrics,
        watermark: Callable[[], float | None],
    ) -> None:
        self.settings = settings
        self.store = store
        self.references = references
        self.metrics = metrics
        self.watermark = watermark
        self.cfg = drift_config(settings)
        self.reports_dir = settings.reports_dir
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._retry_at: dict[int, float] = {}
        self._backoff: dict[int, float] = {}
        self._features: dict[str, set[str]] = {}
        self._exported: list[str] = []
        self.ready = False
        self.evaluated = 0

    # --- the loop ------------------------------------------------------------------------
    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="evaluator", daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            if not self._thread.is_alive():
                self._thread = None

    def wake(self, *_: Any) -> None:
        self._wake.set()

    def _run(self) -> None:
        started = time.perf_counter()
        try:
            drift.warm_up()
        except Exception:  # not ready, and /health/ready says so; nothing is evaluated
            log.exception("Evidently cannot be imported: no window will be evaluated")
            return
        log.info("Evidently imported in %.1f s", time.perf_counter() - started)
        self.ready = True
        while not self._stop.is_set():
            try:
                self.run_once()
            except Exception:  # the state store failed: log, wait, retry
                log.exception("evaluation pass failed")
                self._stop.wait(2.0)
            self._wake.wait(1.0)
            self._wake.clear()

    def run_once(self) -> int:
        """Evaluate every window that is due; returns how many evaluations ran."""
        done = 0
        for window, stage in self.store.due(self.watermark()):
            if self._stop.is_set():
                break
            if self._retry_at.get(window.window_id, 0.0) > time.monotonic():
                continue
            if stage == "drift":
                self.evaluate_drift(window)
            else:
                self.evaluate_quality(window)
            done += 1
        return done

    # --- stages ----------------------------------------------------------------------------
    def _reference(self, window: Window) -> tuple[Reference | None, str | None]:
        """The version's reference, or (None, why); raises ``RegistryUnavailable``."""
        try:
            return self.references.get(window.model_version), None
        except NoReference as exc:
            return None, str(exc)

    def _defer(self, window: Window, exc: Exception) -> None:
        delay = min(60.0, max(1.0, self._backoff.get(window.window_id, 0.5) * 2))
        self._backoff[window.window_id] = delay
        self._retry_at[window.window_id] = time.monotonic() + delay
        log.warning(
            "window %d waits for its reference (registry: %s); retrying in %.0f s",
            window.window_id,
            exc,
            delay,
        )

    def evaluate_drift(self, window: Window) -> Window | None:
        """Drift of a closed window (and its quality too when there is no label wait)."""
        try:
            reference, missing = self._reference(window)
        except RegistryUnavailable as exc:
            self._defer(window, exc)
            return None
        self._retry_at.pop(window.window_id, None)
        self._backoff.pop(window.window_id, None)
        began = time.perf_counter()
        rows = self.store.rows(window.window_id, None)
        notes: dict[str, Any] = {}
        result: DriftResult | None = None
        outcome = "ok"
        if reference is None:
            outcome, notes["drift_skipped"] = "skipped", f"no reference: {missing}"
        else:
            try:
                result, snapshot = drift.drift_report(
                    feature_frame(rows),
                    reference.frame,
                    list(reference.feature_columns),
                    self.cfg,
                )
                notes["drift_report"] = self._save(window.window_id, DRIFT_REPORT, snapshot)
                notes["reference"] = reference.describe()
            except NotEnoughData as exc:
                outcome, notes["drift_skipped"] = "skipped", str(exc)
            except Exception as exc:
                outcome, notes["drift_error"] = "error", f"{type(exc).__name__}: {exc}"
                log.exception("drift of window %d failed", window.window_id)
        drift_doc: dict[str, Any] | None = None
        if result is not None:
            drift_doc = result.as_dict()
            previous = self.store.consecutive_drifted(window.model_version, window.window_id - 1)
            drift_doc["consecutive_drifted_windows"] = previous + 1 if result.dataset_drift else 0
        elapsed = time.perf_counter() - began
        notes["drift_seconds"] = round(elapsed, 4)
        final = self.settings.monitoring_label_grace_s <= 0
        updated = self.store.record(window.window_id, "drifted", drift=drift_doc, notes=notes)
        self.metrics.evaluations.labels("drift", outcome).inc()
        self.metrics.evaluation_seconds.labels("drift").observe(elapsed)
        self.metrics.last_window.labels(window.model_version).set(time.time())
        if drift_doc is not None:
            self._export_drift(window, drift_doc)
        self.evaluated += 1
        log.info(
            "window %d drift (%s) in %.2f s: %s",
            window.window_id,
            outcome,
            elapsed,
            _drift_line(drift_doc)
            if drift_doc
            else notes.get("drift_skipped") or notes.get("drift_error"),
        )
        if final:
            return self.evaluate_quality(updated, reference_known=(reference, missing))
        return updated

    def evaluate_quality(
        self,
        window: Window,
        reference_known: tuple[Reference | None, str | None] | None = None,
    ) -> Window | None:
        """Quality of the labels that arrived by the window's label deadline."""
        if reference_known is None:
            try:
                reference, _ = self._reference(window)
            except RegistryUnavailable:
                reference = None  # quality does not need it: the report then lacks a baseline
        else:
            reference = reference_known[0]
        began = time.perf_counter()
        rows = self.store.rows(window.window_id, window.label_deadline)
        labels = label_summary(rows)
        quality: dict[str, Any] = {"labels": labels}
        notes: dict[str, Any] = {}
        outcome = "ok"
        labelled = rows[rows["label"].notna()]
        try:
            baseline = reference.frame if reference is not None and reference.has_labels else None
            result, snapshot = drift.quality_report(
                pd.DataFrame({SCORE: labelled["score"], LABEL: labelled["label"]}),
                baseline,
                self.cfg,
            )
            quality.update(result.as_dict())
            notes["quality_report"] = self._save(window.window_id, QUALITY_REPORT, snapshot)
        except NotEnoughData as exc:
            outcome, quality["skipped"] = "skipped", str(exc)
        except Exception as exc:
            outcome, quality["error"] = "error", f"{type(exc).__name__}: {exc}"
            log.exception("quality of window %d failed", window.window_id)
        elapsed = time.perf_counter() - began
        notes["quality_seconds"] = round(elapsed, 4)
        updated = self.store.record(window.window_id, "final", quality=quality, notes=notes)
        self.metrics.evaluations.labels("quality", outcome).inc()
        self.metrics.evaluation_seconds.labels("quality").observe(elapsed)
        self.metrics.last_window.labels(window.model_version).set(time.time())
        self._export_quality(window.model_version, quality)
        self.evaluated += 1
        log.info(
            "window %d quality (%s) in %.2f s: coverage %s, roc_auc %s",
            window.window_id,
            outcome,
            elapsed,
            labels["coverage"],
            quality.get("roc_auc"),
        )
        return updated

    # --- reports ---------------------------------------------------------------------------
    def _save(self, window_id: int, name: str, snapshot: Any) -> str | None:
        keep = self.settings.monitoring_max_reports
        if keep <= 0:
            return None
        target = self.reports_dir / str(window_id) / name
        drift.save_html(snapshot, target)
        self.prune_reports()
        return name

    def prune_reports(self) -> int:
        """Keep the reports of the newest ``MONITORING_MAX_REPORTS`` windows."""
        keep = self.settings.monitoring_max_reports
        folders = sorted(
            (p for p in self.reports_dir.glob("*") if p.is_dir() and p.name.isdigit()),
            key=lambda p: int(p.name),
            reverse=True,
        )
        for old in folders[keep:]:
            shutil.rmtree(old, ignore_errors=True)
        kept = folders[:keep]
        self.metrics.reports.set(sum(len(list(p.glob("*.html.gz"))) for p in kept))
        return len(kept)

    def report_path(self, window_id: int, kind: str) -> Path | None:
        name = {"drift": DRIFT_REPORT, "quality": QUALITY_REPORT}.get(kind)
        if name is None:
            return None
        path = self.reports_dir / str(window_id) / name
        return path if path.is_file() else None

    def reports(self) -> list[dict[str, Any]]:
        out = []
        folders = sorted(
            (p for p in self.reports_dir.glob("*") if p.is_dir() and p.name.isdigit()),
            key=lambda p: int(p.name),
            reverse=True,
        )
        for folder in folders:
            kinds = [
                k
                for k, n in (("drift", DRIFT_REPORT), ("quality", QUALITY_REPORT))
                if (folder / n).is_file()
            ]
            if kinds:
                out.append({"window_id": int(folder.name), "kinds": kinds})
        return out

    # --- gauges ------------------------------------------------------------------------------
    def _exporting(self, version: str) -> None:
        """Keep per-version gauges for the most recently evaluated versions only."""
        if version in self._exported:
            self._exported.remove(version)
        self._exported.append(version)
        while len(self._exported) > EXPORTED_VERSIONS:
            self._forget(self._exported.pop(0))

    def _forget(self, version: str) -> None:
        m = self.metrics
        for feature in self._features.pop(version, set()):
            for gauge in (m.feature_drift_score, m.feature_drifted, m.feature_drift_threshold):
                _remove(gauge, version, feature)
        for gauge in (
            m.drift_share,
            m.drifted_features,
            m.dataset_drift,
            m.prediction_drift_score,
            m.prediction_drifted,
            m.consecutive_drifted,
            m.window_rows,
            m.window_predictions,
            m.quality_rows,
            m.label_coverage,
            m.last_window,
            m.reference_rows,
            *m.quality.values(),
        ):
            _remove(gauge, version)

    def _export_drift(self, window: Window, doc: dict[str, Any]) -> None:
        m, v = self.metrics, window.model_version
        self._exporting(v)
        features = doc["features"]
        for name, column in features.items():
            m.feature_drift_score.labels(v, name).set(column["score"])
            m.feature_drifted.labels(v, name).set(1 if column["drifted"] else 0)
            m.feature_drift_threshold.labels(v, name).set(column["threshold"])
        for stale in self._features.get(v, set()) - set(features):
            for gauge in (m.feature_drift_score, m.feature_drifted, m.feature_drift_threshold):
                _remove(gauge, v, stale)
        self._features[v] = set(features)
        m.drift_share.labels(v).set(doc["drift_share"])
        m.drifted_features.labels(v).set(doc["drifted_features"])
        m.dataset_drift.labels(v).set(1 if doc["dataset_drift"] else 0)
        prediction = doc.get("prediction")
        if prediction:
            m.prediction_drift_score.labels(v).set(prediction["score"])
            m.prediction_drifted.labels(v).set(1 if prediction["drifted"] else 0)
        m.consecutive_drifted.labels(v).set(doc.get("consecutive_drifted_windows", 0))
        m.window_rows.labels(v).set(doc["rows"])
        m.window_predictions.labels(v).set(window.predictions)

    def _export_quality(self, version: str, quality: dict[str, Any]) -> None:
        m = self.metrics
        self._exporting(version)
        for name in QUALITY:
            value = quality.get(name)
            m.quality[name].labels(version).set(float("nan") if value is None else value)
        m.quality_rows.labels(version).set(quality["labels"]["labelled_rows"])
        coverage = quality["labels"]["coverage"]
        m.label_coverage.labels(version).set(float("nan") if coverage is None else coverage)

    def restore_gauges(self) -> None:
        """After a restart: the gauges of the newest evaluated windows from the state store."""
        windows = self.store.windows(limit=500, states=("drifted", "final"))
        for window in reversed(windows):  # oldest first, newest last
            if window.drift is not None:
                self._export_drift(window, window.drift)
            if window.quality is not None and "labels" in window.quality:
                self._export_quality(window.model_version, window.quality)
        self.prune_reports()


def _remove(gauge: Any, *labels: str) -> None:
    with contextlib.suppress(KeyError):
        gauge.remove(*labels)


def _drift_line(doc: dict[str, Any]) -> str:
    prediction = doc.get("prediction") or {}
    return (
        f"{doc['drifted_features']}/{len(doc['features'])} features drifted "
        f"(share {doc['drift_share']:.2f}, dataset drift {doc['dataset_drift']}), "
        f"score drift {prediction.get('score')} ({prediction.get('drifted')})"
    )
