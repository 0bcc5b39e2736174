"""The driver statistics event schema: round trip and every way an entry can be malformed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from pydantic import ValidationError

from mlops_common.events.driver_stats import (
    FEATURES,
    FIELDS,
    SCHEMA_VERSION,
    DriverStatsEvent,
    MalformedEvent,
    decode,
    format_timestamp,
)

AT = datetime(2024, 3, 1, 12, 30, 15, 250_000, tzinfo=UTC)


def make_event(**overrides: Any) -> DriverStatsEvent:
    values: dict[str, Any] = {
        "event_id": "p-1:17",
        "driver_id": 1001,
        "event_timestamp": AT,
        "conv_rate": 0.4321,
        "acc_rate": 0.9,
        "avg_daily_trips": 14,
        "rating": 4.75,
        "cancel_rate": 0.0812,
        "produced_at": AT + timedelta(milliseconds=3),
    }
    values.update(overrides)
    return DriverStatsEvent(**values)


def encoded(**overrides: str | None) -> dict[str, str]:
    """The fields of a valid event with some replaced (None: removed)."""
    fields = make_event().encode()
    for name, value in overrides.items():
        if value is None:
            fields.pop(name, None)
        else:
            fields[name] = value
    return fields


def test_round_trip_through_stream_fields() -> None:
    event = make_event()
    fields = event.encode()
    assert list(fields) == list(FIELDS)
    assert all(isinstance(v, str) for v in fields.values())
    assert fields["schema_version"] == "1" and SCHEMA_VERSION == 1
    assert fields["event_timestamp"] == "2024-03-01T12:30:15.250000Z"
    assert decode(fields) == event


def test_decode_accepts_the_bytes_redis_returns() -> None:
    event = make_event(conv_rate=0.1 + 0.2)  # a float whose shortest repr is long
    raw = {k.encode(): v.encode() for k, v in event.encode().items()}
    decoded = decode(raw)
    assert decoded == event
    assert decoded.conv_rate == 0.1 + 0.2


def test_timestamps_are_normalised_to_utc() -> None:
    plus_two = timezone(timedelta(hours=2))
    event = decode(encoded(event_timestamp="2024-03-01T14:30:15.25+02:00"))
    assert event.event_timestamp == AT
    assert event.event_timestamp.utcoffset() == timedelta(0)
    direct = make_event(event_timestamp=AT.astimezone(plus_two))
    assert direct.event_timestamp.tzinfo == UTC
    assert format_timestamp(AT.astimezone(plus_two)) == "2024-03-01T12:30:15.250000Z"


def test_boundary_values_are_valid() -> None:
    for fields in (
        encoded(conv_rate="0", acc_rate="1", cancel_rate="0.0", rating="1", avg_daily_trips="0"),
        encoded(rating="5.0", conv_rate="1.0", acc_rate="0", cancel_rate="1e0"),
        encoded(driver_id="9223372036854775807"),
    ):
        decode(fields)


def test_features_in_feature_view_order() -> None:
    assert list(make_event().features()) == list(FEATURES)


MALFORMED: dict[str, tuple[dict[str, str | None], str]] = {
    # schema version
    "no version": ({"schema_version": None}, "schema_version: missing"),
    "future version": ({"schema_version": "2"}, "unsupported version '2'"),
    "version not a number": ({"schema_version": "one"}, "unsupported version 'one'"),
    # structure
    "missing feature": ({"rating": None}, "missing field(s): rating"),
    "missing id": ({"event_id": None}, "missing field(s): event_id"),
    "missing timestamp": ({"event_timestamp": None}, "missing field(s): event_timestamp"),
    "unknown field": ({"surge": "1.2"}, "unknown field(s): surge"),
    # event id
    "empty event id": ({"event_id": ""}, "event_id"),
    "event id with space": ({"event_id": "a b"}, "event_id"),
    "event id too long": ({"event_id": "x" * 201}, "event_id"),
    # driver id
    "driver id text": ({"driver_id": "abc"}, "driver_id: 'abc' is not an integer"),
    "driver id fraction": ({"driver_id": "1001.5"}, "driver_id: '1001.5' is not an integer"),
    "driver id zero": ({"driver_id": "0"}, "driver_id: Input should be greater than or equal to 1"),
    "driver id negative": ({"driver_id": "-7"}, "driver_id"),
    "driver id too big": ({"driver_id": str(2**63)}, "driver_id"),
    # numbers
    "rate not a number": ({"conv_rate": "n/a"}, "conv_rate: 'n/a' is not a decimal number"),
    "rate empty": ({"acc_rate": ""}, "acc_rate: '' is not a decimal number"),
    "rate nan": ({"conv_rate": "nan"}, "conv_rate: 'nan' is not a decimal number"),
    "rate inf": ({"cancel_rate": "inf"}, "cancel_rate: 'inf' is not a decimal number"),
    "rate overflow": ({"cancel_rate": "1e400"}, "cancel_rate: '1e400' is not a finite number"),
    "rate underscores": ({"conv_rate": "0_5"}, "conv_rate"),
    "conv above 1": ({"conv_rate": "1.0001"}, "conv_rate: Input should be less than or equal to 1"),
    "conv below 0": ({"conv_rate": "-0.01"}, "conv_rate: Input should be greater than or equal"),
    "acc above 1": ({"acc_rate": "1.5"}, "acc_rate: Input should be less than or equal to 1"),
    "cancel below 0": ({"cancel_rate": "-1"}, "cancel_rate"),
    "rating below 1": ({"rating": "0.99"}, "rating: Input should be greater than or equal to 1"),
    "rating above 5": ({"rating": "5.01"}, "rating: Input should be less than or equal to 5"),
    "trips negative": ({"avg_daily_trips": "-3"}, "avg_daily_trips: Input should be greater"),
    "trips fraction": ({"avg_daily_trips": "12.5"}, "avg_daily_trips: '12.5' is not an integer"),
    # timestamps
    "timestamp text": ({"event_timestamp": "yesterday"}, "event_timestamp: 'yesterday' is not"),
    "naive timestamp": (
        {"event_timestamp": "2024-03-01T12:30:15"},
        "event_timestamp: '2024-03-01T12:30:15' has no UTC offset",
    ),
    "naive produced_at": ({"produced_at": "2024-03-01 12:30"}, "produced_at"),
}


@pytest.mark.parametrize("case", sorted(MALFORMED), ids=str)
def test_malformed_entries_are_refused_with_a_reason(case: str) -> None:
    overrides, reason = MALFORMED[case]
    fields = encoded(**overrides)
    with pytest.raises(MalformedEvent) as info:
        decode(fields)
    assert reason in info.value.reason, info.value.reason
    assert str(info.value) == info.value.reason
    assert info.value.fields == fields  # the original entry, for the dead-letter stream


def test_several_range_violations_are_reported_together() -> None:
    with pytest.raises(MalformedEvent) as info:
        decode(encoded(conv_rate="3", rating="9"))
    assert "conv_rate" in info.value.reason and "rating" in info.value.reason


def test_undecodable_bytes_are_malformed() -> None:
    raw = {k.encode(): v.encode() for k, v in make_event().encode().items()}
    raw[b"event_id"] = b"\xff\xfe"
    with pytest.raises(MalformedEvent) as info:
        decode(raw)
    assert "not UTF-8" in info.value.reason
    assert info.value.fields["event_id"] == "\\xff\\xfe"


def test_malformed_event_is_a_value_error() -> None:
    assert issubclass(MalformedEvent, ValueError)


@pytest.mark.parametrize(
    "overrides",
    [
        {"driver_id": "1001"},  # strict: no silent coercion in Python either
        {"driver_id": True},
        {"avg_daily_trips": 12.0},
        {"event_timestamp": datetime(2024, 3, 1)},  # naive
        {"conv_rate": float("nan")},
        {"schema_version": 2},
        {"extra": 1},
    ],
    ids=str,
)
def test_constructing_an_invalid_event_fails(overrides: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        make_event(**overrides)


def test_events_are_immutable() -> None:
    event = make_event()
    with pytest.raises(ValidationError):
        event.conv_rate = 0.5  # type: ignore[misc]
