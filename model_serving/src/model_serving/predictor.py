"""The prediction itself, with no HTTP: route to a model, read features, score, rank, emit.

``Predictor.route`` takes the serving state snapshot once (the request uses it to the end),
refuses when no model is loaded and picks the answering model: the arm of a running experiment
(``model_serving.experiments``; sticky per request id), else the champion, or the challenger
for a sticky canary share of request ids. ``Predictor.predict`` reads the candidates' online
features through the model's reader, scores the scorable ones, ranks them, remembers which model
answered and hands the prediction event to the sink (with shadow scoring on: to the shadow
scorer first, which hands it on with the challenger's scores). Nothing here waits on anything
but the feature read and the model call.

What can go wrong is a ``PredictionError`` with a stable ``code``; the HTTP layer maps codes to
status codes (``model_serving.api.errors``).
"""

from __future__ import annotations

import hashlib
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from typing import Any, Protocol, TypedDict

from prometheus_client import Histogram

from mlops_common.events import serving as events
from mlops_common.experiments import ExperimentTag
from model_serving.answers import AnswerMemory, ModelRef, model_ref
from model_serving.breaker import BreakerLimits, BreakerOpen, Breakers
from model_serving.experiments import ActiveExperiment
from model_serving.features import FeatureRead, FeatureReader, FeatureValue, OnlineStoreError
from model_serving.lifecycle import ServingState
from model_serving.metrics import ServingMetrics, VersionMetrics
from model_serving.models import LoadedModel
from model_serving.settings import ServingSettings
from model_serving.shadow import ShadowJob, ShadowScorer, feature_matrix, rank
from model_serving.sink import EventSubmitter

log = logging.getLogger("model_serving.predictor")

Ranking = list[tuple[int, float]]
#: feature value types a model takes (bool is an int to numpy too)
NUMBER_TYPES = (int, float, bool)


def usable(values: list[FeatureValue], accepts_missing: bool) -> bool:
    """Whether a candidate's model inputs can be scored: numbers, or missing (None, NaN) for a
    model that accepts NaN."""
    for value in values:
        if value is None or (type(value) is float and value != value):
            if not accepts_missing:
                return False
        elif type(value) not in NUMBER_TYPES:
            return False
    return True


def screen(read: FeatureRead, model: LoadedModel) -> None:
    """Leave out (as unknown, counted as invalid) the rows ``model`` cannot score."""
    positions, accepts_missing = model.positions, model.accepts_missing
    for entity, row in list(read.rows.items()):
        if not usable([row[p] for p in positions], accepts_missing):
            read.leave_out(entity)


