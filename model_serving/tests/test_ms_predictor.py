"""The domain objects of a request with no HTTP: ``Predictor`` (route, feature read, score,
rank, emit, shadow), ``FeedbackRecorder``, ``AnswerMemory`` and ``Readiness``.

Fakes, and why: the feature reader is in memory (a ``FeatureReader`` whose rows are a dict, with
the real unknown/stale rule of the base class) and the models are plain functions wrapped in the
real ``LoadedModel``; the online store, MLflow and the model files are the contract tests'
business. The events go through the sink interface (``submit(kind, build)``) to a sink that
builds and encodes each one with the real schema (``events.encode``), and, in the last test, to
the real ``EventSink`` on the real Redis.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
import redis
from ms_fixtures import REDIS_URL, unique_name, wait_for

from mlops_common.events import serving as events
from model_serving.answers import AnswerMemory
from model_serving.features import (
    FeatureRead,
    FeatureReader,
    FeatureValue,
    OnlineStoreError,
    ServiceSpec,
    ViewSpec,
)
from model_serving.feedback import FeedbackRecorder, FeedbackRejected
from model_serving.lifecycle import RegistryStatus, ServingState
from model_serving.metrics import ServingMetrics
from model_serving.models import LoadedModel, Scorer
from model_serving.predictor import (
    ModelFailed,
    NoModel,
    NoScorableCandidates,
    OnlineStoreUnavailable,
    Predictor,
    Traffic,
    canary_bucket,
)
from model_serving.readiness import Readiness
from model_serving.settings import ServingSettings
from model_serving.shadow import ShadowScorer
from model_serving.sink import EventBuilder, EventSink

#: the service's features, in the order the reader returns them
SERVICE_FEATURES = ("trips", "rating", "acceptance")
#: the model's input columns: another order, and one feature left out
COLUMNS = ("acceptance", "trips")
TTL = 3600.0
NOW = time.time()


class MemoryReader(FeatureReader):
    """Rows of a dict: id -> (feature values in service order, event time)."""

    kind = "memory"

    def __init__(self, rows: dict[int, tuple[list[FeatureValue], float]]) -> None:
        super().__init__(
            ServiceSpec(
                name="svc",
                project="test",
                join_key="driver_id",
                views=(ViewSpec("stats", SERVICE_FEATURES, TTL),),
                entity_key_serialization_version=3,
            )
        )
        self.rows = rows
        self.down = False
        self.reads = 0

    def read(self, ids: Sequence[int], now: float | None = None) -> FeatureRead:
        self.reads += 1
        if self.down:
            raise OnlineStoreError("online store (memory) unavailable: switched off")
        out = FeatureRead()
        for entity in ids:
            values, stamp = self.rows.get(entity, ([None] * len(SERVICE_FEATURES), 0.0))
            self._classify(out, entity, list(values), [stamp or None], NOW)
        return out

    def ping(self) -> str:
        if self.down:
            raise OnlineStoreError("online store (memory) unavailable: switched off")
        return "memory answers"


def by_trips(matrix: np.ndarray) -> np.ndarray:
    """A model: more trips, better (column 1 of COLUMNS)."""
    return np.asarray(matrix[:, 1] / 100.0, dtype=np.float64)


def by_acceptance(matrix: np.ndarray) -> np.ndarray:
    return np.asarray(matrix[:, 0], dtype=np.float64)


def model(
    reader: FeatureReader, scorer: Scorer = by_trips, version: str = "1", alias: str = "champion"
) -> LoadedModel:
    return LoadedModel(
        name="ranker",
        version=version,
        alias=alias,
        flavor="test",
        scorer_kind="function",
        columns=COLUMNS,
        column_types=("double", "double"),
        feature_service="svc",
        source="registry",
        path=Path("/nonexistent"),
        run_id=None,
        loaded_at=datetime.now(UTC),
        load_seconds=0.0,
        scorer=scorer,
        positions=tuple(SERVICE_FEATURES.index(c) for c in COLUMNS),
        reader=reader,
    )


class Models:
    """What the predictor reads the serving state from (the model manager)."""

    def __init__(self, state: ServingState) -> None:
        self.state = state


class EncodingSink:
    """The sink interface, building and encoding every event at once with the real schema."""

    def __init__(self) -> None:
        self.encoded: list[dict[str, str]] = []

    def submit(self, kind: str, build: EventBuilder) -> bool:
        event = build()
        assert event.type == kind
        self.encoded.append(events.encode(event))
        return True

    def events(self) -> list[events.Event]:
        return [events.decode(fields) for fields in self.encoded]


class World:
    def __init__(self, traffic: Traffic | None = None, shadow_capacity: int = 100) -> None:
        self.reader = MemoryReader(
            {
                1: ([10, 4.5, 0.9], NOW - 60),
                2: ([30, 4.0, 0.5], NOW - 60),
                3: ([20, 4.8, 0.7], NOW - 120),
                4: ([50, 3.0, 0.1], NOW - 2 * TTL),  # stale
            }
        )
        self.champion = model(self.reader)
        self.models = Models(ServingState(champion=self.champion))
        self.metrics = ServingMetrics()
        self.sink = EncodingSink()
        self.shadow = ShadowScorer(self.metrics, shadow_capacity)
        self.answers = AnswerMemory(100)
        self.predictor = Predictor(
            self.models, self.metrics, self.sink, self.shadow, self.answers, traffic or Traffic()
        )

    def with_challenger(self, scorer: Scorer = by_acceptance) -> LoadedModel:
        challenger = model(self.reader, scorer, version="2", alias="challenger")
        self.models.state = ServingState(champion=self.champion, challenger=challenger)
        return challenger

    def metric(self, name: str, **labels: str) -> float:
        value = self.metrics.registry.get_sample_value(name, labels)
        return 0.0 if value is None else value


@pytest.fixture
def world() -> Iterator[World]:
    made = World()
    yield made
    made.shadow.stop()


def test_ranks_the_candidates_remembers_and_emits_the_exact_model_inputs(world: World) -> None:
    routing = world.predictor.route("booking-1")
    answer = world.predictor.predict(routing, [1, 2, 3])
    assert answer["request_id"] == "booking-1"
    assert [s["driver_id"] for s in answer["scores"]] == [2, 3, 1]  # most trips first
    assert [s["score"] for s in answer["scores"]] == [0.3, 0.2, 0.1]
    assert answer["best_driver_id"] == 2
    assert answer["model"] == {"name": "ranker", "version": "1", "alias": "champion"}
    assert answer["unknown_driver_ids"] == [] and answer["stale_driver_ids"] == []
    assert world.answers.recall("booking-1") == answer["model"]
    [event] = world.sink.events()
    assert isinstance(event, events.PredictionEvent)
    assert event.request_id == "booking-1" and event.model.version == "1"
    assert [(c.driver_id, c.score) for c in event.candidates] == [(2, 0.3), (3, 0.2), (1, 0.1)]
    # the model's columns, by name, from the service's rows (not the service's order)
    assert event.candidates[0].features == {"acceptance": 0.5, "trips": 30}
    assert event.candidates[1].feature_time == datetime.fromtimestamp(NOW - 120, tz=UTC)
    assert event.shadow is None and event.latency_ms is not None and event.latency_ms > 0
    assert world.metric("serving_predictions_total", model_version="1", alias="champion") == 1
    assert world.metric("serving_prediction_score_count", model_version="1") == 3
    assert world.metric("serving_feature_read_duration_seconds_count", reader="memory") == 1


def test_unknown_and_stale_candidates_are_reported_and_left_out(world: World) -> None:
    answer = world.predictor.predict(world.predictor.route("r"), [4, 1, 99])
    assert [s["driver_id"] for s in answer["scores"]] == [1]
    assert answer["unknown_driver_ids"] == [99] and answer["stale_driver_ids"] == [4]
    [event] = world.sink.events()
    assert isinstance(event, events.PredictionEvent)
    assert event.unknown_driver_ids == [99] and event.stale_driver_ids == [4]
    labels = {"model_version": "1"}
    assert world.metric("serving_unscorable_drivers_total", reason="unknown", **labels) == 1
    assert world.metric("serving_unscorable_drivers_total", reason="stale", **labels) == 1


def test_corrupt_or_non_numeric_rows_are_left_out_like_unknown_ones(world: World) -> None:
    world.reader.rows[5] = (["lots", 4.0, 0.5], NOW - 60)  # a string where a number belongs
    world.reader.rows[6] = ([20, 4.0, b"\x00\xff"], NOW - 60)  # type: ignore[list-item]
    answer = world.predictor.predict(world.predictor.route("r"), [5, 1, 6])
    assert [s["driver_id"] for s in answer["scores"]] == [1]
    assert answer["unknown_driver_ids"] == [5, 6]
    labels = {"model_version": "1"}
    assert world.metric("serving_unscorable_drivers_total", reason="invalid", **labels) == 2
    [event] = world.sink.events()
    assert isinstance(event, events.PredictionEvent) and event.unknown_driver_ids == [5, 6]


def test_a_missing_value_is_left_out_only_for_a_model_that_refuses_nan(world: World) -> None:
    world.reader.rows[7] = ([None, 4.0, 0.5], NOW - 60)  # trips missing
    answer = world.predictor.predict(world.predictor.route("r"), [7, 1])
    assert {s["driver_id"] for s in answer["scores"]} == {1, 7}  # NaN is fine for this one
    strict = replace(world.champion, accepts_missing=False)
    world.models.state = ServingState(champion=strict)
    answer = world.predictor.predict(world.predictor.route("r2"), [7, 1])
    assert [s["driver_id"] for s in answer["scores"]] == [1]
    assert answer["unknown_driver_ids"] == [7]
    with pytest.raises(NoScorableCandidates) as caught:
        world.predictor.predict(world.predictor.route("r3"), [7])
    assert caught.value.details == {"unknown_driver_ids": [7], "stale_driver_ids": []}


def test_no_scorable_candidate_names_them_and_emits_nothing(world: World) -> None:
    with pytest.raises(NoScorableCandidates, match="none of the 2 candidates") as caught:
        world.predictor.predict(world.predictor.route("r"), [4, 99])
    assert caught.value.code == "no_scorable_candidates"
    assert caught.value.details == {"unknown_driver_ids": [99], "stale_driver_ids": [4]}
    assert world.sink.encoded == [] and world.answers.recall("r") is None
    assert world.metric("serving_no_scorable_candidates_total", model_version="1") == 1


def test_no_model_yet(world: World) -> None:
    world.models.state = ServingState()
    with pytest.raises(NoModel, match="no model is loaded yet") as caught:
        world.predictor.route("r")
    assert caught.value.code == "no_model"


def test_online_store_down(world: World) -> None:
    world.reader.down = True
    with pytest.raises(OnlineStoreUnavailable, match="switched off"):
        world.predictor.predict(world.predictor.route("r"), [1])
    assert world.sink.encoded == []


def test_a_failing_model_is_a_model_error(world: World) -> None:
    def broken(matrix: np.ndarray) -> np.ndarray:
        raise ValueError("bad input")

    world.models.state = ServingState(champion=model(world.reader, broken))
    with pytest.raises(ModelFailed, match="model v1 failed: bad input") as caught:
        world.predictor.predict(world.predictor.route("r"), [1])
    assert caught.value.code == "model_error"


def test_canary_routes_a_sticky_share_of_request_ids_to_the_challenger() -> None:
    world = World(Traffic(canary_percent=30))
    assert world.predictor.route("r").model is world.champion  # no challenger: the champion
    challenger = world.with_challenger()
    chosen = {f"r-{i}": world.predictor.route(f"r-{i}").model for i in range(2000)}
    share = sum(m is challenger for m in chosen.values()) / len(chosen)
    assert abs(share - 0.30) < 0.05
    for request_id, answered_by in chosen.items():
        assert (answered_by is challenger) == (canary_bucket(request_id) < 3000)
        assert world.predictor.route(request_id).model is answered_by  # sticky
    routing = world.predictor.route(next(r for r, m in chosen.items() if m is challenger))
    answer = world.predictor.predict(routing, [1, 2, 3])
    assert answer["model"]["alias"] == "challenger"
    assert answer["best_driver_id"] == 1  # the challenger's ranking: best acceptance


def test_shadow_scores_with_the_challenger_off_the_request_path() -> None:
    world = World(Traffic(shadow=True))
    world.with_challenger()
    world.shadow.start()
    try:
        answer = world.predictor.predict(world.predictor.route("s"), [1, 2, 3])
        assert answer["model"]["version"] == "1"
        assert world.shadow.drain(5)
    finally:
        world.shadow.stop()
    [event] = world.sink.events()
    assert isinstance(event, events.PredictionEvent) and event.shadow is not None
    assert event.model.version == "1"
    assert event.shadow.model.version == "2" and event.shadow.model.alias == "challenger"
    assert [(s.driver_id, s.score) for s in event.shadow.scores] == [(1, 0.9), (3, 0.7), (2, 0.5)]
    assert event.shadow.best_driver_id == 1
    assert world.reader.reads == 1  # the same feature service: the request's read is re-used


def test_shadow_queue_full_or_failing_still_emits_the_event() -> None:
    world = World(Traffic(shadow=True), shadow_capacity=1)

    def broken(matrix: np.ndarray) -> np.ndarray:
        raise ValueError("challenger broken")

    world.with_challenger(broken)
    world.predictor.predict(world.predictor.route("first"), [1])  # queued (scorer not started)
    world.predictor.predict(world.predictor.route("second"), [2])  # queue full
    assert [e.request_id for e in world.sink.events()] == ["second"]
    assert world.metric("serving_shadow_predictions_total", outcome="skipped_queue_full") == 1
    world.shadow.start()
    try:
        assert world.shadow.drain(5)
    finally:
        world.shadow.stop()
    first = world.sink.events()[1]
    assert isinstance(first, events.PredictionEvent)
    assert first.request_id == "first" and first.shadow is None
    assert world.metric("serving_shadow_predictions_total", outcome="failed") == 1


def test_feedback_carries_the_model_that_answered(world: World) -> None:
    recorder = FeedbackRecorder(world.answers, world.metrics, world.sink)
    world.predictor.predict(world.predictor.route("booking-7"), [1, 2])
    assert recorder.record("booking-7", 2, True) == {
        "name": "ranker",
        "version": "1",
        "alias": "champion",
    }
    [first] = world.sink.events()[1:]
    assert isinstance(first, events.FeedbackEvent)
    assert (first.request_id, first.driver_id, first.trip_completed) == ("booking-7", 2, True)
    assert first.model is not None and first.model.version == "1"
    assert world.metric("serving_feedback_total", trip_completed="true", model_version="1") == 1


@pytest.mark.parametrize(
    ("request_id", "driver_id", "reason"),
    [
        ("never-answered", 1, "unknown_request"),
        ("booking-8", 3, "not_a_candidate"),  # asked for, but not among the request's drivers
        ("booking-8", 4, "not_a_candidate"),  # stale: asked for, but not scored
    ],
)
def test_feedback_is_refused_unless_served_and_for_a_candidate(
    world: World, request_id: str, driver_id: int, reason: str
) -> None:
    recorder = FeedbackRecorder(world.answers, world.metrics, world.sink)
    world.predictor.predict(world.predictor.route("booking-8"), [1, 2, 4])
    with pytest.raises(FeedbackRejected) as info:
        recorder.record(request_id, driver_id, False)
    assert info.value.reason == reason and request_id in info.value.message
    assert world.metric("serving_feedback_rejected_total", reason=reason) == 1
    assert [e.type for e in world.sink.events()] == ["prediction"]  # no feedback event


def test_feedback_after_the_retention_window_is_refused(world: World) -> None:
    clock = [1000.0]
    world.answers = AnswerMemory(100, window_s=60, clock=lambda: clock[0])
    world.predictor = Predictor(
        world.models, world.metrics, world.sink, world.shadow, world.answers, Traffic()
    )
    recorder = FeedbackRecorder(world.answers, world.metrics, world.sink)
    world.predictor.predict(world.predictor.route("booking-9"), [1, 2])
    clock[0] += 59
    assert recorder.record("booking-9", 1, True) is not None
    clock[0] += 2
    with pytest.raises(FeedbackRejected) as info:
        recorder.record("booking-9", 1, True)
    assert info.value.reason == "expired" and "60" in info.value.message
    assert world.metric("serving_feedback_rejected_total", reason="expired") == 1


def test_answer_memory_forgets_the_oldest_first() -> None:
    memory = AnswerMemory(2)
    ref = {"name": "m", "version": "1", "alias": "champion"}
    for request_id in ("a", "b", "c"):
        memory.remember(request_id, ref)  # type: ignore[arg-type]
    assert memory.recall("a") is None and memory.recall("c") == ref and len(memory) == 2
    off = AnswerMemory(0)
    off.remember("a", ref)  # type: ignore[arg-type]
    assert off.recall("a") is None


def test_readiness_says_why(tmp_path: Path) -> None:
    settings = ServingSettings(mlops_data_dir=tmp_path, serving_api_key="k")
    registry = RegistryStatus()
    sink = EventSink("", {}, bound=10, maxlen=1000, metrics=ServingMetrics())
    readiness = Readiness(settings, registry, sink)
    ok, checks = readiness.check(ServingState())
    assert not ok and "no version has the alias 'champion'" in checks["model"]["detail"]
    assert checks["registry"]["detail"] == "not asked yet" and "online_store" not in checks
    registry.reachable, registry.last_error = False, "connection refused"
    assert "registry unreachable" in readiness.check(ServingState())[1]["model"]["detail"]
    reader = MemoryReader({})
    ok, checks = readiness.check(ServingState(champion=model(reader)))
    assert ok and checks["online_store"] == {"ok": True, "detail": "memory answers"}
    assert (
        checks["registry"]["ok"] is False and "connection refused" in checks["registry"]["detail"]
    )
    reader.down = True
    ok, checks = readiness.check(ServingState(champion=model(reader)))
    assert not ok and checks["online_store"]["ok"] is False


@pytest.mark.integration
def test_with_the_real_event_sink_on_redis(world: World) -> None:
    """The same predictor with the service's own sink: the event lands in the Redis stream."""
    stream = unique_name("ms_test_predictor")
    client = redis.Redis.from_url(REDIS_URL)
    sink = EventSink(
        REDIS_URL, {events.PREDICTION: stream}, bound=100, maxlen=1000, metrics=world.metrics
    )
    predictor = Predictor(world.models, world.metrics, sink, world.shadow, world.answers, Traffic())
    sink.start()
    try:
        predictor.predict(predictor.route("booking-redis"), [3, 1])
        assert wait_for(lambda: client.xlen(stream) == 1, 10)
        [(_, fields)] = client.xrange(stream)
        event = events.decode(fields)
        assert isinstance(event, events.PredictionEvent)
        assert event.request_id == "booking-redis" and event.best_driver_id == 3
    finally:
        sink.stop()
        client.delete(stream)
        client.close()
