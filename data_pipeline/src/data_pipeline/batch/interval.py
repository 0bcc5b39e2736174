"""The unit of work of the batch pipeline: an hour-aligned UTC interval ``[start, end)``.

Rows belong to the interval in which they were *delivered* (``created``), like the source slices
them, so a late row is processed by the run of the hour it arrived in.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from data_pipeline.batch.errors import BadInput

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
