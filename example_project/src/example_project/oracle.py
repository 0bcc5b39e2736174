"""Evaluation against the known ground truth: ROC AUC, top-1 accuracy and the oracle's metrics.

``top1_accuracy`` evaluates any scorer the way the dispatcher would use it: for each booking, pick
the candidate with the highest score and count the booking as a success when that candidate's
latent outcome ``completed_if_assigned`` is true. Because the historical dispatch policy assigned
a uniformly random candidate and the outcome was drawn for every candidate, this is an unbiased
(off-policy free) estimate of the completion rate the scorer would achieve.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
from pydantic import BaseModel, ConfigDict

from data_pipeline.example_source.generator import ExampleData

ArrayLike = npt.ArrayLike

#: Seed of the random ranker used for contrast (fixed, so the metrics are reproducible).
RANDOM_RANKER_SEED = 12345


def roc_auc(y_true: ArrayLike, scores: ArrayLike) -> float:
    """ROC AUC (Mann-Whitney U, mid-ranks for ties); ValueError when a class is absent."""
    y = np.asarray(y_true, dtype=bool)
    s = np.asarray(scores, dtype=np.float64)
    if y.shape != s.shape or y.ndim != 1:
        raise ValueError(f"y_true and scores must be 1-d of equal length ({y.shape} vs {s.shape})")
    if np.isnan(s).any():
        raise ValueError("scores contain NaN")
    n_pos = int(y.sum())
    n_neg = len(y) - n_pos
    if n_pos == 0 or n_neg == 0:
        raise ValueError("ROC AUC needs both positive and negative labels")
    ranks = pd.Series(s).rank(method="average").to_numpy()
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def top1_accuracy(
    candidates_df: pd.DataFrame,
    scores: ArrayLike | pd.Series | Sequence[float],
    *,
    outcome_column: str = "completed_if_assigned",
) -> float:
    """Fraction of bookings whose highest-scored candidate has ``completed_if_assigned`` true.

    ``candidates_df`` needs ``booking_id`` and ``outcome_column`` (and uses ``position``, when
    present, to break score ties towards the dispatcher's first-listed candidate); ``scores`` is
    aligned with its rows (same length, same order; a Series is taken positionally). Every row of a
    booking's candidate set must be present for the result to mean what it says.
    """
    for column in ("booking_id", outcome_column):
        if column not in candidates_df.columns:
            raise ValueError(f"candidates_df has no column {column!r}")
    s = np.asarray(scores, dtype=np.float64).reshape(-1)
    if len(s) != len(candidates_df):
        raise ValueError(f"got {len(s)} scores for {len(candidates_df)} candidate rows")
    if len(s) == 0:
        raise ValueError("no candidates to evaluate")
    if np.isnan(s).any():
        raise ValueError("scores contain NaN")
    frame = pd.DataFrame(
        {
            "booking_id": candidates_df["booking_id"].to_numpy(),
            "score": s,
            "tie": (
                candidates_df["position"].to_numpy()
                if "position" in candidates_df.columns
                else np.arange(len(s))
            ),
            "outcome": candidates_df[outcome_column].to_numpy(dtype=bool),
        }
    )
    best = frame.sort_values(["booking_id", "score", "tie"], ascending=[True, False, True])
    best = best.drop_duplicates("booking_id", keep="first")
    return float(best["outcome"].mean())


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
