"""The serving process's parts, built once per app and started and stopped together: the model
manager (and its watcher thread), the feature binder, the event sink, the shadow scorer and the
API key ring (and its refresh thread), and the domain objects the routes call (predictor,
feedback recorder, readiness)."""

from __future__ import annotations

from dataclasses import dataclass, field

from mlops_common.events import serving as events
from mlops_common.experiment_store import ExperimentStore
from model_serving.answers import AnswerMemory
from model_serving.binding import FeatureBinder, StoreFactory
from model_serving.experiments import ExperimentRouter
from model_serving.feedback import FeedbackRecorder
from model_serving.keys import KeyRing, KeyStore
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
    #: the domain objects, built from the parts above
    predictor: Predictor = field(init=False)
    feedback: FeedbackRecorder = field(init=False)
    readiness: Readiness = field(init=False)
    keys: KeyRing = field(init=False)
    experiments: ExperimentRouter = field(init=False)

    def __post_init__(self) -> None:
        s = self.settings
        self.experiments = ExperimentRouter(
            self.manager,
            self.metrics,
            lambda: ExperimentStore.from_settings(s),
            s.serving_experiments_refresh_s,
        )
        self.predictor = Predictor(
            self.manager,
            self.metrics,
            self.sink,
            self.shadow,
            self.answers,
            Traffic.from_settings(s),
            ReadLimits.from_settings(s),
            experiments=self.experiments,
        )
        self.feedback = FeedbackRecorder(self.answers, self.metrics, self.sink)
        self.readiness = Readiness(s, self.manager.registry, self.sink, self.predictor.breakers.of)
        self.keys = KeyRing(
            s.serving_api_key.get_secret_value(),
            KeyStore.from_settings(s),
            s.serving_api_keys_refresh_s,
            self.metrics.api_keys_read,
        )

    @classmethod
    def build(cls, settings: ServingSettings, store_factory: StoreFactory) -> ServingService:
        metrics = ServingMetrics()
        binder = FeatureBinder(settings, store_factory)
        return cls(
            settings=settings,
            metrics=metrics,
            binder=binder,
            manager=ModelManager(settings, metrics, binder.bind),
            sink=event_sink(settings, metrics),
            shadow=ShadowScorer(metrics, settings.serving_shadow_queue),
            answers=AnswerMemory(
                settings.serving_request_memory, settings.serving_feedback_window_s
            ),
        )

    def start(self) -> None:
        self.keys.start()
        self.sink.start()
        self.shadow.start()
        self.manager.start()
        self.experiments.start()

    def stop(self) -> None:
        self.experiments.stop()
        self.manager.stop()
        self.shadow.stop()
        self.sink.stop()
        self.binder.close()
        self.keys.stop()


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
        wal=settings.events_wal_path,
    )