def canary_bucket(request_id: str) -> int:
    """A stable bucket in [0, 10000) per request id: the same id always lands in the same one."""
    digest = hashlib.blake2b(request_id.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big") % 10_000


# --- what can go wrong ----------------------------------------------------------------------


class PredictionError(Exception):
    """A request that cannot be answered; ``code`` is stable and machine-readable."""

    code = "prediction_error"

    def __init__(self, message: str, details: Any = None) -> None:
        super().__init__(message)
        self.message, self.details = message, details


class NoModel(PredictionError):
    code = "no_model"


class OnlineStoreUnavailable(PredictionError):
    code = "online_store_unavailable"


class NoScorableCandidates(PredictionError):
    code = "no_scorable_candidates"


class ModelFailed(PredictionError):
    code = "model_error"


# --- collaborators and results --------------------------------------------------------------


class RoutesExperiments(Protocol):
    """Where the running experiment comes from (``ExperimentRouter``)."""

    @property
    def active(self) -> ActiveExperiment | None: ...


class ServesModels(Protocol):
    """Where the current serving state comes from (``ModelManager``)."""

    @property
    def state(self) -> ServingState: ...


@dataclass(frozen=True)
class Traffic:
    """How requests are split between champion and challenger."""

    #: share of request ids the challenger answers, percent
    canary_percent: float = 0.0
    #: the challenger also scores every request the champion answers, off the request path
    shadow: bool = False

    @classmethod
    def from_settings(cls, settings: ServingSettings) -> Traffic:
        return cls(settings.serving_canary_percent, settings.serving_shadow)


@dataclass(frozen=True)
class ReadLimits:
    """How long a request waits for its features, and how many reads run at once."""

    timeout_s: float = 0.08
    threads: int = 8
    breaker: BreakerLimits = field(default_factory=BreakerLimits)

    @classmethod
    def from_settings(cls, settings: ServingSettings) -> ReadLimits:
        return cls(
            settings.serving_feature_read_timeout_s,
            settings.serving_feature_read_threads,
            BreakerLimits(
                settings.serving_online_store_stall_s,
                settings.serving_online_store_probe_interval_s,
            ),
        )


@dataclass(frozen=True, slots=True)
class Routing:
    """The model that answers one request (and the one that shadows it, if any)."""

    request_id: str
    model: LoadedModel
    shadow: LoadedModel | None
    #: perf_counter() when the request started
    began: float
    #: the name of the API key that asked (recorded in the prediction event)
    client: str | None = None
    #: the experiment and arm that routed the request, when one did
    experiment: ExperimentTag | None = None


class ScoreEntry(TypedDict):
    driver_id: int
    score: float


class PredictAnswer(TypedDict):
    request_id: str
    best_driver_id: int
    scores: list[ScoreEntry]
    model: ModelRef
    unknown_driver_ids: list[int]
    stale_driver_ids: list[int]


def score_entries(ranking: Ranking) -> list[ScoreEntry]:
    return [{"driver_id": d, "score": s} for d, s in ranking]


@dataclass(frozen=True, slots=True)
class PredictionRecord:
    """What the prediction event of one answer is built from (off the request path)."""

    request_id: str
    time: datetime
    model: LoadedModel
    ranking: Ranking
    read: FeatureRead
    latency_ms: float
    client: str | None = None
    experiment: ExperimentTag | None = None

    def event(self, shadow: dict[str, Any] | None = None) -> events.PredictionEvent:
        read = self.read
        return events.PredictionEvent.model_validate(
            {
                "request_id": self.request_id,
                "time": self.time,
                "model": model_ref(self.model),
                "candidates": self.candidates(),
                "best_driver_id": self.ranking[0][0],
                "unknown_driver_ids": read.unknown,
                "stale_driver_ids": read.stale,
                "shadow": shadow,
                "latency_ms": self.latency_ms,
                "client": self.client,
                "experiment": self.experiment,
            }
        )

    def candidates(self) -> list[dict[str, Any]]:
        """Ranked candidates with the exact model inputs and their feature time."""
        columns, positions = self.model.columns, self.model.positions
        rows, times = self.read.rows, self.read.times
        return [
            {
                "driver_id": driver,
                "score": score,
                "features": {c: rows[driver][p] for c, p in zip(columns, positions, strict=True)},
                "feature_time": datetime.fromtimestamp(times[driver], tz=UTC),
            }
            for driver, score in self.ranking
        ]


# --- the predictor --------------------------------------------------------------------------


class Predictor:
    def __init__(
        self,
        models: ServesModels,
        metrics: ServingMetrics,
        sink: EventSubmitter,
        shadow: ShadowScorer,
        answers: AnswerMemory,
        traffic: Traffic,
        limits: ReadLimits | None = None,
        breakers: Breakers | None = None,
        experiments: RoutesExperiments | None = None,
    ) -> None:
        self._experiments = experiments
        self._models = models
        self._limits = limits or ReadLimits()
        self.breakers = breakers or Breakers(self._limits.breaker)
        self._pool: ThreadPoolExecutor | None = None
        self._metrics = metrics
        self._sink = sink
        self._shadow = shadow
        self._answers = answers
        self._canary_threshold = round(traffic.canary_percent * 100)
        self._shadow_on = traffic.shadow
        self._read_latency: dict[str, Histogram] = {}

    def route(self, request_id: str, client: str | None = None) -> Routing:
        """The answering model for ``request_id`` (asked by ``client``, the API key's name);
        ``NoModel`` before the first load."""
        began = time.perf_counter()
        state = self._models.state
        model = state.champion
        if model is None:
            raise NoModel("no model is loaded yet (see /health/ready for why)")
        active = None if self._experiments is None else self._experiments.active
        if active is not None:
            tag, model = active.route(request_id)
            self._metrics.experiment_requests.labels(tag.experiment, tag.arm).inc()
            return Routing(request_id, model, None, began, client, tag)
        challenger = state.challenger
        if (
            challenger is not None
            and self._canary_threshold
            and canary_bucket(request_id) < self._canary_threshold
        ):
            model = challenger
        shadow = challenger if self._shadow_on and model is not challenger else None
        return Routing(request_id, model, shadow, began, client)

    def predict(self, routing: Routing, ids: list[int]) -> PredictAnswer:
        """Rank ``ids`` (unique) with the routed model, best first (the read in this thread)."""
        model = routing.model
        per_version = self._metrics.version(model.version, model.alias)
        read = self._read(model, ids, per_version, self._fetch(model.reader, ids))
        return self._answer(routing, ids, read, per_version)

    async def predict_async(self, routing: Routing, ids: list[int]) -> PredictAnswer:
        """``predict`` for the event loop: the read runs in a bounded thread pool, through the
        store's circuit breaker (``model_serving.breaker``), within the deadline; past it, or
        while the breaker is open, ``OnlineStoreUnavailable`` at once (an abandoned read's
        thread finishes on its own, within the store's socket timeout)."""
        model = routing.model
        per_version = self._metrics.version(model.version, model.alias)
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self._limits.threads, "feature-read")
        breaker = self.breakers.of(model.reader)
        try:
            fetched = await breaker.call(
                self._pool, partial(self._fetch, model.reader, ids), self._limits.timeout_s
            )
        except BreakerOpen as exc:
            if breaker.is_open:
                breaker.probe(self._pool, model.reader.ping)
            self._metrics.feature_read_timeouts.inc()
            raise OnlineStoreUnavailable(f"online store unavailable (circuit {exc})") from None
        read = self._read(model, ids, per_version, fetched)
        return self._answer(routing, ids, read, per_version)

    def _answer(
        self, routing: Routing, ids: list[int], read: FeatureRead, per_version: VersionMetrics
    ) -> PredictAnswer:
        model = routing.model
        scored = [i for i in ids if i in read.rows] if len(read.rows) < len(ids) else ids
        ranking = self._rank(model, scored, read, per_version)
        ref = model_ref(model)
        self._answers.remember(
            routing.request_id, ref, [driver for driver, _ in ranking], routing.experiment
        )
        answer: PredictAnswer = {
            "request_id": routing.request_id,
            "best_driver_id": ranking[0][0],
            "scores": score_entries(ranking),
            "model": ref,
            "unknown_driver_ids": read.unknown,
            "stale_driver_ids": read.stale,
        }
        latency_ms = (time.perf_counter() - routing.began) * 1000
        record = PredictionRecord(
            routing.request_id,
            datetime.now(UTC),
            model,
            ranking,
            read,
            latency_ms,
            routing.client,
            routing.experiment,
        )
        self._emit(record, routing.shadow, scored)
        return answer

    # --- the steps ------------------------------------------------------------------------
    @staticmethod
    def _fetch(reader: FeatureReader, ids: list[int]) -> tuple[FeatureRead, float]:
        """The read and its duration (blocking I/O)."""
        began = time.perf_counter()
        try:
            read = reader.read(ids)
        except OnlineStoreError as exc:
            raise OnlineStoreUnavailable(str(exc)) from None
        return read, time.perf_counter() - began

    def _read(
        self,
        model: LoadedModel,
        ids: list[int],
        per_version: VersionMetrics,
        fetched: tuple[FeatureRead, float],
    ) -> FeatureRead:
        read, seconds = fetched
        self._read_histogram(model.reader.kind).observe(seconds)
        screen(read, model)
        if read.invalid:
            per_version.invalid.inc(len(read.invalid))
        if len(read.unknown) > len(read.invalid):
            per_version.unknown.inc(len(read.unknown) - len(read.invalid))
        if read.stale:
            per_version.stale.inc(len(read.stale))
        self._metrics.candidates.observe(len(ids))
        if not read.rows:
            per_version.no_scorable.inc()
            raise NoScorableCandidates(
                f"none of the {len(ids)} candidates can be scored: "
                f"{len(read.unknown)} unknown to the online store or with values the model "
                f"cannot take, {len(read.stale)} with features older than the feature view's TTL",
                {"unknown_driver_ids": read.unknown, "stale_driver_ids": read.stale},
            )
        return read

    def _rank(
        self, model: LoadedModel, ids: list[int], read: FeatureRead, per_version: VersionMetrics
    ) -> Ranking:
        rows = read.rows
        matrix = feature_matrix([rows[i] for i in ids], model.positions)
        began = time.perf_counter()
        try:
            scores = model.score(matrix)
        except Exception as exc:
            log.exception("model v%s failed to score", model.version)
            raise ModelFailed(f"model v{model.version} failed: {exc}") from None
        per_version.model_latency.observe(time.perf_counter() - began)
        ranking = rank(ids, scores)
        per_version.predictions.inc()
        per_version.best_score.observe(ranking[0][1])
        for _, value in ranking:
            per_version.scores.observe(value)
        return ranking

    def _read_histogram(self, kind: str) -> Histogram:
        found = self._read_latency.get(kind)
        if found is None:
            found = self._read_latency[kind] = self._metrics.feature_read_latency.labels(kind)
        return found

    # --- the event ------------------------------------------------------------------------
    def _emit(self, record: PredictionRecord, shadow: LoadedModel | None, ids: list[int]) -> None:
        if shadow is not None:
            done = partial(self._shadow_done, record, shadow)
            if self._shadow.submit(ShadowJob(shadow, record.model.reader, ids, record.read, done)):
                return
        self._sink.submit(events.PREDICTION, record.event)

    def _shadow_done(
        self, record: PredictionRecord, shadow: LoadedModel, ranking: Ranking | None
    ) -> None:
        """The shadow scorer's callback: the event, with the challenger's scores when it had
        some."""
        if ranking is None:
            self._sink.submit(events.PREDICTION, record.event)
            return
        scores = {
            "model": model_ref(shadow),
            "scores": score_entries(ranking),
            "best_driver_id": ranking[0][0],
        }
        self._sink.submit(events.PREDICTION, partial(record.event, scores))
