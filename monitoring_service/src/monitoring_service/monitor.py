"""The monitoring service as one object: its state and its workers, and what they report.

Threads: the event consumer (Redis → SQLite), the evaluator (Evidently per window), the
reference watcher (the champion alias in MLflow), the experiment readouts (A/B statistics,
bandit allocations). The HTTP routers get this object through a
dependency (``monitoring_service.api.deps``) and only read from it; the webhook hands its
payload to the trigger.
"""

from __future__ import annotations

import time
from typing import Any

import redis

from mlops_common.experiment_store import ExperimentStore
from monitoring_service.consumer import EventConsumer
from monitoring_service.evaluator import Evaluator
from monitoring_service.experiments import ExperimentReadouts
from monitoring_service.metrics import MonitoringMetrics
from monitoring_service.reference import ReferenceStore
from monitoring_service.reports import ReportFiles
from monitoring_service.settings import MonitoringSettings
from monitoring_service.store import Store
from monitoring_service.trigger import RetrainingTrigger


class Monitor:
    """Everything one app instance runs (tests reach in through ``app.state.monitor``)."""

    def __init__(
        self, settings: MonitoringSettings, redis_client: redis.Redis | None = None
    ) -> None:
        self.settings = settings
        self.metrics = MonitoringMetrics()
        self.store = Store(settings.db_path, settings.window_policy)
        self.restore_counters()
        self.reports = ReportFiles(settings.reports_dir, settings.monitoring_max_reports)
        self.references = ReferenceStore(settings, self.metrics)
        self.evaluator = Evaluator(
            settings,
            self.store,
            self.references,
            self.metrics,
            lambda: self.consumer.watermark,
            self.reports,
        )
        self.consumer = EventConsumer(
            settings,
            self.store,
            self.metrics,
            client=redis_client,
            on_closed=self.evaluator.wake,
        )
        self.trigger = RetrainingTrigger(settings, self.store, self.metrics)
        self.experiments = ExperimentReadouts(
            self.store,
            lambda: ExperimentStore.from_settings(settings),
            self.metrics,
            settings.monitoring_experiments_interval_s,
            settings.monitoring_bandit_seed,
        )
        self.evaluator.restore_gauges()
        self.started_at = time.time()

    def restore_counters(self) -> None:
        """Counters of durable effects continue from the persisted totals."""
        m = self.metrics
        targets = {
            "events_consumed": m.events_consumed,
            "events_malformed": m.events_malformed,
            "events_duplicate": m.events_duplicate,
            "windows": m.windows,
            "labels_late": m.labels_late,
            "retraining_decisions": m.decisions,
        }
        for (name, labels), value in self.store.counters().items():
            counter = targets.get(name)
            if counter is not None and value:
                counter.labels(*labels).inc(value)

    def start(self) -> None:
        self.references.start()
        self.evaluator.start()
        self.consumer.start()
        self.experiments.start()

    def stop(self) -> None:
        """Stop the consumer (it finishes its batch), then the others without waiting long:
        an evaluation cut off by the exit is redone after the restart (the work list is the
        state database)."""
        self.evaluator.stop(timeout=0)
        self.references.stop(timeout=0)
        self.experiments.stop(timeout=5.0)
        self.consumer.join(timeout=15.0)
        deadline = time.monotonic() + 5.0
        self.evaluator.stop(timeout=max(0.0, deadline - time.monotonic()))
        self.references.stop(timeout=max(0.0, deadline - time.monotonic()))
        self.store.close()

    def readiness(self) -> tuple[bool, dict[str, dict[str, Any]]]:
        """(ready, the check of each part): Redis answers, the consumer is not failing, the
        champion's reference is loaded (or there is no champion yet), Evidently is loaded."""
        redis_problem = self.consumer.ping()
        reference_ok, reference = self.references.readiness()
        checks: dict[str, dict[str, Any]] = {
            "redis": {"ok": redis_problem is None, "detail": redis_problem or "answers"},
            "consumer": {
                "ok": self.consumer.up is not False,
                "up": self.consumer.up,
                "last_error": self.consumer.last_error,
                "watermark": self.consumer.watermark,
            },
            "reference": {"ok": reference_ok, **reference},
            "evaluator": {"ok": self.evaluator.ready, "evidently_loaded": self.evaluator.ready},
        }
        return all(bool(c["ok"]) for c in checks.values()), checks

    def consumer_status(self) -> dict[str, Any]:
        """The consumer's watermark, whether it is up, and the persisted event totals."""
        return {
            "watermark": self.consumer.watermark,
            "up": self.consumer.up,
            "events": {
                "/".join((name, *labels)): value
                for (name, labels), value in sorted(self.store.counters().items())
                if name.startswith("events_")
            },
        }
