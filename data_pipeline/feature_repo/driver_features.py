"""The platform's feature definitions: the one place features are defined.

Feast imports every ``.py`` file of this folder (``feast apply`` semantics): keep only
definitions here, no scripts (``.feastignore`` lists what Feast must skip). The configuration
(project, registry, online and offline store) is built in code from the data pipeline's settings
(``data_pipeline.feature_store.repo_config``); there is no ``feature_store.yaml``.

Data flow: the batch pipeline (``data-pipeline publish``) writes partitioned parquet under
``<data_dir>/offline/driver_hourly_stats/``; the stream consumer pushes events through the push
source ``driver_stats_push`` and writes their offline rows into the same folder. The one feature
view ``driver_hourly_stats`` reads the push source, so batch-materialized and streamed values land
in the same online features, the ones the model's feature service ``driver_ranking_v1`` serves.
"""

from datetime import timedelta

from feast import Entity, FeatureService, FeatureView, Field, FileSource, PushSource, ValueType
from feast.types import Float64, Int64

driver = Entity(
    name="driver",
    join_keys=["driver_id"],
    value_type=ValueType.INT64,
    description="A driver who can be offered a booking.",
)

# Relative to the feature store's repo_path, which the platform sets to its data directory
# (MLOPS_DATA_DIR): every process resolves the shared registry's path against its own data folder.
# A directory of parquet files (partitioned by event date), read as one data set.
driver_hourly_stats_source = FileSource(
    name="driver_hourly_stats_source",
    path="offline/driver_hourly_stats",
    timestamp_field="event_timestamp",
    created_timestamp_column="created",
    description="Validated hourly driver statistics: batch pipeline and stream consumer.",
)

driver_stats_push = PushSource(
    name="driver_stats_push",
    batch_source=driver_hourly_stats_source,
    description="Streamed driver statistics events (stream consumer).",
)

driver_hourly_stats = FeatureView(
    name="driver_hourly_stats",
    entities=[driver],
    # every driver reports once an hour: three hours tolerate two missing (quarantined) reports
    ttl=timedelta(hours=3),
    schema=[
        Field(name="driver_id", dtype=Int64),
        Field(name="conv_rate", dtype=Float64, description="share of offers converted, [0, 1]"),
        Field(name="acc_rate", dtype=Float64, description="share of offers accepted, [0, 1]"),
        Field(name="avg_daily_trips", dtype=Int64, description="trips per day, >= 0"),
        Field(name="rating", dtype=Float64, description="customer rating, [1, 5]"),
        Field(name="cancel_rate", dtype=Float64, description="share of trips cancelled, [0, 1]"),
    ],
    online=True,
    source=driver_stats_push,
    description="Hourly driver statistics, batch and streamed.",
)

driver_ranking_v1 = FeatureService(
    name="driver_ranking_v1",
    features=[
        driver_hourly_stats[["conv_rate", "acc_rate", "avg_daily_trips", "rating", "cancel_rate"]]
    ],
    description="Features of the driver ranking model, version 1.",
)
