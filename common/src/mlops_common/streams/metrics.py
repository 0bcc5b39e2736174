"""What the consumer core reports to a component's Prometheus metrics.

Metric names are each component's contract (alert rules and dashboards use them), so the core
does not own metrics: it calls this small interface and the component maps each call onto its
own counters and gauges. ``NullStreamMetrics`` ignores everything; subclass it and override what
the component has a metric for.
"""

from __future__ import annotations

from typing import Protocol


class StreamMetrics(Protocol):
    def on_batch(self, entries: int, seconds: float) -> None:
        """A batch of ``entries`` was committed (applied, dead-lettered, acknowledged)."""

    def on_claimed(self, stream: str, count: int) -> None:
        """``count`` entries of ``stream`` were taken over from idle consumers."""

    def on_aborted(self) -> None:
        """A batch was not committed: another consumer had taken an entry over."""

    def on_error(self, error: str) -> None:
        """A loop iteration failed with the exception type ``error`` (it is retried)."""

    def on_group_state(self, stream: str, lag: int | None, pending: int) -> None:
        """The group's lag (None: unknown) and pending count on ``stream``."""

    def on_up(self, up: bool) -> None:
        """The last loop iteration succeeded (True) or failed (False)."""


class NullStreamMetrics:
    """A ``StreamMetrics`` that records nothing."""

    def on_batch(self, entries: int, seconds: float) -> None:
        return None

    def on_claimed(self, stream: str, count: int) -> None:
        return None

    def on_aborted(self) -> None:
        return None

    def on_error(self, error: str) -> None:
        return None

    def on_group_state(self, stream: str, lag: int | None, pending: int) -> None:
        return None

    def on_up(self, up: bool) -> None:
        return None
