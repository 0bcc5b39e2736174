"""Prediction and feedback events: the one schema (version 2) of what the serving API did.

The serving API (producer) and the monitoring service (consumer) both import this module;
nothing else defines the events.

Two Redis streams (names in ``ServingSettings``; defaults ``mlops:serving:predictions`` and
``mlops:serving:feedback``). A stream entry is a flat map of strings with three fields:

==============  ===============================================================================
field           meaning
==============  ===============================================================================
type            ``prediction`` or ``feedback``
schema_version  ``"2"`` (``"1"`` is still read); a consumer refuses versions it does not know
data            the event as JSON (the models below), UTF-8
==============  ===============================================================================

``PredictionEvent``: one per answered ``POST /v1/predict``: request id, time, the model (name,
version, alias) that answered, the feature values it used per scored driver, every score (best
first), the chosen driver, the candidates it could not score (unknown to the online store, or
with features older than the feature view's TTL), with shadow scoring on the challenger's
scores of the same candidates, and ``client``: the name of the API key that asked (optional,
added to version 1; absent from the data when unknown).

``FeedbackEvent``: one per accepted ``POST /v1/feedback``: the booking's request id, the driver
and whether the trip was completed; ``model`` is the model that answered that request (serving
accepts feedback only for a request it answered, within its retention window, and one of that
answer's ranked drivers; null only in events of older producers).

Version 2 (experiments, ``mlops_common.experiments``): a prediction and its feedback carry
``experiment`` (experiment, arm, what the assignment hashed) when an experiment routed the
request, and ``model.alias`` is any alias (an experiment arm's model is served under the arm's
alias, or ``experiment`` for an arm that names a version); version-1 events still decode (no
experiment, alias champion or challenger).

Versioning: a change that a version-1 consumer could misread (a renamed, removed or re-typed
field) is a new ``schema_version``. Adding an optional field is not.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from mlops_common.events.codec import MalformedEvent, UtcDatetime, describe, strict_text
from mlops_common.experiments import ExperimentTag

SCHEMA_VERSION: Literal[2] = 2
#: the versions ``decode`` reads
READABLE_VERSIONS = ("1", "2")
PREDICTION: Literal["prediction"] = "prediction"
FEEDBACK: Literal["feedback"] = "feedback"

DEFAULT_PREDICTION_STREAM = "mlops:serving:predictions"
DEFAULT_FEEDBACK_STREAM = "mlops:serving:feedback"

Role = Annotated[str, Field(min_length=1, max_length=64)]
FeatureValue = float | int | str | bool | None


__all__ = [
    "FEEDBACK",
    "PREDICTION",
    "SCHEMA_VERSION",
    "DriverScore",
    "Event",
    "FeedbackEvent",
    "MalformedEvent",
    "ModelRef",
    "PredictionEvent",
    "ScoredCandidate",
    "ShadowScores",
    "decode",
    "encode",
]

DriverId = Annotated[int, Field(ge=1, le=2**63 - 1)]

_frozen = ConfigDict(frozen=True, extra="forbid")


class ModelRef(BaseModel):
    """A registered model version and the alias it was served under."""

    model_config = _frozen

    name: str
    version: str
    alias: Role


class DriverScore(BaseModel):
    model_config = _frozen

    driver_id: DriverId
    score: float


class ScoredCandidate(BaseModel):
    """A scored candidate with the feature values the model saw (model input columns)."""

    model_config = _frozen

    driver_id: DriverId
    score: float
    features: dict[str, FeatureValue]
    #: event time of the candidate's features in the online store
    feature_time: UtcDatetime | None = None


class ShadowScores(BaseModel):
    """The challenger's scores of the same candidates, computed off the request path."""

    model_config = _frozen

    model: ModelRef
    scores: list[DriverScore]
    best_driver_id: DriverId


class _EventHead(BaseModel):
    """The fields every serving event starts with (each event narrows ``type``)."""

    model_config = _frozen

    type: str
    schema_version: Literal[1, 2] = SCHEMA_VERSION
    request_id: str
    time: UtcDatetime


class PredictionEvent(_EventHead):
    type: Literal["prediction"] = PREDICTION
    model: ModelRef
    #: every scored candidate, best first
    candidates: list[ScoredCandidate]
    best_driver_id: DriverId
    unknown_driver_ids: list[DriverId] = []
    stale_driver_ids: list[DriverId] = []
    shadow: ShadowScores | None = None
    #: the whole request as measured by the service, milliseconds
    latency_ms: float | None = None
    #: the name of the API key that asked (added to version 1: optional, left out of the
    #: encoding when unknown, so such an event is exactly what a consumer that predates it reads)
    client: str | None = Field(default=None, exclude_if=lambda value: value is None)
    #: the experiment that routed the request (version 2; absent when none did)
    experiment: ExperimentTag | None = Field(default=None, exclude_if=lambda value: value is None)


class FeedbackEvent(_EventHead):
    type: Literal["feedback"] = FEEDBACK
    driver_id: DriverId
    trip_completed: bool
    model: ModelRef | None = None
    #: the experiment that routed the answered request (version 2; absent when none did)
    experiment: ExperimentTag | None = Field(default=None, exclude_if=lambda value: value is None)


Event = PredictionEvent | FeedbackEvent


def encode(event: Event) -> dict[str, str]:
    """The Redis stream fields of an event (every value a string)."""
    return {
        "type": event.type,
        "schema_version": str(event.schema_version),
        "data": event.model_dump_json(),
    }


def decode(fields: Mapping[Any, Any]) -> Event:
    """Parse a stream entry's fields (bytes or str); raise ``MalformedEvent`` naming the
    problem for anything that is not a version-1 or version-2 prediction or feedback event."""
    text = strict_text(fields)
    kind, version, data = text.get("type"), text.get("schema_version"), text.get("data")
    if version not in READABLE_VERSIONS:
        raise MalformedEvent(f"schema_version: {version!r} is not a version this consumer knows")
    model: type[PredictionEvent] | type[FeedbackEvent]
    if kind == PREDICTION:
        model = PredictionEvent
    elif kind == FEEDBACK:
        model = FeedbackEvent
    else:
        raise MalformedEvent(f"type: {kind!r} is neither {PREDICTION!r} nor {FEEDBACK!r}")
    if data is None:
        raise MalformedEvent("data: missing")
    try:
        payload = json.loads(data)
    except ValueError as exc:
        raise MalformedEvent(f"data: not JSON ({exc})") from None
    if not isinstance(payload, dict) or payload.get("type", kind) != kind:
        raise MalformedEvent("data: not an object of the entry's type")
    payload.setdefault("schema_version", int(version))
    try:
        event = model.model_validate(payload)
    except ValidationError as exc:
        raise MalformedEvent(describe(exc)) from None
    if str(event.schema_version) != version:
        raise MalformedEvent(
            f"schema_version: entry says {version}, data says {event.schema_version}"
        )
    if version == "1" and event.experiment is not None:
        raise MalformedEvent("experiment: not a field of schema version 1")
    return event
