"""The unit of work of the hourly pipelines: an hour-aligned UTC interval ``[start, end)``, and
the interval a DAG run processes (its conf, else its data interval).

Rows belong to the interval in which they were *delivered* (``created``), like the source slices
them, so a late row is processed by the run of the hour it arrived in.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any


class BadInput(ValueError):
    """The caller's input is wrong (an interval not on whole hours, …): exit code 2."""


class ConfError(BadInput):
    """The DAG run conf (or the run's data interval) does not give a usable interval."""


_HOUR = timedelta(hours=1)
#: longest interval one run may process (a backfill of a longer range is split into runs)
MAX_INTERVAL = timedelta(days=92)


def parse_utc(value: str | datetime, name: str = "time") -> datetime:
    """An aware UTC datetime from ISO 8601 text or a datetime; naive values are UTC."""
    if isinstance(value, datetime):
        parsed = value
    else:
        try:
            parsed = datetime.fromisoformat(str(value).strip())
        except ValueError:
            raise BadInput(
                f"{name}: invalid time {value!r}; expected ISO 8601, e.g. 2024-01-01T05:00Z"
            ) from None
    aware = parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
    # a plain datetime, also for subclasses (Airflow passes pendulum DateTimes, whose arithmetic
    # with timedeltas differs)
    return datetime(
        aware.year,
        aware.month,
        aware.day,
        aware.hour,
        aware.minute,
        aware.second,
        aware.microsecond,
        tzinfo=UTC,
    )


@dataclass(frozen=True)
class Interval:
    start: datetime
    end: datetime

    @classmethod
    def of(cls, start: str | datetime, end: str | datetime) -> Interval:
        """Validate ``[start, end)``: UTC, whole hours, ``start < end``, at most MAX_INTERVAL."""
        lo, hi = parse_utc(start, "start"), parse_utc(end, "end")
        for name, value in (("start", lo), ("end", hi)):
            if value.minute or value.second or value.microsecond:
                raise BadInput(f"{name} must be on a whole UTC hour (got {value.isoformat()})")
        if hi <= lo:
            raise BadInput(f"end ({hi.isoformat()}) must be after start ({lo.isoformat()})")
        if hi - lo > MAX_INTERVAL:
            raise BadInput(
                f"interval {lo.isoformat()} to {hi.isoformat()} is longer than "
                f"{MAX_INTERVAL.days} days; split the range into several runs"
            )
        return cls(lo, hi)

    @property
    def id(self) -> str:
        """``YYYYMMDDTHH-YYYYMMDDTHH``: the interval's folder name."""
        return f"{self.start:%Y%m%dT%H}-{self.end:%Y%m%dT%H}"

    @property
    def hours(self) -> list[datetime]:
        """The whole hours of the interval."""
        n = int((self.end - self.start) / _HOUR)
        return [self.start + i * _HOUR for i in range(n)]

    def __str__(self) -> str:
        return f"[{self.start.isoformat()}, {self.end.isoformat()})"


def resolve_interval(
    params: Mapping[str, Any] | None,
    data_interval_start: datetime | None,
    data_interval_end: datetime | None,
) -> Interval:
    """The interval a DAG run processes: conf ``start``/``end`` (ISO 8601, UTC, whole hours;
    both or neither) win over the run's data interval. A manually triggered run (REST API with
    ``"logical_date": null``) has no data interval and must pass the conf."""
    params = params or {}
    start, end = params.get("start"), params.get("end")
    if (start is None) != (end is None):
        raise ConfError('conf must give both "start" and "end" (ISO 8601, UTC, whole hours)')
    try:
        if start is not None and end is not None:
            return Interval.of(str(start), str(end))
        if (
            data_interval_start is None
            or data_interval_end is None
            or data_interval_start >= data_interval_end
        ):
            raise ConfError(
                "this run has no data interval (a manual trigger): pass conf "
                '{"start": "2024-01-01T00:00:00Z", "end": "2024-01-02T00:00:00Z"}'
            )
        return Interval.of(data_interval_start, data_interval_end)
    except ConfError:
        raise
    except BadInput as exc:
        raise ConfError(f"run interval: {exc}") from None
