"""What every event schema shares: UTC times, stream-field text, the malformed-event error."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import AfterValidator, AwareDatetime, ValidationError


class MalformedEvent(ValueError):
    """A stream entry that is not a valid event of the schema it was read with.

    ``reason`` says which field broke which rule; ``fields`` are the entry's original fields
    (decoded to text where possible) for the dead-letter stream.
    """

    def __init__(self, reason: str, fields: Mapping[str, str] | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.fields: dict[str, str] = dict(fields or {})


def _to_utc(value: datetime) -> datetime:
    return value.astimezone(UTC)


#: a timezone-aware time, normalised to UTC (naive times are refused)
UtcDatetime = Annotated[AwareDatetime, AfterValidator(_to_utc)]


def text(value: object) -> str:
    """A stream field as text: str as is, bytes as strict UTF-8 (else ``UnicodeDecodeError``)."""
    if isinstance(value, bytes):
        return value.decode("utf-8")
    if isinstance(value, str):
        return value
    raise TypeError(f"expected bytes or str, got {type(value).__name__}")


def strict_text(fields: Mapping[Any, Any]) -> dict[str, str]:
    """Every field as text; raises ``MalformedEvent`` (with the escaped originals) when one is
    not UTF-8."""
    try:
        return {text(k): text(v) for k, v in fields.items()}
    except (UnicodeDecodeError, TypeError) as exc:
        raise MalformedEvent(f"not UTF-8 text: {exc}", fields_as_text(fields)) from None


def fields_as_text(fields: Mapping[Any, Any]) -> dict[str, str]:
    """The entry's fields as text; undecodable bytes are shown with backslash escapes."""
    out: dict[str, str] = {}
    for key, value in fields.items():
        k = key.decode("utf-8", "backslashreplace") if isinstance(key, bytes) else str(key)
        v = value.decode("utf-8", "backslashreplace") if isinstance(value, bytes) else str(value)
        out[k] = v
    return out


def describe(exc: ValidationError) -> str:
    """A pydantic validation error as one line: ``field: message; …``."""
    return "; ".join(
        f"{'.'.join(str(p) for p in error['loc']) or 'event'}: {error['msg']}"
        for error in exc.errors()
    )


def format_timestamp(value: datetime) -> str:
    """ISO 8601 in UTC with microseconds and a ``Z`` suffix."""
    if value.tzinfo is None:
        raise ValueError("timestamp must be timezone-aware")
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
