"""Assembling a training set from labels and a feature source, and hashing it.

Nothing here knows Feast: a ``FeatureSource`` is anything that returns point-in-time features for
an entity frame. ``training_set.py`` provides the Feast one; tests may pass another.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import pandas as pd

from training_pipeline.settings import DatasetConfig

_TIMESTAMP_DTYPE = pd.DatetimeTZDtype(unit="ns", tz="UTC")


class FeatureSource(Protocol):
    """Point-in-time features of one feature service."""

    @property
    def feature_service(self) -> str:
        """The feature service's name (lineage)."""
        ...

    @property
    def feature_refs(self) -> list[str]:
        """``<feature_view>:<feature>`` of every feature the service returns, in order."""
        ...

    def historical_features(self, entity_df: pd.DataFrame) -> pd.DataFrame:
        """``entity_df`` (entity, timestamp and pass-through columns) with the service's features
        as of each row's timestamp; rows may come back in any order."""
        ...


class LabelSource(Protocol):
    """Labelled events and their candidate sets in a time window ``[start, end)``."""

    def labelled_events(self, start: pd.Timestamp, end: pd.Timestamp) -> pd.DataFrame: ...

    def candidates(self, start: pd.Timestamp, end: pd.Timestamp) -> pd.DataFrame: ...


def feature_names(feature_refs: Sequence[str]) -> list[str]:
    """Column names of features as the store returns them (``full_feature_names=False``)."""
    names = [ref.split(":", 1)[-1] for ref in feature_refs]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ValueError(f"feature names are ambiguous across feature views: {duplicates}")
    return names


@dataclass(frozen=True)
class AssembledTrainingSet:
    #: one row per labelled event: keys, timestamp, label, features
    training_set: pd.DataFrame
    #: one row per candidate of those events: keys, order, latent outcome, features
    candidates: pd.DataFrame
    feature_columns: list[str]


def _utc_ns(values: pd.Series) -> pd.Series:
    return pd.to_datetime(values, utc=True).astype(_TIMESTAMP_DTYPE)


def _join_features(
    rows: pd.DataFrame,
    cfg: DatasetConfig,
    source: FeatureSource,
    columns: list[str],
) -> pd.DataFrame:
    """``rows`` with the source's features as of ``rows[timestamp]``, in ``rows``' order.

    The store is asked once per distinct ``(entity, timestamp)`` and the answer is joined back on
    those two columns: Feast's file (dask) offline store collapses entity rows that share a join
    key and a timestamp (two bookings offering the same driver in the same second) and leaves the
    others without features (feast-dev/feast#6787).
    """
    keys = [cfg.entity_column, cfg.timestamp_column]
    entity_df = rows[keys].drop_duplicates().reset_index(drop=True)
    features = source.historical_features(entity_df)
    missing = [c for c in [*keys, *columns] if c not in features.columns]
    if missing:
        raise ValueError(
            f"feature service {source.feature_service!r} returned no columns {missing} "
            f"(got {sorted(features.columns)})"
        )
    features = features[[*keys, *columns]].copy()
    features[cfg.timestamp_column] = _utc_ns(features[cfg.timestamp_column])
    if features.duplicated(keys).any():
        raise ValueError(f"feature source returned several rows per {keys}")
    if len(features) != len(entity_df):
        raise ValueError(
            f"feature source returned {len(features)} rows for {len(entity_df)} entity rows"
        )
    joined = rows.merge(features, on=keys, how="left", validate="many_to_one")
    if len(joined) != len(rows):
        raise ValueError("feature join changed the number of rows")
    return joined


def assemble_training_set(
    labelled: pd.DataFrame,
    candidates: pd.DataFrame | None,
    source: FeatureSource,
    cfg: DatasetConfig,
) -> AssembledTrainingSet:
    """Labelled events (+ their candidate sets) with point-in-time features from ``source``.

    Only the keys, the timestamp and the label of ``labelled`` are kept: whatever else the label
    source carries (ground truth, free text) never reaches the training set. Candidate rows keep
    their keys, listing order and latent outcome, for the ranking evaluation only.
    """
    columns = feature_names(source.feature_refs)
    forbidden = sorted(set(columns) & set(cfg.forbidden_feature_columns))
    if forbidden:
        raise ValueError(f"feature service {source.feature_service!r} serves forbidden {forbidden}")
    base = [cfg.event_id_column, cfg.timestamp_column, cfg.entity_column]
    for column in [*base, cfg.label_column]:
        if column not in labelled.columns:
            raise ValueError(f"labelled events have no column {column!r}")
    rows = labelled[[*base, cfg.label_column]].copy()
    rows[cfg.timestamp_column] = _utc_ns(rows[cfg.timestamp_column])
    rows[cfg.label_column] = rows[cfg.label_column].astype(bool)
    rows = rows.sort_values([cfg.timestamp_column, cfg.event_id_column], kind="mergesort")
    rows = rows.reset_index(drop=True)
    training = _join_features(rows, cfg, source, columns)

    if candidates is None:
        cand = pd.DataFrame(columns=[*base, *columns])
    else:
        keep = [
            c
            for c in (*base, cfg.candidate_order_column, cfg.candidate_outcome_column)
            if c in candidates.columns
        ]
        cand = candidates.loc[
            candidates[cfg.event_id_column].isin(rows[cfg.event_id_column]), keep
        ].copy()
        cand[cfg.timestamp_column] = _utc_ns(cand[cfg.timestamp_column])
        sort = [cfg.timestamp_column, cfg.event_id_column]
        if cfg.candidate_order_column in cand.columns:
            sort.append(cfg.candidate_order_column)
        else:
            sort.append(cfg.entity_column)
        cand = cand.sort_values(sort, kind="mergesort").reset_index(drop=True)
        cand = _join_features(cand, cfg, source, columns)
    return AssembledTrainingSet(training_set=training, candidates=cand, feature_columns=columns)


def content_hash(frame: pd.DataFrame, sort_by: Sequence[str] = ()) -> str:
    """SHA-256 of a frame's content: column names, dtypes and values, independent of row order
    when ``sort_by`` names a key (and of column order always)."""
    canonical = frame.sort_values(list(sort_by), kind="mergesort") if sort_by else frame
    canonical = canonical.reset_index(drop=True)[sorted(canonical.columns)]
    digest = hashlib.sha256()
    header = [(str(c), str(canonical[c].dtype)) for c in canonical.columns]
    digest.update(json.dumps(header).encode())
    digest.update(str(len(canonical)).encode())
    if len(canonical):
        row_hashes = pd.util.hash_pandas_object(canonical, index=False).to_numpy(dtype=np.uint64)
        digest.update(row_hashes.tobytes())
    return f"sha256:{digest.hexdigest()}"
