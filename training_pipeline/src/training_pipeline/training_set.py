"""Where a training run's data comes from: labels from the source, features from Feast.

The one module that knows Feast and the source (the configured one, ``MLOPS_SOURCE``: see
``mlops_common.sources``). Labelled bookings in the window become
the entity frame of ``store.get_historical_features(entity_df, features=<feature service>)``: a
point-in-time join done by the feature store, not by hand. Everything downstream takes DataFrames
(``dataset.assemble_training_set``), so replacing this module replaces the data source.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pandas as pd

from mlops_common.sources import BOOKING_CANDIDATES, BOOKINGS

if TYPE_CHECKING:
    from mlops_common.features import FeatureStoreSettings
    from mlops_common.sources import SourceSettings


class FeastFeatureSource:
    """A Feast feature service as a ``dataset.FeatureSource``."""

    def __init__(self, store: Any, feature_service: str) -> None:
        self._store = store
        self._service = store.get_feature_service(feature_service)
        self._name = feature_service
        self._refs = [
            f"{projection.name_to_use()}:{feature.name}"
            for projection in self._service.feature_view_projections
            for feature in projection.features
        ]

    @property
    def feature_service(self) -> str:
        return self._name

    @property
    def feature_refs(self) -> list[str]:
        return list(self._refs)

    def historical_features(self, entity_df: pd.DataFrame) -> pd.DataFrame:
        job = self._store.get_historical_features(entity_df=entity_df, features=self._service)
        frame: pd.DataFrame = job.to_df()
        return frame


def feast_feature_source(
    feature_service: str, settings: FeatureStoreSettings | None = None
) -> FeastFeatureSource:
    """The platform's feature store (``mlops_common.features``) and one of its services."""
    from mlops_common.features import feature_store

    return FeastFeatureSource(feature_store(settings), feature_service)


class SourceLabels:
    """Labelled bookings and their candidate sets from the configured source (``MLOPS_SOURCE``,
    default the example project's: local parquet files or PostgreSQL, as ``MLOPS_DATABASE_URL``
    says)."""

    def __init__(self, settings: SourceSettings | None = None) -> None:
        from mlops_common.sources import open_source

        self._source = open_source(settings)

    @property
    def location(self) -> str:
        return str(self._source.location)

    def labelled_events(self, start: pd.Timestamp, end: pd.Timestamp) -> pd.DataFrame:
        return self._source.read(BOOKINGS, start.to_pydatetime(), end.to_pydatetime())

    def candidates(self, start: pd.Timestamp, end: pd.Timestamp) -> pd.DataFrame:
        return self._source.read(BOOKING_CANDIDATES, start.to_pydatetime(), end.to_pydatetime())
