"""The Redis-stream consumer core every stream consumer of the platform runs on.

``ConsumerCore`` (``core``) holds what consumers share: the consumer group, reads of one or
several streams, own pending entries, takeover of idle entries, the run loop with its bounds and
backoff, the retry bound, gauges and metrics (through ``StreamMetrics``). A component supplies a
``BatchHandler``: how a batch is parsed and applied, and how its commit (effect, dead letters,
acknowledgement) is made atomic. Dead letters have one shape (``entries.dead_letter``).
"""

from mlops_common.streams.config import ConsumerConfig, ConsumerStats, RunBounds, RunStats
from mlops_common.streams.core import ConsumerCore
from mlops_common.streams.entries import Entry, ReadResult, dead_letter, stream_ms, text
from mlops_common.streams.group import GroupState, StreamGroup
from mlops_common.streams.handler import TRANSIENT_ERRORS, BatchHandler, OwnershipLost, describe
from mlops_common.streams.metrics import NullStreamMetrics, StreamMetrics

__all__ = [
    "TRANSIENT_ERRORS",
    "BatchHandler",
    "ConsumerConfig",
    "ConsumerCore",
    "ConsumerStats",
    "Entry",
    "GroupState",
    "NullStreamMetrics",
    "OwnershipLost",
    "ReadResult",
    "RunBounds",
    "RunStats",
    "StreamGroup",
    "StreamMetrics",
    "dead_letter",
    "describe",
    "stream_ms",
    "text",
]
