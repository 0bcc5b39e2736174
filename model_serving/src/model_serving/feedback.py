"""Labels: the outcome of a booking, with the model that answered it when this process
remembers, counted and handed to the event sink (no HTTP here)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from mlops_common.events import serving as events
from model_serving.answers import AnswerMemory, ModelRef
from model_serving.metrics import NO_MODEL, ServingMetrics
from model_serving.sink import EventSubmitter


@dataclass(frozen=True)
class FeedbackRecorder:
    answers: AnswerMemory
    metrics: ServingMetrics
    sink: EventSubmitter

    def record(self, request_id: str, driver_id: int, trip_completed: bool) -> ModelRef | None:
        """Count and emit one label; returns the model that answered ``request_id``, if known."""
        model = self.answers.recall(request_id)
        now = datetime.now(UTC)
        version = model["version"] if model else NO_MODEL
        self.metrics.feedback.labels(str(trip_completed).lower(), version).inc()

        def build() -> events.FeedbackEvent:
            return events.FeedbackEvent(
                request_id=request_id,
                time=now,
                driver_id=driver_id,
                trip_completed=trip_completed,
                model=events.ModelRef.model_validate(model) if model else None,
            )

        self.sink.submit(events.FEEDBACK, build)
        return model
