"""Labels: the outcome of a booking this process answered, counted and handed to the event sink
with the model that answered it (no HTTP here).

Feedback is accepted only for a request id this process answered within the retention window
(``SERVING_FEEDBACK_WINDOW_S``) and for one of the drivers that answer ranked; anything else is
a ``FeedbackRejected`` with a stable ``reason``, counted in ``serving_feedback_rejected_total``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from mlops_common.events import serving as events
from model_serving.answers import Answer, AnswerMemory, ModelRef
from model_serving.metrics import ServingMetrics
from model_serving.sink import EventSubmitter

#: why feedback was refused (the error code of the answer and the metric's ``reason``)
UNKNOWN_REQUEST = "unknown_request"
EXPIRED = "expired"
NOT_A_CANDIDATE = "not_a_candidate"


class FeedbackRejected(Exception):
    """Feedback this service did not ask for; ``reason`` is stable and machine-readable."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason, self.message = reason, message


@dataclass(frozen=True)
class FeedbackRecorder:
    answers: AnswerMemory
    metrics: ServingMetrics
    sink: EventSubmitter

    def record(self, request_id: str, driver_id: int, trip_completed: bool) -> ModelRef:
        """Check, count and emit one label; returns the model that answered ``request_id``."""
        answer = self._check(request_id, driver_id)
        model = answer.model
        now = datetime.now(UTC)
        self.metrics.feedback.labels(str(trip_completed).lower(), model["version"]).inc()

        def build() -> events.FeedbackEvent:
            return events.FeedbackEvent(
                request_id=request_id,
                time=now,
                driver_id=driver_id,
                trip_completed=trip_completed,
                model=events.ModelRef.model_validate(model),
                experiment=answer.experiment,
            )

        self.sink.submit(events.FEEDBACK, build)
        return model

    def _check(self, request_id: str, driver_id: int) -> Answer:
        answer = self.answers.answer(request_id)
        if answer is None:
            raise self._rejected(
                UNKNOWN_REQUEST,
                f"request {request_id!r} was not answered by this service (or is no longer "
                f"remembered: the last {self.answers.limit} requests are)",
            )
        if self.answers.expired(answer):
            raise self._rejected(
                EXPIRED,
                f"request {request_id!r} was answered more than "
                f"{self.answers.window_s:g} s ago (the feedback window)",
            )
        if driver_id not in answer.drivers:
            raise self._rejected(
                NOT_A_CANDIDATE,
                f"driver {driver_id} is not one of the drivers ranked for request {request_id!r}",
            )
        return answer

    def _rejected(self, reason: str, message: str) -> FeedbackRejected:
        self.metrics.feedback_rejected.labels(reason).inc()
        return FeedbackRejected(reason, message)
