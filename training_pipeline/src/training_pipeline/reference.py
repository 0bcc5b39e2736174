"""The monitoring reference of a model: the data the monitoring service compares serving with.

``register`` logs, next to the model, a bounded deterministic sample of the **holdout** (the most
recent slice of the training window, scored out of sample): the model's feature columns, the
model's score of each row and the label. The monitoring service finds it through the model
version's run (``models:/<name>@champion`` → version → run → artifact) and never imports this
package: the contract is the artifact layout and the tags below.

```
reference/reference.parquet   feature columns (as trained), "score" (float64), the label (bool)
reference/reference.json      {"format": 1, "rows", "source", "feature_columns", "score_column",
                               "label_column", "sampled_from", "seed", "content_hash"}
```

Tags on the run and the model version: ``monitoring.reference_path`` (the parquet's artifact
path) and ``monitoring.reference_rows``.

Why the holdout: training rows are scored in sample (their score distribution is the fitted
one, not what serving sees), and the holdout is the slice closest in time to serving.
Why it compares with every scored candidate: the example source's dispatcher assigned drivers
uniformly at random among the candidates, so the labelled (assigned) rows are an unbiased sample
of all candidates (example_project/docs/example_data.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd

from training_pipeline.dataset import content_hash
from training_pipeline.evaluation import sklearn_scorer

ARTIFACT_DIR = "reference"
DATA_FILE = "reference.parquet"
MANIFEST_FILE = "reference.json"
ARTIFACT_PATH = f"{ARTIFACT_DIR}/{DATA_FILE}"
SCORE_COLUMN = "score"
PATH_TAG = "monitoring.reference_path"
ROWS_TAG = "monitoring.reference_rows"
FORMAT = 1


def reference_frame(
    model: Any,
    holdout: pd.DataFrame,
    feature_columns: Sequence[str],
    label_column: str,
    max_rows: int,
    seed: int,
) -> pd.DataFrame:
    """At most ``max_rows`` holdout rows (a seeded sample, in holdout order): the feature
    columns, the model's score and the label."""
    columns = list(feature_columns)
    if SCORE_COLUMN in columns or label_column in columns:
        raise ValueError(f"feature columns must not be named {SCORE_COLUMN!r} or the label")
    rows = holdout
    if max_rows and len(rows) > max_rows:
        rows = rows.sample(n=max_rows, random_state=seed).sort_index()
    frame = rows[columns].reset_index(drop=True).copy()
    frame[SCORE_COLUMN] = sklearn_scorer(model, columns)(rows)
    frame[label_column] = rows[label_column].to_numpy(dtype=bool)
    return frame


def reference_manifest(
    frame: pd.DataFrame,
    feature_columns: Sequence[str],
    label_column: str,
    sampled_from: int,
    seed: int,
) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "rows": len(frame),
        "source": "holdout",
        "feature_columns": list(feature_columns),
        "score_column": SCORE_COLUMN,
        "label_column": label_column,
        "sampled_from": sampled_from,
        "seed": seed,
        "content_hash": content_hash(frame),
    }
