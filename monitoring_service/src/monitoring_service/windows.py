"""Windows: which predictions are evaluated together, and when.

One open window per model version (the version that answered, from the prediction event's
``model``): a champion swap or a canary never mixes two models (and two references) in one
window. Times are **event times** (the prediction's ``time``), so a window means the same thing
whether its events are read live or replayed after an outage.

- A window opens with its first prediction (``opened_at`` = that prediction's time).
- It closes when it holds ``size`` predictions (reason ``count``), or when its span
  ``seconds`` has elapsed (reason ``time``): either a prediction arrives dated at or after
  ``opened_at + seconds`` (it opens the next window), or the consumer is caught up with the
  streams (its watermark: every event written before it has been read) past that instant.
  The watermark only advances while the consumer is caught up, so a backlog being replayed
  after downtime closes windows by event time, not by the wall clock.
- Labels count for the window's quality when the feedback's time is at most ``label_grace_s``
  after the window's last prediction (``label_deadline``). Quality is computed once the
  watermark has passed the deadline plus ``slack_s`` (``MONITORING_LABEL_SLACK_S``, default 5 s:
  events still in serving's sink buffer); a label arriving later is counted as late and does
  not change the window.

States: ``open`` → ``closed`` (drift pending) → ``drifted`` (drift computed, quality waits for
the deadline) → ``final``. With ``label_grace_s = 0`` drift and quality are computed together.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, Literal

State = Literal["open", "closed", "drifted", "final"]
CloseReason = Literal["count", "time"]

#: seconds an event may spend in serving's sink buffer before it is written to the stream
SINK_SLACK_S = 5.0
#: ``Window.summary``'s names of the fields it does not show under their own
SUMMARY_NAMES = {"first_time": "first_prediction_time", "last_time": "last_prediction_time"}


@dataclass(frozen=True)
class WindowPolicy:
    size: int
    seconds: float
    label_grace_s: float
    slack_s: float = SINK_SLACK_S

    def full(self, predictions: int) -> bool:
        return predictions >= self.size

    def ends_at(self, opened_at: float) -> float:
        return opened_at + self.seconds

    def starts_next(self, opened_at: float, event_time: float) -> bool:
        """A prediction dated here belongs to the next window."""
        return event_time >= self.ends_at(opened_at)

    def expired(self, opened_at: float, watermark: float | None) -> bool:
        return watermark is not None and watermark >= self.ends_at(opened_at)

    def label_deadline(self, last_time: float) -> float:
        return last_time + self.label_grace_s

    def quality_due(self, deadline: float, watermark: float | None) -> bool:
        return watermark is not None and watermark >= deadline + self.slack_s


@dataclass(frozen=True)
class Window:
    window_id: int
    model_name: str
    model_version: str
    state: State
    opened_at: float
    first_time: float
    last_time: float
    predictions: int
    rows: int
    closed_at: float | None
    close_reason: str | None
    label_deadline: float | None
    drift: dict[str, Any] | None
    quality: dict[str, Any] | None
    notes: dict[str, Any]

    def summary(self) -> dict[str, Any]:
        """Every field in order, the prediction times under their public names."""
        return {SUMMARY_NAMES.get(f.name, f.name): getattr(self, f.name) for f in fields(self)}
