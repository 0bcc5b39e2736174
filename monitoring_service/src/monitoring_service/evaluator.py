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

import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from mlops_common.registry import RegistryUnavailable
from mlops_common.threads import Worker
from monitoring_service import drift
from monitoring_service.drift import LABEL, SCORE, DriftConfig, DriftResult, NotEnoughData
from monitoring_service.gauges import WindowGauges
from monitoring_service.metrics import MonitoringMetrics
from monitoring_service.reference import NoReference, Reference, ReferenceStore
from monitoring_service.reports import ReportFiles, ReportKind
from monitoring_service.settings import MonitoringSettings
from monitoring_service.store import Store
from monitoring_service.windows import Window

log = logging.getLogger("monitoring_service.evaluator")


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


@dataclass(eq=False)
class Evaluator:
    settings: MonitoringSettings
    store: Store
    references: ReferenceStore
    metrics: MonitoringMetrics
    #: the consumer's watermark (every event written before it has been applied)
    watermark: Callable[[], float | None]
    reports: ReportFiles

    def __post_init__(self) -> None:
        self.cfg = drift_config(self.settings)
        self.gauges = WindowGauges(self.metrics)
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._worker = Worker(self._run, "evaluator")
        self._retry_at: dict[int, float] = {}
        self._backoff: dict[int, float] = {}
        self.ready = False
        self.evaluated = 0

    # --- the loop ------------------------------------------------------------------------
    def start(self) -> None:
        self._worker.start()

    def stop(self, timeout: float = 30.0) -> None:
        self._stop.set()
        self._wake.set()
        self._worker.join(timeout)

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
        outcome, result, notes = self._run_drift(window, reference, missing)
        drift_doc: dict[str, Any] | None = None
        if result is not None:
            drift_doc = result.as_dict()
            previous = self.store.consecutive_drifted(window.model_version, window.window_id - 1)
            drift_doc["consecutive_drifted_windows"] = previous + 1 if result.dataset_drift else 0
        elapsed = time.perf_counter() - began
        notes["drift_seconds"] = round(elapsed, 4)
        updated = self.store.record(window.window_id, "drifted", drift=drift_doc, notes=notes)
        self._count("drift", outcome, elapsed, window.model_version)
        if drift_doc is not None:
            self.gauges.export_drift(window, drift_doc)
        log.info(
            "window %d drift (%s) in %.2f s: %s",
            window.window_id,
            outcome,
            elapsed,
            _drift_line(drift_doc)
            if drift_doc
            else notes.get("drift_skipped") or notes.get("drift_error"),
        )
        if self.settings.monitoring_label_grace_s <= 0:
            return self.evaluate_quality(updated, reference_known=(reference, missing))
        return updated

    def _run_drift(
        self, window: Window, reference: Reference | None, missing: str | None
    ) -> tuple[str, DriftResult | None, dict[str, Any]]:
        """Evidently's drift report of the window: (outcome, result, notes)."""
        notes: dict[str, Any] = {}
        if reference is None:
            notes["drift_skipped"] = f"no reference: {missing}"
            return "skipped", None, notes
        rows = self.store.rows(window.window_id, None)
        try:
            result, snapshot = drift.drift_report(
                feature_frame(rows), reference.frame, list(reference.feature_columns), self.cfg
            )
            notes["drift_report"] = self._save(window.window_id, "drift", snapshot)
            notes["reference"] = reference.describe()
        except NotEnoughData as exc:
            notes["drift_skipped"] = str(exc)
            return "skipped", None, notes
        except Exception as exc:
            notes["drift_error"] = f"{type(exc).__name__}: {exc}"
            log.exception("drift of window %d failed", window.window_id)
            return "error", None, notes
        return "ok", result, notes

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
        quality: dict[str, Any] = {"labels": label_summary(rows)}
        outcome, notes = self._run_quality(window, rows, reference, quality)
        elapsed = time.perf_counter() - began
        notes["quality_seconds"] = round(elapsed, 4)
        updated = self.store.record(window.window_id, "final", quality=quality, notes=notes)
        self._count("quality", outcome, elapsed, window.model_version)
        self.gauges.export_quality(window.model_version, quality)
        log.info(
            "window %d quality (%s) in %.2f s: coverage %s, roc_auc %s",
            window.window_id,
            outcome,
            elapsed,
            quality["labels"]["coverage"],
            quality.get("roc_auc"),
        )
        return updated

    def _run_quality(
        self,
        window: Window,
        rows: pd.DataFrame,
        reference: Reference | None,
        quality: dict[str, Any],
    ) -> tuple[str, dict[str, Any]]:
        """Evidently's quality report of the labelled rows into ``quality``: (outcome, notes)."""
        notes: dict[str, Any] = {}
        labelled = rows[rows["label"].notna()]
        baseline = reference.frame if reference is not None and reference.has_labels else None
        try:
            result, snapshot = drift.quality_report(
                pd.DataFrame({SCORE: labelled["score"], LABEL: labelled["label"]}),
                baseline,
                self.cfg,
            )
            quality.update(result.as_dict())
            notes["quality_report"] = self._save(window.window_id, "quality", snapshot)
        except NotEnoughData as exc:
            quality["skipped"] = str(exc)
            return "skipped", notes
        except Exception as exc:
            quality["error"] = f"{type(exc).__name__}: {exc}"
            log.exception("quality of window %d failed", window.window_id)
            return "error", notes
        return "ok", notes

    def _save(self, window_id: int, kind: ReportKind, snapshot: Any) -> str | None:
        name = self.reports.save(window_id, kind, snapshot)
        if name is not None:
            self.metrics.reports.set(self.reports.prune())
        return name

    def _count(self, stage: str, outcome: str, elapsed: float, version: str) -> None:
        self.metrics.evaluations.labels(stage, outcome).inc()
        self.metrics.evaluation_seconds.labels(stage).observe(elapsed)
        self.metrics.last_window.labels(version).set(time.time())
        self.evaluated += 1

    def restore_gauges(self) -> None:
        """After a restart: the gauges of the newest evaluated windows from the state store."""
        self.gauges.restore(self.store.windows(limit=500, states=("drifted", "final")))
        self.metrics.reports.set(self.reports.prune())


def _drift_line(doc: dict[str, Any]) -> str:
    prediction = doc.get("prediction") or {}
    return (
        f"{doc['drifted_features']}/{len(doc['features'])} features drifted "
        f"(share {doc['drift_share']:.2f}, dataset drift {doc['dataset_drift']}), "
        f"score drift {prediction.get('score')} ({prediction.get('drifted')})"
    )
