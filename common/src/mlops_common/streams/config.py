"""The consumer core's configuration, its run bounds and its statistics (and the base of every
stream process's run statistics, ``RunStats``)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TypedDict


@dataclass(frozen=True)
class ConsumerConfig:
    """One consumer of a group (each component maps its settings onto it)."""

    streams: tuple[str, ...]
    group: str
    consumer: str
    dead_letter_stream: str
    dead_letter_maxlen: int = 100_000
    #: where a new group starts: ``0`` (everything in the stream) or ``$`` (new entries only)
    start_id: str = "0"
    batch_size: int = 500
    block_ms: int = 1000
    claim_min_idle_ms: int = 60_000
    claim_interval_s: float = 30.0
    #: the retry bound: processing attempts (deliveries) before an entry is dead-lettered
    max_deliveries: int = 5
    backoff_initial_s: float = 0.2
    backoff_max_s: float = 5.0
    gauge_interval_s: float = 2.0
    #: the broker's URL, for the log (redacted)
    broker_url: str = ""

    def __post_init__(self) -> None:
        if not self.streams:
            raise ValueError("a consumer needs at least one stream")
        if self.max_deliveries < 2:
            raise ValueError(
                "max_deliveries must be at least 2 (an entry of a failed batch is tried once "
                f"more on its own); got {self.max_deliveries}"
            )


@dataclass
class RunStats:
    """What a stream process (consumer, producer) did in one run: a dataclass of counts, reported
    as a dict (the commands' JSON summary, the stop log line)."""

    def as_dict(self) -> dict[str, float | int]:
        return asdict(self)


@dataclass
class ConsumerStats(RunStats):
    """What this process did (a component may subclass it with counts of its own and pass an
    instance to the core)."""

    #: entries committed (acknowledged), every outcome
    consumed: int = 0
    batches: int = 0
    aborted_batches: int = 0
    claimed: int = 0
    trimmed: int = 0
    #: entries dead-lettered by the retry bound
    exhausted: int = 0
    errors: int = 0
    elapsed_s: float = 0.0


class RunBounds(TypedDict, total=False):
    """The keyword arguments of ``ConsumerCore.run`` (for wrappers: ``**Unpack[RunBounds]``)."""

    max_entries: int | None
    duration: float | None
    idle_exit_s: float | None


@dataclass(frozen=True)
class Bounds:
    """When ``ConsumerCore.run`` returns (besides ``stop``)."""

    started: float
    max_entries: int | None = None
    duration: float | None = None
    idle_exit_s: float | None = None
