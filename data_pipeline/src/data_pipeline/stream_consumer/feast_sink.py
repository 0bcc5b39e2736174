"""The consumer's online sink: the feature views fed by Feast's push source of driver statistics.

A write is what ``FeatureStore.push(<push source>, frame, to=PushMode.ONLINE)`` does: for every
feature view whose stream source is the push source (here ``driver_hourly_stats``, the view the
model reads), ``FeatureStore.write_to_online_store``. It does not call ``push`` itself: in Feast
0.67 ``push`` ends with ``_precompute_for_push``, which lists the feature services with the
registry cache bypassed, i.e. re-reads the whole registry (a file, or SQL queries) on every call,
for a feature that none of the platform's feature services uses (``precompute_online``). Here the
feature views come from the cached registry (``cache_ttl_seconds`` of the store's config).

The Redis online store keeps, per driver, only a value newer than the one it holds, so writing
an event again is harmless: the property the consumer's exactly-once design relies on. Offline
writes do not go through Feast (see ``offline.py``).
"""

from __future__ import annotations

import logging
from typing import Any

import pandas as pd

log = logging.getLogger("data_pipeline.stream_consumer.feast")


class FeastOnlineSink:
    """Writes event rows to the online store of every feature view fed by ``push_source``."""

    def __init__(self, store: Any, push_source: str) -> None:
        self.store = store
        self.push_source = push_source

    def feature_views(self) -> list[str]:
        from feast.data_source import PushSource

        names = sorted(
            fv.name
            for fv in self.store.list_feature_views(allow_cache=True)
            if isinstance(fv.stream_source, PushSource)
            and fv.stream_source.name == self.push_source
        )
        if not names:
            raise LookupError(
                f"no feature view in the registry reads push source {self.push_source}"
            )
        return names

    def write(self, frame: pd.DataFrame) -> None:
        rows = frame.drop(columns=["event_id"], errors="ignore")
        for name in self.feature_views():
            self.store.write_to_online_store(name, rows, allow_registry_cache=True)
