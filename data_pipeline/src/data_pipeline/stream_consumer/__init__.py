"""The driver stats stream consumer: Redis stream -> validation -> Feast (online and offline).

``data-pipeline stream-consume`` runs it (``cli.py``); the design of its exactly-once effect is in
``consumer.py``, the offline writes in ``offline.py``. The event schema is imported from
``mlops_common.events.driver_stats``, the one place it is defined.
"""

from data_pipeline.stream_consumer.consumer import (
    ConsumerStats,
    OnlineSink,
    OwnershipLost,
    StreamConsumer,
    events_frame,
)
from data_pipeline.stream_consumer.offline import OfflineFlusher, OfflineSink, ParquetOfflineSink
from data_pipeline.stream_consumer.settings import StreamConsumerSettings

__all__ = [
    "ConsumerStats",
    "OfflineFlusher",
    "OfflineSink",
    "OnlineSink",
    "OwnershipLost",
    "ParquetOfflineSink",
    "StreamConsumer",
    "StreamConsumerSettings",
    "events_frame",
]
