"""Generated driver statistics (the example source's five features) and reference sets on disk,
for the serving and monitoring tests and benchmarks."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd


def driver_statistics(rng: np.random.Generator, n: int) -> dict[str, Any]:
    """``n`` rows of the five driver features, drawn from ``rng`` in a fixed order."""
    return {
        "conv_rate": rng.uniform(0, 1, n),
        "acc_rate": rng.uniform(0, 1, n),
        "avg_daily_trips": rng.integers(0, 60, n).astype(np.int64),
        "rating": rng.uniform(1, 5, n),
        "cancel_rate": rng.uniform(0, 0.3, n),
    }


def stats_frame(ids: Iterable[int], when: datetime, seed: int = 0) -> pd.DataFrame:
    """Feature rows of the drivers ``ids`` as the feature view stores them, all at ``when``."""
    ids = list(ids)
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "driver_id": np.array(ids, dtype=np.int64),
            "event_timestamp": [when] * len(ids),
            "created": [when] * len(ids),
            **driver_statistics(rng, len(ids)),
        }
    )


def write_reference(
    folder: Path, reference: pd.DataFrame, features: Sequence[str], **manifest: Any
) -> Path:
    """Write ``folder``/reference.parquet and its manifest (score ``score``, label
    ``trip_completed``; ``manifest`` adds fields); returns ``folder``."""
    folder.mkdir()
    reference.to_parquet(folder / "reference.parquet", index=False)
    values = {
        "format": 1,
        "rows": len(reference),
        "source": "holdout",
        "feature_columns": list(features),
        "score_column": "score",
        "label_column": "trip_completed",
        **manifest,
    }
    (folder / "reference.json").write_text(json.dumps(values))
    return folder


def candidate_features(row: Any) -> dict[str, Any]:
    """The five features of a frame row (``itertuples``) as a prediction event carries them."""
    return {
        "conv_rate": float(row.conv_rate),
        "acc_rate": float(row.acc_rate),
        "avg_daily_trips": int(row.avg_daily_trips),
        "rating": float(row.rating),
        "cancel_rate": float(row.cancel_rate),
    }
