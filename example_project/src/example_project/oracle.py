"""What the true model achieves on the example world: the ceiling a model can reach.

The metrics are the platform's own definitions (``mlops_common.metrics``: ROC AUC, and top-1
accuracy over each booking's candidate set), so the oracle, a trained model's evaluation and the
end-to-end checks measure alike. Because the historical dispatch policy assigned a uniformly
random candidate and the outcome was drawn for every candidate, top-1 accuracy is an unbiased
(off-policy free) estimate of the completion rate a scorer would achieve.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict

from example_project.world.generator import ExampleData
from mlops_common.metrics import roc_auc, top1_accuracy

#: Seed of the random ranker used for contrast (fixed, so the metrics are reproducible).
RANDOM_RANKER_SEED = 12345


class OracleMetrics(BaseModel):
    """What the true model achieves on a slice, and a random ranker for contrast."""

    model_config = ConfigDict(frozen=True)

    n_bookings: int
    n_candidates: int
    base_rate: float
    oracle_roc_auc: float
    random_roc_auc: float
    oracle_top1_accuracy: float
    random_top1_accuracy: float
    #: mean true_p of the oracle's pick: the top-1 accuracy without outcome noise
    oracle_top1_expected: float
    #: mean true_p of all candidates: a random pick's expected top-1 accuracy
    random_top1_expected: float


def oracle_metrics(
    bookings: pd.DataFrame,
    candidates: pd.DataFrame,
    *,
    random_seed: int = RANDOM_RANKER_SEED,
) -> OracleMetrics:
    """Oracle and random-ranker metrics of bookings (``true_p``, ``trip_completed``) and their
    candidate sets (``booking_id``, ``true_p``, ``completed_if_assigned``)."""
    rng = np.random.default_rng(random_seed)
    candidates = candidates.reset_index(drop=True)
    y = bookings["trip_completed"].to_numpy(dtype=bool)
    true_p = candidates["true_p"].to_numpy(dtype=np.float64)
    best_idx = (
        candidates.assign(_p=true_p)
        .sort_values(["booking_id", "_p"], ascending=[True, False])
        .drop_duplicates("booking_id")
        .index
    )
    return OracleMetrics(
        n_bookings=len(bookings),
        n_candidates=len(candidates),
        base_rate=float(y.mean()),
        oracle_roc_auc=roc_auc(y, bookings["true_p"].to_numpy(dtype=np.float64)),
        random_roc_auc=roc_auc(y, rng.random(len(y))),
        oracle_top1_accuracy=top1_accuracy(candidates, true_p),
        random_top1_accuracy=top1_accuracy(candidates, rng.random(len(candidates))),
        oracle_top1_expected=float(candidates.loc[best_idx, "true_p"].mean()),
        random_top1_expected=float(true_p.mean()),
    )


def oracle_metrics_of(data: ExampleData, **kwargs: Any) -> dict[str, OracleMetrics]:
    """Oracle metrics of generated data: ``all``, plus ``pre_drift``/``post_drift`` when the
    scenario's drift_start splits the slice."""
    result = {"all": oracle_metrics(data.bookings, data.booking_candidates, **kwargs)}
    drift = data.config.drift_start
    if drift is not None:
        b_ts = data.bookings["event_timestamp"]
        c_ts = data.booking_candidates["event_timestamp"]
        if (b_ts < drift).any() and (b_ts >= drift).any():
            for name, b_mask, c_mask in (
                ("pre_drift", b_ts < drift, c_ts < drift),
                ("post_drift", b_ts >= drift, c_ts >= drift),
            ):
                result[name] = oracle_metrics(
                    data.bookings[b_mask], data.booking_candidates[c_mask], **kwargs
                )
    return result
