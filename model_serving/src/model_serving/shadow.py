"""Shadow scoring: the challenger scores the champion's requests off the request path.

The request hands its candidates (and the features it already read) to a bounded queue and
returns. One worker thread scores them with the challenger — re-using the request's feature
read when both models use the same feature service, reading its own otherwise — and submits the
prediction event with both the champion's and the challenger's scores. A full queue never
blocks a request: the event then goes out without shadow scores and the skip is counted.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from mlops_common.threads import Worker
from model_serving.features import FeatureRead
from model_serving.metrics import ServingMetrics
from model_serving.models import LoadedModel

log = logging.getLogger("model_serving.shadow")


@dataclass(frozen=True)
class ShadowJob:
    challenger: LoadedModel
    champion_reader: object
    ids: list[int]
    read: FeatureRead
    #: called with the challenger's (driver id, score) ranking, best first, or None on failure
    done: Callable[[list[tuple[int, float]] | None], None]


def feature_matrix(rows: Sequence[Sequence[object]], positions: tuple[int, ...]) -> np.ndarray:
    """Model input (float64, NaN for a missing value) from feature rows."""
    return np.array([[row[p] for p in positions] for row in rows], dtype=np.float64)


def rank(ids: list[int], scores: np.ndarray) -> list[tuple[int, float]]:
    order = np.argsort(-scores, kind="stable")
    return [(ids[k], float(scores[k])) for k in order]


class ShadowScorer:
    def __init__(self, metrics: ServingMetrics, capacity: int) -> None:
        self.metrics = metrics
        self._queue: queue.Queue[ShadowJob | None] = queue.Queue(maxsize=capacity)
        self._worker = Worker(self._run, "shadow-scorer")
        self.done = 0

    def start(self) -> None:
        self._worker.start()

    def stop(self, timeout: float = 3.0) -> None:
        if not self._worker.started:
            return
        deadline = time.monotonic() + timeout
        while not self._queue.empty() and time.monotonic() < deadline:
            time.sleep(0.01)
        with contextlib.suppress(queue.Full):
            self._queue.put(None, timeout=max(0.1, deadline - time.monotonic()))
        self._worker.join(timeout)

    def submit(self, job: ShadowJob) -> bool:
        try:
            self._queue.put_nowait(job)
        except queue.Full:
            self.metrics.shadow.labels("skipped_queue_full").inc()
            return False
        return True

    def drain(self, timeout: float = 5.0) -> bool:
        """Wait until queued jobs are scored (tests)."""
        deadline = time.monotonic() + timeout
        while self._queue.unfinished_tasks and time.monotonic() < deadline:
            time.sleep(0.005)
        return not self._queue.unfinished_tasks

    def _run(self) -> None:
        while True:
            job = self._queue.get()
            try:
                if job is None:
                    return
                self._score(job)
            finally:
                self._queue.task_done()

    def _score(self, job: ShadowJob) -> None:
        model = job.challenger
        try:
            same = model.reader is job.champion_reader
            read = job.read if same else model.reader.read(job.ids)
            ids = [i for i in job.ids if i in read.rows]
            if not ids:
                raise ValueError("no candidate is scorable for the challenger")
            began = time.perf_counter()
            scores = model.score(feature_matrix([read.rows[i] for i in ids], model.positions))
            self.metrics.model_latency.labels(model.version, "shadow").observe(
                time.perf_counter() - began
            )
            ranking = rank(ids, scores)
        except Exception as exc:
            self.metrics.shadow.labels("failed").inc()
            log.warning("shadow scoring with v%s failed: %s", model.version, exc)
            job.done(None)
            return
        self.metrics.shadow.labels("ok").inc()
        self.done += 1
        job.done(ranking)
