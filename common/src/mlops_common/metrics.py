"""Ranking metrics with one definition: what training evaluates and the example's oracle reports.

``top1_accuracy`` evaluates any scorer the way a dispatcher would use it: for each event (a
booking), pick the candidate with the highest score and count the event as a success when that
candidate's latent outcome is true. When the historical dispatch policy assigned a uniformly random
candidate and the outcome is known for every candidate, this is an unbiased (off-policy free)
estimate of the success rate the scorer would achieve.

numpy and pandas are imported where used, so ``mlops_common``'s base install stays light.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd
    from numpy.typing import ArrayLike


def roc_auc(y_true: ArrayLike, scores: ArrayLike) -> float:
    """ROC AUC (Mann-Whitney U, mid-ranks for ties); ValueError when a class is absent."""
    import numpy as np
    import pandas as pd

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
    """Fraction of bookings whose highest-scored candidate has ``outcome_column`` true.

    ``candidates_df`` needs ``booking_id`` and ``outcome_column`` (and uses ``position``, when
    present, to break score ties towards the dispatcher's first-listed candidate); ``scores`` is
    aligned with its rows (same length, same order; a Series is taken positionally). Every row of a
    booking's candidate set must be present for the result to mean what it says.
    """
    import numpy as np
    import pandas as pd

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
