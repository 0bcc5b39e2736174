"""The seam between the consumer core and a component: the batch handler and its errors."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import redis

from mlops_common.streams.entries import Entry, ReadResult

#: Errors that are not an entry's fault: the broker or a store could not be reached.
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    redis.ConnectionError,
    redis.TimeoutError,
    OSError,
)


class OwnershipLost(RuntimeError):
    """Raised by a handler's commit: another consumer took an entry of the batch over before it
    was committed (the batch is left to that consumer)."""


class BatchHandler(Protocol):
    """A component's part of a consumer: what a batch means and how its commit is atomic."""

    def process(self, entries: Sequence[Entry]) -> object:
        """Apply a batch and commit it atomically: the effect of every valid entry, a dead
        letter (``ConsumerCore.dead_letter``) for every malformed or ``refused`` entry, and the
        acknowledgement of every entry (trimmed ones included). Raise on failure (nothing
        committed); raise ``OwnershipLost`` when the commit found an entry taken over."""

    def after_read(self, read: ReadResult) -> None:
        """The component's periodic work, after every read (and its batch)."""

    def refresh_gauges(self) -> None:
        """The component's own gauges, every ``gauge_interval_s`` after the group's."""

    def finish(self) -> None:
        """Once, when the loop ends."""


def describe(exc: BaseException) -> str:
    """``Type: first line of the message``."""
    detail = (str(exc).strip().splitlines() or ["no detail"])[0]
    return f"{type(exc).__name__}: {detail}"
