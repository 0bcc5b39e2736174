"""The per-window gauges: the newest evaluated window of each model version on ``/metrics``.

Only the most recently evaluated versions keep their series (``EXPORTED_VERSIONS``): a version
that has not been evaluated for a while (an old champion, a finished canary) drops out instead of
showing its last numbers forever.
"""

from __future__ import annotations

import contextlib
from typing import Any

from monitoring_service.metrics import QUALITY, MonitoringMetrics
from monitoring_service.windows import Window

#: versions whose per-version gauges are exported (the most recently evaluated ones)
EXPORTED_VERSIONS = 3


class WindowGauges:
    def __init__(self, metrics: MonitoringMetrics) -> None:
        self.metrics = metrics
        self._features: dict[str, set[str]] = {}
        self._exported: list[str] = []

    def export_drift(self, window: Window, doc: dict[str, Any]) -> None:
        """A window's drift document (``DriftResult.as_dict`` plus the consecutive count)."""
        m, v = self.metrics, window.model_version
        self._exporting(v)
        self._export_features(v, doc["features"])
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

    def export_quality(self, version: str, quality: dict[str, Any]) -> None:
        """A window's quality document (``QualityResult.as_dict`` plus ``labels``)."""
        m = self.metrics
        self._exporting(version)
        for name in QUALITY:
            value = quality.get(name)
            m.quality[name].labels(version).set(float("nan") if value is None else value)
        m.quality_rows.labels(version).set(quality["labels"]["labelled_rows"])
        coverage = quality["labels"]["coverage"]
        m.label_coverage.labels(version).set(float("nan") if coverage is None else coverage)

    def restore(self, windows: list[Window]) -> None:
        """After a restart: the gauges of the given evaluated windows, newest first."""
        for window in reversed(windows):  # oldest first, newest last
            if window.drift is not None:
                self.export_drift(window, window.drift)
            if window.quality is not None and "labels" in window.quality:
                self.export_quality(window.model_version, window.quality)

    def _export_features(self, version: str, features: dict[str, Any]) -> None:
        m = self.metrics
        for name, column in features.items():
            m.feature_drift_score.labels(version, name).set(column["score"])
            m.feature_drifted.labels(version, name).set(1 if column["drifted"] else 0)
            m.feature_drift_threshold.labels(version, name).set(column["threshold"])
        for stale in self._features.get(version, set()) - set(features):
            self._remove_feature(version, stale)
        self._features[version] = set(features)

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
            self._remove_feature(version, feature)
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

    def _remove_feature(self, version: str, feature: str) -> None:
        m = self.metrics
        for gauge in (m.feature_drift_score, m.feature_drifted, m.feature_drift_threshold):
            _remove(gauge, version, feature)


def _remove(gauge: Any, *labels: str) -> None:
    with contextlib.suppress(KeyError):
        gauge.remove(*labels)
