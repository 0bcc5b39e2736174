"""Plain StatsD lines, as Airflow's StatsD client sends them.

``name:value|type`` with an optional ``|@rate`` (one line each, several lines per datagram):

- ``c``, a counter: counts ``value / rate``;
- ``g``, a gauge: set to ``value``; a signed value (``+2``, ``-3``) adds to the current one;
- ``ms``, a timer: observed in seconds (``value / 1000``), ``1 / rate`` times (at most 1000).

Nothing else is StatsD to this bridge: DogStatsD, InfluxDB, Librato and SignalFX tags,
histograms (``h``), distributions (``d``), sets (``s``) and multi-value lines are rejected with
the reason they are counted under.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal, TypeAlias

MetricKind: TypeAlias = Literal["counter", "gauge", "observer"]

KINDS: dict[str, MetricKind] = {"c": "counter", "g": "gauge", "ms": "observer"}
# a sampled timer is observed 1/rate times, bounded so that a tiny rate cannot stall the loop
MAX_SAMPLE_REPEAT = 1000
_FLOAT = re.compile(r"[+-]?(?:(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?|inf(?:inity)?|nan)", re.I)


@dataclass(frozen=True)
class Event:
    """One StatsD sample, ready to be mapped."""

    name: str
    kind: MetricKind
    value: float
    relative: bool = False  # gauges: "+n"/"-n" add to the current value
    repeat: int = 1  # timers: how many times to observe `value` (sampling)


class LineError(ValueError):
    """A line that is not plain StatsD; ``reason`` is what it is counted under."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _number(text: str) -> float | None:
    return float(text) if _FLOAT.fullmatch(text) else None


def _sample_rate(options: list[str]) -> float:
    """The ``@rate`` after the type (1 without one; ``@0`` means unsampled, as upstream)."""
    if not options:
        return 1.0
    rate = _number(options[0][1:]) if len(options) == 1 and options[0][:1] == "@" else None
    if rate is None or not rate >= 0:
        raise LineError("invalid_sample_factor")
    return rate or 1.0


def parse_line(line: str) -> Event:
    """The sample of one StatsD line; LineError when it is not plain StatsD."""
    name, colon, rest = line.partition(":")
    if not colon or not name:
        raise LineError("malformed_line")
    value_text, *fields = rest.split("|")
    if not fields:
        raise LineError("not_enough_parts_after_colon")
    value = _number(value_text)
    if value is None:
        raise LineError("malformed_value")
    kind = KINDS.get(fields[0])
    if kind is None:
        raise LineError("illegal_event")
    rate = _sample_rate(fields[1:])
    if kind == "counter":
        return Event(name, kind, value / rate)
    if kind == "gauge":
        return Event(name, kind, value, relative=value_text[0] in "+-")
    repeat = MAX_SAMPLE_REPEAT if rate * MAX_SAMPLE_REPEAT < 1 else max(int(1 / rate), 1)
    return Event(name, kind, value / 1000, repeat=repeat)  # Prometheus wants seconds
