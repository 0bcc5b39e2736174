"""The consumer's sinks on the data pipeline's feature store (``data_pipeline.feature_store``).

- online: ``FeastOnlineSink`` on the push source ``driver_stats_push`` (feature view
  ``driver_hourly_stats``, the view the model's feature service reads);
- offline: ``ParquetOfflineSink`` into the feature view's offline folder
  ``<data_dir>/offline/driver_hourly_stats/date=YYYY-MM-DD/``, next to the batch pipeline's files,
  with exactly the columns and dtypes of ``feature_store.OFFLINE_COLUMNS``. Stream files are named
  ``stream-<first buffer id>_<last buffer id>.parquet``.

When the registry does not know the push source yet (a fresh platform where nothing has applied
the feature repository), the consumer applies it first (``feature_store.apply``, idempotent).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from data_pipeline.stream_consumer.feast_sink import FeastOnlineSink
from data_pipeline.stream_consumer.offline import ParquetOfflineSink

if TYPE_CHECKING:
    from data_pipeline.settings import DataPipelineSettings

log = logging.getLogger("data_pipeline.stream_consumer")


def feature_store_sinks(
    settings: DataPipelineSettings | None = None, *, offline: bool = True
) -> tuple[FeastOnlineSink, ParquetOfflineSink | None]:
    from data_pipeline import feature_store as fs
    from data_pipeline.settings import DataPipelineSettings

    settings = settings or DataPipelineSettings()
    store = fs.feature_store(settings)
    try:
        store.get_data_source(fs.PUSH_SOURCE)
    except Exception as exc:  # DataSourceObjectNotFoundException, or no registry at all
        log.info(
            "push source %s not in the registry (%s): applying the feature repository %s",
            fs.PUSH_SOURCE,
            type(exc).__name__,
            settings.feature_repo,
        )
        result = fs.apply(settings)
        log.info("applied project %s in %.1f s", result.project, result.seconds)
        store = fs.feature_store(settings)
    online = FeastOnlineSink(store, fs.PUSH_SOURCE)
    log.info("online writes go to feature view(s) %s", ", ".join(online.feature_views()))
    sink = (
        ParquetOfflineSink(fs.offline_table_dir(settings), dtypes=fs.OFFLINE_COLUMNS)
        if offline
        else None
    )
    return online, sink
