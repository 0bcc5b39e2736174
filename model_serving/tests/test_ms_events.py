"""The event schema (version 1): round trips through the stream encoding, and refusals."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

import pytest

from mlops_common.events import serving as events


def prediction() -> events.PredictionEvent:
    return events.PredictionEvent(
        request_id="booking-1",
        time=datetime(2024, 5, 1, 12, 0, tzinfo=timezone(timedelta(hours=2))),
        model=events.ModelRef(name="driver_ranking", version="3", alias="champion"),
        candidates=[
            events.ScoredCandidate(
                driver_id=2, score=0.9, features={"conv_rate": 0.5, "avg_daily_trips": 12}
            ),
            events.ScoredCandidate(driver_id=1, score=0.4, features={"conv_rate": None}),
        ],
        best_driver_id=2,
        unknown_driver_ids=[9],
        shadow=events.ShadowScores(
            model=events.ModelRef(name="driver_ranking", version="4", alias="challenger"),
            scores=[
                events.DriverScore(driver_id=1, score=0.7),
                events.DriverScore(driver_id=2, score=0.6),
            ],
            best_driver_id=1,
        ),
        latency_ms=1.5,
    )


def test_prediction_round_trip_through_stream_fields() -> None:
    event = prediction()
    fields = events.encode(event)
    assert set(fields) == {"type", "schema_version", "data"}
    assert fields["type"] == "prediction" and fields["schema_version"] == "2"
    raw = {k.encode(): v.encode() for k, v in fields.items()}  # as redis-py returns them
    back = events.decode(raw)
    assert back == event
    assert back.time.tzinfo == UTC and back.time.hour == 10  # normalised to UTC


def test_feedback_round_trip() -> None:
    event = events.FeedbackEvent(
        request_id="booking-1", time=datetime.now(UTC), driver_id=2, trip_completed=False
    )
    assert events.decode(events.encode(event)) == event


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"schema_version": "3"}, "schema_version: '3' is not a version this consumer knows"),
        ({"type": "other"}, "type: 'other' is neither"),
        ({"data": "{not json"}, "data: not JSON"),
        ({"data": json.dumps({"type": "prediction"})}, "request_id: Field required"),
    ],
)
def test_malformed_entries_are_refused_with_a_reason(change: dict[str, str], reason: str) -> None:
    fields = {**events.encode(prediction()), **change}
    with pytest.raises(events.MalformedEvent) as info:
        events.decode(fields)
    assert reason in info.value.reason


def test_type_mismatch_between_entry_and_data_is_refused() -> None:
    fields = events.encode(prediction())
    fields["type"] = "feedback"
    with pytest.raises(events.MalformedEvent, match="not an object of the entry's type"):
        events.decode(fields)


def test_naive_times_and_bad_ids_are_refused() -> None:
    with pytest.raises(ValueError, match="timezone"):
        events.FeedbackEvent(
            request_id="r", time=datetime(2024, 1, 1), driver_id=1, trip_completed=True
        )
    with pytest.raises(ValueError, match="greater than or equal to 1"):
        events.FeedbackEvent(
            request_id="r", time=datetime.now(UTC), driver_id=0, trip_completed=True
        )


def test_the_schema_is_versioned_and_frozen() -> None:
    assert events.SCHEMA_VERSION == 2
    event = prediction()
    with pytest.raises(ValueError, match="frozen"):
        event.request_id = "x"  # type: ignore[misc]
    schema = events.PredictionEvent.model_json_schema()
    assert schema["additionalProperties"] is False


def test_the_client_is_an_optional_field_of_the_prediction_event() -> None:
    old = events.encode(prediction())
    assert "client" not in json.loads(old["data"])  # absent: what a version-1 consumer knew
    assert events.decode(old).client is None
    named = prediction().model_copy(update={"client": "dispatcher"})
    assert events.decode(events.encode(named)).client == "dispatcher"
