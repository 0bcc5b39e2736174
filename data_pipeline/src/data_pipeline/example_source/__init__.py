"""Example data source with known ground truth: the ride-hailing driver problem.

For each booking, ``candidates_per_booking`` drivers are offered; the historical dispatcher
assigned one of them uniformly at random, so the recorded labels (``trip_completed``) are an
unbiased sample of every candidate's completion probability. See ``docs/example_data.md``.

Public entry points:

- ``generate(ExampleSourceConfig(...)) -> ExampleData``: the tables of one slice, deterministic.
- ``oracle_metrics(bookings, candidates)`` / ``oracle_metrics_of(data)``: what the true model
  achieves; ``top1_accuracy(candidates_df, scores)``: the same top-1 evaluation for any scorer.
- ``open_source(settings)`` -> ``LocalFileSource | PostgresSource``: ``write(table, frame)`` and
  ``read(table, start, end)``.
"""

from data_pipeline.example_source.config import (
    DRIVER_ID_OFFSET,
    DirtyRates,
    ExampleSourceConfig,
    Scenario,
)
from data_pipeline.example_source.generator import ExampleData, generate
from data_pipeline.example_source.metrics import (
    OracleMetrics,
    oracle_metrics,
    oracle_metrics_of,
    roc_auc,
    top1_accuracy,
)
from data_pipeline.example_source.model import (
    CONCEPT_DRIFT_WEIGHTS,
    FEATURES,
    NORMAL_WEIGHTS,
    CompletionWeights,
    completion_probability,
)
from data_pipeline.example_source.schema import (
    BOOKING_CANDIDATES,
    BOOKINGS,
    DRIVER_HOURLY_STATS,
    GROUND_TRUTH_COLUMNS,
    SCHEMAS,
    TABLES,
    TableSchema,
)
from data_pipeline.example_source.sinks import (
    LocalFileSource,
    PostgresSource,
    Source,
    SourceReader,
    SourceWriter,
    open_source,
    write_example_data,
)

__all__ = [
    "BOOKINGS",
    "BOOKING_CANDIDATES",
    "CONCEPT_DRIFT_WEIGHTS",
    "DRIVER_HOURLY_STATS",
    "DRIVER_ID_OFFSET",
    "FEATURES",
    "GROUND_TRUTH_COLUMNS",
    "NORMAL_WEIGHTS",
    "SCHEMAS",
    "TABLES",
    "CompletionWeights",
    "DirtyRates",
    "ExampleData",
    "ExampleSourceConfig",
    "LocalFileSource",
    "OracleMetrics",
    "PostgresSource",
    "Scenario",
    "Source",
    "SourceReader",
    "SourceWriter",
    "TableSchema",
    "completion_probability",
    "generate",
    "open_source",
    "oracle_metrics",
    "oracle_metrics_of",
    "roc_auc",
    "top1_accuracy",
    "write_example_data",
]
