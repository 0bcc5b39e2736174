"""The serving process's parts, built once per app and started and stopped together: the model
manager (and its watcher thread), the feature binder, the event sink and the shadow scorer, and
the domain objects the routes call (predictor, feedback recorder, readiness)."""

from __future__ import annotations

from dataclasses import dataclass

from mlops_common.events import serving as events
from model_serving.answers import AnswerMemory
from model_serving.binding import FeatureBinder, StoreFactory
from model_serving.feedback import FeedbackRecorder
from model_serving.lifecycle import ModelManager
from model_serving.metrics import ServingMetrics
from model_serving.predictor import Predictor, ReadLimits, Traffic
from model_serving.readiness import Readiness
from model_serving.settings import ServingSettings
from model_serving.shadow import ShadowScorer
from model_serving.sink import EventSink


@dataclass
class ServingService:
    settings: ServingSettings
    metrics: ServingMetrics
    binder: FeatureBinder
    manager: ModelManager
    sink: EventSink
    shadow: ShadowScorer
    answers: AnswerMemory
    predictor: Predictor
    feedback: FeedbackRecorder
    readiness: Readiness

    @classmethod
    def build(cls, settings: ServingSettings, store_factory: StoreFactory) -> ServingService:
        metrics = ServingMetrics()
        binder = FeatureBinder(settings, store_factory)
        manager = ModelManager(settings, metrics, binder.bind)
        sink = event_sink(settings, metrics)
        shadow = ShadowScorer(metrics, settings.serving_shadow_queue)
        answers = AnswerMemory(settings.serving_request_memory)
        return cls(
            settings=settings,
            metrics=metrics,
            binder=binder,
            manager=manager,
            sink=sink,
            shadow=shadow,
            answers=answers,
            predictor=Predictor(
                manager,
                metrics,
                sink,
                shadow,
                answers,
                Traffic.from_settings(settings),
                ReadLimits.from_settings(settings),
            ),
            feedback=FeedbackRecorder(answers, metrics, sink),
            readiness=Readiness(settings, manager.registry, sink),
        )

    def start(self) -> None:
        self.sink.start()
        self.shadow.start()
        self.manager.start()

    def stop(self) -> None:
        self.manager.stop()
        self.shadow.stop()
        self.sink.stop()
        self.binder.close()


def event_sink(settings: ServingSettings, metrics: ServingMetrics) -> EventSink:
    return EventSink(
        settings.events_redis_url,
        {
            events.PREDICTION: settings.serving_events_prediction_stream,
            events.FEEDBACK: settings.serving_events_feedback_stream,
        },
        bound=settings.serving_events_buffer,
        maxlen=settings.serving_events_stream_maxlen,
        metrics=metrics,
    )
